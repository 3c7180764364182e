"""Every attention module against an independent computation of its paper's formula.

The references below use plain tensor ops and einsum on the modules' parameters, never the modules'
own helpers; all in float64, tolerance 1e-10, for dims 1, 2, 3 and both memory formats.
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from random_weights import randomize_attention

import senet
from senet.layers import eca_kernel_size

TOL = dict(rtol=1e-10, atol=1e-10)
C = 16
SPATIAL = {1: (7,), 2: (5, 6), 3: (3, 4, 5)}
FORMATS = {2: torch.channels_last, 3: torch.channels_last_3d}
# (dims, memory format): channels_last exists for 2-D and 3-D inputs only.
LAYOUTS = [(1, "contiguous"), (2, "contiguous"), (2, "channels_last"), (3, "contiguous"), (3, "channels_last")]


def _input(dims, layout, channels=C, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, *SPATIAL[dims], generator=g, dtype=torch.float64)
    return x.to(memory_format=FORMATS[dims]) if layout == "channels_last" else x




def _build(name, dims, **kw):
    return randomize_attention(senet.create_attention(name, C, dims=dims, **kw).double(), 1).eval()


def _check(module, x, expected):
    y = module(x)
    torch.testing.assert_close(y, expected, **TOL)
    if x.dim() > 3 and not x.is_contiguous():
        assert y.is_contiguous(memory_format=FORMATS[x.dim() - 2]), "memory format not kept"


# ---------------------------------------------------------------------------------- paper formulas
def _sigmoid(t):
    return 1.0 / (1.0 + torch.exp(-t))


def _hard_sigmoid(t):
    return torch.clamp(t + 3.0, 0.0, 6.0) / 6.0


def _hard_swish(t):
    return t * torch.clamp(t + 3.0, 0.0, 6.0) / 6.0


def _relu(t):
    return torch.clamp(t, min=0.0)


def _spatial(x):
    return tuple(range(2, x.dim()))


def _per_channel(s, x):
    # (N, C) -> (N, C, 1, ...) against x
    return s.reshape(s.shape + (1,) * (x.dim() - 2))


def _matrix(conv):
    # A 1x1 convolution's weight (out, in, 1, ...) as the matrix W (out x in).
    return conv.weight.reshape(conv.weight.shape[0], conv.weight.shape[1])


def _bias(conv, n):
    return conv.bias if conv.bias is not None else torch.zeros(n, dtype=torch.float64)


def se_gate(x, w1, b1, w2, b2, squeeze="avg", gate=_sigmoid, act=_relu):
    """Hu et al. Eq. 2-3: s = sigma(W2 delta(W1 z + b1) + b2), shape (N, C)."""
    sp = _spatial(x)
    z = {"avg": x.mean(sp), "max": x.amax(sp), "avgmax": x.mean(sp) + x.amax(sp)}[squeeze]
    h = act(torch.einsum("nc,hc->nh", z, w1) + b1)
    return gate(torch.einsum("nh,ch->nc", h, w2) + b2)


def se_reference(x, *weights, **options):
    """Hu et al. Eq. 4: y = s * x."""
    return x * _per_channel(se_gate(x, *weights, **options), x)


def sse_gate(x, w, b):
    """Roy et al. Sec. 2.2: q = sigma(W_sq . u + b), one value per position, shape (N, 1, *spatial)."""
    return _sigmoid(torch.einsum("nc...,c->n...", x, w) + b).unsqueeze(1)


def sse_reference(x, w, b):
    return x * sse_gate(x, w, b)


def ese_reference(x, w, b):
    """Lee & Park Eq. 1-2: A = hsigmoid(W_C z + b)."""
    a = _hard_sigmoid(torch.einsum("nc,dc->nd", x.mean(_spatial(x)), w) + b)
    return x * _per_channel(a, x)


def eca_reference(x, w):
    """Wang et al.: omega_c = sigma(sum_j w_j y_{c + j - (k-1)/2}), zero outside the C channels."""
    k, c = w.numel(), x.shape[1]
    y = x.mean(_spatial(x))
    yp = torch.cat([y.new_zeros(y.shape[0], (k - 1) // 2), y, y.new_zeros(y.shape[0], (k - 1) // 2)], 1)
    omega = _sigmoid(sum(w[j] * yp[:, j : j + c] for j in range(k)))
    return x * _per_channel(omega, x)


def _same_conv(d, w, b):
    """A zero-padded 'same' convolution (N, I, *S) * (O, I, k, ...) -> (N, O, *S) by summing shifts."""
    k, dims = w.shape[-1], d.dim() - 2
    p = k // 2
    dp = F.pad(d, [p, p] * dims)
    out = b.reshape((1, -1) + (1,) * dims).expand(d.shape[0], w.shape[0], *d.shape[2:]).clone()
    for off in itertools.product(range(k), repeat=dims):
        shifted = tuple(slice(o, o + s) for o, s in zip(off, d.shape[2:], strict=True))
        window = dp[(slice(None), slice(None)) + shifted]
        out = out + torch.einsum("ni...,oi->no...", window, w[(slice(None), slice(None)) + off])
    return out


def cbam_reference(x, w0, b0, w1, b1, wf, bf):
    """Woo et al. Eq. 1-3: F' = Mc(F) F, F'' = Ms(F') F'."""
    sp = _spatial(x)

    def mlp(z):
        return torch.einsum("ch,nh->nc", w1, _relu(torch.einsum("hc,nc->nh", w0, z) + b0)) + b1

    mc = _sigmoid(mlp(x.mean(sp)) + mlp(x.amax(sp)))
    f1 = x * _per_channel(mc, x)
    d = torch.stack([f1.mean(1), f1.amax(1)], 1)  # [AvgPool(F'); MaxPool(F')]
    ms = _sigmoid(_same_conv(d, wf, bf))
    return f1 * ms


