"""The model registry: every network is a named, frozen config plus the one builder of its family.

``create_model('se_resnet50')`` is ResNet-50 with SE; ``create_model('resnet50', attention='eca')``
the same network with any registered attention; ``create_model('se_resnet50', attention=None)`` the
plain network, exactly.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .._choices import PLACEMENTS
from .._validation import close_matches, did_you_mean
from ..layers.common import MAX_EXPANSION
from ..layers.registry import AttentionSpec, get_attention
from .base import label_attention
from .features import features_model


class _Default:
    def __repr__(self) -> str:
        return "<model default>"


DEFAULT = _Default()


@dataclass(frozen=True)
class AttentionConfig:
    """How a model places attention: what, where, with which arguments.

    Attributes:
        attention: The attention spec (registered name, class, partial) or ``None``.
        kwargs: Keyword arguments for the attention module (``reduction`` among them).
        stages: The paper's stage numbers that carry attention (the stem is stage 1); ``None``: all.
        placement: Where in a residual block: 'standard', 'pre', 'post', 'identity' or 'after_3x3'.
        stages_seen: The stages the builder asked about (``create``, ``absent``): the network's stages,
            against which ``create_model`` checks ``se_stages``.
    """

    attention: AttentionSpec = None
    kwargs: tuple[tuple[str, Any], ...] = ()
    stages: tuple[int, ...] | None = None
    placement: str = "standard"
    stages_seen: set[int] = field(default_factory=set, init=False, repr=False, compare=False)

    def enabled(self, stage: int) -> bool:
        """Whether stage ``stage`` (paper numbering) carries attention."""
        return self.attention is not None and (self.stages is None or stage in self.stages)

    def absent(self, stage: int) -> None:
        """Notes a block of stage ``stage`` that has no attention by design (so the stage exists); ``None``."""
        self.stages_seen.add(stage)

    def create(self, channels: int, stage: int, block: int, **overrides: Any) -> nn.Module | None:
        """Builds the attention module of block ``block`` of stage ``stage``, labelled, or ``None``."""
        self.stages_seen.add(stage)
        if not self.enabled(stage):
            return None
        factory = get_attention(self.attention)
        if factory is None:
            return None
        return label_attention(factory(channels, **{**dict(self.kwargs), **overrides}), stage, block)


@dataclass(frozen=True)
class ModelEntry:
    """A registered network (see ``register_model`` for the fields)."""

    name: str
    builder: Callable[..., nn.Module]
    config: Any
    attention: AttentionSpec
    attention_kwargs: tuple[tuple[str, Any], ...]
    placements: tuple[str, ...]
    description: str
    num_classes: int = 1000
    input_size: tuple[int, int, int] = (3, 224, 224)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    config: Any,
    *,
    attention: AttentionSpec = None,
    attention_kwargs: dict[str, Any] | None = None,
    placements: tuple[str, ...] = ("standard",),
    description: str = "",
    num_classes: int = 1000,
    input_size: tuple[int, int, int] | None = None,
) -> None:
    """Registers a network under ``name``.

    Args:
        name: The registry name (``'resnet50'``, ``'se_resnet50'``, ...).
        builder: The family's model class (or any callable) taking
            ``(config, *, num_classes, in_chans, attn: AttentionConfig)``.
        config: The family's frozen dataclass describing this network.
        attention: The network's default attention (``'se'`` for SE networks, ``None`` for plain ones).
        attention_kwargs: The network's default attention arguments (e.g. its own reduction rule).
        placements: The ``se_placement`` values the family supports.
        description: One line for ``senet list``.
        num_classes: The network's default classifier size (10 for the CIFAR networks).
        input_size: The network's natural input (C, H, W): what it was designed and trained at, and
            what ``senet profile`` uses unless told otherwise; default: the builder's
            ``default_input_size`` ((3, 32, 32) for the CIFAR networks, (3, 299, 299) for
            Inception-ResNet-v2), else (3, 224, 224).

    Raises:
        ValueError: If the name is taken or ``input_size`` is not three positive integers.
    """
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    if input_size is None:
        input_size = getattr(builder, "default_input_size", (3, 224, 224))
    if len(input_size) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in input_size):
        raise ValueError(f"input_size must be three positive integers (C, H, W), got {input_size!r}")
    _MODELS[name] = ModelEntry(
        name,
        builder,
        config,
        attention,
        tuple(sorted((attention_kwargs or {}).items())),
        placements,
        description,
        num_classes,
        tuple(input_size),
    )


def list_models(pattern: str | None = None) -> list[str]:
    """Returns the registered model names, sorted, optionally filtered by a glob ``pattern``.

    Args:
        pattern: e.g. ``'se_resnet*'``; ``None`` lists all.
    """
    names = sorted(_MODELS)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def model_aliases() -> dict[str, str]:
    """Short names that stand for one registered network: the CIFAR networks without their ``cifar_``
    prefix (``resnet20`` -> ``cifar_resnet20``, ``se_resnet110`` -> ``se_cifar_resnet110``). An alias
    never shadows a registered name, and runs record the registered name."""
    aliases = {n.replace("cifar_", "", 1): n for n in _MODELS if "cifar_" in n}
    return {a: n for a, n in aliases.items() if a not in _MODELS}


def canonical_model_name(name: str) -> str:
    """The registered name ``name`` stands for (itself, or the network of an alias); unknown names unchanged."""
    return model_aliases().get(name, name)


def get_model_entry(name: str) -> ModelEntry:
    """Returns the registry entry of ``name`` (a registered name or an alias, see ``model_aliases``).

    Raises:
        ValueError: On an unknown name, listing the close matches.
    """
    name = canonical_model_name(name)
    if name not in _MODELS:
        aliases = model_aliases()  # a short CIFAR name ('resnt20' -> resnet20) suggests its registered network
        close = close_matches(name, sorted({*_MODELS, *aliases}))
        named = list(dict.fromkeys(aliases.get(c, c) for c in close))
        hint = f"; did you mean {', '.join(named)}?" if named else "; see `senet list` or senet.list_models()"
        raise ValueError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def create_model(
    name: str,
    *,
    num_classes: int | _Default = DEFAULT,
    in_chans: int = 3,
    attention: AttentionSpec | _Default = DEFAULT,
    reduction: float | _Default = DEFAULT,
    se_stages: tuple[int, ...] | list[int] | None = None,
    se_placement: str = "standard",
    attention_kwargs: dict[str, Any] | None = None,
    features_only: bool = False,
    out_indices: tuple[int, ...] | list[int] | None = None,
    **model_options: Any,
) -> nn.Module:
    """Builds a registered network.

    Args:
        name: A name from ``list_models()``.
        num_classes: Size of the classifier (0: no classifier, ``forward`` returns pooled features);
            default: the network's own (1000 for ImageNet networks, 10 for the CIFAR ones).
        in_chans: Input channels.
        attention: Overrides the network's attention: a registered name, class, partial, or ``None``
            for the plain network.
        reduction: The SE reduction ratio r (default: the network's own, 16 for the paper's networks).
        se_stages: The paper's stage numbers carrying attention (stem = 1); default all. Each must be a
            stage of the network.
        se_placement: 'standard' (x + SE(F(x))), 'pre' (x + F(SE(x))), 'post' (SE(x + F(x))),
            'identity' (SE(x) + F(x)) or 'after_3x3' (SE on the 3x3 convolution's output).
        attention_kwargs: Further arguments for the attention module (e.g. ``{'gate': 'tanh'}``).
        pretrained: Not here: ``senet.create_model`` (``senet.factory``) loads checkpoints; this builder
            only builds. Passing it is refused with a one-line pointer.
        features_only: Return the backbone: a ``senet.models.features.FeatureExtractor`` whose
            ``forward`` gives the stage feature maps and whose ``feature_info`` their channels, strides and
            modules (docs/backbones.md). It has no classifier, so ``num_classes`` is refused with it.
        out_indices: With ``features_only``, the feature maps to return (ImageNet networks: 0..4 at strides
            2..32; CIFAR networks: 0..2 at strides 1..4); default all.
        **model_options: Fields of the network's config to override (e.g. ``stride_in_1x1=False``,
            ``drop_rate=0.2``).

    Returns:
        The model (an ``SENetModel``); its ``default_input_size`` is the network's natural input
        (``in_chans``, H, W).

    Raises:
        ValueError: On an unknown model, attention, placement, stage or option (listing the valid ones).
    """
    entry = get_model_entry(name)
    if "pretrained" in model_options:
        raise ValueError(
            "senet.models.create_model builds without weights; use senet.create_model(..., pretrained=...)"
        )
    if num_classes is DEFAULT:
        num_classes = entry.num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a non-negative integer, got {num_classes!r}")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans <= 0:
        raise ValueError(f"in_chans must be a positive integer, got {in_chans!r}")
    if se_placement not in PLACEMENTS:
        raise ValueError(f"unknown se_placement {se_placement!r}; valid: {', '.join(PLACEMENTS)}")
    if se_placement not in entry.placements:
        raise ValueError(
            f"model {name!r} supports se_placement {', '.join(entry.placements)}; got {se_placement!r}"
        )
    spec = entry.attention if attention is DEFAULT else attention
    get_attention(spec)  # fail early on an unknown name
    kwargs = dict(entry.attention_kwargs)
    if reduction is not DEFAULT:
        if (
            isinstance(reduction, bool)
            or not isinstance(reduction, (int, float))
            or not math.isfinite(reduction)
            or reduction < 1 / MAX_EXPANSION
        ):  # as the attention modules check it, also for a network without attention
            raise ValueError(
                f"reduction must be a positive finite number of at least 1/{MAX_EXPANSION}, got {reduction!r}"
            )
        kwargs["reduction"] = reduction
    # A network's own SE settings (e.g. MobileNetV3's hard-sigmoid) only apply to its own attention.
    if attention is not DEFAULT and spec != entry.attention:
        kwargs = {k: v for k, v in kwargs.items() if k == "reduction" and reduction is not DEFAULT}
    kwargs.update(attention_kwargs or {})
    _check_attention_kwargs(spec, kwargs)
    stages = None if se_stages is None else _check_stages(se_stages)
    attn = AttentionConfig(spec, tuple(sorted(kwargs.items())), stages, se_placement)
    config = _apply_options(entry, model_options)
    model = entry.builder(config, num_classes=num_classes, in_chans=in_chans, attn=attn)
    missing = sorted(set(stages or ()) - attn.stages_seen)
    if missing:
        valid = ", ".join(map(str, sorted(attn.stages_seen))) or "none (it places no attention by stage)"
        raise ValueError(
            f"model {name!r} has no stage {', '.join(map(str, missing))}; its stages (the stem is stage 1): {valid}"
        )
    model.default_input_size = (in_chans, *entry.input_size[1:])
    model.model_name = entry.name  # what load_pretrained checks a checkpoint's options against
    return _cut(model, entry, features_only, out_indices, num_classes)


def _cut(
    model: nn.Module, entry: ModelEntry, features_only: bool, out_indices: Any, num_classes: int
) -> nn.Module:
    """The backbone of the built (and loaded) model when ``features_only``: the last step of ``create_model``."""
    if features_only or out_indices is not None:
        model = features_model(
            model, name=entry.name, features_only=features_only, out_indices=out_indices,
            num_classes=num_classes, default_num_classes=entry.num_classes,
        )  # fmt: skip
    return model


def changed_options(model: nn.Module) -> dict[str, Any]:
    """The config fields of a zoo model that differ from its registered network's (``create_model``'s
    ``**model_options`` that rebuild it, e.g. a publisher's ``stem_pool='ceil'``).

    Raises:
        ValueError: If ``model`` was not built by ``create_model`` (it has no ``model_name``/``config``).
    """
    name, config = getattr(model, "model_name", None), getattr(model, "config", None)
    if name is None or config is None:
        raise ValueError(f"{type(model).__name__} was not built by create_model: it records no options")
    default = get_model_entry(name).config
    return {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(default, f.name)
    }


def _check_stages(se_stages: Any) -> tuple[int, ...]:
    """``se_stages`` as a tuple of integers; a ``ValueError`` for anything else (a string, 2.5, True)."""
    if isinstance(se_stages, (str, bytes)) or not hasattr(se_stages, "__iter__"):
        raise ValueError(f"se_stages must be a sequence of stage numbers, e.g. (2, 3), got {se_stages!r}")
    stages = tuple(se_stages)
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in stages):
        raise ValueError(f"se_stages must be integers (the stem is stage 1), got {se_stages!r}")
    return tuple(int(s) for s in stages)


def _check_attention_kwargs(spec: AttentionSpec, kwargs: dict[str, Any]) -> None:
    """Fails at the first door when the attention module does not take one of ``kwargs``."""
    factory = get_attention(spec)
    if factory is None or not kwargs:
        return
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a callable without a signature: let it decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for key in kwargs:
        if key not in accepted:
            name = spec if isinstance(spec, str) else getattr(factory, "__name__", repr(factory))
            raise ValueError(
                f"attention {name!r} takes no argument {key!r} (its arguments: {', '.join(accepted[1:])})"
            )


def _apply_options(entry: ModelEntry, options: dict[str, Any]) -> Any:
    if not options:
        return entry.config
    fields = [f.name for f in dataclasses.fields(entry.config)]
    for key in options:
        if key not in fields:
            hint = did_you_mean(key, fields, n=3)
            raise ValueError(
                f"model {entry.name!r} has no option {key!r}{hint} (options: {', '.join(sorted(fields))})"
            )
    return dataclasses.replace(entry.config, **options)
