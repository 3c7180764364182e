"""Public checkpoints: safe reading, load_pretrained in every naming, the classifier report, download."""

import os
import pickle

import pytest
import torch
from random_weights import randomized
from safetensors.torch import save_file

import senet
from senet.cli.main import main
from senet.convert import convert_state_dict, naming_options
from senet.data.download import ChecksumError
from senet.pretrained import UnsafeCheckpointError, load_pretrained, read_state_dict
from senet.pretrained.hub import fetch

# ---------------------------------------------------------------------------------------------------------
# Reading files: formats, wrappers, and never running pickled code


@pytest.fixture(scope="module")
def small_state():
    return randomized(senet.create_model("cifar_resnet20")).state_dict()


@pytest.mark.parametrize("wrapper", [None, "state_dict", "model", "model_state_dict", "state_dict_ema"])
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".tar", ".bin"])
def test_reads_torch_files_with_and_without_wrappers(tmp_path, small_state, wrapper, suffix):
    path = tmp_path / f"ckpt{suffix}"
    obj = small_state if wrapper is None else {wrapper: small_state, "epoch": 90, "arch": "resnet20"}
    torch.save(obj, path)
    state = read_state_dict(path)
    assert list(state) == list(small_state)
    assert all(torch.equal(state[k], small_state[k]) for k in small_state)


def test_reads_safetensors_and_run_directories(tmp_path, small_state):
    save_file({k: v.contiguous() for k, v in small_state.items()}, tmp_path / "w.safetensors")
    assert all(torch.equal(read_state_dict(tmp_path / "w.safetensors")[k], v) for k, v in small_state.items())
    # A safetensors file under another name is recognised by its header, not its suffix.
    (tmp_path / "w.bin").write_bytes((tmp_path / "w.safetensors").read_bytes())
    assert set(read_state_dict(tmp_path / "w.bin")) == set(small_state)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "model.safetensors").write_bytes((tmp_path / "w.safetensors").read_bytes())
    assert set(read_state_dict(run)) == set(small_state)


