"""The real akamaster CIFAR-10 checkpoints compute what their publisher's code computes.

tests/data/akamaster-cifar10/ holds the publisher's ResNet-20 file (BSD-2-Clause, its LICENSE beside it)
and the publisher's outputs on the embedded CIFAR-10 test split (reference-outputs.json: 10 logits per
network in float64, and the count of correct answers of 10,000). ResNet-56 is read from the shared
reference folder that CI keeps beside the clone (``../shared``).

Scoring all 10,000 images runs the float32 network and re-scores in float64 the images whose two best
logits are within 1e-3 (see ``_score``): the same answers as float64 throughout, in a fraction of the time.

Tolerance: the publisher's reference normalises the pixels in float32 (torchvision's ToTensor and
Normalize) and runs the network in float64; we do the same, so the only differences left are float64
summation orders (4.6e-14 measured); 1e-6 is far below any change of the network (the end-only zero
padding moves the logits by more than 1).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import senet
from senet.data.embedded_cifar10 import EMBEDDED_ARCHIVE
from senet.data.provenance import EMBEDDED_SOURCE
from senet.pretrained import pretrained_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data" / "akamaster-cifar10"
SHARED = ROOT.parent / "shared" / "reference" / "real-checkpoints" / "akamaster-cifar10"
REFERENCE = json.loads((DATA / "reference-outputs.json").read_text(encoding="utf-8"))["models"]
RESNET20 = DATA / "resnet20-12fca82f.th"


def _pixels(names: list[str]) -> torch.Tensor:
    """(N, 3, 32, 32) uint8: the embedded archive's JPEGs decoded with Pillow as RGB (the publisher's way)."""
    return _decoded(tuple(names)).clone()


@functools.cache
def _decoded(names: tuple[str, ...]) -> torch.Tensor:
    # One pass over the gzipped archive, once per process: extracting its members by name would decompress it
    # from the start for each image (2 s a pass, 60,000 members).
    wanted, found = set(names), {}
    with tarfile.open(EMBEDDED_ARCHIVE, mode="r|gz") as tf:
        for member in tf:
            if member.name in wanted:
                found[member.name] = np.asarray(Image.open(tf.extractfile(member)).convert("RGB"))
                if len(found) == len(wanted):
                    break
    return torch.from_numpy(np.stack([found[n] for n in names])).permute(0, 3, 1, 2).contiguous()


def _normalise(pixels: torch.Tensor, config: dict) -> torch.Tensor:
    """``data_config``'s preprocessing in float32 (as ToTensor + Normalize), then float64 for the network."""
    assert config["input_size"] == [3, *pixels.shape[-2:]]  # no resize, no crop: the pixels as they are
    mean = torch.tensor(config["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return ((pixels.float() / 255 - mean) / std).double()


def _logits(model: torch.nn.Module, pixels: torch.Tensor, batch: int = 500) -> torch.Tensor:
    x = _normalise(pixels, senet.data_config(model))
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def _reference_logits(file: str) -> tuple[list[str], torch.Tensor]:
    rows = REFERENCE[file]["logits_float64_of"]
    return list(rows), torch.tensor(list(rows.values()), dtype=torch.float64)


@pytest.fixture
def resnet20_in_cache():
    """The shipped file placed where ``pretrained="akamaster"`` finds it (the cache), as after a download."""
    dest = pretrained_dir() / RESNET20.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RESNET20, dest)
    yield dest
    for stale in (dest, dest.with_name(dest.name + ".sha256")):
        stale.unlink(missing_ok=True)


def test_the_shipped_file_is_the_published_one():
    entry = senet.pretrained.get_pretrained("cifar_resnet20", "akamaster")
    assert entry.file_name == RESNET20.name and entry.size_bytes == RESNET20.stat().st_size
    assert senet.data.cache.file_digest(RESNET20) == entry.sha256
    assert (DATA / "LICENSE").read_text(encoding="utf-8").startswith("Copyright (c) 2018, Yerlan Idelbayev")


def test_resnet20_by_tag_computes_the_publishers_logits(resnet20_in_cache):
    model = senet.create_model("cifar_resnet20", pretrained="akamaster").double().eval()
    info = model.pretrained_info
    assert info.naming == "akamaster" and info.weights.tag == "akamaster" and model.config.shortcut_pad == "both"
    config = senet.data_config(model)  # the publisher's trainer.py: ToTensor, ImageNet mean/std, 32x32
    assert config == {
        "input_size": [3, 32, 32], "crop_pct": 1.0, "resize": 32, "interpolation": "bilinear",
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channel_order": "RGB",
    }  # fmt: skip
    assert senet.data_config("cifar_resnet20") == config  # by name: its default checkpoint's
    names, expected = _reference_logits(RESNET20.name)
    got = _logits(model, _pixels(names))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    classes = [n.split("/")[1] for n in names]
    correct = [senet.data.embedded_cifar10.CIFAR10_CLASSES[i] for i in got.argmax(1)]
    assert sum(a == b for a, b in zip(correct, classes, strict=True)) == 10  # all ten first images right


def test_a_renamed_copy_is_recognised_by_its_keys(tmp_path):
    # No table entry matches the name: the naming (classifier 'linear') decides the options.
    copy = tmp_path / "my_resnet20.pth"
    shutil.copyfile(RESNET20, copy)
    model = senet.create_model("cifar_resnet20", pretrained=copy).double().eval()
    assert model.pretrained_info.weights is None and model.pretrained_info.naming == "akamaster"
    assert model.config.shortcut_pad == "both"
    names, expected = _reference_logits(RESNET20.name)
    publisher = senet.pretrained.get_pretrained("cifar_resnet20", "akamaster").preprocessing.as_dict()
    assert senet.data_config(model) == publisher  # the naming's publisher normalised with ImageNet's statistics
    x = _normalise(_pixels(names), publisher)
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)


