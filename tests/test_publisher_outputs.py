"""The outside oracle: a public checkpoint loaded by name computes what the publisher's own network computes.

``tests/reference/publisher-outputs.json.gz`` holds, for each key listing in ``reference/checkpoint-keys/``,
the float64 logits that timm's or torchvision's own network (their code, not ours) computes with weights
rebuilt from the listing alone by a fixed procedure (``listing_weights``, as in the team reference's
README) on a fixed input. The numbers were computed outside this project, so they check what
``tests/publisher_nets/`` (the publishers' networks as restated here) cannot: that restatement itself.

Each listing's weights are written to a file with a neutral name, ``checkpoint.pth`` (nothing in the name
says whose it is), in each format a user holds (a plain ``torch.save`` state dict, one wrapped in
``{"state_dict": ...}``, a ``.safetensors`` without senet's metadata), and read with
``create_model(NAME, pretrained=file)``: the network must compute the publisher's logits to 1e-10
relative to the largest. Into a model built with the defaults, ``load_pretrained`` must either refuse
(and then the defaults really compute another function) or load and compute the publisher's logits.

Why float64 and 1e-10: the same function computed in another order of summation agrees to ~1e-14 in
float64; a wrong stride placement, pooling, BatchNorm eps or activation shows as 1e-4 to 1e-1, so the
tolerance separates the two by six orders of magnitude either way. The model is built in float64
(``torch.set_default_dtype``), so the float64 weights are loaded without rounding.

Cost: the listing's own input size (96 px; 139 px for Inception-ResNet-v2); the weights cannot shrink (the
oracle fixed them). The default tier keeps a representative of each claim: every naming, every family
but two, each file format and both outcomes of ``load_pretrained``:

- the plain ``.pth`` of every listing but the big networks (SENet-154, the 101- and 152-layer ones,
  VGG-16-BN: 10-25 s each, drawing up to 138M float64 weights, up to 13 GB) and ``tv_resnet50`` (the same
  keys, hence weights, and the same logits as timm's ``resnet50``, which stays);
- the wrapped and the ``.safetensors`` formats of the smallest network of three namings (reading a file
  does not depend on the network in it);
- ``load_pretrained`` into the defaults for one refusing and one loading network per naming (where the
  naming has both; tf_slim's one network, Inception-ResNet-v2, in the slow tier).

Everything else runs under ``@pytest.mark.slow`` (`make test-all`). The big networks' architectures stay
in the default tier through ``test_convert_equivalence.py``, which compares our converted networks with
``tests/publisher_nets/``; the slow tier checks that restatement against these outputs.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import math
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import senet

REFERENCE = Path(__file__).resolve().parent / "reference"
OUTPUTS = json.loads(gzip.decompress((REFERENCE / "publisher-outputs.json.gz").read_bytes()))

EQUAL = 1e-10  # max |ours - theirs| / max |theirs|: the same function (float64 rounding is ~1e-14)
DIFFERENT = 1e-6  # ... that another function exceeds (measured: 1e-4 to 1e-1)

# Listing -> our network.
MODEL = {
    "legacy_seresnet18": "se_resnet18",
    "legacy_seresnet34": "se_resnet34",
    "legacy_seresnet50": "se_resnet50",
    "legacy_seresnet101": "se_resnet101",
    "legacy_seresnet152": "se_resnet152",
    "legacy_seresnext50_32x4d": "se_resnext50_32x4d",
    "legacy_seresnext101_32x4d": "se_resnext101_32x4d",
    "legacy_senet154": "senet154",
    "senet154": "senet154",
    "resnet50": "resnet50",
    "seresnet50": "se_resnet50",
    "seresnext50_32x4d": "se_resnext50_32x4d",
    "seresnext101_32x4d": "se_resnext101_32x4d",
    "resnext101_32x4d": "resnext101_32x4d",
    "tv_resnet18": "resnet18",
    "tv_resnet34": "resnet34",
    "tv_resnet50": "resnet50",
    "tv_resnet101": "resnet101",
    "tv_resnet152": "resnet152",
    "tv_resnext50_32x4d": "resnext50_32x4d",
    "tv_vgg16_bn": "vgg16_bn",
    "tv_densenet121": "densenet121",
    "tv_mobilenet_v3_large": "mobilenet_v3_large",
    "tv_efficientnet_b0": "efficientnet_b0",
    "inception_resnet_v2": "inception_resnet_v2",
}
# SENet-154, the 101- and 152-layer networks, and VGG-16-BN (138M parameters: a 1.1 GB float64 file).
BIG = {name for name in MODEL if "101" in name or "152" in name or "senet154" in name} | {"tv_vgg16_bn"}
FORMATS = ("pth", "wrapped", "safetensors")
# The default tier (see the module doc): the listings read in every format (legacy, modern and torchvision
# namings), the listings loaded into a default model (refused: legacy_seresnet18, resnet50, tv_efficientnet_b0;
# loaded: tv_resnet18, tv_mobilenet_v3_large; inception_resnet_v2's refusal, 9 s, is the slow tier's: the
# refusal is the same code for every naming), and the listings left to the slow tier.
EVERY_FORMAT = {"legacy_seresnet18", "tv_resnet18", "tv_mobilenet_v3_large"}
INTO_DEFAULTS = {"legacy_seresnet18", "resnet50", "tv_resnet18", "tv_efficientnet_b0", "tv_mobilenet_v3_large"}
SLOW = BIG | {"tv_resnet50"}  # tv_resnet50: resnet50's very keys, weights and logits


def read_listing(listing: str) -> list[tuple[str, tuple[int, ...]]]:
    """The (key, shape) rows of a listing, in its order."""
    _, *lines = (REFERENCE / "checkpoint-keys" / f"{listing}.txt").read_text().splitlines()
    return [(key, tuple(int(d) for d in re.findall(r"\d+", shape))) for key, shape in (x.split("\t") for x in lines)]


@functools.cache
def listing_weights(listing: str) -> dict[str, torch.Tensor]:
    """The listing's tensors as the oracle's weights were drawn: each key has its own seed (its CRC-32).
    Cached across the formats: the models copy them in, nothing writes to them."""
    rows = read_listing(listing)
    keys = {key for key, _ in rows}
    state = {}
    for key, shape in rows:
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        stem = key.rsplit(".", 1)[0]
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)  # not used in eval mode
            continue
        if key.endswith("running_mean"):
            value = rng.normal(0.0, 0.1, shape)
        elif key.endswith("running_var") or (
            len(shape) == 1 and key.endswith(".weight") and f"{stem}.running_mean" in keys
        ):
            value = rng.uniform(0.5, 1.5, shape)  # a BatchNorm's variance or scale
        elif len(shape) <= 1:
            value = rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, math.sqrt(1 / math.prod(shape[1:])), shape)
        state[key] = torch.from_numpy(np.asarray(value, dtype=np.float64))
    return state


def publisher_input(listing: str) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal(OUTPUTS[listing]["input_shape"]))


def publisher_logits(listing: str) -> torch.Tensor:
    return torch.tensor(OUTPUTS[listing]["logits"], dtype=torch.float64)


def write(state: dict[str, torch.Tensor], folder: Path, fmt: str) -> Path:
    """The state dict in a file of a neutral name, as a user holds it (nothing senet writes)."""
    if fmt == "safetensors":
        path = folder / "checkpoint.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, path)  # no metadata
    else:
        path = folder / "checkpoint.pth"
        torch.save(state if fmt == "pth" else {"state_dict": state, "epoch": 90}, path)
    return path


@pytest.fixture(autouse=True)
def _no_gigabytes_left_behind(tmp_path):
    """pytest keeps the temporary folders of its last runs: the float64 checkpoints written here (up to 1.1 GB
    each, 25 listings in 3 formats) are removed after each test instead."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


