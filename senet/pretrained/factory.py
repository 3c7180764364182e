"""A zoo model with public weights in it, built as the publisher's network, and the preprocessing it expects.

``create_model(name, pretrained=True | "tag" | path | url)`` comes here: the checkpoint is found (the
pretrained table, a file, a URL, a run directory), its naming recognised, the model built with the
options under which it computes what the publisher's network computes (e.g. ``stem_pool='ceil'`` for
the SE authors' models), and the weights loaded strictly. A classifier of another size
(``num_classes=10`` for fine-tuning) replaces the loaded one afterwards; ``features_only`` models are
cut from the loaded network, so every weight they keep is the checkpoint's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..convert import OURS, naming_options
from ..io import read_state_dict
from ..models import get_model_entry
from .hub import fetch, is_url
from .loading import LoadReport, checkpoint_naming, load_pretrained
from .provenance import SenetRecord, senet_record
from .schema import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, PretrainedWeights
from .table import get_pretrained, list_pretrained

# What a CIFAR network of the zoo is trained on by `senet train` (CIFAR-10's statistics).
_CIFAR = Preprocessing(
    input_size=(3, 32, 32), crop_pct=1.0, mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)
)


@dataclass(frozen=True)
class PretrainedInfo:
    """Where a model's weights came from (``model.pretrained_info``).

    Attributes:
        file: The checkpoint file read.
        naming: Its naming.
        weights: Its entry in the pretrained table, if it has one.
        report: What was loaded (``LoadReport``).
        classifier_replaced: Whether the checkpoint's classifier was replaced by a new one.
    """

    file: str
    naming: str
    weights: PretrainedWeights | None
    report: LoadReport
    classifier_replaced: bool = False


def resolve_checkpoint(
    model: str, pretrained: bool | str | os.PathLike, *, progress: bool = True
) -> tuple[Path, PretrainedWeights | None]:
    """The local file of ``pretrained`` for ``model`` and its table entry (if any), downloading it if needed.

    Args:
        model: The registered model name.
        pretrained: ``True`` (the model's default checkpoint), a tag of the pretrained table, a URL, a
            file or a senet run directory.
        progress: Show a progress bar while downloading.

    Raises:
        ValueError: On an unknown tag (listing the model's tags) or a model without public checkpoints.
        FileNotFoundError: On a missing file or a failed download (naming the URL and where to put the file).
    """
    if pretrained is True:
        weights = get_pretrained(model, True)
        return fetch(weights, progress=progress), weights
    if isinstance(pretrained, str) and is_url(pretrained):
        known = [w for w in list_pretrained() if w.url == pretrained]
        if known:
            return fetch(known[0], progress=progress), known[0]
        return fetch(pretrained, progress=progress), None
    path = Path(pretrained).expanduser()
    if path.exists():
        # A publisher's file under its own name (e.g. torchvision's resnet50-0676ba61.pth) is that entry:
        # its options apply even where its keys cannot tell it from ours (the modern ResNet naming).
        known = [w for w in list_pretrained(model) if path.is_file() and w.file_name == path.name]
        return path, known[0] if known else None
    if isinstance(pretrained, str) and os.sep not in pretrained and "." not in pretrained:
        weights = get_pretrained(model, pretrained)  # a tag; unknown ones fail listing the valid tags
        return fetch(weights, progress=progress), weights
    raise FileNotFoundError(f"{path} does not exist")


def create_pretrained(
    name: str,
    pretrained: bool | str | os.PathLike,
    *,
    num_classes: int | None = None,
    progress: bool = True,
    build: Any = None,
    **create_kwargs: Any,
) -> nn.Module:
    """Builds ``name`` as the checkpoint's network and loads the checkpoint into it (see the module doc).

    Args:
        name: A registered model name.
        pretrained: ``True``, a tag, a URL, a checkpoint file or a senet run directory.
        num_classes: The classifier wanted; when it differs from the checkpoint's, the loaded classifier
            is replaced by a new one (everything else keeps the checkpoint's weights). ``None``: the
            checkpoint's.
        progress: Show a progress bar while downloading.
        build: The model factory (``create_model``), passed in by the registry.
        **create_kwargs: Further ``create_model`` arguments; model options given here override the
            checkpoint's (e.g. to study the effect of ``stem_pool``).

    Returns:
        The model; ``model.pretrained_info`` says what was loaded, ``data_config(model)`` how to feed it.
    """
    path, weights = resolve_checkpoint(name, pretrained, progress=progress)
    state = read_state_dict(path)
    record = None if weights else senet_record(path)
    try:
        naming = weights.naming if weights else _naming_of_file(state, name, record)
        options = dict(weights.options) if weights else _publisher_options(naming, name, record)
    except ValueError as e:  # e.g. a ResNet checkpoint for a CIFAR network
        raise ValueError(f"{path} does not fit model {name!r}: {e}") from None
    kwargs = {**options, **create_kwargs}
    classes = weights.num_classes if weights else None
    model = build(name, **kwargs, **({} if classes is None else {"num_classes": classes}))
    try:
        report = load_pretrained(model, state, source=naming, strict=False)
        if not report.complete:
            inferred = _classifier_size(model, report)
            if inferred is not None and classes is None:  # e.g. our own 10-class fine-tuned run
                model = build(name, **kwargs, num_classes=inferred)
                report = load_pretrained(model, state, source=naming, strict=False)
    except ValueError as e:  # e.g. a ResNet checkpoint for a CIFAR network
        raise ValueError(f"{path} does not fit model {name!r}: {e}") from None
    if not report.complete:
        raise ValueError(f"{path} does not fit model {name!r}: {report.summary().split('; ', 1)[1]}")
    report.source = str(path)
    replaced = num_classes is not None and num_classes != getattr(model, "num_classes", num_classes)
    if replaced:
        model.reset_classifier(num_classes)
    model.pretrained_info = PretrainedInfo(str(path), naming, weights, report, replaced)
    preprocessing = weights.preprocessing if weights is not None else _naming_preprocessing(name, naming)
    if preprocessing is not None:
        model.pretrained_cfg = preprocessing
    return model


def _naming_preprocessing(name: str, naming: str) -> Preprocessing | None:
    """The preprocessing of a file outside the table (e.g. a renamed publisher's file): its publisher's,
    when every table entry of ``name`` in that naming agrees on it (akamaster's CIFAR networks take
    ImageNet's statistics, not CIFAR-10's); ``None`` where they differ or there is none."""
    found = {w.preprocessing for w in list_pretrained() if w.model == name and w.naming == naming}
    return found.pop() if len(found) == 1 else None


def _naming_of_file(state: dict[str, Any], name: str, record: SenetRecord | None = None) -> str:
    # Ours only where the file says so (record); a bare file of our keys is the publisher's (loading.py).
    return checkpoint_naming(state, name, record)


def _publisher_options(naming: str, name: str, record: SenetRecord | None = None) -> dict[str, Any]:
    if record is not None and record.model_options is not None and record.naming == naming:
        return dict(record.model_options)  # what the senet file says its network was built with
    if naming == OURS:
        return {}
    return dict(naming_options(naming, name))


def _classifier_size(model: nn.Module, report: LoadReport) -> int | None:
    """The checkpoint's class count when the classifier's shape is all that did not fit, else ``None``."""
    prefix = _classifier_prefix(model)
    if prefix is None or report.missing or report.unexpected:
        return None
    if not report.mismatched or any(not key.startswith(prefix) for key, _, _ in report.mismatched):
        return None
    weight = [shape for key, shape, _ in report.mismatched if key == f"{prefix}weight"]
    return weight[0][0] if weight else None


def _classifier_prefix(model: nn.Module) -> str | None:
    get = getattr(model, "get_classifier", None)
    if get is None:
        return None
    classifier = get()
    for path, module in model.named_modules():
        if module is classifier:
            return f"{path}." if path else ""
    return None


def data_config(model: nn.Module | str) -> dict[str, Any]:
    """The input preprocessing ``model`` expects, as plain values (see ``Preprocessing.as_dict``).

    Args:
        model: A model (its checkpoint's preprocessing if it was built with ``pretrained=``, else its
            natural input size with the ImageNet statistics, or CIFAR-10's for the CIFAR networks) or a
            registered name (its default checkpoint's preprocessing, if it has one).
    """
    if isinstance(model, str):
        entry = get_model_entry(model)
        defaults = [w for w in list_pretrained(entry.name) if w.default]
        if defaults:
            return defaults[0].preprocessing.as_dict()
        return _default_preprocessing(entry.input_size).as_dict()
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, Preprocessing):
        return cfg.as_dict()
    return _default_preprocessing(tuple(getattr(model, "default_input_size", (3, 224, 224)))).as_dict()


def _default_preprocessing(input_size: tuple[int, ...]) -> Preprocessing:
    if input_size[-1] <= 64:
        return Preprocessing(input_size=tuple(input_size), crop_pct=1.0, mean=_CIFAR.mean, std=_CIFAR.std)
    return Preprocessing(input_size=tuple(input_size), mean=IMAGENET_MEAN, std=IMAGENET_STD)
