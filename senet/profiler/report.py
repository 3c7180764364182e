"""The result of ``senet.profile`` (``senet.profiler.profile``): costs per module and in total, rendered."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .._markdown import markdown_table
from .render import check_format, csv_table, si, size, text_table, to_json


@dataclass(frozen=True)
class Cost:
    """What a piece of a network costs.

    Attributes:
        params: Parameters (each shared parameter counted once).
        macs: Multiply-adds of convolutions and matrix products, plus the attention modules' pooling
            and scaling (one per element).
        activation_bytes: Bytes of the tensors produced (views and in-place results excluded).
    """

    params: int = 0
    macs: int = 0
    activation_bytes: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, self.activation_bytes + other.activation_bytes)

    def share_of(self, whole: Cost) -> dict[str, float]:
        """Returns each quantity of ``self`` as a percentage of the same quantity of ``whole``."""
        parts, wholes = asdict(self), asdict(whole)
        return {k: 100.0 * v / wholes[k] if wholes[k] else 0.0 for k, v in parts.items()}


@dataclass(frozen=True)
class LayerProfile:
    """One module of a profiled model.

    Attributes:
        name: The module's path (``'layer1.0.se'``); ``''`` is the model itself.
        type: The module's class name.
        depth: Path depth: 0 for the model, 1 for its children, ...
        output_shape: The shape of its first output (``None`` if it never ran or returned no tensor).
        calls: How many times it ran.
        attention_label: The label of the attention module it is or lies in (``'SE_2_1'``), else ``None``.
        is_attention: Whether it is an attention module itself (the outermost one).
        leaf: Whether it has no children.
        own: The costs attributed to this module alone, its children excluded.
        total: The costs of the module and all its descendants.
        attention: The part of ``total`` spent inside attention modules.
    """

    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    calls: int
    attention_label: str | None
    is_attention: bool
    leaf: bool
    own: Cost
    total: Cost
    attention: Cost

    def to_dict(self) -> dict[str, Any]:
        """Returns the row as flat JSON-ready values (absolute counts and attention shares in percent)."""
        share = self.attention.share_of(self.total)
        return {
            "name": self.name,
            "type": self.type,
            "depth": self.depth,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "calls": self.calls,
            "attention_label": self.attention_label,
            **asdict(self.total),
            **{f"attention_{k}": v for k, v in asdict(self.attention).items()},
            **{f"attention_{k}_percent": round(v, 4) for k, v in share.items()},
            **{f"own_{k}": v for k, v in asdict(self.own).items()},
        }


_COLUMNS = ("module", "type", "output", "params", "MACs", "activations", "SE params", "SE MACs", "SE act.")


@dataclass(frozen=True)
class ProfileReport:
    """Parameters, multiply-adds and activation memory of one forward pass, per module and in total.

    Attributes:
        model: The model's name.
        input_size: One sample's shape, e.g. ``(3, 224, 224)``.
        batch_size: The batch size of the profiled pass.
        dtype: The input's dtype name.
        device: Where the pass ran (``'meta'`` unless the model could not run there).
        layers: Every module, the model first, then in the order they first ran (unused ones last).
    """

    model: str
    input_size: tuple[int, ...]
    batch_size: int
    dtype: str
    device: str
    layers: tuple[LayerProfile, ...]

    @property
    def total(self) -> Cost:
        """The whole model's costs."""
        return self.layers[0].total

    @property
    def attention(self) -> Cost:
        """The part of the costs spent in attention (SE) modules."""
        return self.layers[0].attention

    @property
    def params(self) -> int:
        """Parameters of the model."""
        return self.total.params

    @property
    def macs(self) -> int:
        """Multiply-adds of the forward pass."""
        return self.total.macs

    @property
    def activation_bytes(self) -> int:
        """Bytes of all tensors the forward pass produced."""
        return self.total.activation_bytes

    def attention_share(self) -> dict[str, float]:
        """Returns the attention modules' share of each quantity, in percent."""
        return self.attention.share_of(self.total)

    def attention_modules(self) -> list[LayerProfile]:
        """Returns the attention modules, in the order they ran."""
        return [layer for layer in self.layers if layer.is_attention]

    def layer(self, name: str) -> LayerProfile:
        """Returns the profile of the module at path ``name`` (``''``: the model).

        Raises:
            KeyError: If the model has no such module.
        """
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no module {name!r} in {self.model}")

    def rows(self, depth: int | None = None) -> list[LayerProfile]:
        """Returns the modules down to ``depth`` (``None``: all); each row holds its subtree's totals.

        Args:
            depth: 0 gives the model alone, 1 the model and its children, and so on.
        """
        return [layer for layer in self.layers if depth is None or layer.depth <= depth]

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        """Returns the report as JSON-ready data, with the rows down to ``depth``."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "device": self.device,
            "total": asdict(self.total),
            "attention": {
                **asdict(self.attention),
                "percent": {k: round(v, 4) for k, v in self.attention_share().items()},
            },
            "attention_modules": [
                {"label": layer.attention_label, "name": layer.name, **asdict(layer.total)}
                for layer in self.attention_modules()
            ],
            "layers": [layer.to_dict() for layer in self.rows(depth)],
        }

    def summary(self) -> list[tuple[str, str, str, str]]:
        """Returns the totals and the attention share as (what, params, MACs, activations) rows of text."""
        share = self.attention_share()
        a = self.attention
        n = len(self.attention_modules())
        return [
            ("total", si(self.params), si(self.macs), size(self.activation_bytes)),
            (
                f"SE/attention ({n} modules)",
                f"{si(a.params)} ({share['params']:.2f}%)",
                f"{si(a.macs)} ({share['macs']:.2f}%)",
                f"{size(a.activation_bytes)} ({share['activation_bytes']:.2f}%)",
            ),
        ]

    def format(self, fmt: str = "table", depth: int | None = None) -> str:
        """Renders the report.

        Args:
            fmt: 'table' (aligned text), 'markdown', 'json' or 'csv'.
            depth: Show modules down to this depth (``None``: all); rows hold subtree totals.

        Returns:
            The text; table and markdown end with the totals and the attention share.

        Raises:
            ValueError: On an unknown format or a negative depth.
        """
        check_format(fmt)
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        if fmt == "json":
            return to_json(self.to_dict(depth))
        if fmt == "csv":
            dicts = [layer.to_dict() for layer in self.rows(depth)]
            for d in dicts:
                d["output_shape"] = "x".join(map(str, d["output_shape"])) if d["output_shape"] else ""
            return csv_table(list(dicts[0]), [list(d.values()) for d in dicts])
        shape = "x".join(map(str, self.input_size))
        title = (
            f"{self.model}: input {self.batch_size}x{shape}, {self.dtype}, counted on {self.device}; "
            "MACs: multiply-adds of conv/FC layers and of the attention modules' pooling and scaling"
        )
        if fmt == "markdown":
            rows = [self._cells(layer, indent=False) for layer in self.rows(depth)]
            summary = markdown_table(("", "params", "MACs", "activations"), self.summary())
            return f"**{title}**\n\n{markdown_table(_COLUMNS, rows, _RIGHT)}\n\n{summary}"
        rows = [self._cells(layer, indent=True) for layer in self.rows(depth)]
        summary = text_table(("", "params", "MACs", "activations"), self.summary())
        return f"{title}\n\n{text_table(_COLUMNS, rows, _RIGHT)}\n\n{summary}"

    def _cells(self, layer: LayerProfile, indent: bool) -> list[str]:
        name = layer.name or self.model
        if indent:
            name = "  " * layer.depth + name
        label = f" [{layer.attention_label}]" if layer.is_attention else ""
        shape = "x".join(map(str, layer.output_shape)) if layer.output_shape else ""
        t, a = layer.total, layer.attention
        return [
            name + label,
            layer.type,
            shape,
            si(t.params),
            si(t.macs),
            size(t.activation_bytes),
            si(a.params) if a.params else "-",
            si(a.macs) if a.macs else "-",
            size(a.activation_bytes) if a.activation_bytes else "-",
        ]


_RIGHT = (False, False, True, True, True, True, True, True, True)
