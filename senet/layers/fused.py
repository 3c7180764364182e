"""The SE scale fused with the residual addition: one pass instead of two, and no extra saved tensor.

In a residual block with SE at the standard place, y = relu(x' + s * BN(c)) (Hu et al. 2018, Fig. 3):
c is the last convolution's output (N, C, H, W), s the SE gate (N, C), x' the shortcut.

- ``scale_residual`` computes x' + s * u as one ``addcmul`` (read u and x', write y) instead of a
  multiply and an add (two passes). Without autograd the ReLU runs in place.
- ``bn_scale_residual_relu`` is the training path. Plain autograd would save u = BN(c) for the gradient
  of s, a full-size tensor per block that the network without SE does not keep (SE-ResNet-50 would
  store 25% more activations). Here BatchNorm keeps c (which it saves anyway) and its batch statistics,
  and the backward pass gets what it needs of u from them:

      dL/ds_nc = sum_hw g * u = k_c * (sum_hw g * c - mu_c * sum_hw g) + beta_c * sum_hw g,
      with g = dL/dy * [y > 0] and k_c = gamma_c / sqrt(var_c + eps),

  so SE adds no activation memory beyond its (N, C) vectors. The squeeze and the small MLP run inside
  the same function, so dL/du = g * s + dL/d(sum_hw u) is written in one pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .common import check_input
from .squeeze_excite import spatial_size


def _gate4d(s: Tensor, u: Tensor) -> Tensor:
    return s.view([s.shape[0], s.shape[1]] + [1] * (u.dim() - 2))  # (N, C) -> (N, C, 1, ...)


def scale_residual(u: Tensor, s: Tensor, shortcut: Tensor, *, relu: bool) -> Tensor:
    """Returns ``act(shortcut + s * u)`` with the scale and the addition in one ``addcmul``.

    Args:
        u: The residual branch's output U, (N, C, *spatial).
        s: The gate, (N, C).
        shortcut: x', the same shape as ``u``.
        relu: Apply a ReLU (in place when autograd does not need the sum).
    """
    y = torch.addcmul(shortcut, u, _gate4d(s, u))
    if not relu:
        return y
    return y.relu_() if not (torch.is_grad_enabled() and y.requires_grad) else torch.relu(y)


class _BatchNormStash(torch.autograd.Function):
    """BatchNorm that leaves the tensors it saves (c, gamma, beta, mu, 1/sigma) in ``stash``."""

    @staticmethod
    def forward(ctx, c, weight, bias, running_mean, running_var, training, momentum, eps, stash):  # noqa: ANN001
        stats = (running_mean, running_var, training, momentum, eps)
        u, mean, invstd = torch.native_batch_norm(c, weight, bias, *stats)[:3]
        if not training:  # normalised with the running statistics, which are constants here
            mean, invstd = running_mean.clone(), (running_var + eps).rsqrt()
        ctx.save_for_backward(c, weight, mean, invstd)
        ctx.training, ctx.eps = training, eps
        stash.update(c=c, weight=weight, bias=bias, mean=mean, invstd=invstd)
        return u

    @staticmethod
    def backward(ctx, grad_u):  # noqa: ANN001
        c, weight, mean, invstd = ctx.saved_tensors
        if ctx.training:
            grad_c, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
                grad_u, c, weight, None, None, mean, invstd, True, ctx.eps, [True, True, True]
            )
        else:
            dims, shape = _reduce_dims(c), _channel_shape(c)
            grad_c = grad_u * (weight * invstd).view(shape)
            grad_w = (grad_u * (c - mean.view(shape))).sum(dims) * invstd
            grad_b = grad_u.sum(dims)
        return grad_c, grad_w, grad_b, None, None, None, None, None, None


def _paper_excitation(se: nn.Module) -> bool:
    """Whether ``se`` excites with the paper's ReLU and sigmoid, unhooked (a hook may change what they return;
    ``senet analyze``'s recorder hooks the gate): then the backward of its small MLP is written out by hand."""
    modules = (se.act, se.gate)
    hooked = any(m._forward_hooks or m._forward_pre_hooks for m in modules)
    module = nn.modules.module  # PyTorch's hooks registered for every module (private names: absent, none)
    hooked = hooked or any(getattr(module, f"_global_forward{kind}_hooks", None) for kind in ("", "_pre"))
    return type(se.act) is nn.ReLU and type(se.gate) is nn.Sigmoid and not hooked


