"""CIFAR ResNet-20..110, pre-activation ResNet-164 and WRN-16-8, with and without SE."""

from __future__ import annotations

import pytest
import torch
from sweep import HUGE
from torch import nn

from senet.layers import SqueezeExcite
from senet.models import create_model, get_model_entry, list_models
from senet.models.cifar_resnet import (
    CifarResNet,
    PadShortcut,
    PreActBasicBlock,
    PreActBottleneck,
)
from senet.models.registry import PLACEMENTS

PLAIN = {  # 10 classes; the papers print 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M, 1.7M and 11.0M
    "cifar_resnet20": 269_722,
    "cifar_resnet32": 464_154,
    "cifar_resnet44": 658_586,
    "cifar_resnet56": 853_018,
    "cifar_resnet110": 1_727_962,
    "cifar_resnet1202": 19_421_274,  # He et al. 2016, Table 6: 19.4M
    "preact_resnet164": 1_703_258,
    "wrn16_8": 10_961_370,
}
NAMES = sorted([*PLAIN, *(f"se_{n}" for n in PLAIN)])


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def se_params(channels: int, reduction: int = 16) -> int:
    hidden = channels // reduction
    return 2 * channels * hidden + hidden + channels  # W1, W2 and both biases


def test_registry_holds_exactly_the_family():
    assert sorted(n for n in list_models() if get_model_entry(n).builder is CifarResNet) == NAMES


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_parameter_counts(name):
    model = create_model(name)
    assert model.num_classes == 10 and count(model) == PLAIN[name]
    printed = {"preact_resnet164": 1.7, "wrn16_8": 11.0, "cifar_resnet110": 1.7, "cifar_resnet1202": 19.4}.get(name)
    if printed is None:
        printed = {20: 0.27, 32: 0.46, 44: 0.66, 56: 0.85}[int(name.removeprefix("cifar_resnet"))]
    assert round(count(model) / 1e6, 2 if printed < 1 else 1) == printed


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_se_adds_one_block_per_residual_block(name):
    plain, se = create_model(name), create_model(f"se_{name}")
    blocks = [m for m in plain.modules() if hasattr(m, "se")]
    assert count(se) - count(plain) == sum(se_params(_out_channels(b)) for b in blocks)
    plain_again = create_model(f"se_{name}", attention=None)
    assert count(plain_again) == count(plain)
    assert list(plain_again.state_dict()) == list(plain.state_dict())
    assert not plain_again.attention_modules() and not any(isinstance(m, SqueezeExcite) for m in plain_again.modules())


def _out_channels(block: nn.Module) -> int:
    return (block.conv3 if isinstance(block, PreActBottleneck) else block.conv2).out_channels


def test_num_classes_default_and_override():
    assert create_model("cifar_resnet20").fc.out_features == 10
    assert create_model("cifar_resnet20", num_classes=100).fc.out_features == 100
    assert create_model("resnet18", layers=(1,)).fc.out_features == 1000  # ImageNet nets keep 1000


def test_option_a_shortcut_pads_with_zeros():
    x = torch.randn(2, 16, 9, 9)
    y = PadShortcut(2, 16)(x)
    assert y.shape == (2, 32, 5, 5)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert not y[:, 16:].any()
    model = create_model("cifar_resnet20")
    assert isinstance(model.layer2[0].downsample, PadShortcut)
    option_b = create_model("cifar_resnet20", shortcut="B")
    assert count(option_b) - count(model) == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)  # 1x1 conv + BN, twice


def test_option_a_padding_on_both_sides():
    # akamaster's LambdaLayer: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)).
    x = torch.randn(2, 16, 9, 9)
    y = PadShortcut(2, 16, pad="both")(x)
    assert y.shape == (2, 32, 5, 5)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2]) and not y[:, :8].any() and not y[:, 24:].any()
    model = create_model("cifar_resnet20", shortcut_pad="both")
    assert model.layer2[0].downsample.pad == model.layer3[0].downsample.pad == "both"
    assert count(model) == PLAIN["cifar_resnet20"]  # no parameters, only where the zeros go
    with pytest.raises(ValueError, match="shortcut_pad"):
        create_model("cifar_resnet20", shortcut_pad="middle")


def test_architectures():
    r110 = create_model("cifar_resnet110")
    assert [len(getattr(r110, f"layer{i}")) for i in (1, 2, 3)] == [18, 18, 18]
    p164 = create_model("preact_resnet164")
    block = p164.layer2[0]
    assert isinstance(block, PreActBottleneck) and block.conv1.stride == (2, 2) and block.conv2.out_channels == 32
    assert p164.num_features == 256 and isinstance(p164.bn_final, nn.BatchNorm2d)
    wrn = create_model("wrn16_8")
    assert (
        isinstance(wrn.layer1[0], PreActBasicBlock) and [len(getattr(wrn, f"layer{i}")) for i in (1, 2, 3)] == [2] * 3
    )
    assert wrn.layer1[0].conv1.out_channels == 128 and wrn.num_features == 512
    assert isinstance(wrn.layer1[0].downsample, nn.Conv2d)  # 16 -> 128: a 1x1 projection


def test_se_labels():
    labels = list(create_model("se_cifar_resnet20").attention_modules())
    assert labels == [f"SE_{s}_{b}" for s in (2, 3, 4) for b in (1, 2, 3)]
    assert list(create_model("se_wrn16_8", se_stages=(4,)).attention_modules()) == ["SE_4_1", "SE_4_2"]


