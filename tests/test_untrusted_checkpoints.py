"""Untrusted weights: a crafted checkpoint (a pickle whose payload creates a marker file) on every path that
reads weights, and a safetensors file whose header lies.

Every test asserts the refusal (one line) and that the marker never appears.
"""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from test_data_cifar import make_cifar_archive

import senet
from senet.cli.main import main
from senet.io import latest_checkpoint
from senet.pretrained import UnsafeCheckpointError, load_pretrained, read_state_dict
from senet.train.checkpoint import load_checkpoint, read_state

# ---------------------------------------------------------------------------------------------------------
# Crafted checkpoints


class Payload:
    """Pickles as a call to os.system that creates ``marker``: what a crafted checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# How a payload reaches a file: torch.save (zip and legacy formats), a bare pickle at protocols 2 and 5,
# and hidden beside a real state dict / checkpoint state.
PAYLOAD_KINDS = ["torch.save", "torch.save legacy", "pickle protocol 2", "pickle protocol 5", "beside real data"]


def write_payload(path, kind, marker, real=None):
    evil = Payload(marker)
    if kind == "torch.save":
        torch.save({"x": evil}, path)
    elif kind == "torch.save legacy":
        torch.save({"x": evil}, path, _use_new_zipfile_serialization=False)
    elif kind == "pickle protocol 2":
        path.write_bytes(pickle.dumps(evil, protocol=2))
    elif kind == "pickle protocol 5":
        path.write_bytes(pickle.dumps(evil, protocol=5))
    else:
        torch.save({**(real or {}), "hook": evil}, path)


def assert_one_line_refusal(message, path=None):
    assert message and "\n" not in message.strip() and "Traceback" not in message
    assert "refused" in message
    if path is not None:
        assert str(path) in message


def test_the_payload_is_live(tmp_path):
    """Sanity check of the tests themselves: an unsafe load of a crafted file does run its payload."""
    marker, path = tmp_path / "ran", tmp_path / "evil.pt"
    write_payload(path, "torch.save", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    """A folder holding a small official-format CIFAR-10 archive (10 images a class): quick runs."""
    folder = tmp_path_factory.mktemp("cifar")
    make_cifar_archive(folder, "cifar10", per_class=2)
    return folder


def _train_args(data_dir, out, epochs):
    return [
        "train", "--model", "cifar_resnet20", "--data-dir", str(data_dir), "--subset", "20", "--test-subset", "10",
        "--batch-size", "10", "--epochs", str(epochs), "--no-progress", "--device", "cpu", "--out", str(out),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_cifar):
    """A finished one-epoch run directory (copied by each test before it is tampered with)."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(_train_args(tiny_cifar, out, 1)) == 0
    return out


@pytest.fixture
def run_copy(tmp_path, trained_run):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_eval_refuses_pickled_weights(run_copy, tiny_cifar, tmp_path, capsys, kind):
    marker = tmp_path / "payload-ran"
    weights = run_copy / "model.safetensors"
    write_payload(weights, kind, marker)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run_copy), "--data-dir", str(tiny_cifar), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "not a readable safetensors file" in err and str(weights) in err and err.count("\n") == 1
    assert not marker.exists()


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_resume_refuses_a_crafted_state_and_never_runs_it(run_copy, tiny_cifar, tmp_path, capsys, kind):
    marker = tmp_path / "payload-ran"
    checkpoint = latest_checkpoint(run_copy)
    state = checkpoint / "state.pt"
    real = {"optimizer": {"state": {}, "param_groups": []}, "scheduler": None, "epoch": 1}
    write_payload(state, kind, marker, real=real)
    model = senet.create_model("cifar_resnet20")
    with pytest.raises(ValueError) as info:
        load_checkpoint(checkpoint, model=model)
    assert_one_line_refusal(str(info.value), state)
    if kind in ("torch.save", "torch.save legacy", "pickle protocol 2", "beside real data"):
        # The pickle asks for os.system by name: refused as unsafe, naming what it asked for.
        assert isinstance(info.value, UnsafeCheckpointError) and "posix.system" in str(info.value)
    capsys.readouterr()
    assert main([*_train_args(tiny_cifar, run_copy, 2), "--resume"]) == 2
    err = capsys.readouterr().err
    assert_one_line_refusal(err, state)
    assert "--force" in err
    assert not marker.exists()
    assert latest_checkpoint(run_copy) == checkpoint  # nothing was trained or written


def test_resume_state_is_plain_data_and_old_checkpoints_still_load(run_copy, tiny_cifar, capsys):
    """state.pt holds tensors and plain values only (it loads with weights_only=True and nothing else);
    a state.pt of the previous format (numpy's RNG keys as a numpy array) still resumes."""
    checkpoint = latest_checkpoint(run_copy)
    state = torch.load(checkpoint / "state.pt", weights_only=True)
    assert set(state) == {"optimizer", "scheduler", "rng", "epoch"} and state["epoch"] == 1
    assert isinstance(state["rng"]["numpy"][1], torch.Tensor)
    # The previous format, written by hand.
    old = dict(state, rng=dict(state["rng"], numpy=np.random.RandomState(7).get_state()))
    torch.save(old, checkpoint / "state.pt")
    assert read_state(checkpoint / "state.pt")["rng"]["numpy"][1].dtype == np.uint32
    np.random.seed(0)
    load_checkpoint(checkpoint, model=senet.create_model("cifar_resnet20"))
    assert np.random.rand() == np.random.RandomState(7).rand()  # numpy's generator was restored
    capsys.readouterr()
    assert main([*_train_args(tiny_cifar, run_copy, 2), "--resume"]) == 0
    assert latest_checkpoint(run_copy).name == "epoch_0002"


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, None])
def test_resume_with_an_unreadable_state_is_one_line(run_copy, content):
    state = latest_checkpoint(run_copy) / "state.pt"
    if content is None:  # truncated
        content = state.read_bytes()[: state.stat().st_size // 2]
    state.write_bytes(content)
    with pytest.raises(ValueError) as info:
        load_checkpoint(state.parent, model=senet.create_model("cifar_resnet20"))
    assert "\n" not in str(info.value) and str(state) in str(info.value) and "--force" in str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError)


