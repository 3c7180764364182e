"""What to analyse: any source ``senet.load_model`` takes (a run, a retrofit output, a checkpoint file, a
public checkpoint) and the images to record its gates on."""

from __future__ import annotations

import os
from dataclasses import dataclass

from torch import nn

from ..factory import load_model, read_run_config
from ..pretrained import data_config
from .data import AnalysisData, model_data, run_data


@dataclass(frozen=True, eq=False)
class AnalysisSource:
    """A model with its weights loaded, and the images to record its gates on.

    Attributes:
        model: The model (on the CPU, in eval mode).
        name: The model's registered name.
        weights: Where its weights came from, for the summary.
        data: The images (every image of the held-out split; ``per_class_subset`` picks N per class).
    """

    model: nn.Module
    name: str
    weights: str
    data: AnalysisData


def from_source(
    source: str | os.PathLike | bool,
    *,
    model: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
) -> AnalysisSource:
    """A model from anything ``senet.load_model`` takes, and the held-out images of a data set.

    Args:
        source: A run folder (or a checkpoint inside one), a ``senet retrofit`` output, a checkpoint file in
            any known naming, a URL, a tag of the pretrained table or ``True`` (the default public checkpoint).
        model: The registered network, for a source that does not record it (a bare file, a tag).
        dataset: 'cifar10', 'cifar100' or an image folder; ``None``: a run's own data set.
        data_dir: Where official CIFAR archives are.

    Raises:
        FileNotFoundError: If the source or the data cannot be found.
        ValueError: On a source that does not fit, or no data set for a source that records none.
    """
    loaded = load_model(source, model=model)
    info = loaded.source_info
    config = read_run_config(info.run_dir) if info.kind == "run" else {}
    if config.get("dataset") is not None and dataset in (None, config["dataset"]):
        data = run_data(config["dataset"], data_dir=data_dir or config.get("data_dir"),
                        image_size=config.get("image_size") or 224,
                        skip_corrupt=bool(config.get("skip_corrupt")))  # fmt: skip
    elif dataset is None:
        raise ValueError(f"{info.location} records no data set: give --dataset (cifar10, cifar100 or an image folder)")
    else:
        data = model_data(dataset, data_config(loaded), data_dir=data_dir)
    what = info.tag or info.location
    return AnalysisSource(loaded.eval(), info.model, what, data)
