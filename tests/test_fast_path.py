"""The fast SE path (matrix-product FCs, scale fused with the residual, no extra saved tensor) equals the
textbook module, outputs and gradients, in every placement, memory format and precision."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

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


# Whole networks are compared in float64 only. In float32 a whole network in training mode is
# ill-conditioned: a ReLU input within rounding distance of zero (1e-7 of a unit-scale value, among the
# ~10^5 of a small network) lands on either side depending on the CPU's summation order, and BatchNorm
# over a few images spreads that one flipped element over every gradient upstream (measured: 1e-2 relative
# error for whichever path, fast or textbook, the flip happens to hit). In float64 such a flip needs a value
# within 1e-15 of zero (never seen); rounding amplified 10^3-fold is still 1e-13, far below 1e-9.
# The float32 behaviour of each fast-path function is tested below on inputs kept away from the kinks.
RTOL = 1e-9


def _close(a: torch.Tensor, b: torch.Tensor, msg: str = "") -> None:
    """max |a - b| <= RTOL x max |b|: relative to the largest entry (tiny entries are pure rounding). Stricter
    than ``torch.testing.assert_close(rtol=RTOL, atol=RTOL * max |b|)``, which adds RTOL x |b| per entry, and a
    third of its cost: it took a third of this file's time on SE-ResNet-50's 10M gradients."""
    assert a.shape == b.shape and a.dtype == b.dtype, (msg, a.shape, b.shape, a.dtype, b.dtype)
    scale = b.abs().max().item() or 1.0
    error = (a - b).abs().max().item()
    assert error <= RTOL * scale, f"{msg}: max |a - b| = {error:.2e} > {RTOL:.0e} x max |b| = {scale:.2e}"


@pytest.mark.parametrize("name", ["se_resnet50", "se_cifar_resnet20", "se_preact_resnet164"])
@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_fast_model_equals_textbook_model(name, placement, channels_last, train):
    torch.manual_seed(0)
    # The same blocks as the full networks, fewer of them (a strided and an identity block per stage).
    layers = {"se_resnet50": (2, 2, 1, 1), "se_cifar_resnet20": (2, 2, 2), "se_preact_resnet164": (2, 2, 2)}
    kwargs = {"num_classes": 10, "layers": layers[name], "reduction": 8}
    model = create_model(name, se_placement=placement, **kwargs).double().train(train)
    for m in model.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    ref = _textbook(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model, ref = model.to(memory_format=fmt), ref.to(memory_format=fmt)
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64).contiguous(memory_format=fmt)
    grad = torch.randn(4, 10, dtype=torch.float64)
    y, gx, gp = _run(model, x, grad)
    y_ref, gx_ref, gp_ref = _run(ref, x, grad)
    _close(y, y_ref)
    _close(gx, gx_ref)
    for key in gp_ref:
        _close(gp[key], gp_ref[key], msg=key)
    weights = dict(model.named_parameters())
    for (key, a), b in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
        if key in weights:  # a forward and backward pass leaves them as they were, bit for bit
            assert torch.equal(a, b), key
        else:
            _close(a.double(), b.double(), msg=key)  # running statistics updated alike


# float32: each fast-path function against float64 truth, on inputs whose ReLU arguments stay at least
# MARGIN away from zero (so no rounding can flip a ReLU). What remains is well-conditioned: sums of at
# most 2 x 16 x 8 x 8 terms of unit scale, BatchNorm over 128+ values with variance near 1. float32's
# epsilon is 6e-8; the expected norm-wise error is 1e-7..1e-6, and F32_TOL = 1e-5 leaves a tenfold margin
# on any CPU. A float32-specific defect (half-precision accumulation, a lost cast, a mis-scaled mean) is
# 1e-4 or more. The textbook path is held to the same bound, as a check of the check.
MARGIN = 1e-2
F32_TOL = 1e-5


def _relative_error(ours: torch.Tensor, truth: torch.Tensor) -> float:
    return ((ours.double() - truth).norm() / truth.norm().clamp(min=1e-30)).item()


def _se_away_from_kinks(
    channels: int, dims: int, seed: int, before: nn.Module | None = None
) -> tuple[SqueezeExcite, torch.Tensor]:
    """An SE module and an input x such that SE's hidden ReLU arguments on ``before(x)`` (on x when
    ``before`` is None) all lie outside [-MARGIN, MARGIN]."""
    for attempt in range(100):  # the first seeds usually qualify; checked in float64, so on any CPU
        torch.manual_seed(1000 * seed + attempt)
        se = SqueezeExcite(channels, hidden=4, dims=dims).double()
        x = torch.randn((2, channels) + (8,) * dims, dtype=torch.float64) + 0.3
        u = copy.deepcopy(before)(x) if before is not None else x
        hidden = F.linear(u.mean(list(range(2, u.dim()))), se.fc1.weight.flatten(1), se.fc1.bias)
        if hidden.abs().min() > MARGIN:
            return se, x
    raise AssertionError("no input away from the ReLU kink in 100 seeds")


def _push_from_kink(pre: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
    """Shifts ``shortcut`` so that ``pre`` (= shortcut + branch) has no entry inside [-MARGIN, MARGIN]."""
    near = pre.abs() < MARGIN
    return shortcut + torch.where(near, 2 * MARGIN * torch.where(pre < 0, -1.0, 1.0), 0.0)


def _float32_errors(fn, inputs: list[torch.Tensor], modules: list[nn.Module], grad: torch.Tensor) -> list[float]:
    """Norm-wise relative errors of fn's float32 output, gradients (inputs, then parameters) and buffers
    against its float64 run; both runs start from the same module state."""
    start = [copy.deepcopy(m.state_dict()) for m in modules]
    results = []
    for dtype in (torch.float64, torch.float32):
        for m, state in zip(modules, start, strict=True):
            m.to(dtype).load_state_dict(state)
            m.zero_grad(set_to_none=True)
        leaves = [t.detach().to(dtype, copy=True).requires_grad_() for t in inputs]
        y = fn(*leaves)
        (y * grad.to(dtype)).sum().backward()
        params = [p.grad for m in modules for p in m.parameters()]
        buffers = [b.clone() for m in modules for b in m.buffers() if b.is_floating_point()]
        results.append([y.detach()] + [t.grad for t in leaves] + params + buffers)
    truth, ours = results
    return [_relative_error(a, b) for a, b in zip(ours, truth, strict=True)]


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("fast", [True, False])
def test_se_module_float32_is_accurate(dims, fast):
    se, x = _se_away_from_kinks(16, dims, seed=dims)
    se.fast = fast
    fmt = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d}[dims]
    grad = torch.randn(x.shape, dtype=torch.float64)
    errors = _float32_errors(se, [x.contiguous(memory_format=fmt)], [se], grad)
    assert max(errors) < F32_TOL, errors


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_block_tail_float32_is_accurate(dims, train, fused):
    """relu(x' + SE(BN(c)) * BN(c)) in float32, fused (the fast path) or textbook, against float64."""
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](16).double().train(train)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, 16)), bn.bias.copy_(torch.linspace(-0.5, 0.5, 16))
        bn.running_mean.fill_(0.3), bn.running_var.fill_(1.2)
    se, c = _se_away_from_kinks(16, dims, seed=10 + dims, before=bn)
    u = copy.deepcopy(bn)(c)
    gate = se.excite(u).view(u.shape[:2] + (1,) * dims)
    shortcut = torch.randn(c.shape, dtype=torch.float64)
    shortcut = _push_from_kink(shortcut + u * gate, shortcut)
    se.fast = fused

    def tail(c: torch.Tensor, shortcut: torch.Tensor) -> torch.Tensor:
        if fused:
            return bn_scale_residual_relu(c, bn, se, shortcut)
        return torch.relu(shortcut + se(bn(c)))

    errors = _float32_errors(tail, [c, shortcut], [bn, se], torch.randn(c.shape, dtype=torch.float64))
    assert max(errors) < F32_TOL, errors


