"""ImageNet ResNet / ResNeXt / SE-ResNet / SE-ResNeXt / SENet-154: counts, naming, cost, behaviour."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from senet.layers import SqueezeExcite
from senet.models import create_model, get_model_entry, list_models
from senet.models.registry import PLACEMENTS
from senet.models.resnet import Bottleneck, ResNet
from senet.profiler import profile
from senet.utils.skeleton import meta_skeleton

# Key names and shapes of public checkpoints, copied from the team reference into tests/reference.
KEYS_DIR = Path(__file__).resolve().parent / "reference" / "checkpoint-keys"

PARAMS = {  # paper.md, "Parameter counts of common models" (1000 classes)
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "se_resnet18": 11_778_592,
    "se_resnet34": 21_958_868,
    "se_resnet50": 28_088_024,
    "se_resnet101": 49_326_872,
    "se_resnet152": 66_821_848,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x4d": 44_177_704,
    "se_resnext50_32x4d": 27_559_896,
    "se_resnext101_32x4d": 48_955_416,
    "senet154": 115_088_984,
}
NAMES = sorted(PARAMS)
LARGE = {"senet154", "resnet152", "se_resnet152", "resnet101", "se_resnet101", "resnext101_32x4d",
         "se_resnext101_32x4d"}  # fmt: skip


def meta_model(name: str, **kwargs: object) -> nn.Module:
    # Shapes only, no memory and no initialisation cost: counts, keys and MACs of the big nets are free.
    # Cached: the tests below only read these models (and remove any hook they add).
    return _meta_model(name, tuple(sorted(kwargs.items())))


@functools.cache
def _meta_model(name: str, kwargs: tuple[tuple[str, object], ...]) -> nn.Module:
    with meta_skeleton():
        return create_model(name, **dict(kwargs))


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_holds_exactly_the_family():
    mine = [n for n in list_models() if get_model_entry(n).builder is ResNet]
    assert sorted(mine) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_is_exact(name):
    assert count(meta_model(name)) == PARAMS[name]


def _se_params(channels: int) -> int:
    hidden = channels // 16  # r = 16
    return 2 * channels * hidden + hidden + channels  # W1, W2 and both biases


# Blocks per stage and the block's output width per stage (SE sits on it: standard placement).
_SE_LAYOUT = {
    "se_resnet18": ((2, 2, 2, 2), (64, 128, 256, 512)),
    "se_resnet34": ((3, 4, 6, 3), (64, 128, 256, 512)),
    "se_resnet50": ((3, 4, 6, 3), (256, 512, 1024, 2048)),
    "se_resnet101": ((3, 4, 23, 3), (256, 512, 1024, 2048)),
    "se_resnet152": ((3, 8, 36, 3), (256, 512, 1024, 2048)),
    "se_resnext50_32x4d": ((3, 4, 6, 3), (256, 512, 1024, 2048)),
    "se_resnext101_32x4d": ((3, 4, 23, 3), (256, 512, 1024, 2048)),
    "senet154": ((3, 8, 36, 3), (256, 512, 1024, 2048)),
}


@pytest.mark.parametrize("name", sorted(_SE_LAYOUT))
def test_se_adds_two_fcs_per_residual_block(name):
    layers, widths = _SE_LAYOUT[name]
    added = sum(n * _se_params(c) for n, c in zip(layers, widths, strict=True))
    plain = name.removeprefix("se_")
    if plain != name:  # the reference counts of both forms differ by exactly the SE blocks (SENet-154: one form)
        assert PARAMS[name] - PARAMS[plain] == added
    assert count(meta_model(name)) - count(meta_model(name, attention=None)) == added


@pytest.mark.parametrize(
    "options, millions",
    [
        ({"reduction": 2}, 45.7),
        ({"reduction": 4}, 35.7),
        ({"reduction": 8}, 30.7),
        ({"reduction": 16}, 28.1),
        ({"reduction": 32}, 26.9),
        ({"se_stages": (2,)}, 25.6),
        ({"se_stages": (3,)}, 25.7),
        ({"se_stages": (4,)}, 26.4),
        ({"se_placement": "after_3x3"}, 25.8),
    ],
)
def test_se_resnet50_ablation_parameters_match_the_paper(options, millions):
    # The paper rounds to 0.1M; with hidden C // r the counts land within 0.1M of every printed value.
    assert abs(count(meta_model("se_resnet50", **options)) / 1e6 - millions) <= 0.1


def _read_keys(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in re.findall(r"\d+", shape))))
    return rows


def _state_keys(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


@pytest.mark.parametrize(
    "name, reference",
    [("resnet50", "resnet50"), ("se_resnet50", "seresnet50"), ("se_resnext50_32x4d", "seresnext50_32x4d")],
)
def test_state_dict_matches_public_checkpoint_keys(name, reference):
    expected = _read_keys(KEYS_DIR / f"{reference}.txt")
    assert _state_keys(meta_model(name, stride_in_1x1=False)) == expected
    # The stride option moves no parameter: the default layout loads the same checkpoints.
    assert _state_keys(meta_model(name)) == expected


_LEGACY_STEM = {  # the authors' converted Caffe models -> the modern (timm) deep-stem layout
    "layer0.conv1.": "conv1.0.",
    "layer0.bn1.": "conv1.1.",
    "layer0.conv2.": "conv1.3.",
    "layer0.bn2.": "conv1.4.",
    "layer0.conv3.": "conv1.6.",
    "layer0.bn3.": "bn1.",
}


def _from_legacy(key: str, deep_stem: bool) -> str:
    if deep_stem:
        for old, new in _LEGACY_STEM.items():
            key = key.replace(old, new) if key.startswith(old) else key
    else:
        key = key.replace("layer0.", "")
    return key.replace(".se_module.", ".se.").replace("last_linear.", "fc.")


@pytest.mark.parametrize(
    "name, reference, deep_stem",
    [
        ("se_resnet18", "legacy_seresnet18", False),
        ("se_resnet50", "legacy_seresnet50", False),
        ("se_resnext50_32x4d", "legacy_seresnext50_32x4d", False),
        ("senet154", "legacy_senet154", True),
    ],
)
def test_shapes_match_the_released_models(name, reference, deep_stem):
    expected = {_from_legacy(k, deep_stem): s for k, s in _read_keys(KEYS_DIR / f"{reference}.txt")}
    assert dict(_state_keys(meta_model(name))) == expected


def _macs(model: nn.Module, size: int = 224) -> float:
    """GMACs as the project's profiler counts them: conv and FC layers plus SE pooling and scaling."""
    return profile(model, input_size=(3, size, size)).macs / 1e9


