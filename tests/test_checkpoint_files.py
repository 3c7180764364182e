"""What real checkpoint files carry: wrapper prefixes, CUDA storages, and whether senet wrote them.

* Prefixes: ``module.`` (DDP), ``_orig_mod.`` (``torch.compile``), ``model.``/``backbone.``/``encoder.``
  (a task model around the network), ``state_dict_ema.``/``model_ema.``, nested, are removed; a prefix on
  some keys only is named in the error.
* A file saved on a GPU machine holds CUDA storages: it loads on a CPU-only machine through every path.
* A file is ours only when it says so (senet's metadata, a run's ``config.json``); a bare file of our
  ResNet keys is the publisher's ("v1.5": stride on the 3x3), and two public readings that compute
  different functions are refused, naming both and ``source=``.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import torch
from random_weights import randomized
from safetensors.torch import save_file

import senet
from senet.cli.main import main
from senet.convert import Naming, convert_state_dict, naming_options
from senet.convert.resnet import MODERN
from senet.pretrained import load_pretrained, read_state_dict
from senet.pretrained.provenance import SENET_CONFIG


@pytest.fixture(scope="module")
def cifar():
    return randomized(senet.create_model("cifar_resnet20"))


def _same_weights(model: torch.nn.Module, original: torch.nn.Module) -> bool:
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in original.state_dict().items())


@pytest.mark.parametrize(
    "prefix",
    ["module.", "_orig_mod.", "model.", "backbone.", "encoder.", "state_dict_ema.", "model_ema.", "module._orig_mod."],
)
def test_wrapper_prefixes_are_removed_on_every_path(tmp_path, cifar, prefix):
    path = tmp_path / "checkpoint.pth"
    torch.save({f"{prefix}{k}": v for k, v in cifar.state_dict().items()}, path)
    model = senet.create_model("cifar_resnet20")
    assert load_pretrained(model, path).complete and _same_weights(model, cifar)
    assert _same_weights(senet.create_model("cifar_resnet20", pretrained=path), cifar)


def test_a_prefixed_public_file_is_still_recognised(tmp_path):
    original = randomized(senet.create_model("se_resnet18", **naming_options("legacy", "se_resnet18")))
    legacy = convert_state_dict(original.state_dict(), model="se_resnet18", target="legacy")
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {f"module._orig_mod.{k}": v for k, v in legacy.items()}}, path)
    model = senet.create_model("se_resnet18", pretrained=path)
    assert model.pretrained_info.naming == "legacy" and _same_weights(model, original)


def test_a_file_that_fits_nothing_names_no_closest_naming_and_names_its_prefix(tmp_path, cifar):
    path = tmp_path / "checkpoint.pth"
    torch.save({f"net.{k}": v for k, v in cifar.state_dict().items()}, path)  # a prefix we do not remove
    with pytest.raises(ValueError) as info:
        load_pretrained(senet.create_model("cifar_resnet20"), path)
    message = str(info.value)
    assert "\n" not in message and "fits no known naming" in message
    assert "closest" not in message and "every key starts with 'net.'" in message


def _gpu_file(state: dict[str, torch.Tensor], path) -> None:
    """``torch.save`` of ``state`` as a GPU machine writes it: each storage's location says 'cuda:0'."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    source, out = zipfile.ZipFile(buffer), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") == 1  # pickled once, then memoised
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            target.writestr(info.filename, data)
    path.write_bytes(out.getvalue())


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine reads CUDA storages anyway")
def test_a_file_saved_on_a_gpu_loads_on_the_cpu_through_every_path(tmp_path, cifar):
    path = tmp_path / "checkpoint.pth"
    _gpu_file({"state_dict": cifar.state_dict()}, path)
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really holds CUDA storages
        torch.load(path, weights_only=True)
    assert torch.load(path, map_location="cpu", weights_only=True)["state_dict"].keys() == cifar.state_dict().keys()
    state = read_state_dict(path)
    assert all(v.device.type == "cpu" for v in state.values())
    model = senet.create_model("cifar_resnet20")
    assert load_pretrained(model, path).complete and _same_weights(model, cifar)
    assert _same_weights(senet.create_model("cifar_resnet20", pretrained=path), cifar)
    out = tmp_path / "converted.safetensors"
    assert main(["convert", str(path), str(out), "--model", "cifar_resnet20"]) == 0
    assert _same_weights(senet.create_model("cifar_resnet20", pretrained=out), cifar)


