"""Property-based tests: the attention modules, ``create_model`` and the checkpoint converters driven with
random shapes, dtypes, memory formats and options (hypothesis).

The contract under test: every call either returns a correct result, or raises a ``ValueError`` /
``TypeError`` with a non-empty one-line message; never another exception, a hang, a NaN from finite
input, or a silently wrong shape.

Runs are derandomized (a fixed seed per test, no example database), so CI sees the same examples every
time. Each test's number of examples is given for the 'thorough' hypothesis profile (``make test-all``,
``--hypothesis-profile thorough``); the default profile, 'fast' (``make test``), runs a quarter of them
(tests/conftest.py registers both).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from sweep import HUGE

import senet
from senet.convert import convert_state_dict, get_naming
from senet.layers import list_activations, list_gates
from senet.models import create_model, get_model_entry, list_models
from senet.utils.skeleton import meta_skeleton

SETTINGS = settings(
    derandomize=True,  # reproducible: the same examples on every run and machine
    database=None,  # nothing written to .hypothesis/, nothing replayed from an earlier run
    deadline=None,  # shared CPUs: timing varies; a hang still fails through pytest's own limits
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,
)


def examples(thorough: int) -> int:
    """The number of examples for the loaded profile: ``thorough`` under 'thorough' (max_examples 100), an
    eighth of it under 'fast' (max_examples 12), never fewer than 10."""
    return max(10, thorough * settings.default.max_examples // 100)


def assert_clear_error(error: BaseException) -> None:
    """A ValueError/TypeError whose message is one non-empty line."""
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    message = str(error).strip()
    assert message and "\n" not in message, repr(message)


def raises_clearly(fn, *args, **kwargs) -> BaseException:
    """Calls ``fn``, which must fail with a clear error; returns the error."""
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any other type is the failure being tested for
        assert_clear_error(e)
        return e
    raise AssertionError(f"{getattr(fn, '__name__', fn)}({args}, {kwargs}) accepted invalid input")


# ---------------------------------------------------------------------------------------------------------
# Attention modules

ATTENTION = senet.list_attention()
DIMS = {name: (2, 3) if name == "coord" else (1, 2, 3) for name in ATTENTION}  # coord needs two axes
REDUCED = {"se", "cbam", "coord", "scse"}  # take reduction=
GATED = {"se", "sse", "ese", "eca", "cbam", "coord"}  # take gate=
ACTIVATED = {"se", "cbam", "coord"}  # take activation=

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

valid_reductions = st.one_of(
    st.integers(1, 128),
    st.floats(1 / 64, 200.0, allow_nan=False, allow_infinity=False),
    st.sampled_from([1 / 64, 0.5, 1.5, 16.0]),
)


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


def randomize(module, seed):
    """Non-trivial values everywhere (default inits leave BN at identity and some biases at 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * torch.randn(b.shape, generator=g, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=b.dtype))
    return module


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
    module = randomize(senet.create_attention(name, case["channels"], **kwargs), case["seed"]).to(dtype)
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
    module = randomize(senet.create_attention(name, 8), 0).half().eval()
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
BAD_REDUCTIONS = [0, -1, -0.5, float("nan"), float("inf"), -float("inf"), True, False, "16", None, [16], 1e-300]
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


# ---------------------------------------------------------------------------------------------------------
# create_model

MODELS = [n for n in list_models() if n not in HUGE]  # ResNet-1202: swept in the slow tier (tests/sweep.py)
CIFAR = {n for n in MODELS if get_model_entry(n).input_size[1] == 32}
MISSING = object()  # the option is not passed at all


# Values that are wrong whatever the network: a call holding one of them must be refused.
BAD_MODEL_OPTIONS = {
    "name": ["resnet5O", "se_resnet", "", "RESNET50"],
    "num_classes": [-1, True, 2.5, "10", None],
    "in_chans": [0, -1, True, 3.0, "3"],
    "attention": ["sex", 3],
    "reduction": BAD_REDUCTIONS,
    "se_stages": ["23", 2.5, [True], [2.0], 3, [0], [9], [2, 9]],
    "se_placement": ["sideways", "", None, "Standard"],
    "unknown option": ["bogus_option", "drop_rat", "num_class", "attention_kwarg"],
}


