"""``retrofit``: Squeeze-and-Excitation (or another attention module) in a CNN written without it.

Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks" (arXiv:1709.01507) add SE to every
residual block of a ResNet; ``retrofit`` does so to a network that exists already, pretrained weights
and all, so that fine-tuning starts from its accuracy. The pieces: ``find.py`` finds the residual
blocks (``torch.fx``, else module by module), ``places.py`` turns ``where`` and ``placement`` into hook
points, ``hooks.py`` inserts the modules without touching the user's ``forward`` or ``state_dict`` keys,
``identity.py`` makes them start as the identity, ``report.py`` says what was done.
"""

from __future__ import annotations

import copy
import inspect
import itertools
from collections.abc import Iterator
from typing import Any

from torch import nn

from ..layers.registry import AttentionSpec, get_attention
from ..models.base import ATTENTION_LABEL, label_attention
from ..profiler import is_attention_module, profile
from .find import find_structure
from .graph import Structure
from .hooks import AttentionHook, Fold, attach, attention_hooks
from .identity import identity_init as start_as_identity
from .places import Place, Where, conv_layers, places, stage_labels
from .report import InsertedAttention, RetrofitReport

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)  # their forward iterates their children
_PAPER_REDUCTION = 16


def _accepts(factory: Any, name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _factory_kwargs(factory: Any, attention: AttentionSpec, reduction: float) -> dict[str, Any]:
    if _accepts(factory, "reduction"):
        return {"reduction": reduction}
    if reduction != _PAPER_REDUCTION:
        raise ValueError(f"attention {_name(attention)!r} takes no reduction (got reduction={reduction!r})")
    return {}


def _name(attention: AttentionSpec) -> str:
    if isinstance(attention, str):
        return attention.lower()
    return getattr(attention, "attention_name", getattr(attention, "__name__", type(attention).__name__))


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise ValueError(f"retrofit takes an nn.Module, got {type(model).__name__}")
    present = [path or "<root>" for path, m in model.named_modules() if is_attention_module(m)]
    present += [getattr(h.attention, ATTENTION_LABEL, h.name) for _, h in attention_hooks(model)]
    if present:
        more = f" and {len(present) - 1} more" if len(present) > 1 else ""
        raise ValueError(
            f"{type(model).__name__} already has attention ({present[0]}{more}); retrofit adds attention "
            "to a network without any"
        )


def _refuse_placeless(model: nn.Module, structure: Structure) -> None:
    """The one-line refusal for a network with no default place: what was looked for, how to name places."""
    why = f" ({structure.note})" if structure.note else ""
    convs = conv_layers(structure, model)[:2]
    example = f", e.g. where={convs!r} (CLI: --where {','.join(convs)})" if convs else " (CLI: --where NAME,NAME)"
    raise ValueError(
        f"cannot retrofit {type(model).__name__}: looked for residual blocks and conv + norm pairs and found no "
        f"residual block (a conv/norm branch added to its input) and no convolution followed by a normalisation "
        f"layer{why}; name the convolution or norm layers to put attention after with where={example}"
    )


def _input_size(model: nn.Module, input_size: int | tuple[int, ...] | None) -> tuple[tuple[int, ...] | None, str]:
    """The (C, H, W) at which to count multiply-adds, and where it came from ('' when there is none).

    The network's own size, never a guess: the ``input_size`` argument (an int is the image side, the
    channels being the model's), else the model's recorded ``default_input_size`` (zoo models). A CIFAR
    network profiled at 224 px would report 49 times its multiply-adds.
    """
    recorded = getattr(model, "default_input_size", None)
    if input_size is None:
        return (tuple(recorded), "model.default_input_size") if recorded is not None else (None, "")
    if isinstance(input_size, bool) or not isinstance(input_size, (int, tuple, list)):
        raise ValueError(f"input_size must be an image side or (C, H, W), got {input_size!r}")
    if isinstance(input_size, int):
        if input_size <= 0:
            raise ValueError(f"the image side (input_size; CLI --image-size) must be positive, got {input_size}")
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = recorded[0] if recorded is not None else first.in_channels if first is not None else None
        if channels is None:
            raise ValueError(f"input_size={input_size} gives the image side only, and {type(model).__name__} has "
                             "no Conv2d to read the channels from; give (C, H, W)")  # fmt: skip
        input_size = (channels, input_size, input_size)
    size = tuple(input_size)
    if not size or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in size):
        raise ValueError(f"input_size must hold positive integers, got {input_size!r}")
    return size, "input_size argument"


