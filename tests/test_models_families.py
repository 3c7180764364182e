"""The non-ResNet families of the zoo: VGG, BN-Inception, Inception-ResNet-v2, MobileNet, ShuffleNet,
DenseNet, MobileNetV3 and EfficientNet.

Structural checks (parameter counts, multiply-adds, labels, input sizes) build the networks on the
meta device, which allocates nothing; only the forward/backward sweep computes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from senet.layers import SqueezeExcite, list_attention, make_divisible
from senet.models import SENetModel, create_model
from senet.profiler import profile
from senet.utils.skeleton import meta_skeleton

# name -> (input size of the forward/backward sweep, slow)
SWEEP = {
    "vgg16_bn": (32, True),
    "se_vgg16_bn": (32, True),
    "bn_inception": (32, False),
    "se_bn_inception": (32, False),
    "inception_resnet_v2": (32, True),
    "se_inception_resnet_v2": (32, True),
    "mobilenet_v1": (32, False),
    "se_mobilenet_v1": (32, False),
    "shufflenet_v1_g3": (32, False),
    "se_shufflenet_v1_g3": (32, False),
    "densenet121": (32, False),
    "se_densenet121": (32, False),
    "mobilenet_v3_large": (36, False),
    "efficientnet_b0": (44, False),
}
PLAIN = [n for n in SWEEP if not n.startswith("se_") and n not in ("mobilenet_v3_large", "efficientnet_b0")]
WITH_SE = [n for n in SWEEP if n.startswith("se_")] + ["mobilenet_v3_large", "efficientnet_b0"]


def _labels(stages: dict[int, int]) -> list[str]:
    return [f"SE_{s}_{b}" for s, n in stages.items() for b in range(1, n + 1)]


# The documented SE labels of every network, in forward order.
LABELS = {
    "se_vgg16_bn": _labels({1: 2, 2: 2, 3: 3, 4: 3, 5: 3}),
    "se_bn_inception": _labels({3: 3, 4: 5, 5: 2}),
    "se_inception_resnet_v2": _labels({3: 10, 4: 20, 5: 10}),
    "se_mobilenet_v1": _labels({1: 1, 2: 2, 3: 2, 4: 6, 5: 2}),
    "se_shufflenet_v1_g3": _labels({2: 4, 3: 8, 4: 4}),
    "se_densenet121": _labels({2: 1, 3: 1, 4: 1, 5: 1}),
    "mobilenet_v3_large": _labels({4: 3, 6: 2, 7: 3}),
    "efficientnet_b0": _labels({2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 1}),
}


def _conv_bn(c_in: int, c_out: int, kernel: int = 1, groups: int = 1) -> int:
    return c_in // groups * c_out * kernel * kernel + 2 * c_out  # convolution without bias, BN gamma and beta


def _shufflenet_v1_g3_params() -> int:
    """ShuffleNet 1x, g=3 (Zhang et al. 2018, Table 1 and Fig. 2), 1000 classes, from its layer widths."""
    total, c_in = _conv_bn(3, 24, 3), 24  # conv1 (the max pool has no parameters)
    for stage, (width, units) in enumerate(zip((240, 480, 960), (4, 8, 4), strict=True)):
        for u in range(units):
            branch, mid = (width - c_in if u == 0 else width), width // 4  # a stride-2 unit concatenates
            first_groups = 1 if stage == 0 and u == 0 else 3  # the first 1x1 of stage 2 is not grouped
            total += _conv_bn(c_in, mid, 1, first_groups) + _conv_bn(mid, mid, 3, mid) + _conv_bn(mid, branch, 1, 3)
            c_in = width
    return total + 960 * 1000 + 1000


# BN-Inception's Inception modules 3a-3c, 4a-4e, 5a-5b (Ioffe & Szegedy 2015, Fig. 5, with the released
# Caffe model's 4c/4d widths): (#1x1, #3x3 reduce, #3x3, #double 3x3 reduce, #double 3x3, #pool proj);
# a 0 drops the branch or the projection (the reducing modules 3c and 4e pass the pooled input on).
_BN_INCEPTION_MODULES = [
    (64, 64, 64, 64, 96, 32), (64, 64, 96, 64, 96, 64), (0, 128, 160, 64, 96, 0),
    (224, 64, 96, 96, 128, 128), (192, 96, 128, 96, 128, 128), (160, 128, 160, 128, 160, 128),
    (96, 128, 192, 160, 192, 128), (0, 128, 192, 192, 256, 0),
    (352, 192, 320, 160, 224, 128), (352, 192, 320, 192, 224, 128),
]  # fmt: skip


def _bn_inception_widths() -> list[int]:
    """The output channels of the ten Inception modules: the sum of their branches."""
    widths, c_in = [], 192
    for n1x1, _, n3x3, _, ndouble, proj in _BN_INCEPTION_MODULES:
        c_in = n1x1 + n3x3 + ndouble + (proj or c_in)
        widths.append(c_in)
    return widths


def _bn_inception_params() -> int:
    """BN-Inception, 1000 classes: conv1 (7x7), conv2 (1x1 reduce, 3x3), the modules, the classifier."""
    total, c_in = _conv_bn(3, 64, 7) + _conv_bn(64, 64) + _conv_bn(64, 192, 3), 192
    for (n1x1, r3x3, n3x3, rdouble, ndouble, proj), out in zip(
        _BN_INCEPTION_MODULES, _bn_inception_widths(), strict=True
    ):
        total += _conv_bn(c_in, n1x1) if n1x1 else 0
        total += _conv_bn(c_in, r3x3) + _conv_bn(r3x3, n3x3, 3)
        total += _conv_bn(c_in, rdouble) + _conv_bn(rdouble, ndouble, 3) + _conv_bn(ndouble, ndouble, 3)
        total += _conv_bn(c_in, proj) if proj else 0
        c_in = out
    return total + 1024 * 1000 + 1000


# Exact parameter counts of the networks without SE, 1000 classes: the reference table (tests/reference/
# paper.md), or, where it has none (BN-Inception, ShuffleNet), computed from the layer widths above.
# MobileNetV3-Large and EfficientNet-B0 include their SE blocks (the reference counts them).
PLAIN_PARAMS = {
    "vgg16_bn": 138_365_992,
    "mobilenet_v1": 4_231_976,
    "densenet121": 7_978_856,
    "inception_resnet_v2": 55_843_464,
    "bn_inception": _bn_inception_params(),
    "shufflenet_v1_g3": _shufflenet_v1_g3_params(),
}
BUILT_IN_SE_PARAMS = {"mobilenet_v3_large": 5_483_032, "efficientnet_b0": 5_288_548}


def _se_params(channels: int, hidden: int) -> int:
    return 2 * channels * hidden + hidden + channels  # W1 (h x C), W2 (C x h), b1, b2


def _r16(widths: list[int]) -> list[tuple[int, int]]:
    return [(c, c // 16) for c in widths]  # the SE paper's r = 16: hidden width C // 16


# (C, hidden width) of every SE block in forward order, written out from each network's definition
# (the channels where the module doc of senet/models/<family>.py places SE) and its width rule.
SE_BLOCKS = {
    # After every convolution (conv1_1 .. conv5_3).
    "se_vgg16_bn": _r16([64] * 2 + [128] * 2 + [256] * 3 + [512] * 6),
    # After every depthwise-separable block (Howard et al. 2017, Table 1).
    "se_mobilenet_v1": _r16([64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2),
    # On every unit's residual branch: out - in channels in the first (concatenating) unit of a stage.
    "se_shufflenet_v1_g3": _r16([240 - 24] + [240] * 3 + [480 - 240] + [480] * 7 + [960 - 480] + [960] * 3),
    # On each dense block's output: its input (64, then halved by the transition) plus k = 32 per layer.
    "se_densenet121": _r16([64 + 6 * 32, 128 + 12 * 32, 256 + 24 * 32, 512 + 16 * 32]),
    # On every Inception module's output (256, 320, 576, 576, 576, 608, 608, 1056, 1024, 1024).
    "se_bn_inception": _r16(_bn_inception_widths()),
    # On the residual branch of every A, B and C block.
    "se_inception_resnet_v2": _r16([320] * 10 + [1088] * 20 + [2080] * 10),
    # The MobileNetV3 paper's Table 1: SE on the expanded channels of 8 blocks, hidden make_divisible(C / 4, 8).
    "mobilenet_v3_large": [(72, 24), (120, 32), (120, 32), (480, 120), (672, 168), (672, 168), (960, 240), (960, 240)],
    # EfficientNet-B0 (Table 1): SE on the expanded channels C_in * e of all 16 MBConv blocks (e = 1 in the
    # first, 6 after), hidden int(C_in * 0.25) from the block's input width C_in.
    "efficientnet_b0": [(32, 32 // 4)]
    + [(6 * c, c // 4) for c in [16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112]]
    + [(6 * 192, 192 // 4)] * 4,
}
SE_PARAMS = {name: sum(_se_params(c, h) for c, h in blocks) for name, blocks in SE_BLOCKS.items()}

# Exact parameter counts, 1000 classes: each SE network is its plain network plus its SE blocks.
PARAMS = {
    **PLAIN_PARAMS,
    **{f"se_{n}": count + SE_PARAMS[f"se_{n}"] for n, count in PLAIN_PARAMS.items()},
    **BUILT_IN_SE_PARAMS,
}


def _meta(name: str, **kwargs: object) -> SENetModel:
    with meta_skeleton():
        return create_model(name, **kwargs)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _macs(model: nn.Module, size: int) -> int:
    """Multiply-adds of one image as the project's profiler counts them (conv, FC, SE pooling and scaling)."""
    return profile(model, input_size=(3, size, size)).macs


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_count_is_exact(name):
    assert _count(_meta(name)) == PARAMS[name]


