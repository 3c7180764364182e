"""convert_state_dict: public checkpoint namings <-> our keys, checked against the public listings."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import senet
from senet.convert import convert_state_dict, detect_naming, get_naming, list_namings
from senet.models import create_model, get_model_entry
from senet.models.resnet import ResNet
from senet.utils.skeleton import meta_skeleton

# Key names and shapes of public checkpoints (no weights), copied from the team reference.
KEYS_DIR = Path(__file__).resolve().parent / "reference" / "checkpoint-keys"

# Listing -> (its naming, our network).
LISTINGS = {
    "legacy_seresnet18": ("legacy", "se_resnet18"),
    "legacy_seresnet50": ("legacy", "se_resnet50"),
    "legacy_seresnext50_32x4d": ("legacy", "se_resnext50_32x4d"),
    "legacy_senet154": ("legacy", "senet154"),
    "resnet50": ("modern", "resnet50"),
    "seresnet50": ("modern", "se_resnet50"),
    "seresnext50_32x4d": ("modern", "se_resnext50_32x4d"),
    "tv_resnet18": ("modern", "resnet18"),
    "tv_resnet101": ("modern", "resnet101"),
    "tv_resnext50_32x4d": ("modern", "resnext50_32x4d"),
    "tv_vgg16_bn": ("torchvision", "vgg16_bn"),
    "tv_densenet121": ("torchvision", "densenet121"),
    "tv_mobilenet_v3_large": ("torchvision", "mobilenet_v3_large"),
    "tv_efficientnet_b0": ("torchvision", "efficientnet_b0"),
    "inception_resnet_v2": ("tf_slim", "inception_resnet_v2"),
    "legacy_seresnet34": ("legacy", "se_resnet34"),
    "legacy_seresnet101": ("legacy", "se_resnet101"),
    "legacy_seresnet152": ("legacy", "se_resnet152"),
    "legacy_seresnext101_32x4d": ("legacy", "se_resnext101_32x4d"),
    "senet154": ("modern", "senet154"),
    "seresnext101_32x4d": ("modern", "se_resnext101_32x4d"),
    "resnext101_32x4d": ("modern", "resnext101_32x4d"),
    "tv_resnet34": ("modern", "resnet34"),
    "tv_resnet50": ("modern", "resnet50"),
    "tv_resnet152": ("modern", "resnet152"),
}
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@functools.cache
def read_listing(name: str) -> tuple[int, tuple[tuple[str, tuple[int, ...]], ...]]:
    """The parameter count of the header line and the (key, shape) rows of a listing."""
    header, *lines = (KEYS_DIR / f"{name}.txt").read_text().splitlines()
    count = int(re.search(r"(\d+) parameters$", header).group(1))
    rows = []
    for line in lines:
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in re.findall(r"\d+", shape))))
    return count, tuple(rows)


def meta_state(rows) -> dict[str, torch.Tensor]:
    # Tensors of the listed shapes without memory: enough for keys, shapes and a strict load.
    return {k: torch.empty(s, device="meta") for k, s in rows}


@functools.cache
def meta_model(name: str) -> nn.Module:
    with meta_skeleton():
        return create_model(name)


def layout(state: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in state.items()]


def test_every_listing_is_covered():
    assert sorted(p.stem for p in KEYS_DIR.glob("*.txt")) == sorted(LISTINGS)
    assert list_namings() == ["legacy", "modern", "torchvision", "tf_slim", "akamaster"]


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_listing_format(listing):
    # Header '# ...; N parameters', then 'key<TAB>(d0, d1, ...)': the parameters (buffers excluded) add up.
    count, rows = read_listing(listing)
    assert len({k for k, _ in rows}) == len(rows)
    assert sum(math.prod(s) for k, s in rows if not k.endswith(BUFFERS)) == count


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_auto_detection_from_the_keys_alone(listing):
    naming, _ = LISTINGS[listing]
    keys = [k for k, _ in read_listing(listing)[1]]
    assert detect_naming(keys).name == naming
    scores = {n: get_naming(n).detect(keys) for n in list_namings()}
    assert scores[naming] == 1.0 and all(s < 1.0 for n, s in scores.items() if n != naming)


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_from_ours_writes_the_listing_exactly_and_back(listing):
    naming, name = LISTINGS[listing]
    ours = meta_model(name).state_dict()
    public = get_naming(naming).from_ours(ours, name)
    assert layout(public) == list(read_listing(listing)[1])  # keys, shapes and order
    back = get_naming(naming).to_ours(public, name)
    assert list(back) == list(ours) and all(back[k] is ours[k] for k in ours)


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_auto_converts_the_listing_into_the_model(listing):
    _, name = LISTINGS[listing]
    public = meta_state(read_listing(listing)[1])
    converted = convert_state_dict(public, model=name)
    assert layout(converted) == layout(meta_model(name).state_dict())
    meta_model(name).load_state_dict(converted)  # strict


def _random_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # Every tensor random (BN statistics too), so that a swapped pair of equal shapes would show.
    torch.manual_seed(0)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5)
            else:
                t.fill_(int(torch.randint(1, 1000, ())))
    return model.state_dict()


# Public key -> our key, written out by hand from the publishers' code (one of the stem, an SE gate, the head).
KNOWN_PAIRS = {
    "se_resnet18": {"layer0.conv1.weight": "conv1.weight", "layer1.0.se_module.fc2.bias": "layer1.0.se.fc2.bias",
                    "last_linear.bias": "fc.bias"},
    "resnet18": {"conv1.weight": "conv1.weight", "layer3.0.bn1.running_var": "layer3.0.bn1.running_var",
                 "fc.bias": "fc.bias"},
    "mobilenet_v3_large": {"features.0.0.weight": "stem.conv.weight",
                           "features.0.1.running_mean": "stem.bn.running_mean", "classifier.3.bias": "fc.bias"},
}  # fmt: skip


@pytest.mark.parametrize(
    "name, naming",
    [("se_resnet18", "legacy"), ("resnet18", "modern"), ("mobilenet_v3_large", "torchvision")],
)
def test_round_trip_carries_the_values(name, naming):
    """Our random weights, written in the public naming and read back into a second, freshly built network,
    give the first network's outputs. The public state is a copy (as a file read back would be), so the
    values travel through the conversion instead of staying the same tensor objects; and a few public
    keys, checked against hand-written pairs, hold the values of the right tensors of ours."""
    source = create_model(name).eval()
    ours = _random_state(source)
    public = {k: v.clone() for k, v in convert_state_dict(ours, "ours", target=naming, model=name).items()}
    assert detect_naming(public).name == naming
    for public_key, our_key in KNOWN_PAIRS[name].items():
        assert torch.equal(public[public_key].reshape(ours[our_key].shape), ours[our_key]), public_key
    back = convert_state_dict(public, model=name)
    assert list(back) == list(ours)
    fresh = create_model(name).eval()
    # Every tensor of the fresh network differs from the source's before the load.
    assert not any(torch.equal(v, ours[k]) for k, v in fresh.state_dict().items() if v.is_floating_point())
    fresh.load_state_dict(back)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, ours[key]), key
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), source(x), rtol=0, atol=0)


@pytest.mark.parametrize("naming", ["legacy", "modern"])
@pytest.mark.parametrize("name", [n for n in senet.list_models() if get_model_entry(n).builder is ResNet])
def test_every_resnet_round_trips(naming, name):
    # The same scheme covers the networks without a listing here (SE-ResNet-34/101/152, SE-ResNeXt-101, ...).
    ours = meta_model(name).state_dict()
    public = convert_state_dict(ours, "ours", target=naming, model=name)
    assert detect_naming(public).name == naming
    back = convert_state_dict(public, model=name)
    assert list(back) == list(ours) and all(back[k] is ours[k] for k in ours)


def test_convert_through_an_instance_and_between_namings():
    # A model instance stands for its registered name; legacy -> modern without passing through a file.
    _, rows = read_listing("legacy_seresnet50")
    modern = convert_state_dict(meta_state(rows), "legacy", target="modern", model=meta_model("se_resnet50"))
    assert layout(modern) == list(read_listing("seresnet50")[1])
    with meta_skeleton():  # the legacy models' own stem pool: an option that moves no key
        caffe = create_model("se_resnet50", stem_pool="ceil")
    caffe.load_state_dict(convert_state_dict(meta_state(rows), model=caffe))


def test_unknown_naming_is_refused_in_one_line_naming_the_closest():
    _, rows = read_listing("legacy_seresnet50")
    state = meta_state(rows)
    state["stem.conv.weight"] = state.pop("layer0.conv1.weight")
    with pytest.raises(ValueError, match=r"closest: 'legacy' .*'stem\.conv\.weight'") as info:
        convert_state_dict(state, model="se_resnet50")
    assert "\n" not in str(info.value)
    # Where no key fits any naming, there is no "closest" to name (not "closest: 'legacy' (0 of 2 keys fit)").
    with pytest.raises(ValueError, match="fits no known naming; first keys that do not fit: 'dense_1") as info:
        detect_naming({"dense_1/kernel:0": None, "dense_1/bias:0": None})
    assert "\n" not in str(info.value) and "closest" not in str(info.value)


@pytest.mark.parametrize(
    "listing, model, match",
    [
        ("legacy_seresnet50", "se_resnet18", "do not fit model 'se_resnet18'"),
        ("legacy_seresnet50", "se_resnext50_32x4d", r"shapes that do not fit .*layer1\.0\.conv1\.weight"),
        ("tv_vgg16_bn", "resnet50", "covers the VGG, DenseNet"),
        ("tv_vgg16_bn", "se_vgg16_bn", "'torchvision' does not have: 'stages.0.0.se.fc1.weight'"),
        ("tv_resnet18", "resnet18", r"missing from the 'modern' state dict: 'fc\.bias'"),
    ],
)
def test_a_state_dict_that_does_not_fit_the_model_is_refused(listing, model, match):
    state = meta_state(read_listing(listing)[1])
    if listing == "tv_resnet18":
        del state["fc.bias"]
    with pytest.raises(ValueError, match=match) as info:
        convert_state_dict(state, model=model)
    assert "\n" not in str(info.value)


def test_our_tensors_without_public_counterpart_are_refused():
    with pytest.raises(ValueError, match="does not have: 'stages.0.0.se.fc1.weight'"):
        convert_state_dict(meta_model("se_vgg16_bn").state_dict(), "ours", target="torchvision", model="se_vgg16_bn")


def test_other_spellings_and_wrappers():
    _, rows = read_listing("inception_resnet_v2")
    # pretrainedmodels calls the classifier last_linear (timm: classif); DataParallel adds 'module.'.
    state = {f"module.{k.replace('classif.', 'last_linear.')}": v for k, v in meta_state(rows).items()}
    assert list(convert_state_dict(state, model="inception_resnet_v2"))[-1] == "fc.bias"
    # torchvision's DenseNet weights file still says 'norm.1' for 'norm1', and lacks num_batches_tracked
    # (BatchNorm fills it in on a strict load).
    model = create_model("densenet121")
    public = convert_state_dict(model.state_dict(), "ours", target="torchvision", model="densenet121")
    old = {re.sub(r"(denselayer\d+\.(norm|conv))([12])\.", r"\1.\3.", k): v for k, v in public.items()}
    old = {k: v for k, v in old.items() if not k.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    converted = convert_state_dict(old, model="densenet121")
    assert set(model.state_dict()) - set(converted) == {k for k in model.state_dict() if k.endswith("tracked")}
    create_model("densenet121").load_state_dict(converted)  # strict


def test_own_keys_pass_unchanged_and_names_are_checked():
    ours = meta_model("vgg16_bn").state_dict()
    assert list(convert_state_dict(ours, model="vgg16_bn")) == list(ours)
    with pytest.raises(ValueError, match="did you mean legacy"):
        convert_state_dict(ours, "legacyy", model="vgg16_bn")
    with pytest.raises(ValueError, match="unknown naming 'timm'"):
        convert_state_dict(ours, target="timm", model="vgg16_bn")
    assert senet.convert_state_dict is convert_state_dict and "tf_slim" in senet.list_namings()