# ---------------------------------------------------------------------------------------------------------
# Ours only when the file says so


@pytest.fixture(scope="module")
def v15():
    """A random ResNet-50 of the publishers' layout ("v1.5": stride on the 3x3)."""
    return randomized(senet.create_model("resnet50", **naming_options("modern", "resnet50")))


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.eval()(x)


def test_a_bare_file_of_our_keys_is_the_publishers_network(tmp_path, v15):
    path = tmp_path / "checkpoint.safetensors"
    save_file(v15.state_dict(), path)  # no metadata: not written by senet
    model = senet.create_model("resnet50", pretrained=path)
    assert model.pretrained_info.naming == "modern" and model.config.stride_in_1x1 is False
    assert torch.equal(_outputs(model), _outputs(v15))
    with pytest.raises(ValueError, match=r"stride_in_1x1=False.*source='ours'"):
        load_pretrained(senet.create_model("resnet50"), path)  # the paper's layout by default
    assert load_pretrained(senet.create_model("resnet50"), path, source="ours").naming == "ours"


def test_what_senet_writes_says_it_is_ours_with_its_options(tmp_path, v15):
    paper = randomized(senet.create_model("resnet50"))  # our default: stride on the 1x1
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "resnet50"}))
    save_file(paper.state_dict(), run / "model.safetensors")  # as `senet train` writes, config beside it
    for path in (run, run / "model.safetensors"):
        model = senet.create_model("resnet50", pretrained=path)
        assert model.pretrained_info.naming == "ours" and model.config.stride_in_1x1 is True
        assert torch.equal(_outputs(model), _outputs(paper))
    # Any file with the record, with the options its network was built with.
    path = tmp_path / "checkpoint.safetensors"
    record = {"model": "resnet50", "naming": "ours", "model_options": naming_options("modern", "resnet50")}
    save_file(v15.state_dict(), path, metadata={SENET_CONFIG: json.dumps(record)})
    model = senet.create_model("resnet50", pretrained=path)
    assert model.pretrained_info.naming == "ours" and torch.equal(_outputs(model), _outputs(v15))
    with pytest.raises(ValueError, match="stride_in_1x1=False"):
        load_pretrained(senet.create_model("resnet50"), path)


def test_senet_convert_records_the_network_the_weights_compute_in(tmp_path, v15):
    bare = tmp_path / "checkpoint.pth"
    torch.save(v15.state_dict(), bare)
    out = tmp_path / "ours.safetensors"
    assert main(["convert", str(bare), str(out), "--model", "resnet50"]) == 0
    model = senet.create_model("resnet50", pretrained=out)
    assert model.pretrained_info.naming == "ours" and torch.equal(_outputs(model), _outputs(v15))


def test_two_public_readings_that_differ_are_refused_naming_both(tmp_path, v15, monkeypatch):
    # A second naming with the modern keys but another network (as a CIFAR publisher's naming may be).
    twin = Naming("twin", "a test naming", ("ResNet",), MODERN.patterns, MODERN.key_map,
                  options=lambda family, config: {"stem_pool": "ceil"})  # fmt: skip
    monkeypatch.setitem(senet.convert._NAMINGS, "twin", twin)
    path = tmp_path / "checkpoint.pth"
    torch.save(v15.state_dict(), path)
    with pytest.raises(ValueError) as info:
        senet.create_model("resnet50", pretrained=path)
    message = str(info.value)
    assert "\n" not in message and "'modern' naming" in message and "'twin' naming" in message
    assert "source='modern'" in message and "source='twin'" in message
    model = senet.create_model("resnet50", stem_pool="ceil")
    assert load_pretrained(model, path, source="twin").naming == "twin"
