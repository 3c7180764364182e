"""`senet convert` on the command line: a declared naming the keys contradict is refused, and a run trained
with another class count converts with its own classifier."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file, save_file

import senet
from senet.cli.main import main
from senet.convert import convert_state_dict
from senet.train.checkpoint import save_weights
from senet.train.config import TrainConfig


def test_source_ours_on_a_file_in_another_naming_is_refused(tmp_path, capsys):
    model = senet.create_model("se_resnet18")
    legacy = convert_state_dict(model.state_dict(), "ours", model="se_resnet18", target="legacy")
    save_file({k: v.contiguous() for k, v in legacy.items()}, str(tmp_path / "legacy.safetensors"))
    out = tmp_path / "out.safetensors"
    code = main(["convert", str(tmp_path / "legacy.safetensors"), str(out), "--model", "se_resnet18",
                 "--source", "ours"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "--source ours:" in err and "are not se_resnet18's" in err and "'legacy' naming" in err, err
    assert not out.exists()
    # The same file without --source is read as what it is.
    assert main(["convert", str(tmp_path / "legacy.safetensors"), str(out), "--model", "se_resnet18"]) == 0
    assert set(load_file(str(out))) == set(model.state_dict())


@pytest.mark.parametrize("as_run", [True, False])
def test_a_run_with_another_class_count_converts(tmp_path, capsys, as_run):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(model="se_cifar_resnet20").to_dict()))
    save_weights(senet.create_model("se_cifar_resnet20", num_classes=3), run / "model.safetensors")
    source = run if as_run else run / "model.safetensors"
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(source), str(out), "--model", "se_cifar_resnet20"]) == 0, capsys.readouterr().err
    assert load_file(str(out))["fc.weight"].shape == (3, 64)


@pytest.mark.parametrize("wrong", ["cifar_resnet56", "se_cifar_resnet20"])
def test_our_keys_of_a_smaller_network_are_not_written_as_another_model(tmp_path, capsys, wrong):
    # ResNet-20's keys are a subset of ResNet-56's and of SE-ResNet-20's: no key is foreign, many are missing
    save_file(senet.create_model("cifar_resnet20").state_dict(), str(tmp_path / "r20.safetensors"))
    out = tmp_path / "out.safetensors"
    code = main(["convert", str(tmp_path / "r20.safetensors"), str(out), "--model", wrong])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"does not fit model {wrong!r}" in err and "missing from the file" in err and "--model" in err, err
    assert not out.exists()
