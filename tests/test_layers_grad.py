"""Gradients: gradcheck for every attention module, and SE's gradient written out by hand."""

import pytest
import torch
from torch.func import functional_call

import senet

C = 8
SPATIAL = {1: (5,), 2: (3, 4), 3: (2, 3, 2)}
# Small configurations: enough hidden units to matter, kernels small enough for a fast gradcheck.
KWARGS = {
    "se": {"reduction": 4},
    "sse": {},
    "scse": {"reduction": 4},
    "ese": {},
    "eca": {},
    "cbam": {"reduction": 4, "kernel_size": 3, "bias": True},
    "coord": {},
}
CASES = [(name, dims) for name in KWARGS for dims in (1, 2, 3) if not (name == "coord" and dims == 1)]


def _module(name, dims, **extra):
    torch.manual_seed(0)
    m = senet.create_attention(name, C, dims=dims, **KWARGS[name], **extra).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    return m


def _gradcheck(m, shape):
    # The input and every parameter at once, f(x, *params) through a functional call. Fast mode
    # compares u^T J v for random u, v: one probe that involves every entry of every Jacobian.
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in m.named_parameters()]
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        return functional_call(m, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-8, rtol=1e-6, fast_mode=True)


@pytest.mark.parametrize("name,dims", CASES)
def test_gradcheck(name, dims):
    _gradcheck(_module(name, dims).eval(), (2, C, *SPATIAL[dims]))


@pytest.mark.parametrize("name", list(KWARGS))
def test_gradcheck_full_jacobian_of_the_input(name):
    # The classic entry-by-entry check of dy/dx, at a small shape that still has structure.
    m = _module(name, 2).eval()
    x = torch.randn(1, C, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("dims", [2, 3])
def test_gradcheck_coord_train_mode_batch_statistics(dims):
    _gradcheck(_module("coord", dims).train(), (2, C, *SPATIAL[dims]))


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_se_gradient_by_hand(dims, fast):
    """y = x * s, s = sigmoid(W2 relu(W1 z + b1) + b2), z = mean(x), L = sum(g * y):

    dL/dx = g * s + (1/HW) W1^T [relu'(a1) * W2^T (sigmoid'(a2) * sum_spatial(g * x))]
    dL/dW2 = d2^T h, dL/db2 = sum_n d2, dL/dW1 = d1^T z, dL/db1 = sum_n d1.
    """
    se = _module("se", dims, fast=fast)
    x = torch.randn(3, C, *SPATIAL[dims], dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(x)  # dL/dy
    (se(x) * g).sum().backward()

    sp = tuple(range(2, dims + 2))
    w1, b1 = se.fc1.weight.detach().flatten(1), se.fc1.bias.detach()
    w2, b2 = se.fc2.weight.detach().flatten(1), se.fc2.bias.detach()
    xd = x.detach()
    z = xd.mean(sp)  # (N, C)
    a1 = z @ w1.T + b1  # (N, C/r)
    h = a1.clamp(min=0)
    s = torch.sigmoid(h @ w2.T + b2)  # (N, C)
    ds = (g * xd).sum(sp)  # dL/ds
    d2 = s * (1 - s) * ds  # dL/da2, sigmoid' = s (1 - s)
    d1 = (a1 > 0).double() * (d2 @ w2)  # dL/da1, W2^T applied to row vectors
    dz = d1 @ w1  # W1^T
    hw = xd[0, 0].numel()
    shape = s.shape + (1,) * dims
    dx = g * s.reshape(shape) + (dz / hw).reshape(shape)

    tol = dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, dx, **tol)
    torch.testing.assert_close(se.fc2.weight.grad.flatten(1), d2.T @ h, **tol)
    torch.testing.assert_close(se.fc2.bias.grad, d2.sum(0), **tol)
    torch.testing.assert_close(se.fc1.weight.grad.flatten(1), d1.T @ z, **tol)
    torch.testing.assert_close(se.fc1.bias.grad, d1.sum(0), **tol)