@functools.cache
def _gmacs(name: str, stride_in_1x1: bool) -> float:
    return _macs(meta_model(name, stride_in_1x1=stride_in_1x1))


@pytest.mark.parametrize(
    "name, gflops",
    [
        ("resnet50", 3.86),
        ("se_resnet50", 3.87),
        ("resnet101", 7.58),
        ("resnet152", 11.30),
        ("resnext50_32x4d", 4.24),
        ("se_resnext50_32x4d", 4.25),
        ("resnext101_32x4d", 7.99),
    ],
)
def test_default_stride_placement_reproduces_table2_gflops(name, gflops):
    default_layout = get_model_entry(name).config.stride_in_1x1
    default = _gmacs(name, default_layout)
    # Conv + FC + SE counts land 0-0.25% under the printed values (the deeper the net, the more: the
    # paper seems to count some element-wise work too).
    assert abs(default - gflops) <= 0.003 * gflops
    if "50" in name:  # the other stride layout is 6-12% away
        assert abs(_gmacs(name, not default_layout) - gflops) > 0.05 * gflops


def test_resnet50_v1_and_v1_5_multiply_adds():
    assert round(_gmacs("resnet50", True), 2) == 3.86
    assert round(_gmacs("resnet50", False), 2) == 4.09


def test_stride_placement():
    v1 = meta_model("resnet50")
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    v15 = meta_model("resnet50", stride_in_1x1=False)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    for name in ("resnext50_32x4d", "se_resnext50_32x4d", "senet154"):
        assert meta_model(name).layer3[0].conv2.stride == (2, 2)


