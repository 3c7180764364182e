"""Backbones: the stage feature maps of any zoo model, for detection and segmentation heads.

``create_model(name, features_only=True, out_indices=(1, 2, 3, 4))`` (or ``as_features(model)``) returns a
``FeatureExtractor``: ``forward(x)`` gives a list of feature maps, ``feature_info`` says for each its
channels (``num_chs``), its stride (``reduction``) and the module that produces it (``module``).

The index convention (one for the whole zoo). Feature ``i`` is the network's *last* feature map at its
``i``-th stride, strides counted from the first the network offers:

* ImageNet networks: strides 2, 4, 8, 16, 32, so index ``i`` is stride ``2 ** (i + 1)`` in every one of
  them (ResNet-50: the stem's ReLU 64@2, conv2_x 256@4, conv3_x 512@8, conv4_x 1024@16, conv5_x 2048@32).
  VGG's full-resolution conv1_x maps are not offered, so that this holds for VGG as well.
* CIFAR networks (no stem downsampling, three stages): strides 1, 2, 4, so index ``i`` is stride
  ``2 ** i`` (ResNet-20: 16@1, 32@2, 64@4).

"Last at a stride" means just before the network downsamples again (BN-Inception's stride-8 map is
module 3b's output, since 3c reduces to stride 16), which is what feature pyramids take. The last
feature is always ``model.forward_features(x)`` itself, so it includes whatever the classifier's
trunk ends with (DenseNet's final BN-ReLU, the 1x1 convolution of MobileNetV3 and EfficientNet, the
final BN-ReLU of the pre-activation CIFAR networks). Strides are nominal: Inception-ResNet-v2's unpadded
convolutions give maps a little smaller than ``H / stride``.

Weights. The extractor takes over the model's modules under their own names, so its ``state_dict`` is
the classifier's minus the modules it does not run (``extractor.pruned``): the classifier (``fc``),
the head layers after the trunk (VGG's ``fc6``/``fc7``, MobileNetV3's ``conv_head``) and the stages
after the last selected index. ``extractor.load_state_dict(classifier_state_dict)`` drops exactly those
keys and loads the rest strictly (also when the extractor sits inside a larger model).

A family describes its trunk with ``model.feature_plan()``: the modules ``forward_features`` runs, in
order, each as ``(module path or function, output channels or None, output stride)``; ``None`` marks a
step whose output is not a feature (a convolution before its BN, an input padding).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from torch import Tensor, nn

from .base import SENetModel

# Model attributes a features model keeps (``data_config`` and the pretrained loader read them).
_CARRIED = ("default_input_size", "pretrained_cfg", "pretrained_info")


class PlanStep(NamedTuple):
    """One step of ``forward_features``: ``x = module(x)``.

    Attributes:
        module: The dotted path of a submodule, or a function of the tensor (e.g. an input padding).
        num_chs: The step's output channels, or ``None`` when its output is not a feature.
        reduction: The step's output stride relative to the input.
    """

    module: str | Callable[[Tensor], Tensor]
    num_chs: int | None
    reduction: int


@dataclass(frozen=True)
class Feature:
    """One feature map: its index (the ``out_indices`` value), channels, stride and producing module.

    ``feature['num_chs']`` works as ``feature.num_chs`` (timm's feature info are dicts).
    """

    index: int
    num_chs: int
    reduction: int
    module: str

    def __getitem__(self, key: str) -> Any:
        if key not in ("index", "num_chs", "reduction", "module"):
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        """``{'index': ..., 'num_chs': ..., 'reduction': ..., 'module': ...}``."""
        return {"index": self.index, "num_chs": self.num_chs, "reduction": self.reduction, "module": self.module}


class FeatureInfo(Sequence):
    """The features a model returns, in output order, with timm's helpers.

    Args:
        features: The ``Feature`` of each output.
    """

    def __init__(self, features: Sequence[Feature]) -> None:
        self._features = tuple(features)

    def __getitem__(self, i: int) -> Feature:  # type: ignore[override]
        return self._features[i]

    def __len__(self) -> int:
        return len(self._features)

    def __iter__(self) -> Iterator[Feature]:
        return iter(self._features)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureInfo) and self._features == other._features

    def __repr__(self) -> str:
        items = ", ".join(f"{f.index}: {f.num_chs}@{f.reduction} ({f.module})" for f in self._features)
        return f"FeatureInfo({items})"

    def _get(self, key: str, idx: int | Sequence[int] | None) -> Any:
        if idx is None:
            return [getattr(f, key) for f in self._features]
        if isinstance(idx, int):
            return getattr(self._features[idx], key)
        return [getattr(self._features[i], key) for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """The channels of every output (a list), or of output ``idx``."""
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """The stride of every output (a list), or of output ``idx``."""
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """The producing module's name (a ``state_dict`` prefix) of every output, or of output ``idx``."""
        return self._get("module", idx)

    def get_dicts(self) -> list[dict[str, Any]]:
        """Every output as a dict (``index``, ``num_chs``, ``reduction``, ``module``)."""
        return [f.as_dict() for f in self._features]


def feature_plan(model: nn.Module) -> list[PlanStep]:
    """The validated ``feature_plan()`` of ``model`` (see the module doc).

    Raises:
        ValueError: If the model has no plan, or its plan names a missing module, a bad channel count or
            a decreasing stride.
    """
    get_plan = getattr(model, "feature_plan", None)
    if get_plan is None:
        raise ValueError(
            f"{type(model).__name__} has no feature_plan(), so features_only cannot cut it into stages "
            "(see docs/backbones.md)"
        )
    steps = [PlanStep(*step) for step in get_plan()]
    last = 1
    for step in steps:
        if isinstance(step.module, str):
            model.get_submodule(step.module)  # AttributeError on a wrong path: a bug of the family
        elif not callable(step.module):
            raise ValueError(f"{type(model).__name__}.feature_plan(): {step.module!r} is not a module path")
        if step.num_chs is not None and (not isinstance(step.num_chs, int) or step.num_chs <= 0):
            raise ValueError(f"{type(model).__name__}.feature_plan(): bad channel count in {step}")
        if not isinstance(step.reduction, int) or step.reduction < last:
            raise ValueError(f"{type(model).__name__}.feature_plan(): strides must not decrease, at {step}")
        last = step.reduction
    if not steps or steps[-1].num_chs is None:
        raise ValueError(f"{type(model).__name__}.feature_plan() must end with forward_features' output")
    return steps


def _features_of(steps: list[PlanStep]) -> tuple[list[Feature], list[int]]:
    # The last feature-capable step at each stride, in order: (features, their step positions).
    last_at: dict[int, int] = {}
    for position, step in enumerate(steps):
        if step.num_chs is not None:
            last_at[step.reduction] = position
    positions = [last_at[r] for r in sorted(last_at)]
    features = []
    for index, position in enumerate(positions):
        step = steps[position]
        name = step.module if isinstance(step.module, str) else getattr(step.module, "__name__", "?")
        features.append(Feature(index, step.num_chs, step.reduction, name))
    return features, positions


def get_feature_info(model: nn.Module) -> FeatureInfo:
    """Every feature ``model`` offers (index, channels, stride, module), whatever ``out_indices`` selects.

    Args:
        model: A zoo classifier (``create_model(name)``) or a ``FeatureExtractor`` (then its own
            selection).
    """
    if isinstance(model, FeatureExtractor):
        return model.feature_info
    return FeatureInfo(_features_of(feature_plan(model))[0])


def check_out_indices(out_indices: Any, available: Sequence[Feature], name: str) -> tuple[int, ...]:
    """``out_indices`` as non-negative indices into ``available``, in the given order.

    Args:
        out_indices: ``None`` (all) or a sequence of distinct integers, negative ones counting from the end.
        available: The model's features.
        name: The model's name, for the message.

    Raises:
        ValueError: One line naming the problem and the valid indices.
    """
    n = len(available)
    if out_indices is None:
        return tuple(range(n))
    valid = ", ".join(f"{f.index} ({f.num_chs} ch, stride {f.reduction})" for f in available)
    hint = f"valid out_indices of {name}: {valid}; or -{n}..-1 from the end"
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence) or not out_indices:
        raise ValueError(f"out_indices must be a non-empty sequence of integers, got {out_indices!r}; {hint}")
    result = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise ValueError(f"out_indices must be integers, got {i!r} in {tuple(out_indices)!r}; {hint}")
        if not -n <= int(i) < n:
            raise ValueError(f"out_indices {tuple(out_indices)!r}: {i} is out of range; {hint}")
        j = int(i) % n
        if j in result:
            raise ValueError(f"out_indices {tuple(out_indices)!r}: feature {j} is selected twice; {hint}")
        result.append(j)
    return tuple(result)


