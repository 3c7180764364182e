"""What the property-based tests share: hypothesis settings, the number of examples per profile, the
check of a clear error, and the attention modules' options (used by the attention and create_model tests).

The contract under test (tests/test_properties_*.py): every call either returns a correct result, or raises
a ``ValueError`` / ``TypeError`` with a non-empty one-line message; never another exception, a hang, a NaN
from finite input, or a silently wrong shape.

Runs are derandomized (a fixed seed per test, no example database), so CI sees the same examples every
time. Each test's number of examples is given for the 'thorough' hypothesis profile (``make test-all``,
``--hypothesis-profile thorough``); the default profile, 'fast' (``make test``), runs an eighth of them, at
least 10 (tests/conftest.py registers both).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import senet

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


# The attention modules and which options each takes.
ATTENTION = senet.list_attention()
REDUCED = {"se", "cbam", "coord", "scse"}  # take reduction=
GATED = {"se", "sse", "ese", "eca", "cbam", "coord"}  # take gate=
ACTIVATED = {"se", "cbam", "coord"}  # take activation=

valid_reductions = st.one_of(
    st.integers(1, 128),
    st.floats(1 / 64, 200.0, allow_nan=False, allow_infinity=False),
    st.sampled_from([1 / 64, 0.5, 1.5, 16.0]),
)

# Values no attention module accepts as its reduction ratio.
BAD_REDUCTIONS = [0, -1, -0.5, float("nan"), float("inf"), -float("inf"), True, False, "16", None, [16], 1e-300]