def test_stem_pool_of_the_caffe_models():
    # The SE authors' Caffe models pool the stem without padding, rounding up: same size, other windows.
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    pad = create_model("se_resnet18", layers=(1, 1, 1, 1)).eval()
    ceil = create_model("se_resnet18", layers=(1, 1, 1, 1), stem_pool="ceil").eval()
    assert ceil.maxpool.padding == 0 and ceil.maxpool.ceil_mode and pad.maxpool.padding == 1
    assert _state_keys(ceil) == _state_keys(pad)
    ceil.load_state_dict(pad.state_dict())
    with torch.no_grad():
        stem = ceil.act1(ceil.bn1(ceil.conv1(x)))  # (1, 64, 32, 32)
        assert ceil.maxpool(stem).shape == pad.maxpool(stem).shape == (1, 64, 16, 16)
        torch.testing.assert_close(ceil.maxpool(stem), nn.functional.max_pool2d(stem, 3, 2, ceil_mode=True))
        assert not torch.equal(ceil.maxpool(stem), pad.maxpool(stem))
        assert ceil(x).shape == pad(x).shape and not torch.allclose(ceil(x), pad(x))


def test_senet154_architecture():
    m = meta_model("senet154")
    assert isinstance(m.conv1, nn.Sequential) and [c.out_channels for c in m.conv1[::3]] == [64, 64, 128]
    assert m.layer1[0].downsample[0].kernel_size == (1, 1)  # no stride there: a 1x1 projection
    assert all(getattr(m, f"layer{i}")[0].downsample[0].kernel_size == (3, 3) for i in (2, 3, 4))
    assert m.layer1[0].conv2.groups == 64 and m.layer1[0].conv1.out_channels == 128
    assert [len(getattr(m, f"layer{i}")) for i in (1, 2, 3, 4)] == [3, 8, 36, 3]
    assert m.drop_rate == 0.2


def test_se_resnet50_paper_labels():
    labels = list(meta_model("se_resnet50").attention_modules())
    expected = [f"SE_{s}_{b}" for s, n in zip((2, 3, 4, 5), (3, 4, 6, 3), strict=True) for b in range(1, n + 1)]
    assert labels == expected
    paths = meta_model("se_resnet50").attention_paths()
    assert paths["SE_2_3"] == "layer1.2.se" and paths["SE_5_1"] == "layer4.0.se"


def test_se_stages_selects_stages():
    m = meta_model("se_resnet50", se_stages=(2, 3))
    assert {label[:4] for label in m.attention_modules()} == {"SE_2", "SE_3"}


@pytest.mark.parametrize("name", ["se_resnet50", "se_resnext50_32x4d", "senet154", "se_resnet18"])
def test_attention_none_is_exactly_the_plain_network(name):
    plain = meta_model(name, attention=None)
    assert not plain.attention_modules()
    assert not any(isinstance(m, SqueezeExcite) for m in plain.modules())
    base = {"se_resnet50": "resnet50", "se_resnext50_32x4d": "resnext50_32x4d", "se_resnet18": "resnet18"}.get(name)
    if base:
        reference = meta_model(base)
        assert _state_keys(plain) == _state_keys(reference) and count(plain) == count(reference)


def test_se_reduction_and_biases():
    se = meta_model("se_resnet50").layer4[0].se
    assert isinstance(se, SqueezeExcite) and se.hidden == 2048 // 16
    assert se.fc1.bias is not None and se.fc2.bias is not None


def _run(model: nn.Module, size: int) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    y = model(x)
    y.square().mean().backward()
    return y


def _check_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    y = _run(model, 32)
    assert y.shape == (2, 7) and torch.isfinite(y).all()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing


@pytest.mark.parametrize("name", [n for n in NAMES if n not in LARGE])
def test_forward_backward(name):
    _check_forward_backward(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LARGE))
def test_forward_backward_large(name):
    _check_forward_backward(name)


@pytest.mark.parametrize("name", ["se_resnet18", "se_resnext50_32x4d"])
def test_placements_differ_and_train(name):
    outputs = {}
    reference = None
    for placement in PLACEMENTS:
        torch.manual_seed(0)
        # Two stages of one block each: every code path of the blocks at a fraction of the cost.
        model = create_model(name, num_classes=5, layers=(1, 1), se_placement=placement)
        if reference is None:
            reference = model.state_dict()
        else:  # share every weight that exists in both; only SE's position (and shape) differs
            own = model.state_dict()
            model.load_state_dict({k: v for k, v in reference.items() if k in own and own[k].shape == v.shape},
                                  strict=False)  # fmt: skip
        y = _run(model, 32)
        assert torch.isfinite(y).all()
        assert all(p.grad is not None for p in model.parameters())
        assert list(model.attention_modules()) == ["SE_2_1", "SE_3_1"]
        outputs[placement] = y.detach()
    for i, a in enumerate(PLACEMENTS):
        for b in PLACEMENTS[i + 1 :]:
            assert not torch.allclose(outputs[a], outputs[b], atol=1e-5), (a, b)


