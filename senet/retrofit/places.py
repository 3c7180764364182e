"""Where attention goes: the candidate places of a model, the user's choice (``where``), the placement.

Places are of two kinds:

* a residual *block* (named by the module performing the addition, e.g. ``'layer1.0'``), where
  ``placement`` picks the hook point as in the zoo (``senet/models/resnet.py``):
  'standard' after the branch's last conv/norm, before the addition, y = x' + A(F(x));
  'pre' before the branch's first layer, y = x' + F(A(x));
  'identity' after the projection shortcut's last layer, y = A(x') + F(x);
  'post' on the sum, before the activation that follows it (or as the block's output), y = act(A(x' + F));
  'after_3x3' after the activation of the branch's first 3x3 convolution;
* a convolution + normalisation *layer* (named by the norm's path, or the conv's), for networks
  without residual blocks (VGG-style): attention after the activation module that follows the norm
  (the SE paper's "after the non-linearity following each convolution"), or after the norm when no
  activation module follows it alone; ``where`` can also name any convolution or norm layer called
  once, for attention right after it (networks with neither kind of place: convolutions without norms).

A placement whose point lies between module calls in a given block (an identity shortcut has no layer;
a ReLU module shared by several calls cannot take a hook for one of them) is refused for that block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from .._choices import PLACEMENTS
from .._validation import did_you_mean
from .graph import FIRST, LAST, ConvNorm, ResidualBlock, Structure
from .layers import CONVS, HOMOGENEOUS, channels_in, channels_out, folds_exactly, spatial_dims

Where = str | Iterable[str] | Callable[[str, nn.Module], bool] | None


@dataclass(frozen=True)
class Place:
    """One attention module to insert.

    Attributes:
        name: The place's name (block or layer path), as ``where`` takes it.
        kind: 'block' or 'layer'.
        target: Path of the module the hook sits on.
        side: 'output' (forward hook) or 'input' (forward pre-hook).
        owner: Path of the module that holds the attention module as a child.
        channels: Channels the attention module attends over.
        dims: Spatial dimensions.
        fold: (path, side) where ``to_paper_gate`` can put a doubled gate's factor 2, or ``None``.
        position: Where, in words.
        order: Forward-order position of the block's addition or the layer's norm.
        layout: 'channels_first', or 'channels_last' where the hooked tensor is (N, H, W, C) (the hook
            permutes around the attention module).
    """

    name: str
    kind: str
    target: str
    side: str
    owner: str
    channels: int
    dims: int
    fold: tuple[str, str] | None
    position: str
    order: int
    layout: str = "channels_first"


def candidates(structure: Structure) -> tuple[dict[str, ResidualBlock], dict[str, ConvNorm], dict[str, str]]:
    """The named blocks, the named conv/norm layers, and aliases (a conv's path -> its norm's)."""
    hosts = [b.host for b in structure.blocks]
    blocks: dict[str, ResidualBlock] = {}
    for b in structure.blocks:
        base = b.host or "<root>"
        k = sum(1 for name in blocks if name.startswith(f"{base}#")) + 1
        blocks[base if hosts.count(b.host) == 1 and b.host else f"{base}#{k}"] = b
    layers = {p.norm: p for p in structure.conv_norms}
    return blocks, layers, {p.conv: p.norm for p in structure.conv_norms}


def choose(structure: Structure, model: nn.Module, where: Where) -> list[tuple[str, ResidualBlock | ConvNorm]]:
    """The places ``where`` names: every block by default (every conv/norm layer if there is none).

    Raises:
        ValueError: On a name that is neither a block nor a conv/norm layer, or an empty choice.
    """
    blocks, layers, aliases = candidates(structure)
    default = blocks or layers
    if where is None:
        return list(default.items())
    if callable(where):
        chosen = [
            (name, c) for name, c in default.items() if where(name, model.get_submodule(_module_path(name, c)))
        ]
    else:
        names = [where] if isinstance(where, str) else list(where)
        chosen = []
        for name in names:
            if not isinstance(name, str):
                raise ValueError(f"where takes module names, a list of them or a predicate; got {name!r}")
            key = aliases.get(name, name)
            if key in blocks:
                chosen.append((key, blocks[key]))
            elif key in layers:
                chosen.append((key, layers[key]))
            else:
                chosen.append((key, _any_layer(structure, model, key, [*blocks, *layers, *aliases])))
        chosen = list(dict(chosen).items())  # in the order given, without repeats
    if not chosen:
        raise ValueError(f"where chose none of the {len(default)} places of {type(model).__name__}")
    return chosen


def _any_layer(structure: Structure, model: nn.Module, name: str, valid: list[str]) -> ConvNorm:
    """A conv or norm layer named in ``where`` that is not a default place: attention after its output.

    Raises:
        ValueError: If ``name`` is no such layer of ``model``, or the layer runs more than once.
    """
    try:
        module = model.get_submodule(name)
    except AttributeError:
        module = None
    channels = channels_out(module) if module is not None else None
    if channels is None or name not in structure.layers:
        known = [*valid, *(p for p in structure.layers if channels_out(model.get_submodule(p)) is not None)]
        raise ValueError(
            f"where: {name!r} is neither a residual block nor a conv/norm layer of "
            f"{type(model).__name__}{did_you_mean(name, list(dict.fromkeys(known)))}"
        )
    if structure.calls[name] != 1:
        raise ValueError(f"where: {name!r} runs {structure.calls[name]} times per forward; a hook on it would "
                         "attend every call")  # fmt: skip
    return ConvNorm(conv=name, norm=name, act=None, channels=channels, dims=spatial_dims(module),
                    order=structure.layers[name])  # fmt: skip


def conv_layers(structure: Structure, model: nn.Module) -> list[str]:
    """The convolutions of ``model`` called once per forward, in forward order (what ``where`` can name)."""
    paths = sorted(structure.layers, key=structure.layers.__getitem__)
    return [p for p in paths if isinstance(model.get_submodule(p), CONVS) and structure.calls[p] == 1]


def _module_path(name: str, candidate: ResidualBlock | ConvNorm) -> str:
    return candidate.host if isinstance(candidate, ResidualBlock) else candidate.norm


def resolve(
    name: str, candidate: ResidualBlock | ConvNorm, placement: str, model: nn.Module
) -> Place | str:
    """The hook point of ``candidate`` under ``placement``, or why there is none (one line)."""
    if isinstance(candidate, ConvNorm):
        if placement != "standard":
            return f"{name} is a conv/norm layer; placement {placement!r} applies to residual blocks"
        target = candidate.act or candidate.norm
        homogeneous = candidate.act is None or isinstance(model.get_submodule(candidate.act), HOMOGENEOUS)
        homogeneous = homogeneous and folds_exactly(model.get_submodule(candidate.norm))
        position = f"after {candidate.act} (the activation of {candidate.norm})" if candidate.act else f"after {name}"
        return Place(
            name, "layer", target, "output", target, candidate.channels, candidate.dims,
            (candidate.norm, "output") if homogeneous else None, position, candidate.order,
        )  # fmt: skip
    b = candidate
    owner = b.host

    def place(
        target: str, side: str, channels: int, fold: tuple[str, str] | None, position: str, layout: str = FIRST
    ) -> Place:
        return Place(name, "block", target, side, owner, channels, b.dims, fold, position, b.order, layout)

    if placement == "standard":
        fold = (b.branch_fold, "output") if b.branch_fold else None
        last = " (channels-last)" if b.branch_layout == LAST else ""
        return place(b.branch_end, "output", b.channels, fold,
                     f"residual branch, after {b.branch_end}{last}, before the addition", b.branch_layout)  # fmt: skip
    if placement == "pre":
        if b.branch_start is None:
            return f"{name}: its residual branch does not start with one layer fed the block's input alone"
        start = model.get_submodule(b.branch_start)
        fold = (b.branch_start, "input") if isinstance(start, CONVS) else None
        position = f"residual branch input, before {b.branch_start}"
        return place(b.branch_start, "input", channels_in(start), fold, position)
    if placement == "identity":
        if b.shortcut_end is None:
            return f"{name} adds its input unchanged (identity shortcut): no shortcut layer to attach to"
        channels = channels_out(model.get_submodule(b.shortcut_end))
        fold = (b.shortcut_end, "output")
        return place(b.shortcut_end, "output", channels, fold, f"shortcut, after {b.shortcut_end}")
    if placement == "post":
        if b.after_sum is not None:
            return place(b.after_sum, "input", b.channels, None, f"after the addition, before {b.after_sum}")
        if b.sum_is_output and b.host:
            return place(b.host, "output", b.channels, None, f"after the addition, on {b.host}'s output")
        return f"{name}: the sum feeds neither one activation module called once nor the block's output"
    if b.after_3x3 is None:
        return f"{name}: no 3x3 convolution followed by a norm and an activation module called once"
    act, norm = b.after_3x3
    homogeneous = act == norm or isinstance(model.get_submodule(act), HOMOGENEOUS)  # norm == act: it activates
    fold = (norm, "output") if homogeneous and folds_exactly(model.get_submodule(norm)) else None
    return place(act, "output", channels_out(model.get_submodule(norm)), fold, f"after {act} (the 3x3 convolution's)")


def check_placement(placement: str) -> None:
    """Raises a one-line ``ValueError`` unless ``placement`` is one of the zoo's placements."""
    if placement not in PLACEMENTS:
        hint = did_you_mean(str(placement), PLACEMENTS, n=3, cutoff=0.3)
        raise ValueError(f"unknown placement {placement!r}{hint} (valid: {', '.join(PLACEMENTS)})")


