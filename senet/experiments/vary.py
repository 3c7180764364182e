"""What ``senet ablate`` varies: one option of the SE block over a list of values, and the run changes of
each value.

The options (``VARY_KEYS``) and what a value sets:

* ``reduction``: r, the SE reduction ratio (hidden width C // r).
* ``squeeze``: the squeeze operator, 'avg' (the paper), 'max' or 'avgmax'.
* ``gate``: the excitation's gate sigma: 'sigmoid' (the paper), 'tanh', 'relu', 'hard_sigmoid'.
* ``placement``: where SE sits in a residual block: 'standard', 'pre', 'post', 'identity', 'after_3x3'.
* ``stages``: the stages carrying SE (the stem is stage 1): '2', '3', '2+3', 'all' or 'none'.
* ``attention``: the attention module itself: 'se', 'eca', 'cbam', ... or 'none'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._choices import PLACEMENTS
from .._validation import did_you_mean
from ..layers import list_attention
from .grid import Setting

VARY_KEYS = ("reduction", "squeeze", "gate", "placement", "stages", "attention")


@dataclass(frozen=True)
class Vary:
    """What an ablation varies: one option over a list of values, spelled as the command line takes them.

    Attributes:
        key: One of ``VARY_KEYS``.
        values: The values, canonical (``reduction`` '8.0' is '8'; ``stages`` '3+2' is '2+3').
    """

    key: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.key}={','.join(self.values)}"


def parse_vary(text: str) -> Vary:
    """Parses and checks ``key=v1,v2,...``.

    Raises:
        ValueError: In one line, on an unknown key, an empty or repeated value, or a value the key does
            not take (listing the valid ones).
    """
    key, sep, rest = str(text).partition("=")
    key = key.strip().lower()
    if not sep and key in VARY_KEYS:
        raise ValueError(f"--vary {key} needs its values: --vary {key}=V1,V2,... (got {text!r})")
    if not sep or key not in VARY_KEYS:
        hint = did_you_mean(key, VARY_KEYS, n=2) if key else ""
        raise ValueError(f"--vary takes KEY=V1,V2,... with KEY one of {', '.join(VARY_KEYS)}; got {text!r}{hint}")
    raw = [v.strip() for v in rest.split(",")]
    if not rest.strip() or any(not v for v in raw):
        raise ValueError(f"--vary {key}= needs a comma-separated list of values without empty ones, got {text!r}")
    values = tuple(_canonical(key, v) for v in raw)
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"--vary {key}: {', '.join(repeated)} is given more than once")
    return Vary(key, values)


def _canonical(key: str, value: str) -> str:
    """One value of ``key`` as the table and the folder names spell it; a ``ValueError`` if the key cannot take it."""
    if key == "reduction":
        try:
            r = float(value)
        except ValueError:
            r = math.nan
        if not math.isfinite(r) or r <= 0:
            raise ValueError(f"--vary reduction: the reduction ratio r must be a positive number, got {value!r}")
        return f"{r:g}"
    if key == "stages":
        if value.lower() in ("all", "none"):
            return value.lower()
        parts = value.split("+")
        if not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
            raise ValueError(f"--vary stages: a value is 'all', 'none', a stage number or stages joined by '+' "
                             f"(e.g. 2+3; the stem is stage 1), got {value!r}")  # fmt: skip
        return "+".join(str(s) for s in sorted({int(p) for p in parts}))
    value = value.lower()
    if key == "placement" and value not in PLACEMENTS:
        raise ValueError(f"--vary placement: unknown placement {value!r}{did_you_mean(value, PLACEMENTS, n=2)} "
                         f"(valid: {', '.join(PLACEMENTS)})")  # fmt: skip
    if key == "attention" and value != "none":
        if value not in list_attention():
            hint = did_you_mean(value, list_attention(), n=2)
            raise ValueError(f"--vary attention: unknown attention {value!r}{hint} (valid: "
                             f"{', '.join(list_attention())}, none)")  # fmt: skip
    return value  # squeeze and gate: the SE module checks them, naming the valid ones (ablation_settings)


def setting_of(key: str, value: str) -> Setting:
    """The run changes of ``key = value``."""
    label, name = value, f"{key}-{value}"
    if key == "reduction":
        return Setting(name, label, changes=(("reduction", float(value)),))
    if key == "attention":
        return Setting(name, label, changes=(("attention", value),))
    if key in ("squeeze", "gate"):
        return Setting(name, label, model_options=(("attention_kwargs", {key: value}),))
    if key == "placement":
        return Setting(name, label, model_options=(("se_placement", value),))
    if value == "all":  # stages
        return Setting(name, label)
    stages = [] if value == "none" else [int(s) for s in value.split("+")]
    return Setting(name, label, model_options=(("se_stages", stages),))
