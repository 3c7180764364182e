"""Counts what a forward pass executes: parameters, multiply-adds and activation memory, per module.

The counting happens below the modules, in a ``TorchDispatchMode`` that sees every ATen operator the
forward pass runs. Hooks on every module keep a stack of module paths, so each operator is attributed
to the innermost module executing it. Two refinements make functional code count like module code:

* A matrix product or convolution whose weight is (a view of) a module's parameter is attributed to
  the module owning that parameter. The SE block's fast path calls ``F.linear`` on
  ``fc1.weight.flatten(1)`` instead of calling ``fc1``; its multiply-adds still land on ``se.fc1``, so
  both paths profile identically.
* Attention modules (those carrying ``attention_label`` or of a registered attention class) count their
  pooling (one multiply-add per input element reduced) and their elementwise multiplications (one per
  output element), the SE paper's C*H*W adds for the squeeze and C*H*W multiplies for the scale. Their
  public methods (``excite``) count as the module, and a gate computed inside an attention module that
  is later broadcast-multiplied outside it (the scale fused into the residual ``addcmul``) is counted
  as that attention module's scaling.

Everything else that is not a convolution or a matrix product (batch norm, activations, additions) is
free, the convention of the paper's GFLOPs. Activation memory is the sum of the bytes of all tensors
the forward pass produces (views and in-place results excluded), not the peak. A gate applied outside
its attention module counts as the operations it fuses, in place or not: the scaled map s * u (the
attention module's) and, for ``addcmul``, the residual sum (the block's, as in the plain network).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from ..layers.registry import get_attention, list_attention
from .report import Cost, LayerProfile, ProfileReport

aten = torch.ops.aten

ATTENTION_LABEL = "attention_label"
DEFAULT_INPUT_SIZE = (3, 224, 224)  # for a model without a ``default_input_size``


def _product_macs(k_arg: int) -> Callable[[tuple, Tensor], int]:
    # A product (.., n, k) x (.., k, m): one multiply-add per output element and per k.
    return lambda args, out: out.numel() * args[k_arg].shape[-1]


def _conv_macs(args: tuple, out: Tensor) -> int:
    x, weight, transposed = args[0], args[1], args[6]
    kernel = math.prod(weight.shape[2:])
    # weight: (C_out, C_in / groups, *k), or (C_in, C_out / groups, *k) when transposed.
    return (x.numel() if transposed else out.numel()) * weight.shape[1] * kernel


def _attention_product_macs(args: tuple, out: Tensor) -> int:
    q, k, v = args[0], args[1], args[2]
    batch = math.prod(q.shape[:-2])
    return batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])  # Q K^T, then P V


# Operator -> (multiply-adds, the argument positions where a weight is looked for, first match wins).
_PRODUCTS: dict[Any, tuple[Callable[[tuple, Tensor], int], tuple[int, ...]]] = {
    aten.convolution: (_conv_macs, (1,)),
    aten._convolution: (_conv_macs, (1,)),
    aten.mm: (_product_macs(0), (1, 0)),
    aten.addmm: (_product_macs(1), (2, 1)),
    aten.bmm: (_product_macs(0), (1, 0)),
    aten.baddbmm: (_product_macs(1), (2, 1)),
    aten.mv: (_product_macs(0), (0,)),
    aten.addmv: (_product_macs(1), (1,)),
    aten.dot: (lambda args, out: args[0].numel(), (1, 0)),
    aten.vdot: (lambda args, out: args[0].numel(), (1, 0)),
    aten.linear: (lambda args, out: out.numel() * args[1].shape[-1], (1,)),
    aten.matmul: (lambda args, out: out.numel() * args[0].shape[-1], (1, 0)),
    aten._scaled_dot_product_flash_attention_for_cpu: (_attention_product_macs, ()),
    aten._scaled_dot_product_flash_attention: (_attention_product_macs, ()),
    aten._scaled_dot_product_efficient_attention: (_attention_product_macs, ()),
    aten._scaled_dot_product_cudnn_attention: (_attention_product_macs, ()),
}
_PRODUCTS[aten.addbmm] = (lambda args, out: args[1].shape[0] * out.numel() * args[1].shape[-1], (2, 1))

# Inside an attention module: poolings cost one multiply-add per input element (the C*H*W adds of the
# squeeze); elementwise multiplications one per output element (the C*H*W multiplies of the scale).
_POOLINGS = {
    aten.mean,
    aten.sum,
    aten.amax,
    aten.amin,
    aten.var,
    aten.std,
    aten.var_mean,
    aten.std_mean,
    aten.logsumexp,
    aten.linalg_vector_norm,
    aten.norm,
    aten.avg_pool1d,
    aten.avg_pool2d,
    aten.avg_pool3d,
    aten._adaptive_avg_pool2d,
    aten._adaptive_avg_pool3d,
    aten.adaptive_avg_pool1d,
    aten.adaptive_max_pool1d,
    aten.adaptive_max_pool2d,
    aten.adaptive_max_pool3d,
    aten.max_pool1d,
    aten.max_pool2d,
    aten.max_pool3d,
    aten.max_pool2d_with_indices,
    aten.max_pool3d_with_indices,
}
_REDUCING_OVERLOADS = {aten.max: ("dim", "default"), aten.min: ("dim", "default")}
_SCALINGS = {aten.mul, aten.mul_, aten.div, aten.div_, aten.addcmul, aten.addcmul_, aten.addcdiv, aten.addcdiv_}
_FUSED_SUMS = {aten.addcmul, aten.addcmul_, aten.addcdiv, aten.addcdiv_}  # x + s * u: a scale and a sum

# Operators whose result is the same values in other clothes: a parameter's or a gate's identity follows.
_COPIES = {aten._to_copy, aten.clone, aten._unsafe_view, aten.contiguous, aten.lift_fresh_copy}


def _batch_norm_on_meta(args: tuple, training: bool) -> tuple[Tensor, Tensor, Tensor]:
    x = args[0]
    stats = torch.empty((x.shape[1] if training else 0,), dtype=x.dtype, device=x.device)
    return torch.empty_like(x), stats, stats.clone()


# Results computed from shapes alone, for meta inputs: these operators' meta kernels are Python
# decompositions that would otherwise take most of the profiling time.
_META_SHORTCUTS: dict[Any, Callable[[tuple], Any]] = {
    aten.native_batch_norm.default: lambda args: _batch_norm_on_meta(args, bool(args[5])),
    aten._native_batch_norm_legit_no_training.default: lambda args: _batch_norm_on_meta(args, False),
    aten.addmm.default: lambda args: torch.empty(
        (args[1].shape[0], args[2].shape[1]), dtype=args[1].dtype, device=args[1].device
    ),
}


def _is_pooling(func: Any) -> bool:
    packet = func.overloadpacket
    if packet in _REDUCING_OVERLOADS:
        return func._overloadname in _REDUCING_OVERLOADS[packet]
    return packet in _POOLINGS


def attention_classes() -> tuple[type, ...]:
    """Returns the classes registered as attention modules in ``senet.layers.registry``."""
    classes = (get_attention(name) for name in list_attention())
    return tuple(c for c in classes if isinstance(c, type))


def is_attention_module(module: nn.Module) -> bool:
    """Whether ``module`` is an attention module: labelled (``attention_label``) or of a registered class."""
    return hasattr(module, ATTENTION_LABEL) or isinstance(module, attention_classes())


class _Tracker(TorchDispatchMode):
    """Attributes every operator of a forward pass to a module path (the root is '')."""

    def __init__(self, attention_root: dict[str, str | None]) -> None:
        super().__init__()
        self.attention_root = attention_root  # module path -> outermost enclosing attention path
        self.stack: list[str] = []
        self.order: list[str] = []
        self.calls: dict[str, int] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.macs: dict[str, int] = {}
        self.bytes: dict[str, int] = {}
        self.param_owner = WeakIdKeyDictionary()  # tensor -> path of the module owning it
        self.gate_owner = WeakIdKeyDictionary()  # tensor -> path of the attention module producing it

    # Module entry and exit (forward hooks, wrapped attention methods).
    def enter(self, path: str) -> None:
        self._seen(path)
        self.stack.append(path)

    def _seen(self, path: str) -> None:
        if path not in self.calls:
            self.calls[path] = 0
            self.order.append(path)

    def leave(self, path: str, output: Any = None, count: bool = True) -> None:
        if self.stack and self.stack[-1] == path:
            self.stack.pop()
        if count:
            self.calls[path] += 1
            if isinstance(output, Tensor) and path not in self.shapes:
                self.shapes[path] = tuple(output.shape)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        shortcut = _META_SHORTCUTS.get(func)
        if shortcut is not None and not kwargs and all(a.device.type == "meta" for a in args if isinstance(a, Tensor)):
            out = shortcut(args)
        else:
            out = func(*args, **(kwargs or {}))
        self._record(func, args, out)
        return out

    def _record(self, func: Any, args: tuple, out: Any) -> None:
        packet = func.overloadpacket
        context = self.stack[-1] if self.stack else ""
        in_attention = self.attention_root.get(context) is not None
        outputs, aliased = self._outputs(func, out)
        owner, macs = context, 0
        if packet in _PRODUCTS:
            count, weights = _PRODUCTS[packet]
            macs = count(args, outputs[0])
            for i in weights:
                if i < len(args) and isinstance(args[i], Tensor) and args[i] in self.param_owner:
                    owner = self.param_owner[args[i]]
                    break
        elif in_attention and _is_pooling(func):
            macs = args[0].numel()
        elif in_attention and packet in _SCALINGS:
            macs = outputs[0].numel()
        elif packet in _SCALINGS:
            gate = self._outside_gate(args, outputs[0])
            if gate is not None:
                self._record_outside_scale(packet, gate, outputs[0], context)
                aliased = [True] * len(outputs)  # its bytes are charged above
        self._add(self.macs, owner, macs)
        self._add(
            self.bytes, owner, sum(t.numel() * t.element_size() for t, a in zip(outputs, aliased, strict=True) if not a)
        )
        self._propagate(packet, args, outputs, aliased, context if in_attention else None)

    def _outside_gate(self, args: tuple, out: Tensor) -> str | None:
        """The attention module whose gate ``args`` broadcast over a larger ``out``, outside that module."""
        for a in args:
            if isinstance(a, Tensor) and a in self.gate_owner and a.numel() < out.numel():
                return self.gate_owner[a]
        return None

    def _record_outside_scale(self, packet: Any, gate: str, out: Tensor, context: str) -> None:
        """Counts a gate applied outside its attention module as the unfused operations it stands for.

        The scale s * u (a multiply-add per element and a new feature map) is the attention module's;
        for ``addcmul``/``addcdiv`` the residual sum x' + s * u is the enclosing module's, as the plain
        network's addition is. Both maps count even when the fused kernel writes in place (the
        inference path overwrites BN's output), so the network with SE never shows less activation
        memory than the one without, and the fast and the textbook SE paths profile alike.
        """
        size = out.numel() * out.element_size()
        self._add(self.macs, gate, out.numel())
        self._add(self.bytes, gate, size)
        if packet in _FUSED_SUMS:
            self._add(self.bytes, context, size)

    @staticmethod
    def _outputs(func: Any, out: Any) -> tuple[list[Tensor], list[bool]]:
        returns = func._schema.returns
        if isinstance(out, (tuple, list)) and len(returns) == len(out) and len(returns) > 1:
            pairs = [
                (leaf, r.alias_info is not None) for o, r in zip(out, returns, strict=True) for leaf in tree_leaves(o)
            ]
        else:
            alias = bool(returns) and returns[0].alias_info is not None
            pairs = [(leaf, alias) for leaf in tree_leaves(out)]
        pairs = [(t, a) for t, a in pairs if isinstance(t, Tensor)]
        return [t for t, _ in pairs], [a for _, a in pairs]

    def _propagate(
        self, packet: Any, args: tuple, outputs: list[Tensor], aliased: list[bool], attention: str | None
    ) -> None:
        source = args[0] if args and isinstance(args[0], Tensor) else None
        same_values = packet in _COPIES or (aliased and aliased[0])
        for out, alias in zip(outputs, aliased, strict=True):
            if source is not None and (alias or same_values):
                if source in self.param_owner:
                    self.param_owner[out] = self.param_owner[source]
                if source in self.gate_owner and attention is None:
                    self.gate_owner[out] = self.gate_owner[source]
            if attention is not None:
                self.gate_owner[out] = self.attention_root[attention]

    def _add(self, table: dict[str, int], path: str, value: int) -> None:
        if value:
            self._seen(path)
            table[path] = table.get(path, 0) + value


def _attention_roots(model: nn.Module) -> dict[str, str | None]:
    """Maps every module path to the path of its outermost enclosing attention module (or ``None``)."""
    roots: dict[str, str | None] = {}
    for path, module in model.named_modules():
        inherited = roots[path.rpartition(".")[0]] if path else None
        roots[path] = inherited if inherited is not None else (path if is_attention_module(module) else None)
    return roots


def _methods(module: nn.Module) -> Iterator[str]:
    """Names of the methods an attention class adds to ``nn.Module`` (``excite``, ...), ``forward`` aside."""
    seen: set[str] = set()
    for cls in type(module).__mro__:
        if cls in (nn.Module, object):
            break
        for name, attr in vars(cls).items():
            if name in seen or name.startswith("__") or name in ("forward", "extra_repr"):
                continue
            seen.add(name)
            if inspect.isfunction(attr):
                yield name


@contextmanager
def _instrument(model: nn.Module, tracker: _Tracker) -> Iterator[None]:
    """Installs the module hooks and method wrappers for the duration of one forward pass."""
    handles, patched = [], []
    for path, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, p=path: tracker.enter(p)))
        handles.append(module.register_forward_hook(lambda m, a, o, p=path: tracker.leave(p, o), always_call=True))
        if tracker.attention_root[path] == path:
            for name in _methods(module):
                original = getattr(module, name)

                def wrapped(*args: Any, _f: Callable = original, _p: str = path, **kwargs: Any) -> Any:
                    tracker.enter(_p)
                    try:
                        return _f(*args, **kwargs)
                    finally:
                        tracker.leave(_p, count=False)

                patched.append((module, name, module.__dict__.get(name)))
                object.__setattr__(module, name, functools.wraps(original)(wrapped))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, name, previous in patched:
            del module.__dict__[name]
            if previous is not None:
                module.__dict__[name] = previous


@contextmanager
def _preserved_state(model: nn.Module) -> Iterator[None]:
    """Runs in eval mode and leaves training flags and tensor attributes (e.g. ``last_gate``) as found."""
    modes = [(m, m.training) for m in model.modules()]
    saved = [(m, {k: v for k, v in vars(m).items() if v is None or isinstance(v, Tensor)}) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode
        for m, attributes in saved:
            m.__dict__.update(attributes)


def _run(
    model: nn.Module, input_size: tuple[int, ...], batch_size: int, device: torch.device, dtype: torch.dtype
) -> _Tracker:
    roots = _attention_roots(model)
    tracker = _Tracker(roots)
    named = dict(model.named_parameters())
    tensors = {**named, **dict(model.named_buffers())}
    moved = {k: (v if v.device == device else v.to(device)) for k, v in tensors.items()}
    for name in named:
        tracker.param_owner[moved[name]] = name.rpartition(".")[0]
    x = torch.zeros((batch_size, *input_size), device=device, dtype=dtype)
    with _preserved_state(model), _instrument(model, tracker), torch.no_grad(), tracker:
        if all(v is tensors[k] for k, v in moved.items()):
            model(x)
        else:
            torch.func.functional_call(model, moved, (x,))
    return tracker


def _report(
    model: nn.Module,
    tracker: _Tracker,
    name: str,
    input_size: tuple[int, ...],
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
) -> ProfileReport:
    modules = dict(model.named_modules())
    params: dict[str, int] = {}
    for pname, p in model.named_parameters():
        owner = pname.rpartition(".")[0]
        params[owner] = params.get(owner, 0) + p.numel()
    order = [p for p in tracker.order if p in modules] + [p for p in modules if p not in tracker.calls]
    order.remove("")
    order.insert(0, "")
    own = {p: Cost(params.get(p, 0), tracker.macs.get(p, 0), tracker.bytes.get(p, 0)) for p in modules}
    total = {p: Cost() for p in modules}
    attention = {p: Cost() for p in modules}
    for path, cost in own.items():
        ancestors = [""] + [path[:i] for i, ch in enumerate(path) if ch == "."] + ([path] if path else [])
        inside = tracker.attention_root[path] is not None
        for a in ancestors:
            total[a] = total[a] + cost
            if inside:
                attention[a] = attention[a] + cost
    layers = []
    for path in order:
        module = modules[path]
        root = tracker.attention_root[path]
        layers.append(
            LayerProfile(
                name=path,
                type=type(module).__name__,
                depth=path.count(".") + 1 if path else 0,
                output_shape=tracker.shapes.get(path),
                calls=tracker.calls.get(path, 0),
                attention_label=getattr(modules[root], ATTENTION_LABEL, root or type(model).__name__)
                if root is not None
                else None,
                is_attention=root == path,
                leaf=next(module.children(), None) is None,
                own=own[path],
                total=total[path],
                attention=attention[path],
            )
        )
    return ProfileReport(
        model=name,
        input_size=tuple(input_size),
        batch_size=batch_size,
        dtype=str(dtype).replace("torch.", ""),
        device=str(device),
        layers=tuple(layers),
    )


def profile(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    *,
    batch_size: int = 1,
    device: str | torch.device | None = "meta",
    dtype: torch.dtype | None = None,
    name: str | None = None,
) -> ProfileReport:
    """Profiles one forward pass of ``model``: parameters, multiply-adds and activation memory per module.

    The pass runs under ``torch.no_grad`` in eval mode on the ``'meta'`` device by default (shapes only:
    no arithmetic, no memory, seconds for SENet-154); the model itself is left untouched (its parameters
    are swapped for meta copies with ``torch.func.functional_call``). A model that cannot run on meta
    (e.g. one that reads tensor values) is run on its own device instead, with a zero input.

    Args:
        model: Any ``nn.Module``; attention modules are recognised by their ``attention_label`` or
            their registered class.
        input_size: One sample's shape without the batch dimension, e.g. ``(3, 224, 224)``; default: the
            model's ``default_input_size`` (a zoo model's natural input: 32 px for the CIFAR networks),
            else ``(3, 224, 224)``.
        batch_size: The batch size N of the profiled pass (multiply-adds and memory scale with it).
        device: Where to run: ``'meta'`` (default), a device, or ``None`` for the model's own device.
        dtype: The input's dtype; default: the model's floating-point dtype (float32 without parameters).
        name: The model's name in the report (default: its class name).

    Returns:
        A ``ProfileReport``: ``.params``, ``.macs``, ``.activation_bytes``, ``.attention`` (the
        attention modules' part), per-module ``.layers`` and ``.format('table'|'markdown'|'json'|'csv')``.

    Raises:
        ValueError: On an invalid ``input_size`` or ``batch_size``.
    """
    if input_size is None:
        input_size = getattr(model, "default_input_size", DEFAULT_INPUT_SIZE)
    input_size = tuple(input_size)
    if not input_size or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in input_size):
        raise ValueError(f"input_size must be positive integers, e.g. (3, 224, 224); got {input_size!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    first = next(iter(model.parameters()), None)
    own_device = first.device if first is not None else torch.device("cpu")
    floating = [p.dtype for p in model.parameters() if p.is_floating_point()]
    dtype = dtype or (floating[0] if floating else torch.float32)
    target = own_device if device is None else torch.device(device)
    try:
        tracker = _run(model, input_size, batch_size, target, dtype)
    except (NotImplementedError, RuntimeError):
        if target == own_device:
            raise
        target = own_device  # e.g. an operator without a meta kernel, or a value read with .item()
        tracker = _run(model, input_size, batch_size, target, dtype)
    return _report(model, tracker, name or type(model).__name__, input_size, batch_size, dtype, target)