@pytest.mark.parametrize("relu", [True, False])
def test_scale_residual_float32_is_accurate(relu):
    torch.manual_seed(3)
    u, s, x = torch.randn(2, 16, 8, 8).double(), torch.rand(2, 16).double(), torch.randn(2, 16, 8, 8).double()
    x = _push_from_kink(x + u * s[:, :, None, None], x)

    def fn(u, s, x):
        return scale_residual(u, s, x, relu=relu)

    assert max(_float32_errors(fn, [u, s, x], [], torch.randn(2, 16, 8, 8).double())) < F32_TOL


# The paper's ReLU and sigmoid take the hand-written backward of the excitation; any other parameter-free
# pair the nested autograd call; without biases both skip b1 and b2.
_EXCITATIONS = {
    "paper": {},
    "other": {"activation": "silu", "gate": "hard_sigmoid"},
    "paper, no bias": {"bias": False},
}


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("excitation", list(_EXCITATIONS))
def test_fused_bn_scale_residual_relu_for_every_dims(dims, train, excitation):
    torch.manual_seed(dims)
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](6).double().train(train)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 1.5)
    se = SqueezeExcite(6, hidden=3, dims=dims, **_EXCITATIONS[excitation]).double()
    if excitation != "paper, no bias":
        with torch.no_grad():  # biases away from 0, so that some hidden units are off (the ReLU's mask counts)
            se.fc1.bias.uniform_(-1.0, 1.0), se.fc2.bias.uniform_(-1.0, 1.0)
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


