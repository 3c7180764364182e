"""The trace that retrofit reads: ``torch.fx`` with each node stamped with the modules around it.

``graph.py`` reads the graph; this file makes it. Two facts a plain ``fx`` graph loses are kept in
``node.meta``: the module whose ``forward`` created a node (``HOST``: the residual block performing an
addition) and the modules that *returned* it (``OUTPUT_OF``: a forward hook on any of them sees that
node's tensor). Normalisation layers are leaves, whatever library defines them.
"""

from __future__ import annotations

from torch import fx, nn

from .layers import NORMS

HOST = "retrofit_host"  # node.meta key: the path of the module whose forward created the node
OUTPUT_OF = "retrofit_output_of"  # node.meta key: the modules that returned the node, innermost first


class ScopeTracer(fx.Tracer):
    """A tracer that stamps every node with the path of the module whose ``forward`` created it.

    It also records which modules *returned* each node (a hook on such a module's output sees that
    node's tensor), and keeps normalisation layers whole: a subclass written outside ``torch.nn`` (timm's
    ``BatchNormAct2d``, a norm that applies its activation too) is one call, not the ``F.batch_norm`` and
    activation inside it, so that it is recognised, and hooked, as the norm it is.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[str] = []

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, NORMS) or super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward, args, kwargs):  # noqa: ANN001, ANN201 (fx's signature)
        path = self.path_of_module(m)
        self.scopes.append(path)
        try:
            result = super().call_module(m, forward, args, kwargs)
        finally:
            self.scopes.pop()
        if isinstance(result, fx.Proxy):
            result.node.meta.setdefault(OUTPUT_OF, []).append(path)
        return result

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):  # noqa: ANN001, ANN201
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        scopes = self.scopes[:-1] if kind == "call_module" else self.scopes  # a leaf is not its own host
        node.meta[HOST] = scopes[-1] if scopes else ""
        return node


def trace(module: nn.Module) -> fx.Graph:
    """Traces ``module`` in eval mode (so that ``if self.training`` branches take their inference side)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        return ScopeTracer().trace(module)
    finally:
        for m, mode in modes:
            m.training = mode
