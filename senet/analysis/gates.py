"""Where an attention module's channel gate can be observed, whichever forward path computes it.

The paper's excitation s = sigma(W2 delta(W1 z)) (Hu et al. 2018, arXiv:1709.01507, Eq. 3) is the output
of the module's gate submodule (``gate``, sigma). A forward hook on the attention module itself would
miss it: with the fast path on, residual blocks call ``se.excite(u)`` and fuse the scale into the
residual sum (``senet.layers.fused``), so the module's own ``forward`` never runs. Every path (textbook,
matrix product, fused inference and fused training) calls ``se.gate`` exactly once per pass, so a hook
on the gate sees s without changing the model, and recomputing it from ``y / x`` (unstable at x = 0) is
not needed.

What a gate call gives, per module of ``senet.layers``:

- SE, eSE: (N, C); the textbook path (``fast=False``) (N, C, 1, 1). ECA: (N, 1, C).
- CBAM: two calls, the channel attention Mc (N, C) and the spatial attention Ms (N, 1, H, W); the
  channel gate is Mc, spatial maps are not channel gates and are skipped.
- scSE: its channel SE (``cse``) is observed; the spatial sSE is not a channel gate.
- Coordinate attention: one gate per spatial axis, g^h (N, C, H, 1) and g^w (N, C, W, 1). The mean of
  the full gate g^h_c(i) g^w_c(j) over positions is the product of the two means (it is separable), so
  the channel gate is that product, after ``parts`` = ``dims`` calls.
- sSE alone has no channel gate (one factor per position, shared by all channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..layers.spatial_se import SpatialSqueezeExcite
from ..retrofit import attention_paths

# Gate values beyond which a gate counts as unbounded (ReLU, identity): its histogram needs a range of
# its own (``UNBOUNDED_RANGE`` unless one is given).
_PROBE = 1e4
UNBOUNDED_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class GateSource:
    """The gate of one attention module, as the recorder hooks it.

    Attributes:
        label: The paper-style name (``SE_2_3``).
        path: The module's path in the model (``layer1.2.se``).
        kind: The attention module's class name.
        gate: The submodule whose output is (part of) the channel gate; the recorder hooks it.
        channels: C.
        parts: Channel-gate calls per forward pass whose spatial means multiply (coordinate attention:
            one per spatial axis; otherwise 1).
        value_range: (low, high) of the gate values, read off the gate itself (see ``gate_range``);
            ``None`` if the gate is unbounded.
    """

    label: str
    path: str
    kind: str
    gate: nn.Module
    channels: int
    parts: int
    value_range: tuple[float, float] | None


def find_gates(model: nn.Module) -> dict[str, GateSource]:
    """The channel gate of every labelled attention module of any model (zoo, retrofitted, loaded).

    Attention modules are found by the label every module of the zoo and of ``senet.retrofit`` carries
    (``senet.retrofit.attention_paths``), so models need no special case.

    Returns:
        ``{label: GateSource}`` in module order (the forward order of the zoo's networks); empty when the
        model has no attention module.

    Raises:
        ValueError: If an attention module has no channel gate, or two share one gate module (their
            gates could not be told apart).
    """
    paths = attention_paths(model)
    sources = {label: gate_source(label, path, model.get_submodule(path)) for label, path in paths.items()}
    owners: dict[int, str] = {}
    for label, source in sources.items():
        other = owners.setdefault(id(source.gate), label)
        if other != label:
            raise ValueError(
                f"{other} and {label} share one gate module, so their gates cannot be told apart; give each "
                "attention module a gate of its own (a name such as 'sigmoid', not a module instance)"
            )
    return sources


def gate_range(gate: nn.Module) -> tuple[float, float] | None:
    """The range of a gate's values, read off its outputs at -1e4 and +1e4.

    A monotone bounded gate reaches its limits there: the sigmoid and the hard sigmoid give (0, 1), tanh
    (-1, 1), retrofit's doubled gate 2 * sigmoid (0, 2). A gate that grows past 100 there (ReLU,
    identity) is unbounded: ``None``. A gate that cannot be probed (it fails on a (1, 2) tensor) is
    treated as unbounded too.
    """
    ref = next(iter(gate.parameters()), None)
    probe = torch.tensor([[-_PROBE, _PROBE]], dtype=ref.dtype if ref is not None else torch.float32)
    try:
        with torch.no_grad():
            out = gate(probe.to(ref.device) if ref is not None else probe).double().flatten().cpu()
    except Exception:  # noqa: BLE001 - an arbitrary user module; unknown means "unbounded"
        return None
    if out.numel() != 2 or not bool(torch.isfinite(out).all()):
        return None
    low, high = sorted(float(v) for v in out)
    if max(abs(low), abs(high)) > 100 or high <= low:
        return None
    return low, high


def _parts(module: nn.Module) -> int:
    # Coordinate attention calls its gate once per spatial axis (conv_h, conv_w and, in 3D, conv_d).
    axes = [name for name in ("conv_d", "conv_h", "conv_w") if isinstance(getattr(module, name, None), nn.Module)]
    return len(axes) if len(axes) >= 2 else 1


def gate_source(label: str, path: str, module: nn.Module) -> GateSource:
    """Finds the channel gate of one attention module.

    Args:
        label: Its paper-style name.
        path: Its path in the model.
        module: The attention module.

    Returns:
        The ``GateSource``.

    Raises:
        ValueError: If the module has no gate submodule with a channel count (e.g. sSE: a spatial gate
            only), naming the block.
    """
    owner = module.cse if isinstance(getattr(module, "cse", None), nn.Module) else module  # scSE: its channel SE
    gate, channels = getattr(owner, "gate", None), getattr(owner, "channels", None)
    if not isinstance(gate, nn.Module) or not isinstance(channels, int) or isinstance(module, SpatialSqueezeExcite):
        raise ValueError(
            f"{label} ({type(module).__name__} at {path or '<root>'}) has no channel gate to record (the analysis "
            "reads per-channel gates such as SE's s; a spatial attention has one factor per position)"
        )
    parts = _parts(module)
    value_range = gate_range(gate)
    if value_range is not None and parts > 1:  # a product of `parts` means of gate values
        low, high = value_range
        value_range = (low**parts, high**parts) if low >= 0 else None
    return GateSource(label, path, type(module).__name__, gate, channels, parts, value_range)


def channel_gate(output: Tensor, channels: int) -> Tensor | None:
    """One gate call's output as a channel gate (N, C), or ``None`` if it is not one (a spatial map).

    (N, C) stays; (N, C, *positions) is averaged over its positions (the textbook SE's (N, C, 1, 1),
    coordinate attention's (N, C, H, 1)); ECA's (N, 1, C) is squeezed. (N, 1, H, W) maps are spatial.
    """
    if output.dim() >= 2 and output.shape[1] == channels and (channels > 1 or output.dim() == 2):
        return output if output.dim() == 2 else output.flatten(2).mean(2)
    if output.dim() == 3 and output.shape[1] == 1 and output.shape[2] == channels:
        return output[:, 0]
    return None


def saturation_band(value_range: tuple[float, float], share: float) -> tuple[float, float]:
    """The thresholds below and above which a gate value counts as saturated: ``share`` of the range."""
    low, high = value_range
    width = high - low
    if not math.isfinite(width) or width <= 0:
        raise ValueError(f"a gate range must be increasing and finite, got {value_range}")
    return low + share * width, high - share * width
