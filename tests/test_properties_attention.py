"""Property-based tests of the attention modules (hypothesis): random shapes, dtypes, memory formats and options
against float64 arithmetic, and invalid options and inputs refused in one line (the contract: tests/properties.py).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from properties import (
    ACTIVATED,
    ATTENTION,
    BAD_REDUCTIONS,
    GATED,
    REDUCED,
    SETTINGS,
    examples,
    raises_clearly,
    valid_reductions,
)
from random_weights import randomize_attention

import senet
from senet.layers import list_activations, list_gates

DIMS = {name: (2, 3) if name == "coord" else (1, 2, 3) for name in ATTENTION}  # coord needs two axes

# Every floating dtype works on the CPU. Tolerance on max |y - y_ref| / max(|x|, |y_ref|), the reference
# being float64 arithmetic on the same (rounded) input and weights, so it measures the module's rounding
# alone: a few units of the dtype's epsilon (float32 1.2e-7, float16 9.8e-4, bfloat16 7.8e-3) times the
# depth of the computation (a mean, two small matrix products, a gate, a product).
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-5, torch.float16: 1e-2, torch.bfloat16: 6e-2}
DTYPES = list(TOLERANCE)
# Input magnitudes. float16 tops out at 65504 and its steps are 0.5 at 1000: its activations are kept at most
# 30 here (beyond, the excitation's matrix products lose digits in any implementation). The SE squeeze of
# large float16 maps (a sum of 81 values of 1000 overflows, their mean does not) has its own test below.
SCALES = {torch.float64: (0.0, 1e-3, 1.0, 1e3), torch.float32: (0.0, 1e-3, 1.0, 1e3),
          torch.bfloat16: (0.0, 1e-3, 1.0, 1e3), torch.float16: (0.0, 1e-3, 1.0, 30.0)}  # fmt: skip
LAYOUTS = ("contiguous", "channels_last", "strided")
CHANNELS_LAST = {2: torch.channels_last, 3: torch.channels_last_3d}


@st.composite
def attention_cases(draw):
    name = draw(st.sampled_from(ATTENTION))
    dims = draw(st.sampled_from(DIMS[name]))
    dtype = draw(st.sampled_from(DTYPES))
    kwargs: dict = {"dims": dims}
    if name in REDUCED and draw(st.booleans()):
        kwargs["reduction"] = draw(valid_reductions)
    if name in GATED and draw(st.booleans()):
        kwargs["gate"] = draw(st.sampled_from(list_gates()))
    if name in ACTIVATED and draw(st.booleans()):
        kwargs["activation"] = draw(st.sampled_from(list_activations()))
    if name == "se":
        kwargs.update(draw(st.fixed_dictionaries({}, optional={
            "squeeze": st.sampled_from(["avg", "max", "avgmax"]), "divisor": st.sampled_from([1, 4, 8]),
            "bias": st.booleans(), "record_gate": st.booleans(),
        })))  # fmt: skip
        if draw(st.booleans()):
            kwargs.pop("reduction", None)
            kwargs["hidden"] = draw(st.integers(1, 64))
    if name == "eca":
        kwargs.update(draw(st.fixed_dictionaries({}, optional={
            "kernel_size": st.sampled_from([1, 3, 5, 7, 9]), "gamma": st.floats(1, 4), "beta": st.floats(-1, 1),
        })))  # fmt: skip
    if name == "cbam":
        kwargs.update(draw(st.fixed_dictionaries({}, optional={
            "kernel_size": st.sampled_from([1, 3, 5, 7]), "bias": st.booleans(),
        })))  # fmt: skip
    if name == "ese":
        kwargs.update(draw(st.fixed_dictionaries({}, optional={"bias": st.booleans()})))
    if name == "scse":
        kwargs.update(draw(st.fixed_dictionaries({}, optional={"combine": st.sampled_from(["add", "max", "mul"])})))
    return {
        "name": name,
        "kwargs": kwargs,
        "channels": draw(st.integers(1, 96)),
        "batch": draw(st.integers(1, 3)),
        "sizes": draw(st.lists(st.integers(1, 9 if dims < 3 else 5), min_size=dims, max_size=dims)),
        "dtype": dtype,
        "layout": draw(st.sampled_from(LAYOUTS if dims > 1 else ("contiguous", "strided"))),
        "train": draw(st.booleans()),
        "scale": draw(st.sampled_from(SCALES[dtype])),
        "seed": draw(st.integers(0, 2**16)),
    }




def lay_out(x, layout, dims):
    if layout == "channels_last":
        return x.contiguous(memory_format=CHANNELS_LAST[dims])
    if layout == "strided":  # a view with gaps: every other element of a twice-as-long last axis
        wide = torch.zeros(*x.shape[:-1], 2 * x.shape[-1], dtype=x.dtype)
        wide[..., ::2] = x
        return wide[..., ::2]
    return x


@given(case=attention_cases())
@settings(SETTINGS, max_examples=examples(1500))
def test_attention_output_is_correct_for_any_shape_dtype_layout_and_options(case):
    name, kwargs, dtype, dims = case["name"], case["kwargs"], case["dtype"], case["kwargs"]["dims"]
    event(f"{name}, dims={dims}, {str(dtype).removeprefix('torch.')}, {case['layout']}")
    module = randomize_attention(senet.create_attention(name, case["channels"], **kwargs), case["seed"]).to(dtype)
    module.train(case["train"])
    g = torch.Generator().manual_seed(case["seed"])
    shape = (case["batch"], case["channels"], *case["sizes"])
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * case["scale"]).to(dtype)
    x = lay_out(x, case["layout"], dims)
    reference = copy.deepcopy(module).double()  # the same rounded weights, float64 arithmetic
    with torch.no_grad():
        y = module(x)
        expected = reference(x.double())
        if name == "se":  # the textbook module (pooling, 1x1 convolutions, multiply) in float64
            textbook = copy.deepcopy(reference)
            textbook.fast = False
            torch.testing.assert_close(textbook(x.double()), expected, rtol=1e-10, atol=1e-10)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(expected).all()  # finite input, finite exact output
    # An output beyond the dtype's range (float16's 65504: unbounded gates squared by CBAM, say) rounds to
    # infinity, rightly: such a case is not valid input for that dtype.
    assume(expected.abs().max().item() < torch.finfo(dtype).max / 4)
    assert torch.isfinite(y).all(), "non-finite output from finite input"
    if case["layout"] == "channels_last":
        assert y.is_contiguous(memory_format=CHANNELS_LAST[dims]), "memory format not kept"
    if name == "coord" and case["train"] and dtype in (torch.float16, torch.bfloat16):
        # Batch norm over few positions divides by sqrt(var + 1e-5): rounding noise in a near-constant
        # batch is amplified up to 300-fold. That is batch norm's conditioning, not this module's.
        return
    magnitude = max(x.double().abs().max().item(), expected.abs().max().item(), 1e-30)
    error = (y.double() - expected).abs().max().item() / magnitude
    # The excitation's pre-activations grow with the input (|W z| ~ |x|), and a gate's rounding error with
    # them: beyond |x| ~ 1 the bound grows in proportion. Where it would pass 0.5 (bfloat16 at |x| = 1000,
    # whose steps are 4 there) the dtype cannot say anything about the gate, and only the checks above hold.
    tolerance = TOLERANCE[dtype] * max(1.0, case["scale"])
    if tolerance < 0.5:
        assert error <= tolerance, f"relative error {error:.3g} > {tolerance:g}"
    if kwargs.get("record_gate"):
        assert module.last_gate is not None and module.last_gate.shape == shape[:2]


@pytest.mark.parametrize("name", ["se", "scse"])
def test_float16_squeeze_of_a_large_map_does_not_overflow(name):
    """A 9x9 map of +-1000 sums to 81000 > 65504 (float16's largest): the mean is what is representable."""
    module = randomize_attention(senet.create_attention(name, 8), 0).half().eval()
    x = torch.full((1, 8, 9, 9), 1000.0, dtype=torch.float16)
    x[:, ::2] = -1000.0
    with torch.no_grad():
        y, expected = module(x), copy.deepcopy(module).double()(x.double())
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.double(), expected, rtol=1e-2, atol=1e-2 * 1000)


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("name", ATTENTION)
def test_an_empty_batch_passes_through(name, train):
    for dims in DIMS[name]:
        module = senet.create_attention(name, 8, dims=dims).train(train)
        x = torch.randn(0, 8, *[3] * dims)
        assert module(x).shape == x.shape