class _Payload:
    """Pickles as a call to os.system: what a crafted checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "wrapped", "raw pickle"])
def test_a_crafted_pickle_is_refused_and_its_payload_never_runs(tmp_path, small_state, how):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    if how == "torch.save":
        torch.save({"x": _Payload(marker)}, path)
    elif how == "wrapped":
        torch.save({"state_dict": small_state, "hook": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ValueError) as info:  # UnsafeCheckpointError for the first two; unreadable for raw
        read_state_dict(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert "refused" in str(info.value)
    if how != "raw pickle":
        assert isinstance(info.value, UnsafeCheckpointError) and "posix.system" in str(info.value)
    model = senet.create_model("cifar_resnet20")
    with pytest.raises(ValueError):
        load_pretrained(model, path)
    assert not marker.exists()
    # Sanity check of the test itself: an unsafe load does run the payload.
    if how == "torch.save":
        torch.load(path, weights_only=False)
        assert marker.exists()


@pytest.mark.parametrize(
    "content, match",
    [(b"", "is empty"), (b"not a checkpoint at all" * 10, "not a readable PyTorch checkpoint"), (None, "truncated")],
)
def test_unreadable_files_are_one_line_errors(tmp_path, small_state, content, match):
    path = tmp_path / "bad.pth"
    if content is None:
        torch.save(small_state, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match) as info:
        read_state_dict(path)
    assert "\n" not in str(info.value)


def test_missing_paths_and_foreign_objects(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, tmp_path / "opt.pth")
    with pytest.raises(ValueError, match="holds no state dict.*'epoch', 'optimizer'"):
        read_state_dict(tmp_path / "opt.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list"):
        read_state_dict(tmp_path / "list.pth")


# ---------------------------------------------------------------------------------------------------------
# load_pretrained: a model of ours written in each public naming reads back to the same function

# (model, naming, input side): one or more per naming; each is also covered key by key in test_convert.py.
WRITTEN = [
    ("se_resnet18", "legacy", 64),
    ("se_resnext50_32x4d", "legacy", 64),
    ("se_resnet50", "modern", 64),
    ("resnet18", "modern", 64),
    ("densenet121", "torchvision", 64),
    ("mobilenet_v3_large", "torchvision", 64),
    ("efficientnet_b0", "torchvision", 64),
    # 56M parameters at 75 px; its tf_slim keys are written and read key by key in test_convert.py
    pytest.param("inception_resnet_v2", "tf_slim", 75, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name, naming, side", WRITTEN)
def test_written_in_a_public_naming_and_read_back_gives_identical_outputs(tmp_path, name, naming, side):
    # Built as the publisher's network: load_pretrained refuses a model without the naming's options.
    original = randomized(senet.create_model(name, **naming_options(naming, name)))
    public = convert_state_dict(original.state_dict(), model=name, target=naming)
    path = tmp_path / f"{name}.pth"
    torch.save({"state_dict": public}, path)  # as training scripts save them
    fresh = senet.create_model(name, **naming_options(naming, name)).eval()
    report = load_pretrained(fresh, path)
    # A bare file is the publisher's, also in the modern naming (our own keys).
    assert report.naming == naming and report.complete
    assert report.loaded == list(original.state_dict())
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(fresh(x), original(x))  # the very same tensors in the very same network


def test_a_mismatched_classifier_is_refused_strictly_and_reported_otherwise(tmp_path):
    original = randomized(senet.create_model("se_resnet18"))
    path = tmp_path / "legacy.pth"
    torch.save(convert_state_dict(original.state_dict(), model="se_resnet18", target="legacy"), path)
    model = senet.create_model("se_resnet18", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    shapes = r"last_linear\.weight \(1000, 512\) in the checkpoint, \(10, 512\) in the model"
    with pytest.raises(ValueError, match=shapes) as info:
        load_pretrained(model, path)
    assert "\n" not in str(info.value)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # strict: nothing loaded
    report = load_pretrained(model, path, strict=False)
    assert {k for k, _, _ in report.mismatched} == {"fc.weight", "fc.bias"}
    assert ("fc.weight", (1000, 512), (10, 512)) in report.mismatched
    assert not report.missing and not report.unexpected and not report.complete
    own = model.state_dict()
    for key, value in original.state_dict().items():
        assert torch.equal(own[key], value) == (not key.startswith("fc.")), key
    assert "2 of another shape" in report.summary()


def test_missing_and_unexpected_keys_are_named(tmp_path):
    original = randomized(senet.create_model("cifar_resnet20"))
    state = dict(original.state_dict())
    state.pop("fc.bias")
    state["extra.weight"] = torch.zeros(3)
    model = senet.create_model("cifar_resnet20")
    with pytest.raises(ValueError, match=r"fc\.bias.*extra\.weight|extra\.weight.*fc\.bias"):
        load_pretrained(model, state)
    report = load_pretrained(model, state, strict=False)
    assert report.missing == ["fc.bias"] and report.unexpected == ["extra.weight"]


def test_ddp_prefixes_and_unknown_namings(tmp_path):
    original = randomized(senet.create_model("cifar_resnet20"))
    prefixed = {f"module.{k}": v for k, v in original.state_dict().items()}
    model = senet.create_model("cifar_resnet20")
    assert load_pretrained(model, prefixed).complete
    with pytest.raises(ValueError, match="unknown naming 'legasy'.*legacy"):
        load_pretrained(model, prefixed, source="legasy")


# ---------------------------------------------------------------------------------------------------------
# Download into the cache: verified, atomic, and one line when offline


def _serve(server, state, name="se_resnet18-0123abcd.pth"):
    root, base = server
    (root / "mirror").mkdir(exist_ok=True)
    path = root / "mirror" / name
    torch.save(state, path)
    return path, f"{base}/{name}"


def test_download_verifies_the_checksum_and_reuses_the_cached_file(server, tmp_path, small_state):
    import hashlib

    served, url = _serve(server, small_state)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    path = fetch(url, sha256=digest[:8], progress=False)
    assert path.parent == senet.pretrained.pretrained_dir() and path.read_bytes() == served.read_bytes()
    served.unlink()  # the second call must not need the server
    assert fetch(url, sha256=digest[:8], progress=False) == path
    path.unlink()


def test_a_download_with_a_wrong_checksum_is_refused_and_not_kept(server, small_state):
    _, url = _serve(server, small_state, "wrong-deadbeef.pth")
    with pytest.raises(ChecksumError, match="SHA-256 .* expected deadbeef"):
        fetch(url, sha256="deadbeef", progress=False)
    folder = senet.pretrained.pretrained_dir()
    assert not any(p.name.startswith("wrong-deadbeef") or p.name.startswith(".wrong") for p in folder.iterdir())


def test_offline_says_which_file_to_fetch_and_where_to_put_it(no_proxy):
    url = "http://127.0.0.1:9/se_resnet50-ce0d4300.pth"  # port 9 (discard): nothing listens
    with pytest.raises(FileNotFoundError) as info:
        fetch(url, progress=False)
    message = str(info.value)
    assert "\n" not in message and url in message
    assert str(senet.pretrained.pretrained_dir() / "se_resnet50-ce0d4300.pth") in message


def test_an_offline_fetch_leaves_no_empty_cache_folder_behind(no_proxy, tmp_path, monkeypatch):
    """The cache folders a failed download created are removed again (once an offline `senet pretrained fetch`
    left an empty $SENET_PRETRAINED_DIR); a folder that existed before is kept."""
    monkeypatch.setenv("SENET_PRETRAINED_DIR", str(tmp_path / "new" / "cache"))
    with pytest.raises(FileNotFoundError):
        fetch("http://127.0.0.1:9/se_resnet50-ce0d4300.pth", progress=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "new").mkdir()
    with pytest.raises(FileNotFoundError):
        fetch("http://127.0.0.1:9/se_resnet50-ce0d4300.pth", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["new"] and list((tmp_path / "new").iterdir()) == []


def test_a_file_placed_by_hand_is_checked_once(tmp_path, small_state):
    import hashlib

    folder = senet.pretrained.pretrained_dir()
    folder.mkdir(parents=True, exist_ok=True)
    placed = folder / "placed-00000000.pth"
    torch.save(small_state, placed)
    with pytest.raises(ChecksumError, match="not the published file"):
        fetch("http://127.0.0.1:9/placed-00000000.pth", sha256="00000000", progress=False)
    assert placed.exists()  # the user's file is left alone
    good = hashlib.sha256(placed.read_bytes()).hexdigest()
    assert fetch("http://127.0.0.1:9/placed-00000000.pth", sha256=good[:8], progress=False) == placed
    assert (folder / "placed-00000000.pth.sha256").read_text().strip() == good
    placed.unlink()


def test_the_cli_refuses_a_crafted_checkpoint_in_one_line(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "x": _Payload(marker)}, evil)
    code = main(["convert", str(evil), str(tmp_path / "out.safetensors"), "--model", "resnet18"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.count("\n") == 1 and "refused" in err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_hub_files_with_generic_names_do_not_collide_in_the_cache():
    from senet.pretrained.hub import cached_path

    a = cached_path("https://huggingface.co/timm/inception_resnet_v2.tf_in1k/resolve/0123/pytorch_model.bin")
    b = cached_path("https://huggingface.co/timm/other.model/resolve/main/pytorch_model.bin")
    assert a.name == "timm--inception_resnet_v2.tf_in1k--pytorch_model.bin" and a != b
    assert cached_path("https://download.pytorch.org/models/resnet50-0676ba61.pth").name == "resnet50-0676ba61.pth"
    with pytest.raises(ValueError, match="names no file"):
        cached_path("https://example.com/")