@st.composite
def model_calls(draw):
    """A registered network with random valid options (two calls in three), or with one option made
    invalid, or with options that may not fit together (e.g. a gate for an attention without one)."""
    bad = draw(st.one_of(st.none(), st.none(), st.sampled_from([*BAD_MODEL_OPTIONS, "conflict"])))
    name = draw(st.sampled_from(MODELS))
    entry = get_model_entry(name)
    options = {}

    def maybe(key, strategy):
        if draw(st.booleans()):
            options[key] = draw(strategy)

    maybe("num_classes", st.integers(0, 20))
    maybe("in_chans", st.integers(1, 4))
    maybe("attention", st.sampled_from([*ATTENTION, None, "none"]))
    attention = options.get("attention", entry.attention)
    if attention in REDUCED:
        maybe("reduction", valid_reductions)
    if attention in GATED:
        maybe("attention_kwargs", st.sampled_from([{"gate": "tanh"}, {"gate": "hard_sigmoid"}, {}]))
    if draw(st.integers(0, 3)) == 0:  # attention in a subset of the stages the network has
        # Stages 2-4 exist in every network but the Inception ones, whose stem spans stages 1-2 (3, 4, 5).
        stages = (3, 4, 5) if "inception" in name else (2, 3, 4)
        options["se_stages"] = draw(st.lists(st.sampled_from(stages), max_size=2, unique=True))
    maybe("se_placement", st.sampled_from(entry.placements))
    if bad == "name":
        name = draw(st.sampled_from(BAD_MODEL_OPTIONS["name"]))
    elif bad == "unknown option":
        options[draw(st.sampled_from(BAD_MODEL_OPTIONS[bad]))] = 1
    elif bad == "conflict":
        key, value = draw(st.sampled_from([
            ("reduction", 8), ("attention_kwargs", {"gate": "tanh"}), ("attention_kwargs", {"kernel_size": 3}),
            ("se_placement", "after_3x3"), ("se_stages", [1, 5]), ("attention_kwargs", {"gate": "nope"}),
        ]))  # fmt: skip
        options[key] = value
    elif bad is not None:
        options[bad] = draw(st.sampled_from(BAD_MODEL_OPTIONS[bad]))
    return name, options, "none" if bad is None else bad


@given(call=model_calls())
@settings(SETTINGS, max_examples=examples(200))
def test_create_model_builds_a_working_network_or_refuses_clearly(call):
    name, options, bad = call
    real = name in CIFAR and options.get("in_chans", 3) in range(1, 5)
    try:
        if real:
            model = create_model(name, **options)
        else:
            with meta_skeleton():
                model = create_model(name, **options)
    except Exception as e:  # noqa: BLE001
        assert_clear_error(e)
        assert bad != "none", f"valid options refused: {name}, {options}: {e}"
        event(f"{bad} refused ({type(e).__name__}): {re.sub(r'[0-9]+', 'N', str(e))[:70]}")
        return
    event("built and ran" if real else "built and ran on the meta device")
    assert bad in ("none", "conflict"), f"accepted an invalid {bad}: {options}"
    entry = get_model_entry(name)
    num_classes = options.get("num_classes", entry.num_classes)
    in_chans = options.get("in_chans", 3)
    assert model.default_input_size == (in_chans, *entry.input_size[1:])
    batch = 2
    model.eval()
    with torch.no_grad():
        if real:
            x = torch.randn(batch, *model.default_input_size, generator=torch.Generator().manual_seed(0))
            y = model(x)
            assert torch.isfinite(y).all()
        else:
            with meta_skeleton():
                y = model(torch.empty(batch, *model.default_input_size))
    # Without a classifier the output is the head's last hidden layer where the head has one (VGG's fc7,
    # MobileNetV3's 1280-wide layer: ``head_hidden_size``, as timm names it), else the pooled features.
    width = getattr(model, "head_hidden_size", model.num_features)
    assert y.shape == (batch, num_classes if num_classes else width), (y.shape, options)


# ---------------------------------------------------------------------------------------------------------
# Converters: public listings of keys and shapes (tests/reference/checkpoint-keys), as meta tensors

KEYS_DIR = Path(__file__).resolve().parent / "reference" / "checkpoint-keys"
LISTINGS = {
    "legacy_seresnet18": ("legacy", "se_resnet18"),
    "legacy_seresnet50": ("legacy", "se_resnet50"),
    "resnet50": ("modern", "resnet50"),
    "seresnext50_32x4d": ("modern", "se_resnext50_32x4d"),
    "tv_resnet18": ("modern", "resnet18"),
    "tv_vgg16_bn": ("torchvision", "vgg16_bn"),
    "tv_densenet121": ("torchvision", "densenet121"),
    "tv_mobilenet_v3_large": ("torchvision", "mobilenet_v3_large"),
    "tv_efficientnet_b0": ("torchvision", "efficientnet_b0"),
    "inception_resnet_v2": ("tf_slim", "inception_resnet_v2"),
}
_CACHE: dict = {}


def listing(name):
    if name not in _CACHE:
        rows = []
        for line in (KEYS_DIR / f"{name}.txt").read_text().splitlines()[1:]:
            key, shape = line.split("\t")
            rows.append((key, tuple(int(s) for s in re.findall(r"\d+", shape))))
        _CACHE[name] = rows
    return _CACHE[name]


