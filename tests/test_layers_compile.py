"""TorchScript, torch.compile and reduced precision give what eager float32 gives."""

import pytest
import torch

import senet

C = 16
NAMES = ["cbam", "coord", "eca", "ese", "scse", "se", "sse"]
CASES = [(name, dims) for name in NAMES for dims in (1, 2, 3) if not (name == "coord" and dims == 1)]
FORMATS = {1: torch.contiguous_format, 2: torch.channels_last, 3: torch.channels_last_3d}
# TorchScript is deprecated upstream but still how many deployments load models; keep it working.
quiet_jit = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:DeprecationWarning")


def _module(name, dims=2, **kw):
    torch.manual_seed(0)
    m = senet.create_attention(name, C, dims=dims, **kw)
    with torch.no_grad():  # BN away from identity, so eval mode means something
        for n, b in m.named_buffers():
            if n.endswith("running_var"):
                b.uniform_(0.5, 1.5)
            elif n.endswith("running_mean"):
                b.normal_(0, 0.3)
    return m.eval()


def _input(dims, batch=2, layout=torch.contiguous_format):
    torch.manual_seed(1)
    return torch.randn(batch, C, *[5 + i for i in range(dims)]).to(memory_format=layout)


@quiet_jit
@pytest.mark.parametrize("name,dims", CASES)
def test_torchscript_matches_eager(name, dims):
    m = _module(name, dims)
    scripted = torch.jit.script(m)
    for layout in {torch.contiguous_format, FORMATS[dims]}:
        x = _input(dims, layout=layout)
        y = scripted(x)
        torch.testing.assert_close(y, m(x), rtol=1e-6, atol=1e-6)
        assert y.is_contiguous(memory_format=layout)
    with pytest.raises(Exception, match="channels"):  # the input check survives scripting
        scripted(torch.randn(2, C + 1, *[4] * dims))


@quiet_jit
def test_torchscript_keeps_se_record_gate():
    scripted = torch.jit.script(senet.SqueezeExcite(C, reduction=4, record_gate=True))
    scripted(_input(2))
    assert scripted.last_gate is not None and scripted.last_gate.shape == (2, C)


@pytest.mark.parametrize("name", NAMES)
def test_torch_compile_matches_eager(name):
    m = _module(name, 2)
    compiled = torch.compile(m, backend="eager")
    x = _input(2, layout=torch.channels_last)
    y = compiled(x)
    torch.testing.assert_close(y, m(x), rtol=1e-6, atol=1e-6)
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_torch_compile_se_has_no_graph_break():
    # fullgraph=True fails on any graph break; aot_eager also traces the backward.
    se = _module("se", 2, reduction=4)
    compiled = torch.compile(se, backend="aot_eager", fullgraph=True)
    x = _input(2).requires_grad_()
    y = compiled(x)
    torch.testing.assert_close(y, se(x), rtol=1e-6, atol=1e-6)
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_eager,) = torch.autograd.grad(se(x).sum(), x)
    torch.testing.assert_close(g, g_eager, rtol=1e-5, atol=1e-6)


# bfloat16 keeps 8 bits of mantissa (~0.4 % per rounding), float16 11 bits.
TOLERANCES = {torch.bfloat16: 5e-2, torch.float16: 1e-2}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("name,dims", CASES)
def test_reduced_precision_is_finite_and_close_to_float32(name, dims, dtype):
    m = _module(name, dims)
    x = _input(dims, layout=FORMATS[dims])
    expected = m(x)
    y = m.to(dtype)(x.to(dtype))
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert y.is_contiguous(memory_format=FORMATS[dims])
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(y.float(), expected, rtol=tol, atol=tol)