def _has_state(module: nn.Module) -> bool:
    return any(True for _ in module.state_dict(keep_vars=True))


def _drop_pruned_keys(
    module: FeatureExtractor, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    # A load_state_dict pre-hook: the classifier's keys of modules the extractor does not have are
    # removed (from load_state_dict's own copy of the dict), so a full checkpoint loads strictly.
    starts = tuple(f"{prefix}{name}." for name in module.pruned)
    for key in [k for k in state_dict if k.startswith(starts)]:
        del state_dict[key]


class FeatureExtractor(nn.Module):
    """A zoo model cut into a backbone: ``forward(x)`` returns the selected stage feature maps.

    It takes the model's modules over (the model is modified and should not be used afterwards), under
    their own names, so that its ``state_dict`` keys are the model's minus ``pruned``.

    Args:
        model: A zoo model with a ``feature_plan()`` (every registered network has one).
        out_indices: The features to return, in this order (see the module doc for the convention);
            ``None``: all. Negative indices count from the end.
        name: The model's name, for messages (default: its class name).

    Attributes:
        feature_info: A ``FeatureInfo``, one entry per output.
        out_indices: The selected indices, non-negative, in output order.
        pruned: The model's modules with weights that the extractor does not keep (``fc``, head layers,
            stages after the last selected one); their keys are dropped when a state dict is loaded.

    Raises:
        ValueError: On invalid ``out_indices`` (one line listing the valid ones) or a model without a plan.
    """

    def __init__(self, model: nn.Module, out_indices: Sequence[int] | None = None, *, name: str | None = None) -> None:
        super().__init__()
        name = name or type(model).__name__
        steps = feature_plan(model)
        available, positions = _features_of(steps)
        indices = check_out_indices(out_indices, available, name)
        steps = steps[: max(positions[i] for i in indices) + 1]
        kept = [s.module for s in steps if isinstance(s.module, str)]
        self.pruned = tuple(self._adopt(model, kept))
        self.model_name = name
        self.out_indices = indices
        self.feature_info = FeatureInfo([available[i] for i in indices])
        self._steps = tuple(s.module for s in steps)
        self._outputs = {positions[i]: k for k, i in enumerate(indices)}  # step position -> output position
        for attr in _CARRIED:
            if attr in model.__dict__:
                setattr(self, attr, model.__dict__[attr])
        self.train(model.training)
        self._register_load_state_dict_pre_hook(_drop_pruned_keys, with_module=True)

    def _adopt(self, model: nn.Module, kept: list[str]) -> list[str]:
        # Registers the model's modules that the kept steps use under their own names; a module that is
        # not needed is left out at the top level and replaced by an Identity below it (so that names
        # stay). Returns the paths of the modules left out that held weights or buffers.
        def needed(path: str) -> bool:
            return any(k == path or k.startswith(path + ".") or path.startswith(k + ".") for k in kept)

        def prune_inside(module: nn.Module, prefix: str) -> None:
            if prefix in kept:
                return
            for child_name, child in list(module.named_children()):
                path = f"{prefix}.{child_name}"
                if needed(path):
                    prune_inside(child, path)
                else:
                    if _has_state(child):
                        pruned.append(path)
                    setattr(module, child_name, nn.Identity())

        pruned: list[str] = []
        for pname, param in model.named_parameters(recurse=False):
            self.register_parameter(pname, param)
        for bname, buf in model.named_buffers(recurse=False):
            self.register_buffer(bname, buf, persistent=bname not in model._non_persistent_buffers_set)
        for child_name, child in model.named_children():
            if needed(child_name):
                prune_inside(child, child_name)
                self.add_module(child_name, child)
            elif _has_state(child):
                pruned.append(child_name)
        return pruned

    def forward(self, x: Tensor) -> list[Tensor]:
        """(N, in_chans, H, W) -> the selected feature maps, (N, num_chs, ~H/reduction, ~W/reduction) each."""
        outputs: list[Tensor | None] = [None] * len(self.out_indices)
        for position, step in enumerate(self._steps):
            x = self.get_submodule(step)(x) if isinstance(step, str) else step(x)
            if position in self._outputs:
                outputs[self._outputs[position]] = x
        return outputs  # type: ignore[return-value]

    # The attention modules the extractor kept, by paper-style name, and their state_dict prefixes.
    attention_modules = SENetModel.attention_modules
    attention_paths = SENetModel.attention_paths

    def extra_repr(self) -> str:
        return f"model={self.model_name!r}, out_indices={self.out_indices}"


def as_features(
    model: nn.Module, out_indices: Sequence[int] | None = None, *, name: str | None = None
) -> FeatureExtractor:
    """``FeatureExtractor(model, out_indices)``: the model (e.g. with pretrained weights loaded) cut into a
    backbone; see ``FeatureExtractor``."""
    return FeatureExtractor(model, out_indices, name=name)


def features_model(
    model: nn.Module,
    *,
    name: str,
    features_only: bool,
    out_indices: Sequence[int] | None,
    num_classes: int,
    default_num_classes: int,
) -> nn.Module:
    """``create_model``'s last step: checks its ``features_only``/``out_indices``/``num_classes`` and cuts
    the built (and loaded) classifier into a backbone.

    Raises:
        ValueError: On ``out_indices`` without ``features_only``, ``features_only`` with a ``num_classes``
            other than the network's own (a backbone has no classifier), or invalid ``out_indices``.
    """
    if not isinstance(features_only, bool):
        raise ValueError(f"features_only must be True or False, got {features_only!r}")
    if not features_only:
        if out_indices is not None:
            raise ValueError(f"out_indices={out_indices!r} selects feature maps: pass features_only=True with it")
        return model
    if num_classes != default_num_classes:
        raise ValueError(
            f"features_only=True builds no classifier, so num_classes={num_classes} has no effect; leave it out"
        )
    return FeatureExtractor(model, out_indices, name=name)