@pytest.mark.parametrize("name", list(BUILT_IN_SE_PARAMS))
def test_built_in_se_networks_without_se_lose_exactly_their_se_blocks(name):
    assert _count(_meta(name, attention=None)) == BUILT_IN_SE_PARAMS[name] - SE_PARAMS[name]


@pytest.mark.parametrize("name", list(SE_BLOCKS))
def test_se_blocks_have_the_documented_widths(name):
    # The same written-out list as the counts above, block by block: a mismatch names the block.
    se = _meta(name).attention_modules()
    assert [(label, m.channels, m.hidden) for label, m in se.items()] == [
        (label, c, h) for label, (c, h) in zip(LABELS[name], SE_BLOCKS[name], strict=True)
    ]


def test_se_mobile_networks_match_the_papers_table3_sizes():
    # Table 3: SE-MobileNet 4.7M, SE-ShuffleNet 2.4M (baseline 1.8M; ours 1.87M, 2.48M: +0.62M as theirs +0.6M).
    assert round(PARAMS["se_mobilenet_v1"] / 1e6, 1) == 4.7
    assert abs(PARAMS["se_shufflenet_v1_g3"] - PARAMS["shufflenet_v1_g3"] - 0.6e6) < 0.05e6


@pytest.mark.parametrize(
    ("name", "paper", "tolerance"),
    [
        ("vgg16_bn", 15.47e9, 0.003),
        ("se_vgg16_bn", 15.48e9, 0.003),
        ("mobilenet_v1", 569e6, 0.01),
        ("se_mobilenet_v1", 572e6, 0.01),
        ("shufflenet_v1_g3", 140e6, 0.03),
        ("se_shufflenet_v1_g3", 142e6, 0.03),
        ("bn_inception", 2.03e9, 0.005),
    ],
)
def test_multiply_adds_match_the_paper(name, paper, tolerance):
    assert _macs(_meta(name), 224) == pytest.approx(paper, rel=tolerance)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if slow else n for n, (_, slow) in SWEEP.items()]
)
def test_forward_backward_and_classifier(name):
    size = SWEEP[name][0]
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.randn(2, 3, size, size)
    features = model.forward_features(x)
    assert features.shape[:2] == (2, model.num_features)
    out = model.forward_head(features)
    assert out.shape == (2, 1000)
    assert torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no or non-finite gradient: {missing[:5]}"

    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        width = getattr(model, "head_hidden_size", model.num_features)
        assert model.forward_head(features, pre_logits=True).shape == (2, width)
        model.reset_classifier(5)
        assert model.get_classifier().out_features == 5
        assert model.forward_head(features).shape == (2, 5)
        model.reset_classifier(0)
        assert model.forward_head(features).shape == (2, width)
    with pytest.raises(ValueError):
        model.reset_classifier(-1)