def _excite_forward(total: Tensor, area: int, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None,
                    se: nn.Module) -> tuple[Tensor, Tensor]:  # fmt: skip
    """s = sigmoid(W2 delta(W1 z + b1) + b2) with z = total / area (Eq. 3 of the paper), through ``se``'s own
    ReLU and sigmoid modules; returns s and the hidden activations delta(...), which the backward needs."""
    hidden = se.hidden_with(total, area, w1, b1)
    return se.gate(F.linear(hidden, w2, b2)), hidden


def _excite_backward(grad_s: Tensor, s: Tensor, area: int, total: Tensor, w1: Tensor, b1: Tensor | None,
                     w2: Tensor, b2: Tensor | None, hidden: Tensor) -> tuple[Tensor | None, ...]:  # fmt: skip
    """The gradients of ``_excite_forward`` for (total, W1, b1, W2, b2), written out: a dozen (N, C)-sized
    operations instead of a nested autograd call, whose set-up cost more than the arithmetic in the
    narrow CIFAR bottlenecks (1 to 4 hidden units)."""
    scale = 1.0 / max(area, 1)
    # Under autocast the sums and the small GEMMs ran in bf16/fp16: the backward runs in grad_s's float32.
    s, hidden, total_in = s.to(grad_s.dtype), hidden.to(grad_s.dtype), total
    total = total.to(grad_s.dtype)
    d_pre2 = grad_s * s * (1.0 - s)  # through the sigmoid, (N, C)
    d_hidden = torch.mm(d_pre2, w2).mul_(hidden > 0)  # through W2 and the ReLU, (N, C/r)
    d_w2 = torch.mm(d_pre2.t(), hidden)
    d_w1 = torch.mm(d_hidden.t(), total).mul_(scale)
    d_total = torch.mm(d_hidden, w1).mul_(scale).to(total_in.dtype)
    d_b1 = d_hidden.sum(0) if b1 is not None else None
    d_b2 = d_pre2.sum(0) if b2 is not None else None
    return d_total, d_w1, d_b1, d_w2, d_b2


class _SqueezeScaleResidualReLU(torch.autograd.Function):
    """y = relu(x' + s * u) with s = SE(u), saving only s and y; u is rebuilt from the BatchNorm ``stash``.

    The squeeze and the small MLP run inside, so that the backward pass writes dL/du in one pass:
    dL/du = g * s + dL/d(sum_hw u) (the second term from the squeeze), instead of a product and a sum.
    """

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):  # noqa: ANN001
        s, y = ctx.saved_tensors
        st, (gate, leaves) = ctx.stash, ctx.mlp
        dims = list(range(2, y.dim()))
        g = torch.ops.aten.threshold_backward(grad_y, y, 0)  # dL/d(x' + s u), (N, C, H, W)
        # dL/ds_nc = sum_hw g u = k_c (sum_hw g c - mu_c sum_hw g) + beta_c sum_hw g, with k = gamma / sigma.
        # One full-size buffer serves first as g * c, then as dL/du (fresh CPU buffers cost page faults).
        g_sum = g.sum(dims)  # (N, C)
        buffer = torch.mul(g, st["c"])
        gc_sum = buffer.sum(dims)  # (N, C)
        grad_s = st["weight"] * st["invstd"] * (gc_sum - st["mean"] * g_sum) + st["bias"] * g_sum
        if gate is None:  # the paper's ReLU and sigmoid: the MLP's gradients by hand
            d_total, d_w1, d_b1, d_w2, d_b2 = _excite_backward(grad_s, s, ctx.area, *leaves)
        else:  # another parameter-free nonlinearity: the small graph's own backward
            wanted = [leaf for leaf in leaves if leaf is not None]
            grads = iter(torch.autograd.grad(gate, wanted, grad_s, retain_graph=True))  # small; freed with ctx
            d_total, d_w1, d_b1, d_w2, d_b2 = (next(grads) if leaf is not None else None for leaf in leaves)
        grad_u = torch.addcmul(_gate4d(d_total, g), g, _gate4d(s, g), out=buffer)  # d(sum u)/du = 1
        return grad_u, g, d_w1, d_b1, d_w2, d_b2, None, None

    @staticmethod
    def forward(ctx, u, shortcut, w1, b1, w2, b2, se, stash):  # noqa: ANN001
        dims = list(range(2, u.dim()))
        ctx.area = spatial_size(u, dims)
        total = u.sum(dims)
        if _paper_excitation(se):
            gate, s, hidden = None, *_excite_forward(total, ctx.area, w1, b1, w2, b2, se)
            leaves = (total, w1, b1, w2, b2, hidden)
        else:
            with torch.enable_grad():  # a small graph of its own: sums (N, C) -> gate (N, C)
                leaves = [t.detach().requires_grad_() if t is not None else None for t in (total, w1, b1, w2, b2)]
                gate = se.excite_sum_with(leaves[0], ctx.area, *leaves[1:])
            s = gate.detach()
        if se.record_gate:
            se.last_gate = s
        # u = BN(c) is not needed after this (the backward rebuilds what it needs of it from the stash), so y
        # is written over it: no fresh full-size tensor per block. Not under autocast, where u may be bf16 and
        # the sum with a float32 shortcut is float32.
        if u.dtype == shortcut.dtype == s.dtype:
            ctx.mark_dirty(u)
            y = torch.addcmul(shortcut, u, _gate4d(s, u), out=u).relu_()
        else:
            y = torch.addcmul(shortcut, u, _gate4d(s, u)).relu_()
        ctx.save_for_backward(s, y)
        ctx.stash, ctx.mlp = stash, (gate, leaves)
        return y


