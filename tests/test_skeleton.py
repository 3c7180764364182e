"""``meta_skeleton``: the network of ``create_model``, its shapes and modules, without initialising it."""

import pytest
import torch

import senet
from senet.profiler import profile
from senet.profiler.zoo import build_model
from senet.utils.skeleton import meta_skeleton


@pytest.mark.parametrize("name", ["se_resnet50", "efficientnet_b0", "se_inception_resnet_v2", "se_cifar_resnet20"])
def test_a_skeleton_has_the_networks_shapes_and_modules(name):
    real = senet.create_model(name)
    with meta_skeleton():
        skeleton = senet.create_model(name)
    assert all(t.is_meta for t in skeleton.state_dict().values())
    assert {k: v.shape for k, v in skeleton.state_dict().items()} == {k: v.shape for k, v in real.state_dict().items()}
    assert [type(m) for m in skeleton.modules()] == [type(m) for m in real.modules()]


def test_only_meta_tensors_skip_their_initial_values():
    torch.manual_seed(0)
    expected = torch.empty(3).normal_()
    torch.manual_seed(0)
    with meta_skeleton():
        on_meta = torch.empty(3).fill_(1.0)  # nothing to fill
        drawn = torch.empty(3, device="cpu").normal_()  # a real tensor is drawn as ever, from the same generator
        filled = torch.empty(2, device="cpu").fill_(7.0)
    assert on_meta.is_meta and torch.equal(drawn, expected) and filled.tolist() == [7.0, 7.0]


def test_the_profiler_counts_a_skeleton_as_the_real_network():
    reports = {}
    for device in ("meta", "cpu"):
        model = build_model("se_resnet50", device=device)
        assert next(model.parameters()).is_meta == (device == "meta")
        reports[device] = profile(model, (3, 224, 224))
    assert (reports["meta"].params, reports["meta"].macs) == (reports["cpu"].params, reports["cpu"].macs)
    assert round(reports["meta"].params / 1e6, 3) == 28.088 and round(reports["meta"].macs / 1e9, 3) == 3.872
