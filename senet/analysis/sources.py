"""What to analyse: a training run (its model, weights and data set), or a named model with a checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch import nn

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


def from_run(path: str | Path, *, dataset: str | None = None, data_dir: str | None = None) -> AnalysisSource:
    """The model of a ``senet train`` run (final weights, else the newest checkpoint) and its data set.

    Args:
        path: A run directory, a checkpoint directory inside one, or a weights file of either.
        dataset: Another data set with the same classes instead of the run's own.
        data_dir: Where official CIFAR archives are.

    Raises:
        FileNotFoundError: If ``path`` holds no run or the data cannot be found.
        ValueError: If the run's configuration is unreadable or the weights do not fit its model.
    """
    from ..retrofit.checkpoint import retrofit_record
    from ..train.checkpoint import load_weights
    from ..train.config import TrainConfig
    from ..train.run import build_model, find_weights

    record = retrofit_record(Path(path)) if Path(path).exists() else None
    if record is not None:
        raise ValueError(f"{path} is a `senet retrofit` output, not a training run: analyse it with --model "
                         f"{record['model']} --weights {path} --dataset ...")  # fmt: skip
    weights, run_dir = find_weights(Path(path))
    try:
        cfg = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{run_dir / 'config.json'} is not a readable run configuration ({e})") from None
    data = run_data(
        dataset or cfg.dataset, data_dir=data_dir or cfg.data_dir, image_size=cfg.image_size or 224,
        skip_corrupt=cfg.skip_corrupt,
    )  # fmt: skip
    model = build_model(cfg, len(data.classes))
    load_weights(model, weights)
    return AnalysisSource(model.eval(), cfg.model, str(weights), data)


def from_model(
    name: str,
    *,
    dataset: str,
    weights: str | None = None,
    pretrained: bool | str | None = None,
    data_dir: str | None = None,
) -> AnalysisSource:
    """A registered model with a checkpoint file (any known naming) or a public checkpoint, and images.

    Args:
        name: A registered model name or alias.
        dataset: 'cifar10', 'cifar100' or an image folder (see ``model_data``).
        weights: A checkpoint file, or the output of ``senet retrofit`` (folder or its model.safetensors).
        pretrained: ``True`` (the default public checkpoint) or a tag of ``senet pretrained list``.
        data_dir: Where official CIFAR archives are.

    Raises:
        ValueError: On an unknown model, both or neither of ``weights`` and ``pretrained``, or a checkpoint
            that does not fit.
        FileNotFoundError: If the checkpoint or the data cannot be found.
    """
    from ..models import create_model
    from ..models.registry import canonical_model_name, get_model_entry
    from ..pretrained import data_config
    from ..retrofit.checkpoint import load_retrofitted, retrofit_record

    if (weights is None) == (pretrained is None or pretrained is False):
        raise ValueError("--model needs one of --weights FILE or --pretrained [TAG]")
    canonical = get_model_entry(canonical_model_name(name)).name
    if weights is not None and not Path(weights).expanduser().exists():
        raise FileNotFoundError(f"--weights {weights}: no such file or folder")
    record = retrofit_record(Path(weights).expanduser()) if weights is not None else None
    if record is not None:  # the output of `senet retrofit`: rebuilt with its attention modules
        if get_model_entry(record["model"]).name != canonical:
            raise ValueError(f"--weights {weights} holds a retrofitted {record['model']}, not {canonical}")
        model = load_retrofitted(Path(weights).expanduser())
    else:
        checkpoint = str(Path(weights).expanduser()) if weights is not None else pretrained
        model = create_model(canonical, pretrained=checkpoint)
    info = getattr(model, "pretrained_info", None)
    what = str(weights) if weights is not None else str(getattr(getattr(info, "weights", None), "tag", pretrained))
    return AnalysisSource(model.eval(), canonical, what, model_data(dataset, data_config(model), data_dir=data_dir))
