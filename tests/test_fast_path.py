"""The fast SE path (matrix-product FCs, scale fused with the residual, no extra saved tensor) equals the
textbook module, outputs and gradients, in every placement, memory format and precision."""

import copy

import pytest
import torch
from torch import nn

from senet.layers import SqueezeExcite
from senet.layers.fused import bn_scale_residual_relu, scale_residual
from senet.models import create_model
from senet.models.registry import PLACEMENTS


def _textbook(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose SE modules run the textbook path (which also disables the fusion)."""
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, SqueezeExcite):
            m.fast = False
    return ref


def _run(model: nn.Module, x: torch.Tensor, grad: torch.Tensor):
    x = x.clone().requires_grad_()
    y = model(x)
    (y * grad).sum().backward()
    return y.detach(), x.grad, {n: p.grad for n, p in model.named_parameters()}


# Whole networks: batch statistics of small batches amplify rounding, so tensors are compared relative to
# their largest entry (float64: 1e-9 of it); the fused function alone is held to 1e-10 below.
RTOL = {torch.float64: 1e-9, torch.float32: 1e-3}


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype, msg: str = "") -> None:
    scale = b.abs().max().item() or 1.0
    torch.testing.assert_close(a, b, rtol=RTOL[dtype], atol=RTOL[dtype] * scale, msg=lambda m: f"{msg} {m}")


@pytest.mark.parametrize("name", ["se_resnet50", "se_cifar_resnet20", "se_preact_resnet164"])
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_fast_model_equals_textbook_model(name, placement, dtype, channels_last, train):
    torch.manual_seed(0)
    # The same blocks as the full networks, fewer of them (a strided and an identity block per stage).
    layers = {"se_resnet50": (2, 2, 1, 1), "se_cifar_resnet20": (2, 2, 2), "se_preact_resnet164": (2, 2, 2)}
    kwargs = {"num_classes": 10, "layers": layers[name], "reduction": 8}
    model = create_model(name, se_placement=placement, **kwargs).to(dtype).train(train)
    for m in model.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    ref = _textbook(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model, ref = model.to(memory_format=fmt), ref.to(memory_format=fmt)
    x = torch.randn(4, 3, 32, 32, dtype=dtype).contiguous(memory_format=fmt)
    grad = torch.randn(4, 10, dtype=dtype)
    y, gx, gp = _run(model, x, grad)
    y_ref, gx_ref, gp_ref = _run(ref, x, grad)
    _close(y, y_ref, dtype)
    _close(gx, gx_ref, dtype)
    if dtype == torch.float64:
        for key in gp_ref:
            _close(gp[key], gp_ref[key], dtype, msg=key)
    else:  # float32: single tiny gradients (e.g. of SE biases) are rounding noise; compare them together
        flat, flat_ref = (torch.cat([g[k].flatten() for k in gp_ref]) for g in (gp, gp_ref))
        assert (flat - flat_ref).norm() <= 1e-3 * flat_ref.norm()
    for (key, a), b in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        _close(a.double(), b.double(), dtype, msg=key)  # running statistics updated alike


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("train", [True, False])
def test_fused_bn_scale_residual_relu_for_every_dims(dims, train):
    torch.manual_seed(dims)
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](6).double().train(train)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 1.5)
    se = SqueezeExcite(6, hidden=3, dims=dims).double()
    bn_ref, se_ref = copy.deepcopy(bn), copy.deepcopy(se)
    shape = (3, 6) + (4,) * dims
    c, shortcut, grad = torch.randn(shape).double(), torch.randn(shape).double(), torch.randn(shape).double()
    inputs = [c.clone().requires_grad_(), shortcut.clone().requires_grad_()]
    inputs_ref = [c.clone().requires_grad_(), shortcut.clone().requires_grad_()]
    y = bn_scale_residual_relu(inputs[0], bn, se, inputs[1])
    y_ref = torch.relu(inputs_ref[1] + se_ref(bn_ref(inputs_ref[0])))
    (y * grad).sum().backward()
    (y_ref * grad).sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(inputs + list(bn.parameters()) + list(se.parameters()),
                    inputs_ref + list(bn_ref.parameters()) + list(se_ref.parameters()), strict=True):  # fmt: skip
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bn.running_mean, bn_ref.running_mean)
    assert int(bn.num_batches_tracked) == int(bn_ref.num_batches_tracked)


def test_fused_function_passes_gradcheck():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4).double()
    se = SqueezeExcite(4, hidden=2).double()

    del bn._parameters["weight"]  # gamma becomes an input of f, so gradcheck covers it too

    def f(c, shortcut, gamma):
        bn.weight = gamma
        return bn_scale_residual_relu(c, bn, se, shortcut)

    c = torch.randn(2, 4, 3, 3, dtype=torch.double, requires_grad=True)
    shortcut = torch.randn(2, 4, 3, 3, dtype=torch.double, requires_grad=True)
    gamma = torch.rand(4, dtype=torch.double, requires_grad=True)
    bn.eval()  # running statistics: a deterministic function of its inputs
    assert torch.autograd.gradcheck(f, (c, shortcut, gamma))


def test_scale_residual_is_one_addcmul():
    u, s, x = torch.randn(2, 3, 4, 4), torch.rand(2, 3), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(scale_residual(u, s, x, relu=True), torch.relu(x + u * s[:, :, None, None]))


def _saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the activations autograd keeps for backward (parameters, kept anyway, excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in params:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


@pytest.mark.parametrize(("plain", "se"), [("resnet50", "se_resnet50"), ("cifar_resnet20", "se_cifar_resnet20")])
def test_se_saves_almost_no_extra_activation_for_backward(plain, se):
    x = torch.randn(4, 3, 64, 64)
    base = _saved_bytes(create_model(plain, num_classes=10).train(), x)
    fused = _saved_bytes(create_model(se, num_classes=10).train(), x)
    textbook = _saved_bytes(_textbook(create_model(se, num_classes=10)).train(), x)
    assert fused / base < 1.03  # only SE's (N, C) vectors and its FC weights' inputs
    assert textbook / base > 1.15  # plain autograd keeps each block's BN output for the gate's gradient


def test_compiled_se_resnet_has_no_graph_break():
    import torch._dynamo

    torch._dynamo.reset()
    model = create_model("se_cifar_resnet20").train()
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 32, 32))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
