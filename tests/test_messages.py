"""Messages that name what the user typed and what the run did: plurals, the value a run used, the file
that could not be written, the closest names first, and the command line's flags instead of the library's
keyword arguments."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import senet
from senet._plural import plural
from senet._validation import close_matches
from senet.analysis.data import AnalysisData, per_class_subset
from senet.cli._wording import cli_wording
from senet.cli.main import main
from senet.data import TensorSplit
from senet.models import list_models
from senet.train.config import TrainConfig
from senet.train.rundir import describe_run, refuse_changed_options


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_plurals():
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs" and plural(0, "epoch") == "0 epochs"
    assert plural(1_000, "image") == "1,000 images" and plural(1, "class", "classes") == "1 class"
    data = AnalysisData(TensorSplit(torch.zeros(4, 3, 2, 2, dtype=torch.uint8), torch.tensor([0, 0, 1, 1])),
                        ("a", "b"), (0.5,) * 3, (0.5,) * 3, description="x")  # fmt: skip
    assert per_class_subset(data, 1).description == "x, 1 image per class"


def test_a_finished_run_of_one_epoch(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "cifar_resnet20", "epochs": 1}))
    (tmp_path / "summary.json").write_text("{}")
    assert describe_run(tmp_path) == "a finished run of cifar_resnet20 (1 epoch)"


def test_a_changed_option_names_the_value_the_run_used():
    stored = TrainConfig(model="cifar_resnet20")  # lr left to the recipe: recorded as None
    used = stored.resolve().lr
    given = TrainConfig(model="cifar_resnet20", lr=0.5, given=("lr",))
    with pytest.raises(ValueError, match=rf"--lr 0.5 \(recorded: {used}\)"):
        refuse_changed_options(given, stored, Path("x"), resumable=frozenset(), label="recorded", start_anew="no")
    # The recipe's own value, given again, is no change.
    same = TrainConfig(model="cifar_resnet20", lr=used, given=("lr",))
    refuse_changed_options(same, stored, Path("x"), resumable=frozenset(), label="recorded", start_anew="no")


def test_an_output_that_cannot_be_written_is_named_not_its_temporary_file(capsys):
    err = _one_line_error(capsys, main(["profile", "se_cifar_resnet20", "--out", "/proc/senet-x.md"]))
    assert "cannot write /proc/senet-x.md" in err and ".tmp" not in err, err


def test_look_alike_digits_suggest_the_name_meant_first(capsys):
    assert close_matches("resnet2O", list_models())[:2] == ["cifar_resnet20", "se_cifar_resnet20"]
    assert close_matches("resnet5O", list_models())[0] == "resnet50"
    err = _one_line_error(capsys, main(["retrofit", "--model", "resnet2O", "--pretrained", "--out", "x"]))
    assert "did you mean cifar_resnet20, se_cifar_resnet20" in err, err
    assert "list_models()" not in err


def test_the_command_line_names_its_flags():
    for command in ("train", "compare"):  # their --retrofit always starts as the identity: no flag to point at
        worded = cli_wording(command, "identity_init supports se; CBAM has no last layer (use identity_init=False)")
        assert "identity_init" not in worded and worded.startswith("starting as the identity supports"), worded
    assert cli_wording("retrofit", "no last layer to zero (use identity_init=False)").endswith(
        "(use --no-identity-init)")
    assert cli_wording("retrofit", "placement 'post' cannot be applied: x; choose places with where=").endswith(
        "choose places with --where")
    assert cli_wording("eval", "unknown model 'x'; see `senet list` or senet.list_models()") == (
        "unknown model 'x'; see `senet list`")
    assert cli_wording("retrofit", "identity_init needs a gate with gate(0) = 1/2").startswith(
        "starting as the identity (the default) needs")


@pytest.mark.parametrize(
    "argv, named",
    [
        (["export", "--model", "bogus", "{file}"], "unknown model 'bogus'"),
        (["profile", "bogus", "--out", "{file}"], "unknown model 'bogus'"),
        (["profile", "cifar_resnet20", "--attention", "bogus", "--out", "{file}"], "unknown attention 'bogus'"),
        (["analyze", "--model", "bogus", "--weights", "w.pth", "--dataset", "cifar10", "--out", "{folder}"],
         "unknown model 'bogus'"),
        (["retrofit", "--model", "bogus", "--weights", "w.pth", "--out", "{folder}"], "unknown model 'bogus'"),
        (["retrofit", "--model", "resnet20", "--weights", "w.pth", "--attention", "bogus", "--out", "{folder}"],
         "unknown attention 'bogus'"),
        (["retrofit", "--model", "resnet20", "--weights", "w.pth", "--image-size", "0", "--out", "{folder}"],
         "--image-size must be a positive number of pixels, got 0"),
        (["convert", "w.pth", "{file}", "--model", "bogus"], "unknown model 'bogus'"),
        (["train", "--model", "bogus", "--out", "{folder}"], "unknown model 'bogus'"),
        (["compare", "--model", "bogus", "--out", "{folder}"], "unknown model 'bogus'"),
        (["train", "--model", "resnet20", "--subset", "5", "--out", "{folder}"],
         "--subset 5: a class-balanced subset of 5 images cannot hold one image of each of the 10 classes"),
        (["train", "--model", "resnet20", "--test-subset", "20000", "--out", "{folder}"],
         "--test-subset 20000: a subset of 20,000 images is more than the 10,000"),
        (["compare", "--model", "resnet20", "--subset", "5", "--out", "{folder}"], "--subset 5: "),
        (["train", "--model", "resnet20", "--out", "{file}"], "--out {file} is a file, not a folder"),
        (["train", "--model", "resnet20", "--image-size", "64", "--out", "{folder}"],
         "--image-size is the crop of image folders: CIFAR's images are 32 x 32, got 64"),
        (["bench", "--threads", "0", "--out", "{file}"], "--threads must be >= 1"),
        (["bench", "--seed", "-1", "--out", "{file}"], "--seed must be >= 0, got -1"),
        (["bench", "--suite", "se", "--out", "{file}"], "it is a file, not a folder"),
    ],
)
def test_the_model_and_options_are_checked_before_the_output(tmp_path, capsys, monkeypatch, argv, named):
    """An unknown model (or attention) is what the user must hear about first, not that OUT exists (once
    `senet profile bogus --out EXISTING` said 'exists; add --force', and adding --force met the unknown model),
    and, as a subset CIFAR cannot give, before any data is read (`senet train --model bogus` and `--subset 5`
    decoded the 60,000 CIFAR-10 images first; the subset's message named no option). A file given as an output
    folder is named as such (once train said "[Errno 17] File exists"), and bench names its flags."""

    def no_data(*args, **kwargs):
        raise AssertionError("data was read before the model was checked")

    monkeypatch.setattr("senet.train.run.build_data", no_data)
    file = tmp_path / "existing.safetensors"
    file.write_text("keep")
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "kept.txt").write_text("keep")
    err = _one_line_error(capsys, main([a.format(file=file, folder=folder) for a in argv]))
    assert named.format(file=file) in err, err
    assert file.read_text() == "keep" and [p.name for p in folder.iterdir()] == ["kept.txt"]


def test_our_keys_of_another_variant_are_named_key_by_key_not_blamed_on_a_naming(tmp_path, capsys):
    """SE-ResNet-20's weights given as ResNet-20's: the SE keys are what does not fit (once every command said
    "naming 'modern' covers the ResNet models; model 'cifar_resnet20' is a CifarResNet")."""
    import senet
    from senet.pretrained.loading import checkpoint_naming

    state = senet.models.create_model("se_cifar_resnet20").state_dict()
    path = tmp_path / "se.pth"
    torch.save(state, path)
    assert checkpoint_naming(state, "cifar_resnet20") == "ours"
    with pytest.raises(ValueError, match=r"does not fit model 'cifar_resnet20': 36 unexpected: layer1\.0\.se\.fc1"):
        senet.load_model(path, model="cifar_resnet20")
    convert = ["convert", str(path), str(tmp_path / "o.safetensors"), "--model", "resnet20"]
    retrofit = ["retrofit", "--model", "resnet20", "--weights", str(path), "--out", str(tmp_path / "r")]
    for argv in (convert, retrofit):
        err = _one_line_error(capsys, main(argv))
        assert "does not fit model 'cifar_resnet20'" in err and "layer1.0.se.fc1.weight" in err, err
        assert "covers" not in err and "naming" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["se.pth"]


@pytest.mark.parametrize(
    "config, named",
    [('{"model": "cifar_resnet20", "dataset": "cifar10", "epochs": "ten"}', "its epochs is 'ten', not int | None"),
     ('{"model": "cifar_resnet20", "dataset": "cifar10", "lr": true}', "its lr is True, not float | None"),
     ('[1, 2]', "a JSON object of options, not a list")],
)
def test_a_damaged_run_configuration_is_one_line(tmp_path, capsys, config, named):
    """A hand-edited config.json (a word where a number goes, a list) is refused in one line by every command
    that reads it (once eval and train --resume ended in a TypeError or AttributeError traceback)."""
    import senet
    from senet.train.checkpoint import save_weights

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config)
    save_weights(senet.models.create_model("cifar_resnet20"), run / "model.safetensors")
    before = sorted(p.name for p in run.iterdir())
    for argv in (["eval", "--checkpoint", str(run)], ["train", "--model", "resnet20", "--out", str(run), "--resume"]):
        err = _one_line_error(capsys, main(argv))
        assert f"{run / 'config.json'} is not a readable run configuration" in err and named in err, err
    assert sorted(p.name for p in run.iterdir()) == before
    (run / "config.json").write_text('{"model": "cifar_resnet20"}')  # once a KeyError traceback
    for command in ("eval", "analyze"):
        err = _one_line_error(capsys, main([command, "--checkpoint", str(run)]))
        assert f"{run} records no data set: give --dataset" in err, err


def test_eval_of_a_run_refuses_a_model_it_does_not_hold(tmp_path, capsys):
    """`eval --checkpoint RUN --model OTHER` once scored the run's own network and said nothing of --model."""
    import senet
    from senet.train.checkpoint import save_weights

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig(model="cifar_resnet20").to_dict()))
    save_weights(senet.models.create_model("cifar_resnet20"), run / "model.safetensors")
    err = _one_line_error(capsys, main(["eval", "--checkpoint", str(run), "--model", "resnet56", "--test-subset", "10",
                                        "--device", "cpu"]))  # fmt: skip
    assert "holds a run of cifar_resnet20, not cifar_resnet56; give --model cifar_resnet20" in err, err