@pytest.mark.parametrize("name", list(LABELS))
def test_attention_labels_are_documented_and_in_forward_order(name):
    model = _meta(name)
    labels = list(model.attention_modules())
    assert labels == LABELS[name]
    assert set(model.attention_paths()) == set(labels)
    assert all(isinstance(m, SqueezeExcite) for m in model.attention_modules().values())


@pytest.mark.parametrize("name", PLAIN)
def test_plain_networks_have_no_attention(name):
    assert _meta(name).attention_modules() == {}


@pytest.mark.parametrize("name", WITH_SE)
def test_attention_none_is_the_plain_network(name):
    plain_name = name.removeprefix("se_")
    plain = _meta(name, attention=None)
    assert plain.attention_modules() == {}
    if plain_name != name:
        reference = _meta(plain_name)
        assert repr(plain) == repr(reference)
        assert {k: v.shape for k, v in plain.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()
        }
    # SE adds parameters and changes nothing else: the SE network without its modules' keys is the plain one.
    se = _meta(name)
    prefixes = tuple(p + "." for p in se.attention_paths().values())
    se_keys = {k for k in se.state_dict() if not k.startswith(prefixes)}
    assert se_keys == set(plain.state_dict())


@pytest.mark.parametrize("name", ["se_mobilenet_v1", "se_shufflenet_v1_g3"])
def test_attention_none_gives_identical_weights(name):
    torch.manual_seed(0)
    a = create_model(name, attention=None)
    torch.manual_seed(0)
    b = create_model(name.removeprefix("se_"))
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