def test_the_naming_writes_the_real_files_keys_in_order_and_is_recognised():
    real = torch.load(RESNET20, map_location="cpu", weights_only=True)
    assert set(real) == {"state_dict", "best_prec1"}
    public = {k.removeprefix("module."): tuple(v.shape) for k, v in real["state_dict"].items()}
    ours = senet.create_model("cifar_resnet20").state_dict()
    written = senet.convert_state_dict(ours, "ours", model="cifar_resnet20", target="akamaster")
    # Keys, shapes and order; the file predates BatchNorm's step counter (PyTorch < 0.4.1).
    assert not any(k.endswith("num_batches_tracked") for k in public)
    kept = [(k, tuple(v.shape)) for k, v in written.items() if not k.endswith("num_batches_tracked")]
    assert kept == list(public.items())
    assert senet.convert.detect_naming(list(public)).name == "akamaster"
    assert senet.convert.naming_options("akamaster", "cifar_resnet56") == {"shortcut_pad": "both"}
    with pytest.raises(ValueError, match="does not have"):  # akamaster's networks have no SE
        senet.convert_state_dict(senet.create_model("se_cifar_resnet20").state_dict(), "ours",
                                 model="se_cifar_resnet20", target="akamaster")  # fmt: skip


def test_zeros_at_the_end_are_another_network():
    # What the keys cannot show: the same weights with our default padding compute something else.
    names, expected = _reference_logits(RESNET20.name)
    model = senet.create_model("cifar_resnet20", pretrained=RESNET20, shortcut_pad="end").double().eval()
    got = _logits(model, _pixels(names))
    assert (got - expected).abs().max() > 1.0


def test_the_table_lists_the_six_depths():
    entries = [w for w in senet.list_pretrained() if w.naming == "akamaster"]
    assert [w.model for w in entries] == [f"cifar_resnet{d}" for d in (20, 32, 44, 56, 110, 1202)]
    published_error = {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32, 1202: 6.18}  # the publisher's README
    for w in entries:
        depth = int(w.model.removeprefix("cifar_resnet"))
        assert w.top1 == pytest.approx(100 - published_error[depth]) and w.dataset == "cifar10"
        assert w.num_classes == 10 and w.default and dict(w.options) == {"shortcut_pad": "both"}
        assert w.url == f"https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/{w.file_name}"
        assert w.file_name.startswith(f"resnet{depth}-{w.sha256_prefix}.")
        assert w.sha256 is None or w.sha256.startswith(w.sha256_prefix)
    with pytest.raises(ValueError, match="no public checkpoint exists for model 'se_cifar_resnet20'"):
        senet.pretrained.get_pretrained("se_cifar_resnet20")