def coord_reference(x, m, train=False):
    """Hou et al. Eq. 4-9 (and their 3-D generalisation: one profile per axis)."""
    dims = x.dim() - 2
    if dims == 2:
        profiles = [x.mean(3), x.mean(2)]  # z^h (N, C, H), z^w (N, C, W)
    else:
        profiles = [x.mean((3, 4)), x.mean((2, 4)), x.mean((2, 3))]  # z^d, z^h, z^w
    z = torch.cat(profiles, 2)  # (N, C, sum S)
    f = torch.einsum("mc,ncl->nml", _matrix(m.conv1), z) + m.conv1.bias[:, None]
    if train:
        mean, var = f.mean((0, 2)), f.var((0, 2), unbiased=False)
    else:
        mean, var = m.bn1.running_mean, m.bn1.running_var
    f = (f - mean[:, None]) / torch.sqrt(var[:, None] + m.bn1.eps) * m.bn1.weight[:, None] + m.bn1.bias[:, None]
    f = _hard_swish(f)
    parts = torch.split(f, [p.shape[2] for p in profiles], 2)
    convs = ([m.conv_d] if dims == 3 else []) + [m.conv_h, m.conv_w]
    g = [
        _sigmoid(torch.einsum("cm,nms->ncs", _matrix(cv), fa) + cv.bias[:, None])
        for cv, fa in zip(convs, parts, strict=True)
    ]
    if dims == 2:
        return x * g[0][:, :, :, None] * g[1][:, :, None, :]
    return x * g[0][:, :, :, None, None] * g[1][:, :, None, :, None] * g[2][:, :, None, None, :]


# -------------------------------------------------------------------------------------------- SE
def _softsign_gate(t):
    return 0.5 + 0.5 * t / (1.0 + t.abs())


# (kwargs, reference options, expected hidden width written out by hand)
SE_CONFIGS = {
    "paper": ({}, {}, 1),
    "reduction4": ({"reduction": 4}, {}, 4),
    "max": ({"reduction": 4, "squeeze": "max"}, {"squeeze": "max"}, 4),
    "avgmax": ({"reduction": 4, "squeeze": "avgmax"}, {"squeeze": "avgmax"}, 4),
    "hard_sigmoid": ({"reduction": 4, "gate": "hard_sigmoid"}, {"gate": _hard_sigmoid}, 4),
    "tanh": ({"reduction": 4, "gate": "tanh"}, {"gate": torch.tanh}, 4),
    "relu_gate": ({"reduction": 4, "gate": "relu"}, {"gate": _relu}, 4),
    "callable_gate": ({"reduction": 4, "gate": _softsign_gate}, {"gate": _softsign_gate}, 4),
    "hidden": ({"hidden": 5}, {}, 5),
    "divisor8": ({"reduction": 6, "divisor": 8}, {}, 8),  # 16 // 6 = 2, rounded up to 8
    "no_bias": ({"reduction": 4, "bias": False}, {}, 4),
}


