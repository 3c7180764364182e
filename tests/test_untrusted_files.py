"""Untrusted files: crafted checkpoints on every path that reads weights, malicious and truncated archives,
downloads with the wrong checksum or cut short, and broken or unusual images.

A crafted pickle carries a payload that creates a marker file; every test asserts the refusal (one line)
and that the marker never appears. An archive member that could write outside its folder or is not a
plain file refuses the whole archive, before anything is written.
"""

import gzip
import hashlib
import http.server
import io
import json
import os
import pickle
import shutil
import struct
import tarfile
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from test_data_cifar import make_cifar_archive

import senet
from senet.cli.main import main
from senet.data import CorruptImageError, ImageFolder, RandomResizedCropFlip, read_cifar_archive
from senet.data.cache import UnsafeArchiveError, extract_archive
from senet.data.download import ChecksumError, download_file
from senet.data.embedded_cifar10 import decode_image_archive
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


# ---------------------------------------------------------------------------------------------------------
# Archives: member kinds that could write outside the target folder, truncation


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = (1, 3) if kind == tarfile.CHRTYPE else (8, 0)
    return info, None


def malicious_members(kind, prefix, outside):
    """The members of an archive attacking ``outside`` (a folder beside the target), under ``prefix``."""
    secret = outside / "secret.txt"
    return {
        "traversal": [_file("../escaped.txt", b"pwned")],
        "nested traversal": [_file(f"{prefix}/../../escaped.txt", b"pwned")],
        "absolute path": [_file(str(outside / "escaped.txt"), b"pwned")],
        "symlink out": [_special(f"{prefix}/link", tarfile.SYMTYPE, str(outside)),
                        _file(f"{prefix}/link/escaped.txt", b"pwned")],
        "relative symlink out": [_special(f"{prefix}/up", tarfile.SYMTYPE, "../../.."),
                                 _file(f"{prefix}/up/escaped.txt", b"pwned")],
        "symlink inside": [_special(f"{prefix}/alias", tarfile.SYMTYPE, "a.txt")],
        "hard link out": [_special(f"{prefix}/hard", tarfile.LNKTYPE, str(secret)), _file(f"{prefix}/hard", b"pwned")],
        "character device": [_special(f"{prefix}/null", tarfile.CHRTYPE)],
        "block device": [_special(f"{prefix}/disk", tarfile.BLKTYPE)],
        "fifo": [_special(f"{prefix}/pipe", tarfile.FIFOTYPE)],
    }[kind]  # fmt: skip


MEMBER_KINDS = [
    "traversal", "nested traversal", "absolute path", "symlink out", "relative symlink out", "symlink inside",
    "hard link out", "character device", "block device", "fifo",
]  # fmt: skip


def write_tar(path, members, fmt=None):
    """Writes ``(TarInfo, data)`` members as given (GNU format unless ``fmt``; gzipped for a .gz name)."""
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode, format=fmt or tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def arena(tmp_path):
    """tmp_path/work (where archives and targets go) and tmp_path/outside (holding secret.txt)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("do not touch")
    return tmp_path / "work", tmp_path / "outside"


def _png(size=(32, 32), mode="RGB", color=0):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_extract_archive_refuses_unsafe_members_and_writes_nothing(arena, kind):
    work, outside = arena
    members = [_file("data/a.txt", b"fine"), *malicious_members(kind, "data", outside)]
    archive = write_tar(work / "evil.tar.gz", members)
    before = _snapshot(work.parent)
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(archive, work / "out")
    assert "\n" not in str(info.value) and str(archive) in str(info.value) and "refused" in str(info.value)
    assert _snapshot(work.parent) == before  # not the target, not a temporary, nothing outside
    assert not (work / "escaped.txt").exists() and not (outside / "escaped.txt").exists()


@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_extract_without_the_data_filter_refuses_the_same(arena, kind, monkeypatch):
    """Python < 3.11.4 has no 'data' filter: the explicit checks alone give the same refusals."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    work, outside = arena
    archive = write_tar(work / "evil.tar", [_file("data/a.txt"), *malicious_members(kind, "data", outside)])
    before = _snapshot(work.parent)
    with pytest.raises(UnsafeArchiveError):
        extract_archive(archive, work / "out")
    assert _snapshot(work.parent) == before


@pytest.mark.parametrize("data_filter", [True, False])
def test_extract_archive_extracts_a_safe_archive(arena, data_filter, monkeypatch):
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    work, _ = arena
    members = [_file("data/a.txt", b"fine"), _file("data/sub/b.bin", bytes(range(256)))]
    archive = write_tar(work / "good.tar.gz", members)
    assert extract_archive(archive, work / "out") == work / "out"
    assert (work / "out" / "data" / "a.txt").read_bytes() == b"fine"
    assert (work / "out" / "data" / "sub" / "b.bin").read_bytes() == bytes(range(256))
    assert sorted(p.name for p in work.iterdir()) == ["good.tar.gz", "out"]  # no temporaries left
    with pytest.raises(FileExistsError):
        extract_archive(archive, work / "out")