class _ChannelScale(nn.Module):
    """A minimal attention module following the contract ``Module(channels)``, same shape out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(1, -1, 1, 1)


@pytest.mark.parametrize("name", list(LABELS))
def test_any_attention_replaces_se_at_the_same_places(name):
    plain = name.removeprefix("se_")
    model = _meta(plain, attention=_ChannelScale)
    assert list(model.attention_modules()) == LABELS[name]
    assert all(isinstance(m, _ChannelScale) for m in model.attention_modules().values())
    if "eca" in list_attention():
        eca = _meta(plain, attention="eca")
        assert list(eca.attention_modules()) == LABELS[name]
        assert not any(isinstance(m, SqueezeExcite) for m in eca.attention_modules().values())


def test_every_registered_attention_runs_in_a_small_network():
    x = torch.randn(2, 3, 32, 32)
    for attention in list_attention():
        model = create_model("shufflenet_v1_g3", attention=attention, num_classes=3)
        assert len(model.attention_modules()) == 16, attention
        out = model(x)
        assert out.shape == (2, 3) and torch.isfinite(out).all(), attention


@pytest.mark.parametrize(
    ("name", "stages", "expected"),
    [
        ("se_vgg16_bn", (5,), _labels({5: 3})),
        ("se_mobilenet_v1", (1, 5), _labels({1: 1, 5: 2})),
        ("se_shufflenet_v1_g3", (3,), _labels({3: 8})),
        ("se_densenet121", (2, 4), _labels({2: 1, 4: 1})),
        ("se_bn_inception", (5,), _labels({5: 2})),
        ("se_inception_resnet_v2", (5,), _labels({5: 10})),
        ("mobilenet_v3_large", (4, 5), _labels({4: 3})),  # stage 5 has no SE by design
        ("efficientnet_b0", (8,), _labels({8: 1})),
    ],
)
def test_se_stages_selects_stages(name, stages, expected):
    assert list(_meta(name, se_stages=stages).attention_modules()) == expected


def test_se_follows_the_papers_reduction():
    model = _meta("se_shufflenet_v1_g3")
    se = model.attention_modules()
    assert (se["SE_2_1"].channels, se["SE_2_1"].hidden) == (216, 13)  # the branch of a stride-2 unit: 240 - 24
    assert (se["SE_2_2"].channels, se["SE_2_2"].hidden) == (240, 15)
    assert se["SE_2_2"].fc1.bias is not None
    vgg = _meta("se_vgg16_bn", reduction=8).attention_modules()
    assert (vgg["SE_5_3"].channels, vgg["SE_5_3"].hidden) == (512, 64)


def test_mobilenet_v3_has_its_own_se():
    se = _meta("mobilenet_v3_large").attention_modules()
    expanded = [72, 120, 120, 480, 672, 672, 960, 960]
    assert [m.channels for m in se.values()] == expanded
    assert [m.hidden for m in se.values()] == [make_divisible(c / 4, 8) for c in expanded]
    assert all(isinstance(m.act, nn.ReLU) and isinstance(m.gate, nn.Hardsigmoid) for m in se.values())


def test_efficientnet_se_width_follows_the_block_input():
    se = _meta("efficientnet_b0").attention_modules()
    block_inputs = [32, 16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192]
    assert [m.hidden for m in se.values()] == [max(1, int(c * 0.25)) for c in block_inputs]
    assert [m.channels for m in se.values()] == [32] + [6 * c for c in block_inputs[1:]]
    assert all(isinstance(m.act, nn.SiLU) and isinstance(m.gate, nn.Sigmoid) for m in se.values())
    # The default attention named explicitly keeps the rule; an explicit reduction r keeps it with C_in / r.
    assert [m.hidden for m in _meta("efficientnet_b0", attention="se").attention_modules().values()] == [
        m.hidden for m in se.values()
    ]
    assert [m.hidden for m in _meta("efficientnet_b0", reduction=8).attention_modules().values()] == [
        max(1, int(c / 8)) for c in block_inputs
    ]
    own = _meta("efficientnet_b0", se_ratio=None).attention_modules().values()
    assert [m.hidden for m in own] == [max(1, m.channels // 16) for m in own]


@pytest.mark.parametrize("name", list(SWEEP))
def test_any_input_size_from_the_minimum(name):
    # The forward/backward sweep runs each network at (or near) its minimum size; here an odd, non-square
    # one, with a grey-scale input and no classifier.
    h, w = (76, 93) if "inception_resnet" in name else (33, 47)
    model = _meta(name, in_chans=1, num_classes=0).eval()
    with meta_skeleton():
        out = model(torch.empty(2, 1, h, w))
    assert out.shape == (2, getattr(model, "head_hidden_size", model.num_features))


def test_inception_resnet_v2_pads_small_inputs():
    model = create_model("inception_resnet_v2", num_classes=3).eval()
    x = torch.randn(1, 3, 32, 40)
    padded = nn.functional.pad(x, (17, 18, 21, 22))  # centred to 75x75
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded))


def test_configs_are_checked():
    with pytest.raises(ValueError, match="drop_rate"):
        _meta("vgg16_bn", drop_rate=1.5)
    with pytest.raises(ValueError, match="has no option"):
        _meta("mobilenet_v1", depth=3)
    with pytest.raises(ValueError, match="divisible"):
        _meta("shufflenet_v1_g3", groups=7)