@pytest.mark.parametrize("dims,layout", LAYOUTS)
@pytest.mark.parametrize("config", list(SE_CONFIGS))
def test_se_matches_paper_formula(config, dims, layout):
    kwargs, ref_kw, hidden = SE_CONFIGS[config]
    se = _build("se", dims, **kwargs)
    assert se.fc1.weight.shape[0] == hidden
    if kwargs.get("bias") is False:
        assert se.fc1.bias is None and se.fc2.bias is None
    x = _input(dims, layout)
    w1, w2 = _matrix(se.fc1), _matrix(se.fc2)
    expected = se_reference(x, w1, _bias(se.fc1, hidden), w2, _bias(se.fc2, C), **ref_kw)
    _check(se, x, expected)  # the fast path (matrix products on the pooled (N, C))
    fast = se(x)
    se.fast = False
    _check(se, x, expected)  # the textbook path (1x1 convolutions on (N, C, 1, ...))
    torch.testing.assert_close(se(x), fast, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------- variants
@pytest.mark.parametrize("dims,layout", LAYOUTS)
def test_sse_matches_paper_formula(dims, layout):
    m = _build("sse", dims)
    x = _input(dims, layout)
    _check(m, x, sse_reference(x, _matrix(m.conv)[0], m.conv.bias[0]))


@pytest.mark.parametrize("combine", ["add", "max", "mul"])
@pytest.mark.parametrize("dims,layout", LAYOUTS)
def test_scse_matches_paper_formula(dims, layout, combine):
    m = _build("scse", dims, combine=combine)
    x = _input(dims, layout)
    s = _per_channel(se_gate(x, _matrix(m.cse.fc1), m.cse.fc1.bias, _matrix(m.cse.fc2), m.cse.fc2.bias), x)
    q = sse_gate(x, _matrix(m.sse.conv)[0], m.sse.conv.bias[0])
    expected = {"add": x * s + x * q, "max": torch.maximum(x * s, x * q), "mul": x * s * q}[combine]
    _check(m, x, expected)


def test_scse_defaults_follow_roy_et_al():
    m = senet.create_attention("scse", 64)
    assert m.combine == "add"
    assert m.cse.fc1.weight.shape[0] == 32  # the paper's C/2 bottleneck


@pytest.mark.parametrize("dims,layout", LAYOUTS)
def test_ese_matches_paper_formula(dims, layout):
    m = _build("ese", dims)
    x = _input(dims, layout)
    _check(m, x, ese_reference(x, _matrix(m.fc), m.fc.bias))


@pytest.mark.parametrize("kernel_size", [None, 5])
@pytest.mark.parametrize("dims,layout", LAYOUTS)
def test_eca_matches_paper_formula(dims, layout, kernel_size):
    m = _build("eca", dims, kernel_size=kernel_size)
    assert m.conv.bias is None
    assert m.conv.weight.numel() == (kernel_size or 3)  # psi(16) = |4/2 + 1/2|_odd = 3
    x = _input(dims, layout)
    _check(m, x, eca_reference(x, m.conv.weight.flatten()))


def _nearest_odd_ties_up(t):
    lower = 2 * math.floor((t - 1) / 2) + 1  # the largest odd number <= t
    return lower if t - lower < lower + 2 - t else lower + 2


def test_eca_kernel_size_is_the_nearest_odd_of_psi():
    for channels in range(1, 4097):
        t = abs(math.log2(channels) / 2 + 1 / 2)
        assert eca_kernel_size(channels) == _nearest_odd_ties_up(t), channels
    # ResNet-50's stages and a few hand-computed values of |log2(C)/2 + 1/2|_odd.
    assert [eca_kernel_size(c) for c in (16, 64, 128, 256, 512, 1024, 2048)] == [3, 3, 5, 5, 5, 5, 7]
    assert eca_kernel_size(256, gamma=1, beta=0) == 9  # t = 8, a tie between 7 and 9
    assert senet.create_attention("eca", 2048).conv.weight.numel() == 7


@pytest.mark.parametrize("bias,kernel_size", [(False, 7), (True, 3)])
@pytest.mark.parametrize("dims,layout", LAYOUTS)
def test_cbam_matches_paper_formula(dims, layout, bias, kernel_size):
    m = _build("cbam", dims, reduction=4, bias=bias, kernel_size=kernel_size)
    x = _input(dims, layout)
    zero = torch.zeros(1, dtype=torch.float64)
    b0, b1, bf = (cv.bias if bias else zero for cv in (m.fc1, m.fc2, m.conv))
    assert (m.fc1.bias is None) == (not bias)
    _check(m, x, cbam_reference(x, _matrix(m.fc1), b0, _matrix(m.fc2), b1, m.conv.weight, bf))


COORD_LAYOUTS = [case for case in LAYOUTS if case[0] >= 2]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dims,layout", COORD_LAYOUTS)
def test_coord_matches_paper_formula(dims, layout, train):
    m = _build("coord", dims).train(train)
    x = _input(dims, layout)
    _check(m, x, coord_reference(x, m, train=train))
