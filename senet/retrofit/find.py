"""Finding the places of a model: one ``torch.fx`` trace where the model traces, module by module otherwise.

``torch.fx`` cannot trace every network (control flow on tensor values or shapes, ``x.dim()`` tests,
calls into untraceable code). Then the *structural* path takes over: it recognises block structure one
module at a time, tracing each child of the model on its own (a residual block's ``forward`` usually
traces even when the network's does not) and descending into the children of those that do not trace.
Both paths read the same facts from the same kind of graph (``GraphReader``); the structural path misses
only additions performed in an untraceable ``forward`` itself.
"""

from __future__ import annotations

from collections import Counter

from torch import fx, nn

from ..io import one_line
from .graph import ConvNorm, GraphReader, ResidualBlock, Structure
from .layers import NORMS, downsamples
from .tracer import trace


def _is_leaf(module: nn.Module) -> bool:
    # The tracer's rule: layers of torch.nn and norm layers are called, not traced through.
    if isinstance(module, NORMS):
        return True
    return module.__module__.startswith("torch.nn") and not isinstance(module, (nn.Sequential, nn.ModuleList))


def _trace_error(exc: Exception) -> str:
    reason = one_line(exc)  # the type's name alone when the error has no message
    return reason if reason == type(exc).__name__ else f"{type(exc).__name__}: {reason}"


class _Collector:
    def __init__(self) -> None:
        self.blocks: list[ResidualBlock] = []
        self.conv_norms: list[ConvNorm] = []
        self.downsamples: list[int] = []
        self.calls: Counter = Counter()
        self.layers: dict[str, int] = {}
        self.position = 0  # forward-order position of the next graph's first node

    def read(self, module: nn.Module, prefix: str, graph: fx.Graph) -> None:
        reader = GraphReader(graph, module, prefix, self.position)
        self.position += len(reader.nodes)
        self.blocks += reader.residual_blocks()
        self.conv_norms += reader.conv_norms()
        self.downsamples += reader.resolution_changes()
        self.calls += reader.calls
        self.layers.update((path, i) for path, i in reader.layers.items() if path not in self.layers)

    def walk(self, module: nn.Module, prefix: str) -> None:
        """Reads each child that traces; descends into those that do not (the structural path)."""
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            if _is_leaf(child):
                self.calls[path] += 1  # called by the untraceable forward, once as far as we can tell
                self.layers.setdefault(path, self.position)
                if downsamples(child):
                    self.downsamples.append(self.position)
                self.position += 1
                continue
            try:
                graph = trace(child)
            except Exception:  # noqa: BLE001 - tracing runs arbitrary user code; any failure means "descend"
                self.walk(child, path)
            else:
                self.read(child, path, graph)


def find_structure(model: nn.Module) -> Structure:
    """Traces ``model`` (or, failing that, its modules one by one) and returns its blocks and conv/norm pairs.

    Args:
        model: Any ``nn.Module``.

    Returns:
        The ``Structure``: residual blocks and conv/norm pairs in forward order, resolution changes,
        module call counts, and which path found them.
    """
    collector = _Collector()
    try:
        graph = trace(model)
    except Exception as exc:  # noqa: BLE001 - see walk()
        collector.walk(model, "")
        method, note = "structural", f"torch.fx could not trace {type(model).__name__} ({_trace_error(exc)})"
    else:
        collector.read(model, "", graph)
        method, note = "fx", ""
    return Structure(
        blocks=sorted(collector.blocks, key=lambda b: b.order),
        conv_norms=sorted(collector.conv_norms, key=lambda p: p.order),
        downsamples=sorted(collector.downsamples),
        calls=collector.calls,
        layers=collector.layers,
        method=method,
        note=note,
    )
