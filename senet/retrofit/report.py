"""What a retrofit did: the modules inserted, where, and what they cost."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

_FORMATS = ("markdown", "table", "json")


@dataclass(frozen=True)
class InsertedAttention:
    """One inserted attention module.

    Attributes:
        label: Its paper-style name ``SE_<stage>_<block>``.
        path: Its ``state_dict`` prefix (``'layer1.0.se'``).
        place: The block or layer it was inserted at, as ``where`` names it.
        position: Where exactly, in words.
        channels: C, the channels it attends over.
        params: Its parameters.
        macs: Its multiply-adds at the report's input size (``None`` if the model could not be profiled).
    """

    label: str
    path: str
    place: str
    position: str
    channels: int
    params: int
    macs: int | None


@dataclass(frozen=True)
class RetrofitReport:
    """The result of ``senet.retrofit``: the inserted modules and the network's cost before and after.

    Attributes:
        model: The network's class name.
        attention: The attention inserted (its registered name or class name).
        placement: The placement in residual blocks.
        identity_init: Whether the modules start as the identity (zero last layer, doubled gate).
        method: 'fx' (the whole model traced) or 'structural' (module by module).
        note: Why the structural path was taken ('' otherwise).
        inserted: The modules, in forward order.
        params_before: Parameters before.
        params_after: Parameters after.
        input_size: The (C, H, W) multiply-adds are counted at (``senet.profile``, batch 1).
        macs_before: Multiply-adds before (``None`` if the model could not be profiled).
        macs_after: Multiply-adds after.
        macs_note: Why multiply-adds are missing ('' otherwise).
        input_size_source: Where ``input_size`` came from: 'input_size argument' or
            'model.default_input_size' ('' when there was none).
    """

    model: str
    attention: str
    placement: str
    identity_init: bool
    method: str
    note: str
    inserted: tuple[InsertedAttention, ...]
    params_before: int
    params_after: int
    input_size: tuple[int, ...] | None
    macs_before: int | None
    macs_after: int | None
    macs_note: str = ""
    input_size_source: str = ""

    @property
    def params_added(self) -> int:
        """Parameters the attention modules add."""
        return self.params_after - self.params_before

    @property
    def macs_added(self) -> int | None:
        """Multiply-adds the attention modules add (``None`` if not measured)."""
        if self.macs_before is None or self.macs_after is None:
            return None
        return self.macs_after - self.macs_before

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON), totals included."""
        data = asdict(self)
        data.update(params_added=self.params_added, macs_added=self.macs_added)
        return data

    def summary(self) -> str:
        """One paragraph: what was inserted, how it was found, what it costs."""
        init = "identity init (zero last layer, gate 2*sigmoid)" if self.identity_init else "default init"
        found = "torch.fx trace" if self.method == "fx" else f"structural path: {self.note}"
        lines = [
            f"Retrofit of {self.model}: {len(self.inserted)} x {self.attention}, placement {self.placement!r}, "
            f"{init}; blocks found by {found}.",
            f"Parameters: {self.params_before:,} -> {self.params_after:,} (+{self.params_added:,}, "
            f"+{100 * self.params_added / max(self.params_before, 1):.2f}%).",
        ]
        if self.macs_added is not None:
            size = "x".join(map(str, self.input_size or ()))
            source = f" ({self.input_size_source})" if self.input_size_source else ""
            lines.append(
                f"Multiply-adds at {size}{source}: {self.macs_before:,} -> {self.macs_after:,} (+{self.macs_added:,}, "
                f"+{100 * self.macs_added / max(self.macs_before, 1):.2f}%)."
            )
        else:
            lines.append(f"Multiply-adds: not measured ({self.macs_note}).")
        return "\n".join(lines)

    def format(self, fmt: str = "markdown") -> str:
        """The report as 'markdown' (a table), 'table' (aligned text) or 'json'.

        Raises:
            ValueError: On another format.
        """
        if fmt not in _FORMATS:
            raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(_FORMATS)}")
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        header = ("label", "module", "place", "position", "C", "params", "MACs")
        rows = [
            (m.label, m.path, m.place, m.position, str(m.channels), f"{m.params:,}", _n(m.macs)) for m in self.inserted
        ]
        rows.append(("total", "", "", "", "", f"{self.params_added:,}", _n(self.macs_added)))
        if fmt == "markdown":
            table = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
            table += [f"| {' | '.join(r)} |" for r in rows]
        else:
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            table = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
        return f"{self.summary()}\n\n" + "\n".join(table)

    def __str__(self) -> str:
        return self.format("table")


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