def _check_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


def _large(name: str) -> bool:
    return "164" in name or "wrn" in name or name in HUGE  # ResNet-1202: ResNet-110's blocks, 11 times as many


@pytest.mark.parametrize("name", [n for n in NAMES if not _large(n)])
def test_forward_backward(name):
    _check_forward_backward(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if _large(n)])
def test_forward_backward_large(name):
    _check_forward_backward(name)


@pytest.mark.parametrize(
    "name, options",
    [
        ("se_cifar_resnet20", {}),
        ("se_cifar_resnet20", {"shortcut": "B"}),
        ("se_preact_resnet164", {"layers": (1, 1, 1)}),
        ("se_wrn16_8", {"widths": (16, 32, 64), "block_drop_rate": 0.3}),
    ],
)
def test_placements_differ_and_train(name, options):
    outputs = {}
    reference = None
    for placement in PLACEMENTS:
        torch.manual_seed(0)
        model = create_model(name, se_placement=placement, **options)
        if reference is None:
            reference = model.state_dict()
        else:  # share every weight present in both; only SE's position (and width) differs
            own = model.state_dict()
            shared = {k: v for k, v in reference.items() if k in own and own[k].shape == v.shape}
            model.load_state_dict(shared, strict=False)
        torch.manual_seed(1)  # the same dropout masks
        y = model(torch.randn(2, 3, 32, 32))
        y.square().mean().backward()
        assert torch.isfinite(y).all() and all(p.grad is not None for p in model.parameters())
        assert len(model.attention_modules()) == sum(len(getattr(model, n)) for n in model.stage_names)
        outputs[placement] = y.detach()
    for i, a in enumerate(PLACEMENTS):
        for b in PLACEMENTS[i + 1 :]:
            assert not torch.allclose(outputs[a], outputs[b], atol=1e-5), (a, b)


def _preact_branch(
    block: PreActBottleneck, t: torch.Tensor, *, pre: bool = False, after_3x3: bool = False
) -> torch.Tensor:
    t = block.act1(block.bn1(t))
    t = block.conv1(block.se(t) if pre else t)
    t = block.conv2(block.act2(block.bn2(t)))
    return block.conv3(block.act3(block.bn3(block.se(t) if after_3x3 else t)))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_preact_placement_formulas(placement):
    # No final ReLU in pre-activation blocks; 'pre' scales the pre-activated input of the branch only.
    torch.manual_seed(0)
    x = torch.randn(2, 64, 8, 8)
    block = PreActBottleneck(64, 64, attention=SqueezeExcite, placement=placement).eval()
    se = block.se
    expected = {
        "standard": lambda: x + se(_preact_branch(block, x)),
        "pre": lambda: x + _preact_branch(block, x, pre=True),
        "post": lambda: se(x + _preact_branch(block, x)),
        "identity": lambda: se(x) + _preact_branch(block, x),
        "after_3x3": lambda: x + _preact_branch(block, x, after_3x3=True),
    }[placement]
    with torch.no_grad():
        torch.testing.assert_close(block(x.clone()), expected())


def test_preact_pre_placement_leaves_the_projection_unscaled():
    torch.manual_seed(0)
    block = PreActBasicBlock(16, 32, stride=2, attention=SqueezeExcite, placement="pre").eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        shortcut = block.downsample(block.act1(block.bn1(x)))
        branch = block.conv2(block.act2(block.bn2(block.conv1(block.se(block.act1(block.bn1(x)))))))
        torch.testing.assert_close(block(x), shortcut + branch)
    assert block.se.channels == 16


def test_model_interface():
    torch.manual_seed(0)
    model = create_model("se_cifar_resnet20").eval()
    assert isinstance(model, CifarResNet) and model.num_features == 64
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 64, 8, 8)
        torch.testing.assert_close(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, 64)
        model.reset_classifier(100)
        assert model(x).shape == (2, 100)
        model.reset_classifier(0)
        assert model(x).shape == (2, 64)


@pytest.mark.parametrize("size", [32, 33, 40])
def test_input_sizes(size):
    for name in ("se_cifar_resnet20", "se_preact_resnet164"):
        model = create_model(name, layers=(1, 1, 1))
        assert model(torch.randn(2, 3, size, size)).shape == (2, 10)


def test_initialisation_and_zero_init_last():
    model = create_model("cifar_resnet20", zero_init_last=True)
    assert all(not b.bn2.weight.any() for b in (model.layer1[0], model.layer3[2]))
    assert model.bn1.weight.all()
    preact = create_model("wrn16_8", widths=(16, 32, 64), zero_init_last=True)
    assert not preact.layer2[1].conv2.weight.any() and preact.layer2[1].conv1.weight.any()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():  # an identity block with a zero last conv is the identity
        torch.testing.assert_close(preact.layer1[1](x), x)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"shortcut": "C"}, "valid: A, B"),
        ({"block": "preact_bottlenek"}, "preact_bottleneck"),
        ({"widht": (16, 32, 64)}, "widths"),
        ({"layers": (1, 1)}, "equal length"),
        ({"se_placement": "identiy"}, "identity"),
    ],
)
def test_unknown_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        create_model("se_cifar_resnet20", **options)