def model_keys(name):
    if ("model", name) not in _CACHE:
        with meta_skeleton():
            _CACHE["model", name] = list(create_model(name).state_dict())
    return _CACHE["model", name]


def meta(rows):
    return {k: torch.empty(s, device="meta") for k, s in rows}


@st.composite
def damaged_listings(draw):
    name = draw(st.sampled_from(sorted(LISTINGS)))
    rows = list(listing(name))
    kind = draw(st.sampled_from(["shuffle", "drop", "rename", "reshape", "extra", "module prefix", "non-str key"]))
    if kind == "shuffle":
        rows = draw(st.permutations(rows))
    elif kind == "drop":
        drop = set(draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=5)))
        rows = [r for i, r in enumerate(rows) if i not in drop]
    elif kind == "rename":
        i = draw(st.integers(0, len(rows) - 1))
        key, shape = rows[i]
        how = draw(st.sampled_from(["suffix", "typo", "case", "prefix", "empty"]))
        if how == "suffix":
            new = key + draw(st.sampled_from(["_", ".0", "x"]))
        elif how == "typo":
            j = draw(st.integers(0, len(key) - 1))
            new = key[:j] + ("#" if key[j] != "#" else "@") + key[j + 1 :]
        elif how == "case":
            new = key.upper() if key.upper() != key else key + "X"
        elif how == "prefix":
            new = draw(st.sampled_from(["model.", "backbone.", "encoder."])) + key
        else:
            new = ""
        assume(new not in dict(rows))
        rows[i] = (new, shape)
    elif kind == "reshape":
        i = draw(st.integers(0, len(rows) - 1))
        key, shape = rows[i]
        rows[i] = (key, (*shape[:-1], shape[-1] + draw(st.integers(1, 3))) if shape else (2,))
    elif kind == "extra":
        rows.insert(draw(st.integers(0, len(rows))), (draw(st.sampled_from(["extra.weight", "head.fc.bias"])), (3,)))
    elif kind == "module prefix":
        rows = [(f"module.{k}", s) for k, s in rows]
    state = meta(rows)
    if kind == "non-str key":
        state[draw(st.sampled_from([0, 1.5, None, ("a",)]))] = torch.empty(1, device="meta")
    return name, kind, state


@given(case=damaged_listings())
@settings(SETTINGS, max_examples=examples(200))
def test_convert_gives_the_exact_model_keys_or_refuses_in_one_line(case):
    name, kind, state = case
    naming, model = LISTINGS[name]
    try:
        out = convert_state_dict(state, model=model)
    except Exception as e:  # noqa: BLE001
        assert_clear_error(e)
        event(f"{kind}: refused")
        assert isinstance(e, ValueError)
        assert kind not in ("shuffle", "module prefix"), f"refused an intact state dict ({kind}): {e}"
        return
    event(f"{kind}: converted")
    expected = model_keys(model)
    assert kind in ("shuffle", "module prefix", "drop"), f"accepted a damaged state dict ({kind})"
    if kind == "drop":  # only num_batches_tracked may be missing: BatchNorm fills it in on a strict load
        assert set(expected) - set(out) <= {k for k in expected if k.endswith("num_batches_tracked")}
        assert list(out) == [k for k in expected if k in out]
    else:
        assert list(out) == expected
    for value in out.values():
        assert any(value is v for v in state.values())  # the same tensors, renamed, never copied


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_convert_round_trips_exactly(name):
    naming, model = LISTINGS[name]
    public = meta(listing(name))
    ours = convert_state_dict(public, model=model)
    back = convert_state_dict(ours, "ours", target=naming, model=model)
    assert list(back) == list(public) and all(back[k] is public[k] for k in public)
    # Between two public namings, where both cover the network (the ResNets: legacy <-> modern).
    family = type(model_builder(model)).__name__
    for other in ("legacy", "modern", "torchvision", "tf_slim"):
        if other != naming and family in get_naming(other).families:
            there = convert_state_dict(public, naming, target=other, model=model)
            again = convert_state_dict(there, other, target=naming, model=model)
            assert list(again) == list(public) and all(again[k] is public[k] for k in public)


def model_builder(name):
    if ("builder", name) not in _CACHE:
        with meta_skeleton():
            _CACHE["builder", name] = create_model(name)
    return _CACHE["builder", name]


@given(
    model=st.one_of(st.sampled_from(["resnet5O", "", "not a model"]), st.just(3), st.just(None)),
    source=st.sampled_from(["auto", "legacyy", "timm", "", "ours"]),
    target=st.sampled_from(["ours", "modernn", "torchvision"]),
)
@settings(SETTINGS, max_examples=examples(60))
def test_convert_with_bad_names_refuses_clearly(model, source, target):
    state = meta(listing("tv_resnet18"))
    event(type(raises_clearly(convert_state_dict, state, source, model=model, target=target)).__name__)
