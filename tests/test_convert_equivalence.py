"""A converted checkpoint computes the publisher's function, under ``naming_options(naming, model)``.

A second opinion: the outside oracle is ``test_publisher_outputs.py`` (the logits the publishers' own
networks compute); the reference networks here are this project's restatement of the publishers' code,
and add what those numbers do not (odd input sizes, Cadene's fixed-size heads, planted option flips).

For each public checkpoint listing, ``publisher_nets`` has a reference network written from the
publisher's own model definition, with the publisher's state_dict keys. It gets random weights and
BatchNorm statistics; its state dict is converted (naming auto-detected) and loaded into our model built
with the naming's options; both run the same input in float64 and must agree to ~1e-10 relative.

Why float64: the two networks compute the very same function, only in a different order of summation
(our SE folds the average into a matrix product, convolutions pick different algorithms, ...). In
float32 those rounding differences (~1e-7 relative per operation, grown through 50-150 layers) could
hide a real but small difference such as a BatchNorm eps of 1e-3 instead of 1e-5; in float64 rounding
stays near 1e-14, so anything above 1e-10 is a difference in the function, not in the arithmetic.

Each test also shows that a planted difference is caught: our model without the options (or with one
option flipped) differs from the reference by far more than the tolerance, so the options matter and
the comparison can tell.
"""

from __future__ import annotations

import pytest
import torch
from publisher_nets import PUBLISHER_NETS, InceptionResNetV2, LegacySENet, listing_layout, randomize_
from torch import nn

from senet.convert import convert_state_dict, detect_naming, naming_options
from senet.models import create_model, get_model_entry
from senet.utils.skeleton import meta_skeleton

EQUAL = 1e-10  # max |ours - theirs| / max |theirs| for the same function
DIFFERENT = 1e-6  # ... that a planted difference must exceed (10^4 x the tolerance)

NAMING = {
    "legacy_seresnet18": "legacy",
    "legacy_seresnet50": "legacy",
    "legacy_seresnext50_32x4d": "legacy",
    "legacy_senet154": "legacy",
    "resnet50": "modern",
    "seresnet50": "modern",
    "seresnext50_32x4d": "modern",
    "tv_resnet18": "modern",
    "tv_resnet101": "modern",
    "tv_resnext50_32x4d": "modern",
    "tv_vgg16_bn": "torchvision",
    "tv_densenet121": "torchvision",
    "tv_mobilenet_v3_large": "torchvision",
    "tv_efficientnet_b0": "torchvision",
    "inception_resnet_v2": "tf_slim",
}

# Input side: small and odd (so the stem pools' edge windows and ceil mode are exercised); 75 is the
# smallest input Inception-ResNet-v2's unpadded convolutions take.
SIZE = {"inception_resnet_v2": 75, "tv_mobilenet_v3_large": 65, "tv_efficientnet_b0": 65, "tv_resnet18": 65}
DEFAULT_SIZE = 33


def _bn_eps(eps: float):
    def plant(model: nn.Module) -> None:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = eps

    return plant


# Further planted differences, beyond "our defaults without the options": an option flipped (each must
# matter), or, where our defaults already are the publisher's computation, a BatchNorm eps changed.
PLANTED = {
    "legacy_seresnet18": [{"relu_before_se": False}, {"stem_pool": "pad"}],
    "legacy_seresnet50": [{"stride_in_1x1": False}],
    "legacy_seresnext50_32x4d": [{"stride_in_1x1": True}],
    "seresnext50_32x4d": [{"stem_pool": "ceil"}],
    "tv_resnet18": [{"stem_pool": "ceil"}],
    "tv_resnext50_32x4d": [{"stem_pool": "ceil"}],
    "tv_vgg16_bn": [_bn_eps(1e-3)],
    "tv_densenet121": [_bn_eps(1e-3)],
    "tv_mobilenet_v3_large": [{"bn_eps": 1e-5}],
}
SLOW: set[str] = set()
# Networks also run with fewer blocks of the same kinds in the default tier, their full depth in the slow tier:
# SENet-154 (115M parameters, three float64 copies) costs 6 s of CPU; its stem, blocks, projections and head are
# the same code at any depth, and its 36-block stage's keys are test_reference_net_has_the_publishers_keys's.
# listing -> (the reference network with fewer blocks, our options for the same blocks)
SHALLOW = {"legacy_senet154": (lambda: LegacySENet("senet", (1, 2, 2, 1)), {"layers": (1, 2, 2, 1)})}


def _cases():
    for listing in sorted(PUBLISHER_NETS):
        if listing in SHALLOW:
            yield pytest.param(listing, True, id=f"{listing}-shallow")
        slow = listing in SLOW or listing in SHALLOW
        yield pytest.param(listing, False, id=listing, marks=[pytest.mark.slow] if slow else [])


def relative_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    return ((got - expected).abs().max() / expected.abs().max()).item()


def reference(build, size: int, calibration_batch: int = 4) -> nn.Module:
    # Built on the meta device and materialised in float64: no float32 initialisation to throw away.
    with meta_skeleton():
        net = build().to(torch.float64)
    shape = (calibration_batch, 3, size, size)
    calibration = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return randomize_(net.to_empty(device="cpu"), calibration)


