"""Finding residual blocks and convolution + normalisation pairs in a ``torch.fx`` graph.

A residual block is an addition ``x' + F(x)`` whose two operands share a latest common ancestor x (the
fork, the block's input): the *branch* F is the operand whose path from x holds more convolutions (at
least one), and it must end in a convolution or a normalisation layer (possibly followed by dropout, an
identity or a scaling by a constant); the other operand is the *shortcut* x' (x itself, or a projection
of it). The block's *host* is the module whose ``forward`` performs the addition.

The graph is read, never run or rewritten: retrofit inserts attention with hooks (``hooks.py``). Each
block records the modules a hook can sit on for each of the zoo's placements, ``None`` where the place
lies between module calls (then that placement is refused for that block, see ``places.py``).
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

from .layers import (
    ACTIVATIONS,
    CONVS,
    HOMOGENEOUS,
    NORMS,
    TRANSPARENT,
    applies_activation,
    channels_in,
    channels_out,
    downsamples,
    folds_exactly,
    is_3x3,
    spatial_dims,
)
from .tracer import HOST, OUTPUT_OF

_ADDS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_", "__add__", "__iadd__", "__radd__"}
_SCALES = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul}
_SCALE_METHODS = {"mul", "mul_", "div", "div_"}
_FUNCTIONAL_POOL = re.compile(r"^(max|avg|lp)_pool[123]d")
_PERMUTES = {torch.permute}
FIRST, LAST = "channels_first", "channels_last"  # layouts of a hooked tensor


@dataclass(frozen=True)
class ResidualBlock:
    """A residual addition and the hook points of each placement (paths; ``None``: no module there).

    Attributes:
        host: The module performing the addition ('' for the root).
        branch_end: The module whose output is F(x) ('standard'): a conv/norm layer, or a module
            returning F(x) channels-first.
        branch_fold: The layer that can take a doubled gate's factor 2 for 'standard' (``None``: none).
        branch_layout: 'channels_first' (N, C, ...) or 'channels_last' (N, ..., C): ``branch_end``'s output.
        branch_start: The branch's first layer, fed x directly and alone ('pre').
        shortcut_end: The last layer of a projection shortcut ('identity'); ``None`` for x' = x.
        after_sum: The activation module fed the sum and nothing else ('post').
        sum_is_output: The sum leaves the host as its output ('post' without an activation).
        after_3x3: (activation, norm) after the branch's first 3x3 convolution ('after_3x3'); (norm, norm)
            for a norm that applies the activation itself.
        channels: F(x)'s channels.
        dims: Spatial dimensions of the branch's convolutions.
        order: Position of the addition in forward order.
    """

    host: str
    branch_end: str
    branch_fold: str | None
    branch_layout: str
    branch_start: str | None
    shortcut_end: str | None
    after_sum: str | None
    sum_is_output: bool
    after_3x3: tuple[str, str] | None
    channels: int
    dims: int
    order: int


@dataclass(frozen=True)
class ConvNorm:
    """A convolution feeding only a normalisation layer, and the activation after it (if a module)."""

    conv: str
    norm: str
    act: str | None
    channels: int
    dims: int
    order: int


@dataclass
class Structure:
    """What the analysis found in a model.

    Attributes:
        blocks: Residual blocks, in forward order.
        conv_norms: Convolution + normalisation pairs, in forward order.
        downsamples: Positions of resolution changes (strided convolutions, poolings).
        calls: How often each module path is called (within the traced graphs).
        layers: Forward-order position of each called layer's first call (for ``where`` naming any layer).
        method: 'fx' (the whole model traced) or 'structural' (module by module).
        note: Why the whole model did not trace ('' for 'fx').
    """

    blocks: list[ResidualBlock]
    conv_norms: list[ConvNorm]
    downsamples: list[int]
    calls: Counter
    layers: dict[str, int]
    method: str = "fx"
    note: str = ""


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name


class GraphReader:
    """Reads residual blocks and conv/norm pairs from one traced graph of ``root`` (at path ``prefix``).

    Args:
        graph: The traced graph.
        root: The traced module.
        prefix: ``root``'s path in the model.
        offset: Forward-order position of the graph's first node (graphs read one after another).
    """

    def __init__(self, graph: fx.Graph, root: nn.Module, prefix: str, offset: int) -> None:
        self.root, self.prefix = root, prefix
        self.nodes = list(graph.nodes)
        self.index = {n: offset + i for i, n in enumerate(self.nodes)}
        self.live: set[fx.Node] = set()  # nodes that depend on the input (not parameters or constants)
        for n in self.nodes:
            if n.op == "placeholder" or any(i in self.live for i in n.all_input_nodes):
                self.live.add(n)
        self.calls = Counter(self.path(n) for n in self.nodes if n.op == "call_module")
        self.layers: dict[str, int] = {}
        for n in self.nodes:
            if n.op == "call_module":
                self.layers.setdefault(self.path(n), self.index[n])
        # Calls of every module (leaf or traced through) that returned one tensor.
        self.returns = Counter(_join(prefix, p) for n in self.nodes for p in n.meta.get(OUTPUT_OF, []))

    # Node helpers.
    def path(self, node: fx.Node) -> str:
        return _join(self.prefix, str(node.target))

    def host(self, node: fx.Node) -> str:
        return _join(self.prefix, node.meta.get(HOST, ""))

    def module(self, node: fx.Node) -> nn.Module | None:
        return self.root.get_submodule(str(node.target)) if node.op == "call_module" else None

    def inputs(self, node: fx.Node) -> list[fx.Node]:
        return [i for i in node.all_input_nodes if i in self.live]

    def users(self, node: fx.Node) -> list[fx.Node]:
        return list(node.users)

    def is_a(self, node: fx.Node, kinds: tuple[type, ...]) -> bool:
        return isinstance(self.module(node), kinds)

    def ancestors(self, node: fx.Node) -> set[fx.Node]:
        seen, stack = {node}, [node]
        while stack:
            for i in self.inputs(stack.pop()):
                if i not in seen:
                    seen.add(i)
                    stack.append(i)
        return seen

    def descendants(self, node: fx.Node) -> set[fx.Node]:
        seen, stack = {node}, [node]
        while stack:
            for u in stack.pop().users:
                if u not in seen:
                    seen.add(u)
                    stack.append(u)
        return seen

    def _is_add(self, node: fx.Node) -> bool:
        if node.op == "call_function" and node.target in _ADDS:
            return len(node.args) == 2 and not node.kwargs
        return node.op == "call_method" and node.target in _ADD_METHODS and len(node.args) == 2 and not node.kwargs

    def _transparent(self, node: fx.Node) -> bool:
        """Passes its one live input through up to a factor: dropout, identity, a scaling by a constant."""
        if self.is_a(node, TRANSPARENT):
            return True
        scale = (node.op == "call_function" and node.target in _SCALES) or (
            node.op == "call_method" and node.target in _SCALE_METHODS
        )
        return scale and len(self.inputs(node)) == 1 and any(a in self.live for a in node.args[:2])

    def _producer(self, node: fx.Node, stop: fx.Node | None = None) -> fx.Node:
        """Walks back from ``node`` through transparent single-use nodes to the layer producing it."""
        while node is not stop and self._transparent(node):
            (prev,) = self.inputs(node)
            if len(prev.users) != 1:
                break
            node = prev
        return node

    def _called_once(self, node: fx.Node, kinds: tuple[type, ...]) -> bool:
        return self.is_a(node, kinds) and self.calls[self.path(node)] == 1

    # Residual blocks.
    def residual_blocks(self) -> list[ResidualBlock]:
        return [b for n in self.nodes if n in self.live and self._is_add(n) for b in [self._block(n)] if b]

    def _block(self, add: fx.Node) -> ResidualBlock | None:
        a, b = add.args
        if not (isinstance(a, fx.Node) and isinstance(b, fx.Node) and a in self.live and b in self.live):
            return None
        anc_a, anc_b = self.ancestors(a), self.ancestors(b)
        common = anc_a & anc_b
        if not common:
            return None
        fork = max(common, key=self.index.__getitem__)
        below = self.descendants(fork) - {fork}
        paths = ((a, anc_a & below), (b, anc_b & below))
        # (convolutions, nodes) on each operand's path from the fork: the branch has more.
        weighed = [((sum(self.is_a(n, CONVS) for n in p), len(p)), op, p) for op, p in paths]
        (weight, branch, path), (other, shortcut, _) = sorted(weighed, key=lambda t: t[0], reverse=True)
        if weight == other or weight[0] == 0:
            return None  # two alike branches, or no convolution on either: not a residual block
        found = self._branch_end(self._producer(branch, stop=fork))
        if found is None:
            return None  # the branch does not end in a layer used once, for this sum alone
        end, channels, fold, layout = found
        return ResidualBlock(
            host=self.host(add),
            branch_end=end,
            branch_fold=fold,
            branch_layout=layout,
            branch_start=self._branch_start(fork, path),
            shortcut_end=self._shortcut_end(shortcut, fork),
            after_sum=self._after_sum(add),
            sum_is_output=self._sum_is_output(add),
            after_3x3=self._after_3x3(path),
            channels=channels,
            dims=spatial_dims(next((self.module(n) for n in path if self.is_a(n, CONVS)), None)),
            order=self.index[add],
        )

    def _branch_end(self, end: fx.Node) -> tuple[str, int, str | None, str] | None:
        """(hook path, channels, fold path, layout) of the branch whose output is ``end``, or ``None``.

        ``end`` is a conv/norm layer (a norm that applies its own activation included), or the output
        of a module called once whose tensor is channels-first (N, C, ...) with C known from the layer
        that produced it (torchvision's ConvNeXt: ``Linear``, then a ``Permute`` module back to
        channels-first), or a permute back to channels-first of such a module's channels-last output
        (timm's ConvNeXt: ``x = self.mlp(x); x = x.permute(0, 3, 1, 2)``): layout 'channels_last', the
        hook permutes around the attention module.
        """
        if len(end.users) != 1:
            return None
        if self.is_a(end, CONVS + NORMS):
            module = self.module(end)
            if self.calls[self.path(end)] != 1:
                return None
            return self.path(end), channels_out(module), self.path(end) if folds_exactly(module) else None, FIRST
        owner, layout, back = self._returned_by(end), FIRST, self._permutation(end)
        if owner is None and back is not None and len(self.inputs(end)) == 1:
            (before,) = self.inputs(end)
            last = len(back) - 1
            if back == [0, last, *range(1, last)] and len(before.users) == 1:  # (N, ..., C) -> (N, C, ...)
                owner, layout, end = self._returned_by(before), LAST, before
        source = self._channels_source(end)
        if owner is None or source is None:
            return None
        layer, channels, exact, channel_dim = source
        if channel_dim != (1 if layout == FIRST else -1):
            return None
        return _join(self.prefix, owner), channels, self.path(layer) if exact else None, layout

    def _returned_by(self, node: fx.Node) -> str | None:
        """The innermost module called once that returned ``node`` (relative to the traced root)."""
        return next((p for p in node.meta.get(OUTPUT_OF, []) if self.returns[_join(self.prefix, p)] == 1), None)

    def _channels_source(self, node: fx.Node) -> tuple[fx.Node, int, bool, int] | None:
        """The layer that produced ``node``'s channels, C, whether a factor 2 passes from it exactly, and
        the dimension of ``node`` that holds C (1: channels-first; -1: last, for a 4-d channels-last one).

        Walks back through permutes (followed), activations and transparent nodes; ``None`` if another
        operation stands between, or where the channels' dimension cannot be told.
        """
        permutes: list[list[int]] = []
        exact = True
        while True:
            module = self.module(node)
            if isinstance(module, CONVS + NORMS):
                channels, channel_dim, exact = channels_out(module), 1, exact and folds_exactly(module)
                break
            if isinstance(module, nn.Linear) or type(module) is nn.LayerNorm:  # channels-last layers
                channels = module.out_features if isinstance(module, nn.Linear) else module.normalized_shape[-1]
                channel_dim = -1
                exact = exact and folds_exactly(module)
                break
            dims = self._permutation(node)
            if dims is not None:
                permutes.append(dims)
            elif self.is_a(node, ACTIVATIONS):
                exact = exact and self.is_a(node, HOMOGENEOUS)
            elif not self._transparent(node):
                return None
            inputs = self.inputs(node)
            if len(inputs) != 1:
                return None
            node = inputs[0]
        for dims in reversed(permutes):  # from the layer forward to ``node``
            channel_dim = dims.index(channel_dim % len(dims))
        if permutes and channel_dim == len(permutes[0]) - 1:
            channel_dim = -1
        return node, channels, exact, channel_dim

    def _permutation(self, node: fx.Node) -> list[int] | None:
        if node.op == "call_method" and node.target == "permute":
            dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (list, tuple)) else node.args[1:]
        elif node.op == "call_function" and node.target in _PERMUTES:
            dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dims")
        else:
            return None
        return list(dims) if isinstance(dims, (list, tuple)) and all(isinstance(d, int) for d in dims) else None

    def _branch_start(self, fork: fx.Node, path: set[fx.Node]) -> str | None:
        starts = [u for u in fork.users if u in path]
        if len(starts) != 1 or not self.is_a(starts[0], CONVS + NORMS):
            return None
        start = starts[0]
        if self.inputs(start) != [fork] or start.args[0] is not fork or self.calls[self.path(start)] != 1:
            return None
        return self.path(start) if channels_in(self.module(start)) else None

    def _shortcut_end(self, shortcut: fx.Node, fork: fx.Node) -> str | None:
        end = self._producer(shortcut, stop=fork)
        if end is fork or not self.is_a(end, CONVS + NORMS) or len(end.users) != 1:
            return None
        return self.path(end) if self.calls[self.path(end)] == 1 else None

    def _after_sum(self, add: fx.Node) -> str | None:
        users = self.users(add)
        if len(users) == 1 and self._called_once(users[0], ACTIVATIONS) and users[0].args[0] is add:
            return self.path(users[0])
        return None

    def _sum_is_output(self, add: fx.Node) -> bool:
        host = self.host(add)

        def outside(user: fx.Node) -> bool:
            if user.op == "output":
                return user.args[0] is add  # returned by the traced module, hence by the host too
            h = self.host(user)
            return h != host and not h.startswith(f"{host}.") if host else False

        return all(outside(u) for u in add.users)

    def _after_3x3(self, path: set[fx.Node]) -> tuple[str, str] | None:
        convs = sorted((n for n in path if is_3x3(self.module(n))), key=self.index.__getitem__)
        if not convs or len(convs[0].users) != 1:
            return None
        (norm,) = convs[0].users
        if not (self._called_once(norm, NORMS) and len(norm.users) == 1):
            return None
        if applies_activation(self.module(norm)):  # timm's BatchNormAct2d: the norm's output is activated
            return self.path(norm), self.path(norm)
        (act,) = norm.users
        if not self._called_once(act, ACTIVATIONS) or act.args[0] is not norm:
            return None
        return self.path(act), self.path(norm)

    # Convolution + normalisation pairs and resolution changes.
    def conv_norms(self) -> list[ConvNorm]:
        pairs = []
        for conv in self.nodes:
            if conv not in self.live or not (self._called_once(conv, CONVS) and len(conv.users) == 1):
                continue
            (norm,) = conv.users
            if not (self.is_a(norm, NORMS) and norm.args[0] is conv and self.calls[self.path(norm)] == 1):
                continue
            act = next(iter(norm.users)) if len(norm.users) == 1 else None
            has_act = act is not None and self._called_once(act, ACTIVATIONS) and act.args[0] is norm
            pairs.append(
                ConvNorm(
                    conv=self.path(conv),
                    norm=self.path(norm),
                    act=self.path(act) if has_act else None,
                    channels=channels_out(self.module(norm)),
                    dims=spatial_dims(self.module(conv)),
                    order=self.index[norm],
                )
            )
        return pairs

    def resolution_changes(self) -> list[int]:
        found = [self.index[n] for n in self.nodes if n.op == "call_module" and downsamples(self.module(n))]
        for n in self.nodes:
            if n.op == "call_function" and _FUNCTIONAL_POOL.match(getattr(n.target, "__name__", "")):
                # F.max_pool2d(input, kernel_size, stride=None, ...): the stride defaults to the window.
                stride = n.kwargs.get("stride", n.args[2] if len(n.args) > 2 else None)
                stride = n.kwargs.get("kernel_size", n.args[1] if len(n.args) > 1 else 2) if stride is None else stride
                if not isinstance(stride, (int, tuple, list)) or any(s > 1 for s in _pair(stride)):
                    found.append(self.index[n])  # a stride only known at run time: assume it downsamples
        return found


def _pair(value: int | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)
