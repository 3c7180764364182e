"""The profiler sees SE: for every network of the zoo, the multiply-adds SE adds are exactly SE's cost.

The comparisons with the paper (tests/test_profile_paper.py, tests/test_models_*.py) allow 0.3-3%, more
than SE's own cost in MobileNet or VGG, so a profiler that dropped SE could pass them. Here the
difference profile(SE net) - profile(plain net) must equal, as an integer, the cost of the SE blocks
computed independently of the profiler, with the convention of docs/profiling.md (batch norm,
activations, biases and additions free):

    per SE block on an (N, C, H, W) feature map with hidden width h:
    squeeze N*C*H*W (one add per pooled element) + fc1 N*C*h + fc2 N*h*C + scale N*C*H*W

The feature map each block sees comes from forward pre-hooks on the SE modules of a twin network built
with the textbook SE path (``fast=False``: every SE module runs its own ``forward``); C and h come from
the modules' weights. The profiled networks keep the default fast path, where the residual blocks fuse
the scale into the residual addition (``torch.addcmul`` outside the SE module), which the profiler
must charge to SE as its scale.
"""

from __future__ import annotations

import pytest
import torch
from sweep import models

from senet.layers import SqueezeExcite
from senet.models import create_model, get_model_entry, list_models
from senet.models.cifar_resnet import CifarResNet
from senet.models.resnet import ResNet
from senet.profiler import profile
from senet.utils.skeleton import meta_skeleton

BATCH = 2
SIZE = (64, 80)  # small and non-square: a few hundred ms per network on the meta device


def _with_se() -> list[str]:
    return [n for n in list_models() if get_model_entry(n).attention is not None]


def _plain_twin(name: str) -> str | None:
    """The registered plain network of an SE network (``se_<net>`` -> ``<net>``), or ``None``."""
    plain = name.removeprefix("se_")
    return plain if plain != name and plain in list_models() else None


def _meta(name: str, **kwargs: object) -> torch.nn.Module:
    with meta_skeleton():
        return create_model(name, **kwargs)


def _macs(model: torch.nn.Module) -> int:
    return profile(model, input_size=(3, *SIZE), batch_size=BATCH).macs


def _se_forward_inputs(model: torch.nn.Module) -> dict[str, list[tuple[int, ...]]]:
    """label -> the input shapes of every call of that SE module's ``forward`` in one meta pass."""
    seen: dict[str, list[tuple[int, ...]]] = {label: [] for label in model.attention_modules()}
    handles = [
        m.register_forward_pre_hook(lambda m, args, label=label: seen[label].append(tuple(args[0].shape)))
        for label, m in model.attention_modules().items()
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(BATCH, 3, *SIZE, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return seen


def _expected_se_macs(name: str) -> int:
    model = _meta(name, attention_kwargs={"fast": False})  # the textbook path: SE's forward sees its input
    inputs = _se_forward_inputs(model)
    total = 0
    for label, se in model.attention_modules().items():
        assert isinstance(se, SqueezeExcite) and not se.fast, label
        assert len(inputs[label]) == 1, (label, inputs[label])  # each block runs once
        n, c, h, w = inputs[label][0]
        hidden, channels = se.fc1.weight.shape[:2]  # W1: (h, C, 1, 1)
        assert channels == c and tuple(se.fc2.weight.shape[:2]) == (c, hidden), label
        total += n * c * h * w + n * c * hidden + n * hidden * c + n * c * h * w  # squeeze, fc1, fc2, scale
    return total


def test_every_network_with_se_is_covered():
    # Every SE network pairs with a registered plain twin, except those without one: SENet-154 and the
    # networks whose design includes SE; those are compared with their own ``attention=None`` form.
    without_twin = sorted(n for n in _with_se() if _plain_twin(n) is None)
    assert without_twin == ["efficientnet_b0", "mobilenet_v3_large", "senet154"]
    assert len(_with_se()) == 24


@pytest.mark.parametrize("name", models(_with_se()))
def test_se_multiply_adds_are_exactly_the_se_blocks_cost(name):
    expected = _expected_se_macs(name)
    assert expected > 0
    se_model = _meta(name)  # default: the fast path (fused scale in the residual networks)
    assert all(m.fast for m in se_model.attention_modules().values())
    report = profile(se_model, input_size=(3, *SIZE), batch_size=BATCH)
    without = _macs(_meta(name, attention=None))
    twin = _plain_twin(name)
    if twin is not None:
        assert _macs(_meta(twin)) == without
    assert report.macs - without == expected
    assert report.attention.macs == expected  # and all of it is charged to the SE modules


@pytest.mark.parametrize("name", models([n for n in _with_se() if get_model_entry(n).builder in (ResNet, CifarResNet)]))
def test_residual_networks_profile_the_fused_scale(name):
    # In the residual networks, SE's scale is fused into the residual addition: the fast path never
    # calls the SE modules' forward (the block calls ``excite`` and does the ``addcmul`` itself), so the
    # exact equality above is the profiler charging that ``addcmul`` to SE.
    calls = _se_forward_inputs(_meta(name))
    assert calls and all(shapes == [] for shapes in calls.values())


# (SE network, its plain twin): a residual family with the scale fused into the residual sum (addcmul,
# in place at inference), the CIFAR variant of it, and a family whose SE runs its own forward.
ACTIVATION_PAIRS = [
    ("se_resnet50", "resnet50"), ("se_cifar_resnet20", "cifar_resnet20"), ("se_mobilenet_v1", "mobilenet_v1"),
]  # fmt: skip


def _scale_bytes(name: str, input_size: tuple[int, int, int]) -> int:
    """The bytes of SE's scaled feature maps s * u (one per block, float32), from the textbook twin's inputs."""
    model = _meta(name, attention_kwargs={"fast": False})
    seen: list[tuple[int, ...]] = []
    handles = [m.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
               for m in model.attention_modules().values()]  # fmt: skip
    with torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device="meta"))
    for h in handles:
        h.remove()
    return sum(4 * n * c * h * w for n, c, h, w in seen)


@pytest.mark.parametrize(("se_name", "plain_name"), ACTIVATION_PAIRS)
def test_se_networks_count_every_activation_of_the_plain_network_and_their_own(se_name, plain_name):
    # SE adds tensors (the scale s * u, the gate); it removes none. The fused inference path writes the
    # scaled sum over BN's output in place: the profiler still counts the scale and the sum it stands for.
    size = get_model_entry(se_name).input_size
    se, plain = (profile(_meta(n), input_size=size) for n in (se_name, plain_name))
    textbook = profile(_meta(se_name, attention_kwargs={"fast": False}), input_size=size)
    assert se.activation_bytes > plain.activation_bytes
    assert se.activation_bytes - plain.activation_bytes == se.attention.activation_bytes  # SE's extra, all of it
    assert se.attention.activation_bytes > _scale_bytes(se_name, size)  # the scaled maps, and the gates besides
    assert (se.activation_bytes, se.attention.activation_bytes) == (
        textbook.activation_bytes, textbook.attention.activation_bytes
    )  # the fast path counts like the module's own forward
