"""The registry's contents (pinned, and as the README states them) and properties every registered model
shares: input sizes, compilation without graph breaks."""

import re
from pathlib import Path

import pytest
import torch
from sweep import models, zero_model

from senet.models import create_model, get_model_entry, list_models
from senet.utils.skeleton import meta_skeleton

README = Path(__file__).resolve().parents[1] / "README.md"

# Every registered name: adding, removing or renaming a network must update this list and the README.
MODELS = [
    "bn_inception", "cifar_resnet110", "cifar_resnet1202", "cifar_resnet20", "cifar_resnet32", "cifar_resnet44",
    "cifar_resnet56", "densenet121", "efficientnet_b0", "inception_resnet_v2", "mobilenet_v1", "mobilenet_v3_large",
    "preact_resnet164", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50", "resnext101_32x4d",
    "resnext50_32x4d", "se_bn_inception", "se_cifar_resnet110", "se_cifar_resnet1202", "se_cifar_resnet20",
    "se_cifar_resnet32", "se_cifar_resnet44", "se_cifar_resnet56", "se_densenet121", "se_inception_resnet_v2",
    "se_mobilenet_v1", "se_preact_resnet164", "se_resnet101", "se_resnet152", "se_resnet18", "se_resnet34",
    "se_resnet50", "se_resnext101_32x4d", "se_resnext50_32x4d", "se_shufflenet_v1_g3", "se_vgg16_bn", "se_wrn16_8",
    "senet154", "shufflenet_v1_g3", "vgg16_bn", "wrn16_8",
]  # fmt: skip


def test_the_registry_holds_exactly_the_pinned_models():
    assert list_models() == MODELS


def test_the_readme_states_the_registry():
    # The README's model list (one wrapped sentence): the number of networks, of `<net>`/`se_<net>`
    # pairs, and, by name, the networks that exist in one form only.
    text = " ".join(README.read_text(encoding="utf-8").split())
    stated = re.search(r"Models \(`senet\.list_models\(\)`, (\d+) networks\)", text)
    assert stated, "README: the model list no longer states its number of networks"
    assert int(stated[1]) == len(list_models())
    pairs = [n for n in list_models() if f"se_{n}" in list_models()]
    stated_pairs = re.search(r"each as `<net>` and `se_<net>` \((\d+) pairs\)", text)
    assert stated_pairs and int(stated_pairs[1]) == len(pairs)
    single = [n for n in list_models() if n not in pairs and n.removeprefix("se_") not in pairs]
    assert single == ["efficientnet_b0", "mobilenet_v3_large", "senet154"]
    assert all(get_model_entry(n).attention == "se" for n in single)  # one form, and it has SE
    assert 2 * len(pairs) + len(single) == len(list_models())
    for name in single:
        assert f"(`{name}`)" in text, name


# One SE network per family (the SE path is the same code in every member of a family).
FAMILIES = [
    "se_resnet18", "se_resnet50", "senet154", "se_cifar_resnet20", "se_preact_resnet164", "se_vgg16_bn",
    "se_bn_inception", "se_inception_resnet_v2", "se_mobilenet_v1", "se_shufflenet_v1_g3", "se_densenet121",
    "mobilenet_v3_large", "efficientnet_b0",
]  # fmt: skip


@pytest.mark.parametrize("name", models())
def test_every_model_takes_any_input_of_at_least_32_pixels(name):
    classes = get_model_entry(name).num_classes
    model = zero_model(name)  # in training mode, as created
    with torch.no_grad():
        for h, w in ((32, 32), (33, 47)):
            assert model(torch.zeros(2, 3, h, w)).shape == (2, classes)


def test_one_model_per_family_is_covered():
    families = {get_model_entry(n).builder for n in list_models()}
    assert families == {get_model_entry(n).builder for n in FAMILIES}


# Tracing time grows with depth: the deep families are traced with fewer blocks of the same kinds.
SHALLOW = {
    "se_resnet50": {"layers": (1, 2, 1, 1)},
    "senet154": {"layers": (1, 2, 1, 1)},
    "se_preact_resnet164": {"layers": (1, 2, 1)},
    "se_inception_resnet_v2": {"blocks": (1, 2, 1)},
    "se_densenet121": {"block_layers": (1, 2, 2, 1)},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_torch_compile_traces_every_family_without_a_graph_break(name):
    import torch._dynamo

    torch._dynamo.reset()
    with meta_skeleton():
        model = create_model(name, **SHALLOW.get(name, {})).train()
        explanation = torch._dynamo.explain(model)(torch.empty(2, 3, 32, 32))
    assert explanation.graph_break_count == 0, explanation.break_reasons