def _marks(listing: str, slow: bool) -> list[pytest.MarkDecorator]:
    """A big network's float64 test takes 6-13 GB at its peak (weights, file, read-back copy, model): the big
    ones share one xdist group, so no two of them run at once on a 24 GB machine."""
    marks = [pytest.mark.xdist_group("float64-big")] if listing in BIG else []
    return marks + ([pytest.mark.slow] if slow else [])


@contextlib.contextmanager
def float64():
    """Models built inside are float64, so the float64 weights load without rounding."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def relative_difference(model: torch.nn.Module, listing: str) -> float:
    with torch.no_grad():
        got = model.eval()(publisher_input(listing))
    expected = publisher_logits(listing)
    return ((got - expected).abs().max() / expected.abs().max()).item()


def test_the_oracle_covers_every_listing():
    listings = sorted(p.stem for p in (REFERENCE / "checkpoint-keys").glob("*.txt"))
    assert sorted(OUTPUTS) == listings == sorted(MODEL)
    for listing, entry in OUTPUTS.items():
        n, _, side, _ = entry["input_shape"]
        assert np.shape(entry["logits"]) == (n, 1000), listing
        assert np.std(entry["logits"]) > 0.1, listing  # a signal, not a dead network


def _formats():
    for listing in sorted(MODEL):
        for fmt in FORMATS:
            slow = listing in SLOW or (fmt != "pth" and listing not in EVERY_FORMAT)
            yield pytest.param(listing, fmt, id=f"{listing}-{fmt}", marks=_marks(listing, slow))


@pytest.mark.parametrize("listing, fmt", list(_formats()))
def test_create_model_from_a_neutral_file_computes_the_publishers_outputs(tmp_path, listing, fmt):
    path = write(listing_weights(listing), tmp_path, fmt)
    with float64():
        model = senet.create_model(MODEL[listing], pretrained=path)
    assert next(model.parameters()).dtype == torch.float64
    info = model.pretrained_info
    diff = relative_difference(model, listing)
    print(f"{listing} ({fmt}): {info.naming} naming, max relative difference {diff:.1e}")
    assert info.naming != "ours"  # a bare file is the publisher's, whatever its keys
    assert diff < EQUAL, (listing, fmt, info.naming, diff)


@pytest.mark.parametrize(
    "listing", [pytest.param(n, marks=_marks(n, n not in INTO_DEFAULTS)) for n in sorted(MODEL)]
)
def test_load_pretrained_into_a_default_model_refuses_or_computes_the_publishers_outputs(tmp_path, listing):
    path = write(listing_weights(listing), tmp_path, "pth")
    with float64():
        model = senet.create_model(MODEL[listing])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        report = senet.load_pretrained(model, path)
    except ValueError as e:
        message = str(e)
        assert "\n" not in message and "create_model(..., pretrained=path)" in message and "strict=False" in message
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing loaded
        with pytest.warns(UserWarning, match="differs from this model"):
            report = senet.load_pretrained(model, path, strict=False)
        assert report.complete and report.options and all(f"{k}=" in message for k in report.options)
        diff = relative_difference(model, listing)
        print(f"{listing}: refused ({', '.join(report.options)}); loaded anyway: {diff:.1e}")
        assert diff > DIFFERENT, (listing, diff)  # the refusal was needed: the defaults compute another function
    else:
        diff = relative_difference(model, listing)
        print(f"{listing}: loaded into the defaults ({report.naming} naming): {diff:.1e}")
        assert report.complete and not report.options
        assert diff < EQUAL, (listing, diff)