def ours(name: str, state: dict[str, torch.Tensor], plant=None, **options) -> nn.Module:
    with meta_skeleton():
        model = create_model(name, **options)
    model.load_state_dict(state, assign=True)  # strict; the converted float64 tensors themselves
    if callable(plant):
        plant(model)
    return model.eval()


@pytest.mark.parametrize("listing", sorted(PUBLISHER_NETS))
def test_reference_net_has_the_publishers_keys(listing):
    build, _ = PUBLISHER_NETS[listing]
    with meta_skeleton():
        net = build()
    assert [(k, tuple(v.shape)) for k, v in net.state_dict().items()] == listing_layout(listing)


@pytest.mark.parametrize("listing, shallow", list(_cases()))
def test_converted_model_computes_the_publishers_function(listing, shallow):
    build, name = PUBLISHER_NETS[listing]
    build, blocks = SHALLOW[listing] if shallow else (build, {})
    size = SIZE.get(listing, DEFAULT_SIZE)
    ref = reference(build, size)
    state = ref.state_dict()
    naming = detect_naming(state).name
    assert naming == NAMING[listing]
    options = naming_options(naming, name)
    if blocks:  # converted to the keys of our network with the same blocks
        with meta_skeleton():
            converted = convert_state_dict(state, model=create_model(name, **blocks, **options))
    else:
        converted = convert_state_dict(state, model=name)  # source="auto"
    x = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ref(x)
        assert expected.std() > 0.1  # a signal, not a dead network
        diff = relative_difference(ours(name, converted, **blocks, **options)(x), expected)
        print(f"{listing}: {size} px, options {options}: max relative difference {diff:.1e}")
        assert diff < EQUAL, (listing, options, diff)

        config = get_model_entry(name).config
        if any(getattr(config, k) != v for k, v in options.items()):
            # Our defaults are not the publisher's network: without the options the outputs differ.
            without = relative_difference(ours(name, converted, **blocks)(x), expected)
            print(f"  without the options: {without:.1e}")
            assert without > DIFFERENT, (listing, without)
        for planted in PLANTED.get(listing, []):
            model = ours(name, converted, planted, **blocks, **options) if callable(planted) else ours(
                name, converted, **blocks, **{**options, **planted}
            )
            off = relative_difference(model(x), expected)
            print(f"  planted {getattr(planted, '__qualname__', planted)}: {off:.1e}")
            assert off > DIFFERENT, (listing, planted, off)


@pytest.mark.parametrize(
    "build, name, naming, size, blocks",
    [
        (lambda: LegacySENet("resnet", (3, 4, 6, 3), head="cadene"), "se_resnet50", "legacy", 224, {}),
        # One block of each kind at 299 px (a quarter of the full network's time: the same stem, reductions,
        # blocks and head), and the full network in the slow tier.
        (lambda: InceptionResNetV2(head="cadene", blocks=(1, 1, 1)), "inception_resnet_v2", "tf_slim", 299,
         {"blocks": (1, 1, 2)}),
        pytest.param(lambda: InceptionResNetV2(head="cadene"), "inception_resnet_v2", "tf_slim", 299, {},
                     marks=pytest.mark.slow),
    ],  # fmt: skip
    ids=["legacy_seresnet50", "inception_resnet_v2-shallow", "inception_resnet_v2"],
)
def test_cadene_fixed_pool_head_is_our_global_average_at_the_native_size(build, name, naming, size, blocks):
    # Cadene's heads are AvgPool2d(7) (SENet) and AvgPool2d(8, count_include_pad=False) (Inception-ResNet-v2):
    # at 224 / 299 px the last map is 7x7 / 8x8, where they are the global average we (and timm) use.
    ref = reference(build, size, calibration_batch=2)  # 7x7 / 8x8 maps: statistics enough from two images
    state = ref.state_dict()
    options = {**blocks, **naming_options(naming, name)}
    with meta_skeleton():
        shape = create_model(name, **options) if blocks else name
    x = torch.randn(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ref(x)
        model = ours(name, convert_state_dict(state, model=shape), **options)
        diff = relative_difference(model(x), expected)
    print(f"{name} at {size} px, Cadene's head: max relative difference {diff:.1e}")
    assert diff < EQUAL


def test_naming_options_depend_on_the_network():
    # The legacy SE-ResNets stride in the 1x1, the legacy SE-ResNeXts and SENet-154 in the 3x3.
    assert naming_options("legacy", "se_resnet50")["stride_in_1x1"] is True
    assert naming_options("legacy", "se_resnext50_32x4d")["stride_in_1x1"] is False
    assert naming_options("legacy", "se_resnet18") == {"stem_pool": "ceil", "relu_before_se": True}
    assert naming_options("modern", "se_resnet50") == {"stem_pool": "pad", "stride_in_1x1": False}
    assert naming_options("torchvision", "efficientnet_b0") == {"bn_eps": 1e-5}
    assert naming_options("torchvision", "vgg16_bn") == {}
    assert naming_options("ours", "resnet50") == {}
    with pytest.raises(ValueError, match="covers the"):
        naming_options("tf_slim", "resnet50")
    with pytest.raises(ValueError, match="unknown naming"):
        naming_options("cafe", "resnet50")