def places(structure: Structure, model: nn.Module, where: Where, placement: str) -> list[Place]:
    """The places to insert attention at, in forward order.

    Raises:
        ValueError: (one line) On an invalid ``where`` or ``placement``, a place the placement cannot
            reach, or two places sharing one hook point.
    """
    check_placement(placement)
    resolved = [resolve(name, c, placement, model) for name, c in choose(structure, model, where)]
    refused = [r for r in resolved if isinstance(r, str)]
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise ValueError(f"placement {placement!r} cannot be applied: {refused[0]}{more}; choose places with where=")
    chosen = sorted((p for p in resolved if isinstance(p, Place)), key=lambda p: p.order)
    seen: dict[tuple[str, str], str] = {}
    for p in chosen:
        other = seen.setdefault((p.target, p.side), p.name)
        if other != p.name:
            raise ValueError(f"places {other} and {p.name} would both attach attention to {p.target}; choose one")
    return chosen


def stage_labels(chosen: list[Place], structure: Structure) -> list[tuple[int, int]]:
    """(stage, block) of each chosen place: the zoo's ``SE_<stage>_<block>`` numbering.

    Places are numbered by their position among *all* places of their kind (a block chosen alone keeps
    the label it has when every block is chosen). A stage is a run of places at one resolution: a new
    one starts after a strided convolution or a pooling. The stem is stage 1: blocks start at stage 2
    (ResNet's conv2_x), conv/norm layers at stage 1 (VGG's conv1_1).
    """
    kinds = {p.kind for p in chosen}
    everything = sorted(
        {*(b.order for b in structure.blocks if "block" in kinds),
         *(c.order for c in structure.conv_norms if "layer" in kinds), *(p.order for p in chosen)}
    )  # fmt: skip
    labels: dict[int, tuple[int, int]] = {}
    stage, block = (2 if kinds == {"block"} else 1), 0
    for prev, order in zip([None, *everything[:-1]], everything, strict=True):
        if prev is not None and any(prev < d <= order for d in structure.downsamples):
            stage, block = stage + 1, 0
        block += 1
        labels[order] = (stage, block)
    return [labels[p.order] for p in chosen]
