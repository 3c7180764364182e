"""Properties every registered model shares: input sizes, compilation without graph breaks."""

import pytest
import torch

from senet.models import create_model, get_model_entry, list_models

# One SE network per family (the SE path is the same code in every member of a family).
FAMILIES = [
    "se_resnet18", "se_resnet50", "senet154", "se_cifar_resnet20", "se_preact_resnet164", "se_vgg16_bn",
    "se_bn_inception", "se_inception_resnet_v2", "se_mobilenet_v1", "se_shufflenet_v1_g3", "se_densenet121",
    "mobilenet_v3_large", "efficientnet_b0",
]  # fmt: skip


@pytest.mark.parametrize("name", list_models())
def test_every_model_takes_any_input_of_at_least_32_pixels(name):
    classes = get_model_entry(name).num_classes
    with torch.device("meta"):
        model = create_model(name)
        for h, w in ((32, 32), (33, 47)):
            assert model(torch.empty(2, 3, h, w)).shape == (2, classes)


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
    with torch.device("meta"):
        model = create_model(name, **SHALLOW.get(name, {})).train()
        explanation = torch._dynamo.explain(model)(torch.empty(2, 3, 32, 32))
    assert explanation.graph_break_count == 0, explanation.break_reasons