# Invalid values for each argument (any of them in a call must give a clear error).
BAD_CHANNELS = [0, -3, 2.0, True, "8", None, 1.5]
BAD_DIMS = [0, 4, -1, 2.0, True, "2", None]
BAD_GATES = ["sigmoidd", "", 3, 2.5]
BAD_KERNELS = [0, 2, -1, -3, 2.5, True, "3"]


@st.composite
def bad_attention_calls(draw):
    name = draw(st.sampled_from(ATTENTION))
    channels, kwargs = draw(st.integers(1, 32)), {}
    choices = ["channels", "dims", "unknown keyword"]
    choices += ["reduction"] if name in REDUCED else []
    choices += ["gate"] if name in GATED else []
    choices += ["activation"] if name in ACTIVATED else []
    choices += ["kernel_size"] if name in ("eca", "cbam") else []
    choices += {"se": ["squeeze", "divisor", "hidden"], "scse": ["combine"], "eca": ["gamma", "beta"]}.get(name, [])
    what = draw(st.sampled_from(choices))
    if what == "channels":
        channels = draw(st.sampled_from(BAD_CHANNELS))
    elif what == "dims":
        kwargs["dims"] = draw(st.sampled_from(BAD_DIMS + ([1] if name == "coord" else [])))
    elif what == "unknown keyword":
        kwargs[draw(st.sampled_from(["bogus", "reductions", "channel", "kernel"]))] = 3
    elif what == "reduction":
        kwargs["reduction"] = draw(st.sampled_from(BAD_REDUCTIONS))
    elif what in ("gate", "activation"):
        kwargs[what] = draw(st.sampled_from(BAD_GATES))
    elif what == "kernel_size":
        kwargs["kernel_size"] = draw(st.sampled_from(BAD_KERNELS))
    elif what == "squeeze":
        kwargs["squeeze"] = draw(st.sampled_from(["mean", "AVG", "", None]))
    elif what in ("divisor", "hidden"):
        kwargs[what] = draw(st.sampled_from([0, -8, 2.0, True, "8"]))
    elif what == "combine":
        kwargs["combine"] = draw(st.sampled_from(["sum", "", None]))
    elif what == "gamma":
        kwargs["gamma"] = draw(st.sampled_from([0, -2, True, "2", None, float("nan"), float("inf"), 1e-300]))
    elif what == "beta":
        kwargs["beta"] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf"), "1", True, None, 1e300]))
    return name, channels, kwargs


