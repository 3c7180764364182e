"""Backbones (``create_model(name, features_only=True, out_indices=...)``): the feature maps of every
registered network, their ``feature_info`` against the known architectures, weights and attention
modules carried over from the classifier, the ``out_indices`` checks and the documented table.

Shapes are checked on networks of zero weights (``sweep.zeroed``); only the per-family numerical checks use
real ones.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path

import pytest
import torch
from sweep import HUGE, models, zeroed
from torch import nn

from senet.models import create_model, list_models
from senet.models.features import FeatureExtractor, FeatureInfo, as_features, get_feature_info
from senet.utils.skeleton import meta_skeleton

DOC = Path(__file__).resolve().parents[1] / "docs" / "backbones.md"

RESNET50 = [(64, 2), (256, 4), (512, 8), (1024, 16), (2048, 32)]

# (channels, stride) per out index, from the architectures (not from the code): the stem's output at
# stride 2 and each stage's output after it, the last map before every downsampling.
PINNED = {
    "resnet50": RESNET50,  # conv1 64, conv2_x..conv5_x 256..2048
    "se_resnet50": RESNET50,
    "resnet18": [(64, 2), (64, 4), (128, 8), (256, 16), (512, 32)],  # basic blocks, no expansion
    "senet154": [(128, 2), (256, 4), (512, 8), (1024, 16), (2048, 32)],  # deep stem 64-64-128
    "cifar_resnet20": [(16, 1), (32, 2), (64, 4)],  # no stem downsampling; 16, 32, 64 channels
    "wrn16_8": [(128, 1), (256, 2), (512, 4)],  # widths 16k, 32k, 64k with k = 8
    "preact_resnet164": [(64, 1), (128, 2), (256, 4)],  # bottlenecks of 16, 32, 64 (x4)
    "vgg16_bn": [(128, 2), (256, 4), (512, 8), (512, 16), (512, 32)],  # conv2_2, 3_3, 4_3, 5_3, pool5
    "densenet121": [(64, 2), (256, 4), (512, 8), (1024, 16), (1024, 32)],  # 64 + 6k, 128 + 12k, 256 + 24k, 512 + 16k
    "mobilenet_v3_large": [(16, 2), (24, 4), (40, 8), (112, 16), (960, 32)],  # Table 1; last 1x1 conv 960
    "efficientnet_b0": [(16, 2), (24, 4), (40, 8), (112, 16), (1280, 32)],  # Table 1; last 1x1 conv 1280
    "mobilenet_v1": [(64, 2), (128, 4), (256, 8), (512, 16), (1024, 32)],  # Table 1
    "shufflenet_v1_g3": [(24, 2), (24, 4), (240, 8), (480, 16), (960, 32)],  # conv1, max pool, stages 2-4
    "bn_inception": [(64, 2), (192, 4), (320, 8), (608, 16), (1024, 32)],  # conv1, conv2, 3b, 4d, 5b
    "inception_resnet_v2": [(64, 2), (192, 4), (320, 8), (1088, 16), (1536, 32)],  # 2b, 4a, A, B, C + 1x1
}  # fmt: skip

MODULES = {
    "resnet50": ["act1", "layer1", "layer2", "layer3", "layer4"],
    "cifar_resnet20": ["layer1", "layer2", "layer3"],
    "preact_resnet164": ["layer1", "layer2", "act_final"],
    "vgg16_bn": ["stages.1.1", "stages.2.2", "stages.3.2", "stages.4.2", "stages.4.3"],
    "bn_inception": ["stem.0.0", "stem.1.1", "stages.0.1", "stages.1.3", "stages.2.1"],
    "densenet121": ["stem.2", "stages.0", "stages.1", "stages.2", "act"],
}

# Spatial sizes of inception_resnet_v2's features (unpadded convolutions): input 64 is padded to 75.
INCEPTION_RESNET_SIZES = {64: [35, 15, 7, 3, 1], 299: [147, 71, 35, 17, 8]}


@functools.cache
def _meta_features(name: str) -> FeatureExtractor:
    with meta_skeleton():
        return create_model(name, features_only=True)


def _expected_sizes(name: str, size: int, features: FeatureInfo) -> list[int]:
    if "inception_resnet" in name:
        return INCEPTION_RESNET_SIZES[size]
    return [size // f.reduction for f in features]


@pytest.mark.parametrize("name", models())
def test_every_model_gives_the_feature_maps_its_feature_info_states(name):
    model = _meta_features(name)
    info = model.feature_info
    assert isinstance(model, FeatureExtractor) and len(info) == len(model.out_indices) >= 3
    imagenet = "cifar" not in name and "preact" not in name and "wrn" not in name
    assert info.reduction() == ([2, 4, 8, 16, 32] if imagenet else [1, 2, 4])
    assert [f.index for f in info] == list(range(len(info)))
    with torch.no_grad():
        outputs = zeroed(copy.deepcopy(model))(torch.zeros(2, 3, 64, 64))  # the cached meta model kept as it is
    sizes = _expected_sizes(name, 64, info)
    assert [tuple(o.shape) for o in outputs] == [(2, c, s, s) for c, s in zip(info.channels(), sizes, strict=True)]
    # every module named is one of the model's, under the same name
    for module in info.module_name():
        model.get_submodule(module)
    if name in PINNED:
        assert list(zip(info.channels(), info.reduction(), strict=True)) == PINNED[name]
    if name in MODULES:
        assert info.module_name() == MODULES[name]


def test_inception_resnet_strides_are_nominal_at_its_own_size():
    model = _meta_features("inception_resnet_v2")
    with meta_skeleton():
        outputs = model(torch.empty(1, 3, 299, 299))
    assert [o.shape[-1] for o in outputs] == INCEPTION_RESNET_SIZES[299]


# One network per family, shrunk where deep (the cut is the same code at any depth), at a small input.
FAMILIES = {
    "se_resnet50": ({"layers": (1, 1, 1, 1)}, 64),
    "senet154": ({"layers": (1, 1, 1, 1)}, 64),
    "se_cifar_resnet20": ({}, 32),
    "se_preact_resnet164": ({"layers": (1, 1, 1)}, 32),
    "se_vgg16_bn": ({"hidden_features": 16}, 32),
    "se_densenet121": ({"block_layers": (1, 1, 1, 1)}, 64),
    "se_mobilenet_v1": ({}, 64),
    "mobilenet_v3_large": ({}, 64),
    "efficientnet_b0": ({}, 64),
    "se_shufflenet_v1_g3": ({}, 64),
    "se_bn_inception": ({}, 64),
    "se_inception_resnet_v2": ({"blocks": (1, 1, 1)}, 75),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_features_are_the_classifiers_maps_with_the_same_weights(name):
    options, size = FAMILIES[name]
    torch.manual_seed(0)
    classifier = create_model(name, **options).eval()
    torch.manual_seed(0)
    features = create_model(name, features_only=True, **options).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        outputs = features(x)
        # The classifier's own maps at the modules feature_info names (an independent reference).
        seen = {}
        hooks = [
            classifier.get_submodule(m).register_forward_hook(lambda _m, _i, out, m=m: seen.setdefault(m, out.clone()))
            for m in features.feature_info.module_name()
        ]
        last = classifier.forward_features(x)
        for hook in hooks:
            hook.remove()
    torch.testing.assert_close(outputs[-1], last, rtol=0, atol=0)
    for output, module in zip(outputs, features.feature_info.module_name(), strict=True):
        torch.testing.assert_close(output, seen[module], rtol=0, atol=0)
    # A backbone cut after a middle stage gives that stage's map, and holds no later weights.
    middle = len(outputs) // 2
    cut = as_features(copy.deepcopy(classifier), out_indices=(middle,))
    with torch.no_grad():
        torch.testing.assert_close(cut(x)[0], outputs[middle], rtol=0, atol=0)
    assert len(cut.state_dict()) < len(features.state_dict())


def _kept_keys(classifier: nn.Module, pruned: tuple[str, ...]) -> list[str]:
    return [k for k in classifier.state_dict() if not k.startswith(tuple(p + "." for p in pruned))]


@pytest.mark.parametrize(
    "name, out_indices, pruned",
    [
        ("resnet50", None, ("fc",)),
        ("resnet50", (0, 1, 2), ("layer3", "layer4", "fc")),
        ("vgg16_bn", None, ("fc6", "fc7", "fc")),
        ("vgg16_bn", (0, 1), ("stages.3", "stages.4", "fc6", "fc7", "fc")),
        ("mobilenet_v3_large", None, ("conv_head", "fc")),
        ("efficientnet_b0", (0, 1, 2, 3), ("stages.5", "stages.6", "stages.7", "fc")),
        ("densenet121", (1,), ("stages.1", "stages.2", "stages.3", "norm", "fc")),
        ("preact_resnet164", (0, 1), ("layer3", "bn_final", "fc")),
        ("inception_resnet_v2", None, ("fc",)),
    ],
)
def test_the_features_state_dict_is_the_classifiers_minus_the_pruned_modules(name, out_indices, pruned):
    with meta_skeleton():
        classifier = create_model(name)
        features = create_model(name, features_only=True, out_indices=out_indices)
    assert features.pruned == pruned
    assert list(features.state_dict()) == _kept_keys(classifier, pruned)
    features.load_state_dict(classifier.state_dict(), assign=True)  # the classifier's whole checkpoint, strictly


def test_a_classifier_checkpoint_loads_strictly_into_the_features_model():
    torch.manual_seed(0)
    classifier = create_model("se_cifar_resnet20")
    for p in classifier.parameters():
        p.data.normal_()
    features = create_model("se_cifar_resnet20", features_only=True, out_indices=(0, 1))
    state = classifier.state_dict()
    result = features.load_state_dict(state)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in features.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert "fc.weight" in state and "layer3.0.conv1.weight" in state  # the dict given is left as it was
    # Strict about everything else: an unknown key, a missing backbone weight.
    with pytest.raises(RuntimeError, match="Unexpected"):
        features.load_state_dict({**state, "layer1.0.bogus": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="Missing"):
        features.load_state_dict({k: v for k, v in state.items() if k != "layer1.0.conv1.weight"})
    # Also inside a larger model (a detector's backbone).
    detector = nn.Module()
    detector.backbone = create_model("se_cifar_resnet20", features_only=True)
    detector.load_state_dict({f"backbone.{k}": v for k, v in state.items()})
    assert torch.equal(detector.backbone.layer3[0].conv1.weight, state["layer3.0.conv1.weight"])


def test_attention_modules_are_found_in_the_features_model():
    with meta_skeleton():
        classifier = create_model("se_resnet50")
        features = create_model("se_resnet50", features_only=True)
        cut = create_model("se_resnet50", features_only=True, out_indices=(0, 1, 2))
    assert list(features.attention_modules()) == list(classifier.attention_modules())
    assert features.attention_paths() == classifier.attention_paths()
    assert list(cut.attention_modules()) == [f"SE_{s}_{b}" for s, n in ((2, 3), (3, 4)) for b in range(1, n + 1)]


def test_out_indices_select_and_order_the_outputs():
    model = create_model("resnet50", features_only=True, out_indices=[3, 1]).eval()
    info = model.feature_info
    assert model.out_indices == (3, 1)
    assert info.channels() == [1024, 256] and info.reduction() == [16, 4] and info.module_name() == ["layer3", "layer1"]
    assert info[0]["num_chs"] == 1024 and info.get_dicts()[1] == {
        "index": 1, "num_chs": 256, "reduction": 4, "module": "layer1"
    }  # fmt: skip
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outputs] == [(1, 1024, 4, 4), (1, 256, 16, 16)]
    last = _meta_features("resnet50")  # negative indices count from the end
    with meta_skeleton():
        assert create_model("resnet50", features_only=True, out_indices=(-1,)).feature_info[0] == last.feature_info[-1]
    assert get_feature_info(create_model("cifar_resnet20")) == _meta_features("cifar_resnet20").feature_info
    assert _meta_features("cifar_resnet20").default_input_size == (3, 32, 32)
    assert _meta_features("inception_resnet_v2").default_input_size == (3, 299, 299)


@pytest.mark.parametrize(
    "out_indices",
    [(5,), (-6,), (1, 1), (4, -1), (1.0,), ("1",), (True,), [], "01", 3, (0, None)],
)
def test_invalid_out_indices_are_refused_in_one_line_listing_the_valid_ones(out_indices):
    with meta_skeleton(), pytest.raises(ValueError) as error:
        create_model("resnet50", features_only=True, out_indices=out_indices)
    message = str(error.value)
    assert "\n" not in message
    assert "valid out_indices of resnet50: 0 (64 ch, stride 2), 1 (256 ch, stride 4)" in message
    assert "4 (2048 ch, stride 32); or -5..-1 from the end" in message


def test_create_model_refuses_options_a_backbone_cannot_honour():
    with meta_skeleton():
        with pytest.raises(ValueError, match="pass features_only=True"):
            create_model("resnet18", out_indices=(1, 2))
        with pytest.raises(ValueError, match="builds no classifier"):
            create_model("resnet18", features_only=True, num_classes=10)
        with pytest.raises(ValueError, match="True or False"):
            create_model("resnet18", features_only="yes")
        assert isinstance(create_model("resnet18", features_only=True, num_classes=1000), FeatureExtractor)
        with pytest.raises(ValueError, match="no feature_plan"):
            FeatureExtractor(nn.Sequential(nn.Conv2d(3, 8, 3)))


def _documented_table() -> dict[str, list[tuple[int, int]]]:
    table = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or not cells[0].startswith("`"):
            continue
        features = [tuple(map(int, c.split("@"))) for c in cells[1:6] if "@" in c]
        modules = re.findall(r"`([^`]+)`", cells[6]) if len(cells) > 6 else []
        for name in re.findall(r"`([^`]+)`", cells[0]):
            table[name] = (features, modules)
    return table


@pytest.mark.parametrize("huge", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["models", "huge"])
def test_the_documented_table_states_every_model(huge):
    table = _documented_table()
    assert sorted(table) == list_models()
    for name, (features, modules) in table.items():
        if (name in HUGE) != huge:  # ResNet-1202 alone takes 2 s to build, even on the meta device
            continue
        info = _meta_features(name).feature_info
        assert features == list(zip(info.channels(), info.reduction(), strict=True)), name
        assert modules == info.module_name(), name