@pytest.fixture(scope="module")
def small_state():
    return senet.create_model("cifar_resnet20").state_dict()


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_convert_refuses_a_crafted_checkpoint(tmp_path, capsys, small_state, kind):
    marker, evil, out = tmp_path / "payload-ran", tmp_path / "evil.pth", tmp_path / "out.safetensors"
    write_payload(evil, kind, marker, real={"state_dict": small_state})
    capsys.readouterr()
    assert main(["convert", str(evil), str(out), "--model", "cifar_resnet20"]) == 2
    assert_one_line_refusal(capsys.readouterr().err, evil)
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_load_pretrained_and_create_model_refuse_a_crafted_checkpoint(tmp_path, small_state, kind):
    marker, evil = tmp_path / "payload-ran", tmp_path / "evil.pth"
    write_payload(evil, kind, marker, real={"state_dict": small_state})
    for load in (
        lambda: read_state_dict(evil),
        lambda: load_pretrained(senet.create_model("cifar_resnet20"), evil),
        lambda: senet.load_pretrained(senet.create_model("cifar_resnet20"), str(evil)),
        lambda: senet.create_model("cifar_resnet20", pretrained=evil),
        lambda: senet.create_model("cifar_resnet20", pretrained=str(evil)),
    ):
        with pytest.raises(ValueError) as info:
            load()
        assert_one_line_refusal(str(info.value), evil)
    assert not marker.exists()


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_export_and_retrofit_refuse_a_crafted_checkpoint(run_copy, tmp_path, small_state, kind):
    from senet.factory import load_model, load_retrofitted, retrofit_checkpoint

    marker = tmp_path / "payload-ran"
    write_payload(run_copy / "model.safetensors", kind, marker)
    with pytest.raises(ValueError) as info:  # what `senet export --weights RUN` loads
        load_model(run_copy, model="cifar_resnet20")
    assert "\n" not in str(info.value)
    evil = tmp_path / "evil.pth"
    write_payload(evil, kind, marker, real={"state_dict": small_state})
    with pytest.raises(ValueError) as info:  # `senet retrofit --weights evil.pth`
        retrofit_checkpoint("cifar_resnet20", evil, tmp_path / "out")
    assert_one_line_refusal(str(info.value), evil)
    assert not (tmp_path / "out").exists()
    fake = tmp_path / "retrofitted"
    fake.mkdir()
    write_payload(fake / "model.safetensors", kind, marker)
    with pytest.raises(ValueError):
        load_retrofitted(fake)
    assert not marker.exists()


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_the_command_lines_that_take_weights_refuse_a_crafted_checkpoint(
    run_copy, tiny_cifar, tmp_path, capsys, small_state, kind
):
    """train --init-from, eval --weights, analyze --weights and export --weights (a file, a run): one line,
    exit 2, the payload never runs and nothing is written."""
    marker, evil = tmp_path / "payload-ran", tmp_path / "evil.pth"
    write_payload(evil, kind, marker, real={"state_dict": small_state})
    write_payload(run_copy / "model.safetensors", kind, marker)
    val = tmp_path / "val" / "n01440764"
    val.mkdir(parents=True)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(val / "a.JPEG")
    commands = {
        "train": (["train", *_train_args(tiny_cifar, tmp_path / "run2", 1)[1:], "--init-from", str(evil)],
                  tmp_path / "run2"),
        "eval": (["eval", "--model", "cifar_resnet20", "--weights", str(evil), "--dataset", str(tmp_path / "val"),
                  "--workers", "0", "--no-progress", "--device", "cpu"], None),
        "analyze": (["analyze", "--model", "cifar_resnet20", "--weights", str(evil), "--dataset", "cifar10",
                     "--data-dir", str(tiny_cifar), "--per-class", "2", "--no-progress", "--device", "cpu",
                     "--out", str(tmp_path / "analysis")], tmp_path / "analysis"),
        "export file": (["export", str(tmp_path / "m.onnx"), "--model", "cifar_resnet20", "--weights", str(evil)],
                        tmp_path / "m.onnx"),
        "export run": (["export", str(tmp_path / "r.onnx"), "--model", "cifar_resnet20", "--weights", str(run_copy)],
                       tmp_path / "r.onnx"),
    }  # fmt: skip
    for what, (args, written) in commands.items():
        capsys.readouterr()
        assert main(args) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, (what, err)
        assert "refused" in err or "not a readable" in err, (what, err)
        assert str(evil if "run" not in what else run_copy / "model.safetensors") in err, (what, err)
        assert written is None or not written.exists(), what
        assert not marker.exists(), what


def test_a_run_directory_with_pickled_weights_is_refused_by_load_pretrained(run_copy, tmp_path):
    marker = tmp_path / "payload-ran"
    write_payload(run_copy / "model.safetensors", "torch.save", marker)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        senet.create_model("cifar_resnet20", pretrained=run_copy)
    assert not marker.exists()


def test_safetensors_with_a_lying_header_is_one_error(tmp_path):
    """A safetensors header whose offsets point past the end of the file (or overlap) is refused."""
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(4, 4)}, path)
    blob = bytearray(path.read_bytes())
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + n])
    header["w"]["data_offsets"] = [0, 10**9]
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + n :])
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