@given(call=bad_attention_calls())
@settings(SETTINGS, max_examples=examples(400))
def test_invalid_attention_options_are_clear_errors(call):
    name, channels, kwargs = call
    error = raises_clearly(senet.create_attention, name, channels, **kwargs)
    event(f"{type(error).__name__}")


@st.composite
def bad_inputs(draw):
    name = draw(st.sampled_from(ATTENTION))
    dims = draw(st.sampled_from(DIMS[name]))
    channels = draw(st.integers(1, 16))
    good = (draw(st.integers(1, 2)), channels, *draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims)))
    kind = draw(st.sampled_from(["channels", "ndim", "integer", "bool", "complex", "array", "list", "empty"]))
    if kind == "channels":
        x = torch.randn(good[0], channels + draw(st.integers(1, 4)), *good[2:])
    elif kind == "ndim":  # one axis fewer or more than the module's (N, C, *spatial), down to a 0-D tensor
        ndim = draw(st.sampled_from([d for d in range(0, 7) if d != dims + 2]))
        x = torch.randn((good + (2,) * 4)[:ndim])
    elif kind == "integer":
        x = torch.ones(good, dtype=draw(st.sampled_from([torch.int64, torch.int32, torch.uint8])))
    elif kind == "bool":
        x = torch.ones(good, dtype=torch.bool)
    elif kind == "complex":
        x = torch.ones(good, dtype=torch.complex64)
    elif kind == "array":
        x = np.ones(good, dtype=np.float32)
    elif kind == "list":
        x = torch.ones(good).tolist()
    else:
        sizes = list(good[2:])
        sizes[draw(st.integers(0, dims - 1))] = 0
        x = torch.ones(good[0], channels, *sizes)
    return name, dims, channels, x


@given(case=bad_inputs())
@settings(SETTINGS, max_examples=examples(300))
def test_inputs_that_do_not_fit_are_clear_errors(case):
    name, dims, channels, x = case
    module = senet.create_attention(name, channels, dims=dims)
    error = raises_clearly(module, x)
    event(f"{type(error).__name__}")
    if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() == dims + 2 and x.shape[1] != channels:
        assert str(channels) in str(error)  # names what was expected