# float32 moves these networks' logits by < 1e-4 (checked on the reference images in _score); an image
# whose two best logits are closer than 10x that in float32 is scored again in float64.
FLOAT32_ERROR, MARGIN = 1e-4, 1e-3


def _score(model: torch.nn.Module, file: str) -> int:
    """Correct answers on the embedded test split, as the publisher's float64 network gives them.

    All 10,000 images in float64 take ~20 CPU-minutes for ResNet-56; the argmax of the float32 network
    is the float64 one wherever its top-2 margin exceeds twice the float32 error, so only the images
    closer than ``MARGIN`` are computed again in float64.
    """
    data = senet.data.load_dataset("cifar10", progress=False)
    assert data.source == EMBEDDED_SOURCE  # the copy the publisher's outputs were computed on
    single = copy.deepcopy(model).float()
    names, expected = _reference_logits(file)
    config = senet.data_config(model)
    with torch.no_grad():
        assert (single(_normalise(_pixels(names), config).float()).double() - expected).abs().max() < FLOAT32_ERROR
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)  # conftest's one thread is for small tensors
    try:
        x = _normalise(data.test.images, config).float()
        with torch.no_grad():
            logits = torch.cat([single(x[i : i + 500]) for i in range(0, len(x), 500)])
        top2 = logits.topk(2, dim=1).values
        close = torch.nonzero(top2[:, 0] - top2[:, 1] < MARGIN).flatten()
        predicted = logits.argmax(1)
        if len(close):
            predicted[close] = _logits(model, data.test.images[close]).argmax(1)
    finally:
        torch.set_num_threads(threads)
    return int((predicted == data.test.labels).sum())


@pytest.mark.slow
def test_resnet20_scores_the_publishers_count_on_the_embedded_copy(resnet20_in_cache):
    model = senet.create_model("cifar_resnet20", pretrained="akamaster").double().eval()
    assert _score(model, RESNET20.name) == REFERENCE[RESNET20.name]["correct_of_10000_on_this_copy"] == 8103


@pytest.mark.slow
def test_resnet56_scores_the_publishers_count_on_the_embedded_copy():
    path = SHARED / "resnet56-4bfd9763.th"
    if not path.is_file():
        pytest.skip(f"{path} is not there (CI keeps ../shared beside the clone)")
    model = senet.create_model("cifar_resnet56", pretrained=path).double().eval()
    assert model.pretrained_info.weights == senet.pretrained.get_pretrained("cifar_resnet56", "akamaster")
    names, expected = _reference_logits(path.name)
    torch.testing.assert_close(_logits(model, _pixels(names)), expected, rtol=0, atol=1e-6)
    assert _score(model, path.name) == REFERENCE[path.name]["correct_of_10000_on_this_copy"] == 8320


def test_senet_eval_scores_the_real_checkpoint_on_cifar10_with_its_publishers_preprocessing(capsys):
    """`senet eval --model cifar_resnet20 --weights FILE --dataset cifar10`: CIFAR weights scored on CIFAR-10,
    with the publisher's ImageNet statistics (CIFAR-10's would give other predictions)."""
    from senet.analysis import model_data, per_class_subset
    from senet.cli.main import main

    code = main(["eval", "--model", "cifar_resnet20", "--weights", str(RESNET20), "--dataset", "cifar10",
                 "--per-class", "20", "--json", "--device", "cpu", "--no-progress"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    m = json.loads(out.out)
    model = senet.create_model("cifar_resnet20", pretrained=RESNET20).eval()
    publisher = senet.pretrained.get_pretrained("cifar_resnet20", "akamaster").preprocessing.as_dict()
    data = per_class_subset(model_data("cifar10", publisher), 20)  # the 200 images eval draws (seed 0)
    with torch.no_grad():
        predicted = torch.cat([model(x) for x, _ in data.batches(256, torch.device("cpu"))]).argmax(1)
    confusion = torch.zeros(10, 10, dtype=torch.int64)
    confusion.index_put_((data.labels, predicted), torch.ones(200, dtype=torch.int64), accumulate=True)
    assert m["images"] == 200 and m["confusion"] == confusion.tolist()
    assert m["classes"] == list(senet.data.CIFAR10_CLASSES)
    assert m["accuracy"] > 0.6  # the real network (81% on this copy), not chance