def test_placement_channels():
    m = meta_model("se_resnet50", se_placement="pre")
    assert m.layer1[0].se.channels == 64 and m.layer2[0].se.channels == 256
    m = meta_model("se_resnet50", se_placement="after_3x3")
    assert m.layer1[0].se.channels == 64 and m.layer4[2].se.channels == 512
    m = meta_model("se_resnet18", se_placement="after_3x3")
    assert m.layer2[0].se.channels == 128


def _branch(block: Bottleneck, t: torch.Tensor, after_3x3: bool = False) -> torch.Tensor:
    # F, the residual branch, written out from the block's parts.
    t = block.act1(block.bn1(block.conv1(t)))
    t = block.act2(block.bn2(block.conv2(t)))
    return block.bn3(block.conv3(block.se(t) if after_3x3 else t))


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_placement_formulas(placement):
    # Each placement computes its formula of the paper's Fig. 5 (with the final ReLU).
    torch.manual_seed(0)
    x = torch.randn(2, 64, 8, 8)
    block = Bottleneck(64, 16, attention=SqueezeExcite, placement=placement).eval()
    se = block.se
    expected = {
        "standard": lambda: torch.relu(x + se(_branch(block, x))),
        "pre": lambda: torch.relu(x + _branch(block, se(x))),
        "post": lambda: torch.relu(se(x + _branch(block, x))),
        "identity": lambda: torch.relu(se(x) + _branch(block, x)),
        "after_3x3": lambda: torch.relu(x + _branch(block, x, after_3x3=True)),
    }[placement]
    with torch.no_grad():
        torch.testing.assert_close(block(x.clone()), expected())


def test_model_interface():
    torch.manual_seed(0)
    model = create_model("se_resnet18", num_classes=3, layers=(1, 1, 1, 1)).eval()
    assert isinstance(model, ResNet) and model.num_features == 512
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 512, 2, 2)
        torch.testing.assert_close(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, 512)
        model.reset_classifier(11)
        assert model(x).shape == (2, 11) and model.num_classes == 11
        model.reset_classifier(0)
        assert model(x).shape == (2, 512)
    assert meta_model("resnet50").num_features == 2048 and meta_model("senet154").num_features == 2048


@pytest.mark.parametrize("size", [32, 33, 47, 97])
def test_any_input_size_from_32(size):
    model = create_model("se_resnet18", layers=(1, 1, 1, 1), num_classes=4, drop_rate=0.1)
    y = model(torch.randn(2, 3, size, size))
    assert y.shape == (2, 4) and torch.isfinite(y).all()


def test_in_chans_and_deep_stem_options():
    model = create_model("resnet18", layers=(1, 1, 1, 1), in_chans=1, stem="3x3_deep", downsample="3x3")
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 1000)


def test_initialisation():
    model = create_model("se_resnet18", layers=(1, 1, 1, 1))
    bn = model.layer1[0].bn2
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
    std = model.layer3[0].conv1.weight.std().item()  # Kaiming normal, fan_out: sqrt(2 / (256 * 9))
    assert abs(std - (2 / (256 * 9)) ** 0.5) < 0.1 * std
    zero = create_model("resnet50", layers=(1, 1, 1, 1), zero_init_last=True)
    assert all(not b.bn3.weight.any() for b in zero.modules() if isinstance(b, Bottleneck))
    assert zero.layer1[0].bn2.weight.all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"stride_in1x1": False}, "stride_in_1x1"),
        ({"se_placement": "postt"}, "post"),
        ({"stem": "7x7_deep"}, "3x3_deep"),
        ({"stem_pool": "ceiling"}, "ceil"),
        ({"block": "bottlenek"}, "bottleneck"),
        ({"attention": "squeeze"}, "valid names: .*se"),
    ],
)
def test_unknown_options_raise_with_close_matches(kwargs, match):
    with pytest.raises(ValueError, match=match):
        meta_model("se_resnet50", **kwargs)


def test_unknown_model_lists_close_names():
    with pytest.raises(ValueError, match="se_resnet50"):
        create_model("se_resnet5")


def test_invalid_configs_raise():
    with pytest.raises(ValueError, match="basic"):
        meta_model("resnet18", groups=32)
    with pytest.raises(ValueError, match="layers"):
        meta_model("resnet50", layers=())