@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_cifar_archive_with_an_unsafe_member_is_refused(arena, kind):
    work, outside = arena
    path, _, _ = make_cifar_archive(work, "cifar10", per_class=1)
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf]
    members += malicious_members(kind, "cifar-10-batches-py", outside)
    write_tar(path, members)
    before = _snapshot(work.parent)
    with pytest.raises(UnsafeArchiveError) as info:
        read_cifar_archive(path, "cifar10")
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert _snapshot(work.parent) == before


def test_cifar_archive_member_named_like_a_batch_but_a_device_is_refused(arena):
    work, _ = arena
    path, _, _ = make_cifar_archive(work, "cifar10", per_class=1)
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf if not m.name.endswith("test_batch")]
    write_tar(path, [*members, _special("cifar-10-batches-py/test_batch", tarfile.CHRTYPE)])
    with pytest.raises(UnsafeArchiveError, match="a device file"):
        read_cifar_archive(path, "cifar10")


@pytest.mark.parametrize("path_kind", ["fast", "slow"])
@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_image_archive_with_an_unsafe_member_is_refused(arena, kind, path_kind):
    """decode_image_archive parses plain ustar headers itself (fast) and hands anything else to tarfile
    (slow, forced here by a GNU long name): both refuse."""
    work, outside = arena
    members = [_file("train/a/0.png", _png()), _file("test/a/0.png", _png())]
    if path_kind == "slow":
        members.append(_file("train/a/" + "long" * 40 + ".png", _png()))
    members += malicious_members(kind, "train/a", outside)
    archive = write_tar(work / "images.tar", members, fmt=tarfile.USTAR_FORMAT if path_kind == "fast" else None)
    with pytest.raises(UnsafeArchiveError) as info:
        decode_image_archive(archive, progress=False)
    assert "\n" not in str(info.value) and str(archive) in str(info.value)