def _reduce_dims(c: Tensor) -> list[int]:
    return [0] + list(range(2, c.dim()))


def _channel_shape(c: Tensor) -> list[int]:
    return [1, -1] + [1] * (c.dim() - 2)


def _batch_norm_args(bn: nn.modules.batchnorm._BatchNorm) -> tuple[bool, float]:
    """(use batch statistics, momentum) exactly as ``_BatchNorm.forward`` decides them."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return bn.training or bn.running_mean is None, momentum


def fast_se(se: nn.Module | None) -> bool:
    """Whether a block may take ``se``'s fast path (call ``se.excite`` and fuse the scale into its sum): the
    module's ``fast`` flag is on and it is not being traced. A trace (ONNX, TorchScript export) takes the
    module's export form instead, the textbook module called as a module (``SqueezeExcite.forward``), so the
    file is not tied to one input size and each SE module keeps its own scope in the graph."""
    return bool(getattr(se, "fast", False)) and hasattr(se, "excite") and not torch.jit.is_tracing()


def can_fuse(bn: nn.Module, se: nn.Module | None, act: nn.Module) -> bool:
    """Whether ``bn_scale_residual_relu`` applies: an affine BatchNorm with running statistics, an SE
    module on its fast path with the paper's average squeeze and parameter-free nonlinearities, and a
    ReLU after the sum."""
    return (
        isinstance(bn, nn.modules.batchnorm._BatchNorm)
        and bn.affine
        and bn.track_running_stats
        and fast_se(se)
        and getattr(se, "squeeze_mode", None) == "avg"
        and hasattr(se, "excite_sum_with")
        and not any(True for _ in se.act.parameters())
        and not any(True for _ in se.gate.parameters())
        and isinstance(act, nn.ReLU)
    )


def bn_scale_residual_relu(c: Tensor, bn: nn.Module, se: nn.Module, shortcut: Tensor) -> Tensor:
    """relu(shortcut + s * BN(c)) with s = se.excite(BN(c)); see the module docstring.

    Args:
        c: The last convolution's output, (N, C, *spatial).
        bn: Its BatchNorm (an affine ``_BatchNorm`` with running statistics; see ``can_fuse``).
        se: The ``SqueezeExcite`` module (its ``excite`` / ``excite_sum_with`` give the gate).
        shortcut: x', the same shape as ``c``.

    Returns:
        The block's output, identical to ``relu(shortcut + se(bn(c)))`` up to float rounding.
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        u = bn(c)  # a compiler (or an exporter's trace) fuses and plans memory itself: the plain formula
        return scale_residual(u, se.excite(u), shortcut, relu=True)
    if not (torch.is_grad_enabled() and (c.requires_grad or shortcut.requires_grad)):
        # Inference: BN's output is a temporary, so the scaled sum and the ReLU overwrite it in place.
        u = bn(c)
        return torch.addcmul(shortcut, u, _gate4d(se.excite(u), u), out=u).relu_()
    stash: dict[str, Tensor] = {}
    training, momentum = _batch_norm_args(bn)
    u = _BatchNormStash.apply(c, bn.weight, bn.bias, bn.running_mean, bn.running_var, training, momentum, bn.eps, stash)
    check_input(u, se.channels, se.dims, "SqueezeExcite")
    w1, w2 = se.fc1.weight.flatten(1), se.fc2.weight.flatten(1)
    return _SqueezeScaleResidualReLU.apply(u, shortcut, w1, se.fc1.bias, w2, se.fc2.bias, se, stash)