def _measure(model: nn.Module, input_size: tuple[int, ...] | None) -> tuple[dict[str, int] | None, int | None, str]:
    """Multiply-adds per module path (totals) and of the whole model, or why they could not be counted."""
    if input_size is None:
        return None, None, "the network records no input size (default_input_size); give input_size="
    try:
        report = profile(model, input_size)
    except Exception as exc:  # noqa: BLE001 - the model is arbitrary user code
        return None, None, f"senet.profile failed at {input_size}: {type(exc).__name__}"
    return {layer.name: layer.total.macs for layer in report.layers}, report.macs, ""


def _build(factory: Any, place: Place, kwargs: dict[str, Any], identity: bool, dims_ok: bool) -> nn.Module:
    extra = {"dims": place.dims} if place.dims != 2 or dims_ok else {}
    module = factory(place.channels, **kwargs, **extra)
    if not isinstance(module, nn.Module):
        raise ValueError(f"the attention factory returned {type(module).__name__}, not an nn.Module")
    return start_as_identity(module) if identity else module


def _attribute_names() -> Iterator[str]:
    """'se' (the zoo's name), then 'retrofit_se', 'retrofit_se2', ... for owners that have one already."""
    yield from ("se", "retrofit_se")
    yield from (f"retrofit_se{i}" for i in itertools.count(2))


def _insert(model: nn.Module, place: Place, module: nn.Module) -> str:
    """Registers ``module`` under its owner and hooks it in; returns its path."""
    target = model.get_submodule(place.target)
    owner_path = place.owner if not isinstance(model.get_submodule(place.owner), _CONTAINERS) else place.target
    owner = model.get_submodule(owner_path)
    name = next(n for n in _attribute_names() if not hasattr(owner, n))
    reference = next(iter(target.parameters()), None)
    reference = reference if reference is not None else next(iter(model.parameters()), None)
    if reference is not None and reference.is_floating_point():
        module.to(device=reference.device, dtype=reference.dtype)
    module.train(target.training)
    owner.add_module(name, module)
    fold = Fold(model.get_submodule(place.fold[0]), place.fold[1]) if place.fold else None
    attach(target, AttentionHook(owner, name, place.side, fold, place.layout))
    return f"{owner_path}.{name}" if owner_path else name