@pytest.mark.parametrize("cut", ["10%", "50%", "90%", "gzip trailer", "tar at a member's header", "tar end block"])
def test_truncated_archives_are_one_clear_error(arena, cut):
    work, _ = arena
    path, _, _ = make_cifar_archive(work, "cifar10", per_class=1)
    if cut.startswith("tar"):  # the same archive uncompressed, cut between two members or in its end block
        with tarfile.open(path) as tf:
            infos = tf.getmembers()
            members = [(m, tf.extractfile(m).read()) for m in infos]
        path = write_tar(work / "cifar-10-python.tar", members)
        with tarfile.open(path) as tf:
            infos = tf.getmembers()
        at = infos[3].offset if "header" in cut else infos[-1].offset_data + -(-infos[-1].size // 512) * 512 + 10
        (work / "cifar-10-python.tar.gz").unlink()
    else:
        at = {"10%": 0.1, "50%": 0.5, "90%": 0.9}.get(cut, 1.0) * path.stat().st_size - (cut == "gzip trailer") * 6
    path.write_bytes(path.read_bytes()[: int(at)])
    for read in (
        lambda: read_cifar_archive(path, "cifar10"),
        lambda: extract_archive(path, work / "out"),
    ):
        with pytest.raises(ValueError) as info:
            read()
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert "truncated" in str(info.value) or "not a readable" in str(info.value) or "has no" in str(info.value)
    assert sorted(p.name for p in work.iterdir()) == [path.name]  # no extracted leftovers


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "gnu-long-name.tar"])
@pytest.mark.parametrize("cut", ["30%", "70%", "at a member's header", "inside the last member", "end block"])
def test_truncated_image_archives_are_one_clear_error(arena, fmt, cut):
    """Cut anywhere, also exactly between two members (where tarfile alone would quietly end early)."""
    work, _ = arena
    rng = np.random.default_rng(0)
    members = []
    for split in ("train", "test"):
        for i in range(4):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG")
            members.append(_file(f"{split}/a/{i}.png", buf.getvalue()))
    if fmt.startswith("gnu"):
        members.append(_file("train/a/" + "x" * 120 + ".png", members[0][1]))
    path = write_tar(work / "images.tar", members)
    blob = path.read_bytes()
    with tarfile.open(path) as tf:
        infos = tf.getmembers()
    end = infos[-1].offset_data + -(-infos[-1].size // 512) * 512  # where the end-of-archive block starts
    at = {"30%": len(blob) * 3 // 10, "70%": len(blob) * 7 // 10, "at a member's header": infos[5].offset,
          "inside the last member": infos[-1].offset_data + 100, "end block": end + 100}[cut]  # fmt: skip
    blob = blob[:at]
    if fmt == "tar.gz":
        path = work / "images.tar.gz"
        path.write_bytes(gzip.compress(blob))  # a whole gzip stream of a cut tar
    else:
        path.write_bytes(blob)
    with pytest.raises(ValueError) as info:
        decode_image_archive(path, progress=False)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_a_cut_gzip_stream_is_one_clear_error(arena):
    work, _ = arena
    path = write_tar(work / "images.tar.gz", [_file("train/a/0.png", _png()), _file("test/a/0.png", _png())])
    blob = path.read_bytes()
    for at in (len(blob) // 2, len(blob) - 4, 10, 1):
        path.write_bytes(blob[:at])
        with pytest.raises(ValueError) as info:
            decode_image_archive(path, progress=False)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# Downloads: wrong checksum, transfer cut short


@pytest.fixture
def byte_server(no_proxy):
    """Serves ``routes[path] = (body, claimed_length)`` on 127.0.0.1; a claimed length above the body's
    cuts the transfer short."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body, length = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield routes, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha256 prefix"])
def test_a_download_with_another_checksum_is_deleted_and_refused(tmp_path, byte_server, algorithm):
    routes, url = byte_server
    body = b"the published file" * 100
    routes["/f.bin"] = (body, len(body))
    wrong = hashlib.sha256(b"another file").hexdigest()
    kwargs = {"md5": hashlib.md5(b"x").hexdigest()} if algorithm == "md5" else {"sha256": wrong}
    if algorithm == "sha256 prefix":
        kwargs = {"sha256": wrong[:8]}
    with pytest.raises(ChecksumError) as info:
        download_file(f"{url}/f.bin", tmp_path / "dl" / "f.bin", progress=False, **kwargs)
    assert "\n" not in str(info.value) and "deleted" in str(info.value)
    assert not (tmp_path / "dl").exists()  # neither the file nor a partial one, nor the folder made for them
    good = hashlib.sha256(body).hexdigest()
    assert download_file(f"{url}/f.bin", tmp_path / "dl" / "f.bin", sha256=good, progress=False).read_bytes() == body


def test_a_download_cut_short_is_refused_and_not_kept(tmp_path, byte_server):
    routes, url = byte_server
    routes["/cut.tar.gz"] = (b"x" * 1000, 5000)
    with pytest.raises(FileNotFoundError) as info:
        download_file(f"{url}/cut.tar.gz", tmp_path / "dl" / "cut.tar.gz", progress=False)
    assert "\n" not in str(info.value) and "cut.tar.gz" in str(info.value)
    assert not (tmp_path / "dl").exists()


# ---------------------------------------------------------------------------------------------------------
# Images: broken files are one error naming the file (or skipped and counted); odd modes are converted


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_header_claiming(width, height):
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _encoded(fmt, size=(48, 40), mode="RGB"):
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


BROKEN_IMAGES = {
    "truncated.jpg": lambda: _encoded("JPEG")[:400],
    "truncated.png": lambda: _encoded("PNG")[:300],
    "header-only.jpg": lambda: _encoded("JPEG")[:20],
    "empty.jpg": lambda: b"",
    "empty.png": lambda: b"",
    "text.jpg": lambda: b"this is a text file, not an image\n" * 4,
    "html.png": lambda: b"<html><body>404 Not Found</body></html>",
    "bad-crc.png": lambda: _encoded("PNG")[:29] + b"\0\0\0\0" + _encoded("PNG")[33:],
    "bomb.png": lambda: png_header_claiming(100_000, 100_000),
    "zero-size.png": lambda: png_header_claiming(0, 0),
}


def _uint16_png():
    buf = io.BytesIO()
    Image.fromarray(np.linspace(0, 65535, 40 * 48).astype(np.uint16).reshape(40, 48)).save(buf, format="PNG")
    return buf.getvalue()


def _rgb48_png():
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one): written chunk by chunk."""
    rows = np.linspace(0, 65535, 40 * 48 * 3).astype(">u2").reshape(40, 48 * 3)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", 48, 40, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


UNUSUAL_IMAGES = {
    "gray.png": lambda: _encoded("PNG", mode="L"),
    "gray-alpha.png": lambda: _encoded("PNG", mode="LA"),
    "rgba.png": lambda: _encoded("PNG", mode="RGBA"),
    "palette.png": lambda: _encoded("PNG", mode="P"),
    "bilevel.png": lambda: _encoded("PNG", mode="1"),
    "cmyk.jpg": lambda: _encoded("JPEG", mode="CMYK"),
    "gray.jpg": lambda: _encoded("JPEG", mode="L"),
    "gray16.png": _uint16_png,
    "rgb48.png": _rgb48_png,
    "int32.tif": lambda: _encoded("TIFF", mode="I"),
    "float.tif": lambda: _encoded("TIFF", mode="F"),
    "one-pixel.png": lambda: _encoded("PNG", size=(1, 1)),
    "one-row.png": lambda: _encoded("PNG", size=(300, 1)),
    "webp.webp": lambda: _encoded("WEBP"),
    "bmp.bmp": lambda: _encoded("BMP"),
    "gif.gif": lambda: _encoded("GIF", mode="P"),
}


@pytest.mark.parametrize("name", list(BROKEN_IMAGES))
def test_a_broken_image_is_one_error_naming_the_file(tmp_path, name):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / name).write_bytes(BROKEN_IMAGES[name]())
    data = ImageFolder(tmp_path, transform=RandomResizedCropFlip(32))
    with pytest.raises(CorruptImageError) as info:
        data[0]
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "cls" / name) in message and "skip_corrupt=True" in message


