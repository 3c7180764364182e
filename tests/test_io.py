"""senet.io, the one home for files: atomic writes, staged folders, safe reading of every checkpoint format,
the run-folder layout, output checks and one-line errors; and the floor it stands on (no other senet package)."""

import ast
import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import senet.io.atomic as atomic_module
from senet._markdown import markdown_table
from senet.io import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    LATEST_FILE,
    META_FILE,
    MODEL_FILE,
    STATE_FILE,
    UnsafeCheckpointError,
    atomic_path,
    atomic_save_tensors,
    atomic_write_bytes,
    atomic_write_text,
    check_output_file,
    check_output_folder,
    checkpoint_name,
    checkpoint_position,
    find_weights,
    latest_checkpoint,
    list_checkpoints,
    one_line,
    read_state_dict,
    replace_folder,
    safe_torch_load,
    safetensors_metadata,
)

SENET = Path(__file__).parent.parent / "senet"
STATE = {"conv.weight": torch.arange(6.0).reshape(2, 3), "bn.running_mean": torch.tensor([1.5, -2.0])}


def _others(folder: Path, *keep: str) -> list[str]:
    """What a folder holds besides ``keep``: a leftover temporary file or folder shows here."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- the floor ---------------------------------------------------------------------------------------------


def test_senet_io_imports_no_other_senet_package():
    """Everything above may use senet.io; senet.io uses nothing of senet but itself (and at most the two
    leaf modules _validation and _choices)."""
    allowed = {"senet._validation", "senet._choices"}
    for file in sorted((SENET / "io").glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if node.level == 1:
                    continue  # a sibling inside senet/io
                target = ("senet." + module) if node.level == 2 else module
                assert not target.startswith("senet") or target in allowed, f"{file.name} imports {target}"
                assert node.level <= 2, f"{file.name} reaches above senet"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("senet") for a in node.names), f"{file.name} imports senet"


def test_analysis_stats_does_not_import_measures():
    """measures computes from stats' BlockExcitations; stats must not import measures back (the cycle
    broken by issue 19), not even inside a function."""
    tree = ast.parse((SENET / "analysis" / "stats.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "measures" not in imported and "senet.analysis.measures" not in imported


# --- atomic files --------------------------------------------------------------------------------------------


def _fail_after_writing(monkeypatch):
    """Makes the flush before the rename fail: the new content is all written (to wherever it went) and
    then the write raises, as a full disk or a kill at that moment would."""

    def failing(path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_module, "fsync_file", failing)


@pytest.mark.parametrize(
    "write",
    [
        lambda path: atomic_write_text(path, "new"),
        lambda path: atomic_write_bytes(path, b"new"),
        lambda path: atomic_save_tensors(STATE, path),
    ],
    ids=["text", "bytes", "tensors"],
)
def test_a_write_that_raises_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch, write):
    path = tmp_path / "file"
    path.write_bytes(b"old")
    _fail_after_writing(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write(path)
    assert path.read_bytes() == b"old"  # never the new content, nor a part of it
    assert _others(tmp_path, "file") == []  # and no temporary file left beside it
    monkeypatch.undo()
    write(path)  # the same write, when nothing fails, replaces the file
    assert path.read_bytes() != b"old" and _others(tmp_path, "file") == []


def test_a_write_into_a_new_name_that_raises_leaves_nothing(tmp_path):
    with pytest.raises(TypeError):
        atomic_write_text(tmp_path / "new.txt", 42)  # type: ignore[arg-type]
    assert _others(tmp_path) == []


def test_atomic_path_keeps_the_file_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "out.bin"
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.")  # hidden, beside its final name
        raise KeyboardInterrupt
    assert _others(tmp_path) == []
    with atomic_path(path, suffix=".part") as tmp:
        assert tmp.name.endswith(".part")
        tmp.write_bytes(b"whole")
    assert path.read_bytes() == b"whole" and _others(tmp_path, "out.bin") == []


def test_an_atomic_file_gets_the_permissions_of_any_new_file(tmp_path):
    """mkstemp makes its file 0600; the file written must not keep that (e.g. a shared run folder)."""
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_tensors_and_their_metadata_read_back_exactly(tmp_path):
    shared = torch.zeros(4)
    tensors = {**STATE, "a": shared, "b": shared[:2]}  # sharing storage: safetensors alone refuses this
    path = tmp_path / "w.safetensors"
    atomic_save_tensors(tensors, path, metadata={"model": "se_resnet50", "n": "3"})
    assert _same(read_state_dict(path), {k: v.clone() for k, v in tensors.items()})
    assert safetensors_metadata(path) == {"model": "se_resnet50", "n": "3"}
    save_file(dict(STATE), str(tmp_path / "plain.safetensors"))
    assert safetensors_metadata(tmp_path / "plain.safetensors") == {}
    (tmp_path / "x.pth").write_bytes(b"not safetensors at all")
    assert safetensors_metadata(tmp_path / "x.pth") is None
    assert safetensors_metadata(tmp_path / "missing.safetensors") is None


# --- staged folders -------------------------------------------------------------------------------------------


def test_a_staged_folder_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with replace_folder(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".out.")
        (staging / "new.txt").write_text("new")
        assert (target / "old.txt").is_file()  # the old folder stays until the new one is complete
    assert _others(target) == ["new.txt"] and _others(tmp_path, "out") == []


def test_a_staged_folder_that_fails_leaves_the_old_one_and_no_staging(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replace_folder(target) as staging:
        (staging / "new.txt").write_text("new")
        raise RuntimeError("the retrofit failed half-way")
    assert _others(target) == ["old.txt"] and _others(tmp_path, "out") == []


def test_a_staged_folder_whose_rename_fails_puts_the_old_one_back(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".out.") and not str(src).endswith(".replaced"):
            raise OSError(30, "Read-only file system")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="Read-only"), replace_folder(target) as staging:
        (staging / "new.txt").write_text("new")
    monkeypatch.undo()
    assert _others(target) == ["old.txt"] and _others(tmp_path, "out") == []


def test_keep_existing_keeps_a_folder_another_process_made_first(tmp_path):
    target = tmp_path / "cache"
    with replace_folder(target, keep_existing=True, suffix=".tmp") as staging:
        assert staging.name.endswith(".tmp")
        (staging / "mine.npy").write_text("mine")
        target.mkdir()  # another process finishes first
        (target / "theirs.npy").write_text("theirs")
    assert _others(target) == ["theirs.npy"] and _others(tmp_path, "cache") == []


# --- reading every format -------------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _run_dir(root: Path, *, final: bool = True, checkpoints: tuple[str, ...] = ()) -> Path:
    """A run folder as senet train leaves it: config.json, the final weights, complete checkpoints."""
    root.mkdir(parents=True)
    (root / CONFIG_FILE).write_text(json.dumps({"model": "cifar_resnet20"}))
    if final:
        save_file(dict(STATE), str(root / MODEL_FILE))
    for i, name in enumerate(checkpoints):
        ckpt = root / CHECKPOINTS_DIR / name
        ckpt.mkdir(parents=True)
        save_file({k: v + i + 1 for k, v in STATE.items()}, str(ckpt / MODEL_FILE))
        (ckpt / STATE_FILE).write_bytes(b"state")
        (ckpt / META_FILE).write_text("{}")
    return root


@pytest.mark.parametrize(
    "save",
    [
        lambda path: save_file(dict(STATE), str(path)),
        lambda path: torch.save(STATE, path),
        lambda path: torch.save(STATE, path, _use_new_zipfile_serialization=False),
        lambda path: torch.save({"epoch": 3, "state_dict": STATE, "optimizer": {"lr": 0.1}}, path),
        lambda path: torch.save({"model": {f"module.{k}": v for k, v in STATE.items()}}, path),
        lambda path: torch.save({**STATE, "version": 2}, path),
    ],
    ids=["safetensors", "torch.save", "torch.save legacy", "wrapped state_dict", "wrapped model", "with metadata"],
)
def test_read_state_dict_reads_every_file_format(tmp_path, save):
    path = tmp_path / "weights.pth"
    save(path)
    state = read_state_dict(path)
    assert _same({k.removeprefix("module."): v for k, v in state.items()}, STATE)


def test_read_state_dict_reads_run_checkpoint_and_retrofit_folders(tmp_path):
    run = _run_dir(tmp_path / "run", checkpoints=("epoch_0001", "epoch_0002"))
    assert _same(read_state_dict(run), STATE)  # the final weights first
    unfinished = _run_dir(tmp_path / "unfinished", final=False, checkpoints=("epoch_0001", "epoch_0002"))
    assert _same(read_state_dict(unfinished), {k: v + 2 for k, v in STATE.items()})  # else the newest checkpoint
    assert _same(read_state_dict(unfinished / CHECKPOINTS_DIR / "epoch_0001"), {k: v + 1 for k, v in STATE.items()})
    retrofitted = tmp_path / "retrofitted"  # `senet retrofit` output: model.safetensors, no config.json
    retrofitted.mkdir()
    save_file({k: v * 2 for k, v in STATE.items()}, str(retrofitted / MODEL_FILE))
    assert _same(read_state_dict(retrofitted), {k: v * 2 for k, v in STATE.items()})


@pytest.mark.parametrize("protocol", ["torch.save", "pickle 2", "beside real tensors"])
def test_a_crafted_pickle_is_refused_before_it_runs(tmp_path, protocol):
    marker, path = tmp_path / "payload-ran", tmp_path / "evil.pth"
    if protocol == "torch.save":
        torch.save({"x": _Payload(marker)}, path)
    elif protocol == "pickle 2":
        path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    else:
        torch.save({**STATE, "hook": _Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "refused" in message
    assert info.value.wanted == "posix.system" and "(it asks for posix.system)" in message
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"not a checkpoint at all" * 10, "not a readable PyTorch checkpoint (not written by torch.save"),
        (None, "not a readable PyTorch checkpoint (PytorchStreamReader failed reading zip archive"),
        ([torch.zeros(2)], "holds a list, not a state dict"),
        ({"epoch": 3, "lr": 0.1}, "its top-level keys: 'epoch', 'lr'"),
    ],
    ids=["empty", "garbage", "truncated", "a list", "no tensors"],
)
def test_unreadable_files_are_one_line_value_errors(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    if content is None:
        torch.save(STATE, path)
        content = path.read_bytes()[: path.stat().st_size // 2]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:  # torch.save'd, readable, but no state dict in it
        torch.save(content, path)
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError)


def test_safe_torch_load_allows_the_globals_it_is_given_for_that_load_only(tmp_path):
    if not hasattr(torch.serialization, "safe_globals"):
        pytest.skip("torch < 2.5 has no safe_globals")
    path = tmp_path / "rng.pt"
    torch.save({"keys": np.arange(3, dtype=np.uint32)}, path)
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(path)
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    allowed = [
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        type(np.dtype(np.uint32)),
    ]
    assert safe_torch_load(path, allowed_globals=allowed)["keys"].tolist() == [0, 1, 2]
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(path)  # not allowed any more


# --- the run-folder layout ------------------------------------------------------------------------------------


def test_find_weights_in_a_run_a_checkpoint_and_their_files(tmp_path):
    run = _run_dir(tmp_path / "run", checkpoints=("epoch_0001",))
    assert find_weights(run) == (run / MODEL_FILE, run)
    assert find_weights(run / MODEL_FILE) == (run / MODEL_FILE, run)
    ckpt = run / CHECKPOINTS_DIR / "epoch_0001"
    assert find_weights(ckpt) == (ckpt / MODEL_FILE, run)
    assert find_weights(ckpt / MODEL_FILE) == (ckpt / MODEL_FILE, run)
    unfinished = _run_dir(tmp_path / "unfinished", final=False, checkpoints=("epoch_0001", "epoch_0001_step_000004"))
    newest = unfinished / CHECKPOINTS_DIR / "epoch_0001_step_000004"
    assert find_weights(unfinished) == (newest / MODEL_FILE, unfinished)


def test_find_weights_refuses_what_is_not_a_run(tmp_path):
    retrofitted = tmp_path / "retrofitted"  # weights without a run: read_state_dict reads it, find_weights does not
    retrofitted.mkdir()
    save_file(dict(STATE), str(retrofitted / MODEL_FILE))
    with pytest.raises(FileNotFoundError, match="holds no senet weights"):
        find_weights(retrofitted)
    with pytest.raises(FileNotFoundError, match="is not inside a senet run"):
        find_weights(retrofitted / MODEL_FILE)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_weights(tmp_path / "missing")


def test_latest_checkpoint_follows_latest_else_the_newest_complete_one(tmp_path):
    run = _run_dir(tmp_path / "run", checkpoints=("epoch_0001", "epoch_0001_step_000002", "epoch_0002"))
    root = run / CHECKPOINTS_DIR
    (root / ".epoch_0003.tmp1234").mkdir()  # a checkpoint being written: never listed
    (root / "epoch_0003").mkdir()  # incomplete (a crash before its files were renamed in): never listed
    assert [p.name for p in list_checkpoints(run)] == ["epoch_0001", "epoch_0001_step_000002", "epoch_0002"]
    assert latest_checkpoint(run).name == "epoch_0002"
    (root / LATEST_FILE).write_text("epoch_0001_step_000002\n")
    assert latest_checkpoint(run).name == "epoch_0001_step_000002"
    (root / LATEST_FILE).write_text("epoch_0003")
    assert latest_checkpoint(run).name == "epoch_0002"
    assert latest_checkpoint(tmp_path) is None


def test_checkpoint_names_sort_in_training_order():
    names = [checkpoint_name(3), checkpoint_name(3, 120), checkpoint_name(4), checkpoint_name(12, 7)]
    assert names == ["epoch_0003", "epoch_0003_step_000120", "epoch_0004", "epoch_0012_step_000007"]
    assert [checkpoint_position(Path(n)) for n in names] == [(3, 0), (3, 120), (4, 0), (12, 7)]
    assert sorted(reversed(names), key=lambda n: checkpoint_position(Path(n))) == names
    assert checkpoint_position(Path(".epoch_0003.x")) is None and checkpoint_position(Path(LATEST_FILE)) is None


# --- output checks and one-line errors ----------------------------------------------------------------------


def test_output_file_checks(tmp_path):
    (tmp_path / "exists.onnx").write_text("x")
    with pytest.raises(IsADirectoryError, match=r"^--out .* is a folder; give a file name$"):
        check_output_file(tmp_path, False, label="--out ")
    with pytest.raises(FileNotFoundError, match=r"cannot write .*: the folder .*nowhere does not exist"):
        check_output_file(tmp_path / "nowhere" / "m.onnx", True)
    with pytest.raises(FileExistsError, match=r"exists; add --force \(force=True\) to replace it$"):
        check_output_file(tmp_path / "exists.onnx", False, force_option="--force (force=True)")
    assert check_output_file(tmp_path / "exists.onnx", True) == tmp_path / "exists.onnx"


def test_output_folder_checks(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_text("x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileExistsError, match=r"^--out .*file is a file; name a folder$"):
        check_output_folder(tmp_path / "file", True, label="--out ")
    with pytest.raises(FileExistsError, match=r"full is not empty; choose another folder, or add --force to replace"):
        check_output_folder(tmp_path / "full", False)
    assert check_output_folder(tmp_path / "full", True) == tmp_path / "full"
    assert check_output_folder(tmp_path / "empty", False) == tmp_path / "empty"
    assert check_output_folder(tmp_path / "new" / "deeper", False) == tmp_path / "new" / "deeper"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("first line\nsecond line"), "first line"),
        (ValueError("\n  \n  indented first  \nsecond"), "indented first"),
        (KeyError(), "KeyError"),
        (RuntimeError("[../third_party/gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.1]:4"),
         "Connection closed by peer [10.0.0.1]:4"),
        (RuntimeError("Unsupported op. Please feel free to request support or submit a pull request"),
         "Unsupported op."),
        (RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory. This is an "
                      "internal miniz error. If you are seeing this error, your checkpoint file is corrupted."),
         "PytorchStreamReader failed reading zip archive: failed finding central directory"),
    ],
    ids=["lines", "blank lines", "no message", "gloo location", "exporter boilerplate", "long line"],
)
def test_one_line(error, expected):
    assert one_line(error) == expected


def test_one_line_is_never_longer_than_200():
    assert len(one_line(ValueError("x" * 500))) == 200


def test_markdown_table():
    table = markdown_table(["model", "params"], [["se|resnet", 1], ["b", 22]])
    assert table.splitlines() == ["| model | params |", "|---|---:|", "| se\\|resnet | 1 |", "| b | 22 |"]
    assert markdown_table(["a", "b"], [], right=[False, False]).splitlines()[1] == "|---|---|"