@pytest.mark.parametrize("command", ["eval", "analyze"])
def test_an_unreadable_image_is_one_line_naming_no_flag_the_command_lacks(tmp_path, capsys, command):
    """A corrupt image decoded in a DataLoader worker once printed the worker's whole traceback as the message,
    ending in a hint at --skip-corrupt, which eval and analyze do not have."""
    import numpy as np
    from PIL import Image

    import senet
    from senet.data import CIFAR10_CLASSES

    for split in ("train", "val"):
        for name in CIFAR10_CLASSES:
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / split / name / f"{i}.png")
    for i in range(2):
        (tmp_path / "data" / "val" / "cat" / f"{i}.png").write_bytes(b"not an image")
    torch.save(senet.models.create_model("se_cifar_resnet20").state_dict(), tmp_path / "w.pth")
    argv = [command, "--model", "se_cifar_resnet20", "--weights", str(tmp_path / "w.pth"), "--dataset",
            str(tmp_path / "data"), "--workers", "1", "--device", "cpu", "--no-progress"]  # fmt: skip
    if command == "analyze":
        argv += ["--per-class", "2", "--out", str(tmp_path / "out")]
    err = _one_line_error(capsys, main(argv))
    assert "cannot decode image" in err and "cat" in err and "skip" not in err and "Original" not in err, err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # a short CIFAR name misspelt suggests its network first
        (["profile", "resnt20"], "unknown model 'resnt20'; did you mean cifar_resnet20,"),
        # the library's argument named as the flag
        (["demo", "--reduction", "nan"], "--reduction must be a positive finite number, got nan"),
        (["profile", "cifar_resnet20", "--reduction", "inf"], "--reduction must be a positive finite number"),
        # a key without its values is not an unknown key
        (["ablate", "--model", "se_cifar_resnet20", "--vary", "reduction", "--out", "{tmp}/a"],
         "--vary reduction needs its values: --vary reduction=V1,V2,..."),
        # a missing checkpoint is missing, not a run without its data set
        (["eval", "--checkpoint", "{tmp}/no-such-run"], "{tmp}/no-such-run does not exist"),
        (["eval", "--checkpoint", "typo.pth"], "typo.pth does not exist"),
        # an image folder that is a file
        (["train", "--model", "cifar_resnet20", "--dataset", "{tmp}/a-file", "--out", "{tmp}/run"],
         "image folder {tmp}/a-file is a file, not a folder"),
        # sizes no memory holds: one line, not PyTorch's traceback
        (["demo", "--channels", "99999999"], "out of memory (an allocation of"),
    ],
)  # fmt: skip
def test_the_sweeps_last_findings_are_one_line_naming_the_right_thing(tmp_path, capsys, argv, expected):
    (tmp_path / "a-file").write_text("not a folder")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = _one_line_error(capsys, code)
    assert expected.replace("{tmp}", str(tmp_path)) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing made


def test_retrofit_names_the_where_flag(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    save_file(senet.create_model("resnet18").state_dict(), str(weights))
    err = _one_line_error(capsys, main(["retrofit", "--model", "resnet18", "--weights", str(weights), "--where",
                                        "nothing", "--out", str(tmp_path / "out")]))  # fmt: skip
    assert "--where 'nothing' is neither a residual block" in err and "where: " not in err, err


def test_sigterm_outside_a_run_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    """`timeout` or a scheduler stops an export with SIGTERM while its file is written: the temporary file goes,
    one line, exit 143 (a training run has its own handler: it stops after a checkpoint)."""
    real_trace = torch.jit.trace

    def trace_then_sigterm(*args, **kwargs):
        traced = real_trace(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return traced

    monkeypatch.setattr(torch.jit, "trace", trace_then_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    code = main(["export", "--model", "cifar_resnet20", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err
    assert code == 143 and err == "senet: stopped by SIGTERM; nothing partial was left\n", err
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the command's, for its duration
