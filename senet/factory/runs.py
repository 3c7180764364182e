"""The network a ``senet train`` run records, rebuilt from its ``config.json``.

A run's folder holds what rebuilds its network without anything else: the model name and the
``create_model`` arguments it trained with (attention, reduction, drop rate, further options under
``extra[MODEL_OPTIONS]``) and, for a run started from a checkpoint (``--init-from``, ``--retrofit``), the
publisher's options and the retrofit arguments under ``extra[ARCHITECTURE]``. ``senet train`` (new runs and
resume), ``load_model`` and every command that reads a run build it here, one way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from ..data import CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD
from ..models import create_model
from ..pretrained import Preprocessing
from ..retrofit.api import retrofit

MODEL_OPTIONS = "create_model"  # the key of a run's ``extra`` holding further create_model options
NORMALIZATION = "normalization"  # in extra[ARCHITECTURE]: the input mean/std of the source an --init-from run kept
ARCHITECTURE = "architecture"  # the key of a run's ``extra`` holding the network an --init-from run recorded
_CIFAR_STATS = {"cifar10": (CIFAR10_MEAN, CIFAR10_STD), "cifar100": (CIFAR100_MEAN, CIFAR100_STD)}


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a run, as a dict.

    Raises:
        ValueError: If it is missing or not a readable run configuration (one line).
    """
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable run configuration ({e})") from None
    if not isinstance(config, dict):
        why = f"a run configuration is a JSON object of options, not a {type(config).__name__}"
    elif not isinstance(config.get("model"), str):
        why = "it names no model"
    else:
        return config
    raise ValueError(f"{path} is not a readable run configuration ({why})")


def run_create_kwargs(config: Mapping[str, Any], num_classes: int) -> dict[str, Any]:
    """The ``create_model`` arguments a run's configuration builds its network with."""
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    attention = config.get("attention")
    if attention is not None:
        kwargs["attention"] = None if str(attention).lower() == "none" else attention
    if config.get("reduction") is not None:
        kwargs["reduction"] = config["reduction"]
    if config.get("drop_rate") is not None:
        kwargs["drop_rate"] = config["drop_rate"]
    kwargs.update((config.get("extra") or {}).get(MODEL_OPTIONS, {}))
    return kwargs


def build_run_model(config: Mapping[str, Any], num_classes: int) -> nn.Module:
    """The network of a run's configuration for ``num_classes`` classes, freshly initialised.

    Args:
        config: The run's configuration (``TrainConfig.to_dict()``, as ``config.json`` holds it).
        num_classes: The classifier's size.
    """
    kwargs = run_create_kwargs(config, num_classes)
    arch = (config.get("extra") or {}).get(ARCHITECTURE)
    if arch is not None:
        return build_recorded(arch, config["model"], kwargs)
    return create_model(config["model"], **kwargs)


def build_recorded(
    arch: Mapping[str, Any], name: str, create_kwargs: Mapping[str, Any], *, replace_classifier: bool = True
) -> nn.Module:
    """Rebuilds the network an ``--init-from`` run recorded (its weights are loaded by the caller).

    Args:
        arch: The record (``extra[ARCHITECTURE]``): ``model_options``, ``retrofit`` arguments, ``num_classes``.
        name: The run's model.
        create_kwargs: The run's ``create_model`` arguments; ``num_classes`` is the classifier wanted.
        replace_classifier: Build with the record's class count and replace the classifier when
            ``create_kwargs`` asks for another (``False``: keep the record's, for loading its weights).
    """
    kwargs = {**create_kwargs, **arch["model_options"]}
    wanted = kwargs.get("num_classes")
    if arch.get("num_classes") is not None:
        kwargs["num_classes"] = arch["num_classes"]
    model = create_model(name, **kwargs)
    args = arch.get("retrofit")
    if args:
        model, _ = retrofit(model, args["attention"], reduction=args["reduction"], placement=args["placement"],
                            identity_init=args["identity_init"], where=args["where"], inplace=True)  # fmt: skip
    if replace_classifier and wanted is not None and wanted != model.num_classes:
        model.reset_classifier(wanted)
    return model


def run_classes(run_dir: str | Path, config: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The class names of a run, in label order: its summary's, else its data set's (``None``: unknown)."""
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
        if isinstance(summary.get("classes"), list):
            return tuple(summary["classes"])
    except (OSError, ValueError):
        pass
    dataset = str(config.get("dataset", ""))
    if dataset.lower() == "cifar10":
        return CIFAR10_CLASSES
    train = Path(dataset).expanduser() / "train"
    if train.is_dir():  # an image folder: its training split's sub-folders, sorted (as ImageFolder labels them)
        return tuple(sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")))
    return None  # CIFAR-100's names are in its archive, which may not be here


def run_preprocessing(config: Mapping[str, Any]) -> Preprocessing:
    """The input pipeline a run was evaluated with: CIFAR at 32 px with the data set's statistics, image
    folders resized to 256/224 of the crop, centre-cropped and normalised with ImageNet's; a run that
    fine-tuned a source kept that source's mean and std (``extra[ARCHITECTURE][NORMALIZATION]``)."""
    dataset = str(config.get("dataset", "")).lower()
    kept = ((config.get("extra") or {}).get(ARCHITECTURE) or {}).get(NORMALIZATION)
    if dataset in _CIFAR_STATS:
        mean, std = (kept["mean"], kept["std"]) if kept else _CIFAR_STATS[dataset]
        return Preprocessing(input_size=(3, 32, 32), crop_pct=1.0, mean=tuple(mean), std=tuple(std))
    size = int(config.get("image_size") or 224)
    mean, std = (kept["mean"], kept["std"]) if kept else (IMAGENET_MEAN, IMAGENET_STD)
    return Preprocessing(input_size=(3, size, size), crop_pct=size / round(size * 256 / 224),
                         mean=tuple(mean), std=tuple(std))  # fmt: skip