def test_fused_block_under_bf16_autocast_is_as_accurate_as_the_textbook_block():
    """Under CPU bf16 autocast (``senet train --amp bf16``) the convolution's output c arrives in bf16 and the
    SE MLP's GEMMs run in bf16; the fused function's hand-written backward then works in float32. Both paths
    are measured against the float64 block: bf16's 8-bit mantissa makes each a few 1e-3 off, so the test asks
    the fused path to be no worse than twice the textbook path's error (plus 1e-3 of slack), not a fixed
    tolerance that a CPU's summation order could cross."""
    torch.manual_seed(0)
    bn, se = nn.BatchNorm2d(16).train(), SqueezeExcite(16, hidden=4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5), bn.bias.uniform_(0.5, 1.0), se.fc1.bias.uniform_(-1, 1)
    c = torch.randn(8, 16, 6, 6).bfloat16().float()  # exactly representable in bf16
    shortcut, grad = torch.rand(8, 16, 6, 6) + 0.5, torch.randn(8, 16, 6, 6)  # sums kept away from the ReLU's kink

    def run(fused: bool, dtype: torch.dtype | None):
        b, s = copy.deepcopy(bn), copy.deepcopy(se)
        inputs = [c.clone(), shortcut.clone()]
        if dtype is None:
            b, s, inputs = b.double(), s.double(), [t.double() for t in inputs]
        else:
            inputs[0] = inputs[0].to(dtype)
        inputs = [t.requires_grad_() for t in inputs]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            y = bn_scale_residual_relu(inputs[0], b, s, inputs[1]) if fused else torch.relu(inputs[1] + s(b(inputs[0])))
        (y.double() * grad.double()).sum().backward()
        return [y.double()] + [t.grad.double() for t in inputs + list(b.parameters()) + list(s.parameters())]

    exact = run(False, None)
    for name, fast, textbook, ref in zip(["y", "dc", "dshortcut", "dgamma", "dbeta", "dW1", "db1", "dW2", "db2"],
                                         run(True, torch.bfloat16), run(False, torch.bfloat16), exact, strict=True):
        scale = ref.abs().max().item()
        fast_error, textbook_error = ((t - ref).abs().max().item() / scale for t in (fast, textbook))
        assert fast_error <= 2 * textbook_error + 1e-3, (name, fast_error, textbook_error)


def test_a_hook_that_changes_the_gate_is_differentiated_through():
    """A forward hook on the gate may return another value (s' = s / 2 + 1/4 here): the fused block must then
    differentiate what the hook returned, as autograd does for the textbook block; the hand-written sigmoid
    backward (which assumes s is the sigmoid's output) is not used under a hook."""
    torch.manual_seed(0)
    bn, se = nn.BatchNorm2d(6).double().train(), SqueezeExcite(6, hidden=3).double()
    bn_ref, se_ref = copy.deepcopy(bn), copy.deepcopy(se)
    for module in (se, se_ref):
        module.gate.register_forward_hook(lambda m, args, out: out / 2 + 0.25)
    c, shortcut, grad = (torch.randn(3, 6, 4, 4).double() for _ in range(3))
    inputs, inputs_ref = ([c.clone().requires_grad_(), shortcut.clone().requires_grad_()] for _ in range(2))
    (bn_scale_residual_relu(inputs[0], bn, se, inputs[1]) * grad).sum().backward()
    (torch.relu(inputs_ref[1] + se_ref(bn_ref(inputs_ref[0]))) * grad).sum().backward()
    for a, b in zip(inputs + list(se.parameters()), inputs_ref + list(se_ref.parameters()), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