def test_broken_images_are_skipped_and_counted_when_asked(tmp_path):
    (tmp_path / "cls").mkdir()
    for name, make in BROKEN_IMAGES.items():
        (tmp_path / "cls" / name).write_bytes(make())
    (tmp_path / "cls" / "zz-good.png").write_bytes(_encoded("PNG"))
    data = ImageFolder(tmp_path, transform=RandomResizedCropFlip(32), skip_corrupt=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [data[i] for i in range(len(data))]
    assert all(image.shape == (3, 32, 32) for image, _ in items)  # every broken one replaced by the good one
    assert data.num_corrupt == len(BROKEN_IMAGES)
    assert sorted(Path(p).name for p in data.corrupt_files) == sorted(BROKEN_IMAGES)
    named = {str(w.message).split(": ")[0] for w in caught if "using the next readable image" in str(w.message)}
    assert named == {f"cannot decode image {tmp_path / 'cls' / name}" for name in BROKEN_IMAGES}


@pytest.mark.parametrize("name", list(UNUSUAL_IMAGES))
def test_unusual_modes_and_sizes_are_converted_not_refused(tmp_path, name):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / name).write_bytes(UNUSUAL_IMAGES[name]())
    image, label = ImageFolder(tmp_path, transform=RandomResizedCropFlip(32))[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label == 0
    whole = ImageFolder(tmp_path).load(0)
    assert whole.shape[0] == 3 and whole.dtype == torch.uint8


@pytest.mark.xfail(strict=True, reason="Pillow's I;16 -> RGB conversion clips at 255 instead of scaling (folder.py)")
def test_a_16_bit_grayscale_image_keeps_its_brightness(tmp_path):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "gray16.png").write_bytes(_uint16_png())  # a ramp from black to white
    image = ImageFolder(tmp_path).load(0).float()
    assert abs(image.mean().item() - 127.5) < 5


def _image_archive(path, train_blob, name="0.png"):
    return write_tar(path, [_file(f"train/a/{name}", train_blob), _file("test/a/0.png", _png())])


@pytest.mark.parametrize(
    "name, blob, match",
    [
        ("0.jpg", lambda: _encoded("JPEG", size=(32, 32))[:300], "cannot decode"),
        ("0.png", lambda: b"", "cannot decode"),
        ("0.jpg", lambda: b"not an image at all", "cannot decode"),
        ("0.png", lambda: _png(size=(1, 1)), "is 1x1, expected 32x32"),
        ("0.png", lambda: _png(size=(33, 32)), "is 33x32, expected 32x32"),
        ("0.png", lambda: png_header_claiming(100_000, 100_000), "100000x100000|decompression bomb"),
        ("0.png", lambda: png_header_claiming(12_000, 8_000), "12000x8000, expected 32x32"),
    ],
)
def test_embedded_style_archive_images_are_one_error_naming_the_member(tmp_path, name, blob, match):
    archive = _image_archive(tmp_path / "images.tar", blob(), name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning for the 96-megapixel header
        with pytest.raises(ValueError, match=match) as info:
            decode_image_archive(archive, progress=False)
    assert "\n" not in str(info.value) and f"train/a/{name}" in str(info.value)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_embedded_style_archive_converts_other_modes(tmp_path, mode):
    if mode == "I;16":
        blob = io.BytesIO()
        Image.fromarray(np.full((32, 32), 300, np.uint16)).save(blob, format="PNG")
        blob = blob.getvalue()
    elif mode == "CMYK":
        blob = _encoded("JPEG", size=(32, 32), mode="CMYK")
    else:
        blob = _png(mode=mode)
    arrays = decode_image_archive(_image_archive(tmp_path / "images.tar", blob), progress=False)
    assert arrays["train_images"].shape == (1, 3, 32, 32) and arrays["train_images"].dtype == np.uint8


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
