"""``load_model``: the one way in. Whatever a user holds becomes the model that computes what it computed.

    >>> model = senet.load_model("runs/se_cifar_resnet20-20261206-101500")      # a training run
    >>> model = senet.load_model("runs/.../checkpoints/epoch_0003")             # one of its checkpoints
    >>> model = senet.load_model("retrofitted/")                                # a `senet retrofit` output
    >>> model = senet.load_model("resnet50-0676ba61.pth", model="resnet50")    # a publisher's file
    >>> model = senet.load_model("caffe", model="se_resnet50")                  # a tag of the pretrained table
    >>> print(model.source_info.describe())

A source that records its network (a run's ``config.json``, a retrofit output's metadata) is rebuilt as
recorded; a bare weights file, a URL or a tag is built as its publisher's network
(``create_pretrained``: the naming recognised from the keys, the publisher's options). Every command that
takes weights (``eval``, ``export``, ``analyze``, ``retrofit``, ``predict``, ``train --init-from``) comes here,
so each accepts every source the others accept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import nn

from ..data import CIFAR10_CLASSES
from ..io import find_weights
from ..models import create_model, get_model_entry
from ..models.registry import canonical_model_name
from ..pretrained import (
    Preprocessing,
    PretrainedInfo,
    create_pretrained,
    data_config,
    imagenet_classes,
    load_pretrained,
)
from ..pretrained.hub import is_url
from ..utils.skeleton import meta_skeleton
from .retrofitted import build_retrofitted, retrofit_file, retrofit_record
from .runs import build_run_model, read_run_config, run_classes, run_preprocessing


@dataclass(frozen=True)
class ModelSource:
    """What ``load_model`` loaded (``model.source_info``).

    Attributes:
        kind: 'run' (a training run or one of its checkpoints), 'retrofit' (a ``senet retrofit`` output),
            'file' (a weights file in any naming), 'url' or 'pretrained' (a tag of the pretrained table).
        location: The source as given.
        model: The registered name of the network.
        weights: The file the weights were read from.
        naming: The file's naming ('ours' for what senet wrote).
        tag: The pretrained table's tag, if it is one of its checkpoints.
        classes: The class names in label order, where the source records them (``None``: unknown).
        preprocessing: The input preprocessing (``senet.data_config``'s dict).
        run_dir: The run folder of a 'run' source.
    """

    kind: str
    location: str
    model: str
    weights: str
    naming: str = "ours"
    tag: str | None = None
    classes: tuple[str, ...] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None

    def describe(self) -> str:
        """One line: which network, from which weights."""
        if self.kind == "run":
            return f"{self.model} from the run {self.run_dir} (weights {self.weights})"
        if self.kind == "retrofit":
            return f"{self.model} from the `senet retrofit` output {self.location}"
        entry = f", table entry {self.tag!r}" if self.tag else ""
        where = self.location if self.kind == "file" else f"{self.location} (cached at {self.weights})"
        return f"{self.model} from {where} ({self.naming} naming{entry})"


def load_model(
    source: str | os.PathLike | bool,
    *,
    model: str | None = None,
    num_classes: int | None = None,
    progress: bool = True,
    **overrides: Any,
) -> nn.Module:
    """The model that computes what ``source`` computed, with its weights loaded strictly.

    Args:
        source: A run folder, a checkpoint folder inside one (or its ``model.safetensors``), a
            ``senet retrofit`` output folder (or its file), a weights file in any format and naming
            (``.pth/.pt/.tar/.bin/.ckpt``, ``.safetensors``), a URL, a tag of the pretrained table or
            ``True`` (the model's default public checkpoint).
        model: The registered network. Needed for a bare file, URL or tag whose network nothing records
            (a URL of the pretrained table names its own); for a source that records its network it is
            checked against the record.
        num_classes: Replace the loaded classifier by a new one of this size when it differs (fine-tuning).
        progress: Show a progress bar while downloading.
        **overrides: ``create_model`` arguments (attention, model options) for a source that does not
            record its network; a recorded network is rebuilt as recorded and refuses them.

    Returns:
        The model, in eval mode, with ``model.source_info`` (a ``ModelSource``) saying what was loaded and
        ``senet.data_config(model)`` giving its preprocessing.

    Raises:
        FileNotFoundError: If the file or folder does not exist, or a download fails.
        ValueError: On a source that does not fit ``model``, a folder of several runs (listing them),
            a bare file without ``model``, or weights that do not fit (one line).
    """
    name = None if model is None else get_model_entry(canonical_model_name(model)).name
    location = str(source)
    path = None if isinstance(source, bool) or is_url(location) else Path(source).expanduser()
    if path is not None and path.exists():
        record = retrofit_record(path)
        if record is not None:
            return _from_retrofit(path, record, name, num_classes, overrides)
        run = _run_of(path)
        if run is not None:
            return _from_run(path, *run, name, num_classes, overrides)
        if path.is_dir():
            raise ValueError(_not_a_source(path))
        name = name or _recorded_model(path)
    if name is None:
        if path is not None and not path.exists():
            raise FileNotFoundError(f"{location} does not exist (if it is a tag of `senet pretrained list`, name "
                                    "its network: --model NAME, model= in Python)")  # fmt: skip
        raise ValueError(f"{location} does not record its network: name it with --model NAME (model= in Python)")
    built = create_pretrained(name, source if path is None or not path.exists() else path, num_classes=num_classes,
                              progress=progress, build=create_model, **overrides)  # fmt: skip
    info = built.pretrained_info
    kind = "file" if path is not None and path.exists() else "url" if is_url(location) else "pretrained"
    weights = info.weights
    classes = None if info.classifier_replaced else _public_classes(
        getattr(built, "num_classes", None), getattr(weights, "dataset", None)
    )
    built.source_info = ModelSource(kind, location, name, info.file, info.naming, weights.tag if weights else None,
                                    classes, data_config(built))  # fmt: skip
    return built.eval()


def _from_run(
    path: Path, weights: Path, run_dir: Path, name: str | None, num_classes: int | None, overrides: dict[str, Any]
) -> nn.Module:
    config = read_run_config(run_dir)
    recorded = get_model_entry(canonical_model_name(config["model"])).name
    if name is not None and name != recorded:
        raise ValueError(f"{path} holds a run of {config['model']}, not {name}; give --model {config['model']}")
    _refuse_overrides(path, overrides)
    classes = run_classes(run_dir, config)
    with meta_skeleton():  # the architecture only, to find the classifier's key
        shape = build_run_model(config, 1)
    stored = _classifier_size(shape, weights) or (len(classes) if classes else get_model_entry(recorded).num_classes)
    model = build_run_model(config, stored)
    report = load_pretrained(model, weights, source="ours")
    if classes is not None and len(classes) != stored:
        classes = None
    replaced = num_classes is not None and num_classes != stored
    if replaced:
        model.reset_classifier(num_classes)
        classes = None
    model.pretrained_info = PretrainedInfo(str(weights), "ours", None, report, replaced)
    model.pretrained_cfg = run_preprocessing(config)
    model.source_info = ModelSource("run", str(path), recorded, str(weights), "ours", None, classes,
                                    data_config(model), str(run_dir))  # fmt: skip
    return model.eval()


def _from_retrofit(
    path: Path, record: dict[str, Any], name: str | None, num_classes: int | None, overrides: dict[str, Any]
) -> nn.Module:
    recorded = get_model_entry(record["model"]).name
    if name is not None and name != recorded:
        raise ValueError(f"{path} holds a retrofitted {record['model']}, not {name}")
    _refuse_overrides(path, overrides)
    model = build_retrofitted(record)
    report = load_pretrained(model, retrofit_file(path), source="ours")
    classes = tuple(record["classes"]) if record.get("classes") else None
    if classes is not None and len(classes) != model.num_classes:
        classes = None
    replaced = num_classes is not None and num_classes != model.num_classes
    if replaced:
        model.reset_classifier(num_classes)
        classes = None
    model.pretrained_info = PretrainedInfo(str(retrofit_file(path)), "ours", None, report, replaced)
    if record.get("preprocessing"):
        model.pretrained_cfg = Preprocessing(**_preprocessing_fields(record["preprocessing"]))
    source = record.get("source", {})
    model.source_info = ModelSource("retrofit", str(path), recorded, str(retrofit_file(path)), "ours",
                                    source.get("tag"), classes, data_config(model))  # fmt: skip
    return model.eval()


def _run_of(path: Path) -> tuple[Path, Path] | None:
    """``(weights, run_dir)`` when ``path`` is a run, one of its checkpoints or their weights, else ``None``."""
    try:
        return find_weights(path)
    except FileNotFoundError:
        return None


def _recorded_model(path: Path) -> str | None:
    """The model a senet-written weights file names in its metadata (``senet train`` writes it)."""
    if path.suffix != ".safetensors":
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            name = (f.metadata() or {}).get("model")
    except Exception:  # not a safetensors file: read (and refused, if need be) by create_pretrained
        return None
    return get_model_entry(canonical_model_name(name)).name if name else None


def _not_a_source(path: Path) -> str:
    runs = sorted(str(p) for p in path.iterdir() if _run_of(p) is not None or retrofit_record(p) is not None)
    if runs:
        shown = ", ".join(runs[:6]) + (f" and {len(runs) - 6} more" if len(runs) > 6 else "")
        return f"{path} holds several runs, not one; name one of them: {shown}"
    return (f"{path} holds no senet weights (a run folder with config.json and model.safetensors or checkpoints/, "
            "or a `senet retrofit` output)")  # fmt: skip


def _refuse_overrides(path: Path, overrides: dict[str, Any]) -> None:
    if overrides:
        retrofit = "attention" in overrides
        hint = "; to add attention to it, retrofit it (--retrofit se, senet.retrofit)" if retrofit else ""
        raise ValueError(f"{path} records its network, which other options cannot change "
                         f"({', '.join(sorted(overrides))}){hint}")  # fmt: skip


def _classifier_size(shape: nn.Module, weights: Path) -> int | None:
    """The classifier size stored in ``weights`` for a network shaped like ``shape``."""
    get = getattr(shape, "get_classifier", None)
    classifier = get() if callable(get) else None
    prefix = next((p for p, m in shape.named_modules() if m is classifier and p), None)
    if prefix is None:
        return None
    try:
        with safe_open(str(weights), framework="pt") as f:
            key = f"{prefix}.weight"
            return int(f.get_slice(key).get_shape()[0]) if key in f.keys() else None
    except Exception:  # unreadable: load_pretrained says why
        return None


def _public_classes(num_classes: int | None, dataset: str | None) -> tuple[str, ...] | None:
    """Class names of a public checkpoint: ImageNet-1k's for a 1000-way classifier, CIFAR-10's for 10."""
    if dataset == "cifar10" or (dataset is None and num_classes == 10):
        return CIFAR10_CLASSES
    if num_classes == 1000 and dataset in (None, "imagenet-1k"):
        return tuple(name.split(",")[0].strip() for _, name in imagenet_classes())
    return None


def _preprocessing_fields(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "input_size": tuple(values["input_size"]), "crop_pct": values["crop_pct"],
        "interpolation": values.get("interpolation", "bilinear"), "mean": tuple(values["mean"]),
        "std": tuple(values["std"]), "channel_order": values.get("channel_order", "RGB"),
    }  # fmt: skip


def is_recorded_source(source: str | os.PathLike) -> bool:
    """Whether ``source`` records its own network: a run (or checkpoint) folder or a ``senet retrofit`` output."""
    if is_url(str(source)):
        return False
    path = Path(source).expanduser()
    return path.exists() and (retrofit_record(path) is not None or _run_of(path) is not None)