def retrofit(
    model: nn.Module,
    attention: AttentionSpec = "se",
    *,
    reduction: float = _PAPER_REDUCTION,
    placement: str = "standard",
    identity_init: bool = True,
    where: Where = None,
    inplace: bool = False,
    input_size: int | tuple[int, ...] | None = None,
) -> tuple[nn.Module, RetrofitReport]:
    """Inserts an attention module into every residual block (or chosen layer) of an existing CNN.

    Args:
        model: Any CNN (``nn.Module``) without attention: the zoo's, torchvision's, timm's, your own.
        attention: A registered attention name ('se', 'eca', ...), a class or a ``functools.partial``.
        reduction: r, for modules that take one (SE: hidden width C // r).
        placement: Where in a residual block, as in the zoo: 'standard' (x' + A(F(x))), 'pre'
            (x' + F(A(x))), 'identity' (A(x') + F(x)), 'post' (A(x' + F(x)) before the final activation),
            'after_3x3'. Conv/norm layers (networks without residual blocks) take only 'standard'.
        identity_init: Start every module as the identity (zero last layer, gate 2 * sigmoid), so the
            network computes exactly what it did; ``to_paper_gate`` returns to sigmoid after fine-tuning.
        where: The places: ``None`` (every residual block, or every conv + norm layer if there is none),
            a name or list of names (block paths such as ``'layer1.0'``, conv or norm paths such as
            ``'features.1'``: any convolution or norm layer called once, for attention after it), or a
            predicate ``f(name, module) -> bool`` over the default places.
        inplace: Change ``model`` itself instead of a deep copy.
        input_size: The network's input, at which the report counts multiply-adds: (C, H, W), or an
            int, the image side (``senet retrofit --image-size``; C is the model's). Default: the model's
            recorded ``default_input_size`` (zoo models); without either, multiply-adds are not counted
            (a CIFAR network profiled at 224 px would report 49 times its cost).

    Returns:
        (the retrofitted model, a ``RetrofitReport``). Attention modules are children of their block
        (``layer1.0.se``; ``layer1.0.retrofit_se`` when the block has an ``se`` attribute already) or,
        for conv/norm layers, of the hooked layer (``features.2.se``), labelled ``SE_<stage>_<block>``.
        Every existing ``state_dict`` key is kept.

    Raises:
        ValueError: (one line) On a model that has attention already, an unknown attention, placement
            or place, a network with neither residual blocks nor conv/norm pairs (unless ``where`` names
            layers; the message says how), a malformed ``input_size``, a placement a block
            cannot take, or ``identity_init`` with a module it does not support.
    """
    _check_model(model)
    factory = get_attention(attention)
    if factory is None:
        raise ValueError("attention must name an attention module, got None")
    kwargs = _factory_kwargs(factory, attention, reduction)
    _input_size(model, input_size)  # a malformed size is refused before anything is done
    structure = find_structure(model)
    if not structure.blocks and not structure.conv_norms and (where is None or callable(where)):
        _refuse_placeless(model, structure)
    chosen = places(structure, model, where, placement)
    dims_ok = _accepts(factory, "dims")
    modules = [_build(factory, p, kwargs, identity_init, dims_ok) for p in chosen]  # errors before any change
    if not inplace:
        model = copy.deepcopy(model)
    size, size_source = _input_size(model, input_size)
    _, macs_before, _ = _measure(model, size)
    params_before = sum(p.numel() for p in model.parameters())
    paths = []
    for place, module, (stage, block) in zip(chosen, modules, stage_labels(chosen, structure), strict=True):
        label_attention(module, stage, block)
        paths.append(_insert(model, place, module))
    per_module, macs_after, note = _measure(model, size)
    inserted = tuple(
        InsertedAttention(
            label=getattr(module, ATTENTION_LABEL),
            path=path,
            place=place.name,
            position=place.position,
            channels=place.channels,
            params=sum(p.numel() for p in module.parameters()),
            macs=per_module.get(path) if per_module is not None else None,
        )
        for place, module, path in zip(chosen, modules, paths, strict=True)
    )
    report = RetrofitReport(
        model=type(model).__name__,
        attention=_name(attention),
        placement=placement,
        identity_init=identity_init,
        method=structure.method,
        note=structure.note,
        inserted=inserted,
        params_before=params_before,
        params_after=sum(p.numel() for p in model.parameters()),
        input_size=size,
        macs_before=macs_before if macs_after is not None else None,
        macs_after=macs_after,
        macs_note=note,
        input_size_source=size_source,
    )
    return model, report


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The attention modules of any model by paper-style label, in module order (``SENetModel``'s rule)."""
    return {getattr(m, ATTENTION_LABEL): m for m in model.modules() if hasattr(m, ATTENTION_LABEL)}


def attention_paths(model: nn.Module) -> dict[str, str]:
    """The ``state_dict`` prefix of each attention module of any model, by paper-style label."""
    return {getattr(m, ATTENTION_LABEL): path for path, m in model.named_modules() if hasattr(m, ATTENTION_LABEL)}
