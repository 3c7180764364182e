"""``senet eval --checkpoint RUN`` on the run's own data pipeline: a run's weights scored on its held-out split
(or another data set's with the same classes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io import CONFIG_FILE, find_weights
from .checkpoint import load_weights
from .config import TrainConfig
from .device import resolve_device
from .engine import evaluate
from .loaders import build_data, normalize_as_recorded
from .run import build_model

ALL = 0  # test_subset value meaning "the whole held-out split"


def evaluate_checkpoint(
    path: Path, *, dataset: str | None = None, data_dir: str | None = None, device: str = "auto",
    batch_size: int = 256, test_subset: int | None = None,
) -> dict[str, Any]:
    """Evaluates the weights of a run (its final weights, else its newest checkpoint).

    Args:
        path: A run directory, a checkpoint directory inside one, or a weights file of either.
        dataset: Evaluate on this data set instead of the run's own.
        data_dir: Where official archives are.
        device: 'auto', 'cpu' or 'cuda'.
        batch_size: Evaluation batch size.
        test_subset: Evaluate on a class-balanced subset of this many held-out images; ``ALL`` (0): the
            whole split; ``None``: the run's own test subset on its own data set, the whole split otherwise.

    Returns:
        ``evaluate``'s metrics plus 'model', 'dataset', 'classes', 'weights' and 'class_images' (held-out
        images per class); a class with no held-out image has accuracy ``None``.

    Raises:
        FileNotFoundError: If ``path`` holds no weights.
        ValueError: If the weights do not fit the run's model or the data set's classes, or an option is
            invalid.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {batch_size}")
    if test_subset is not None and test_subset < 0:
        raise ValueError(f"--test-subset must be positive (or 0 for all), got {test_subset}")
    dev = resolve_device(device)
    weights, run_dir = find_weights(path)
    try:
        cfg = TrainConfig.from_dict(json.loads((run_dir / CONFIG_FILE).read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{run_dir / CONFIG_FILE} is not a readable run configuration ({e})") from None
    own_data = dataset is None or dataset == cfg.dataset
    cfg.dataset = dataset or cfg.dataset
    cfg.data_dir = data_dir or cfg.data_dir
    if test_subset is not None:
        cfg.test_subset = None if test_subset == ALL else test_subset
    elif not own_data:
        cfg.test_subset = None
    cfg.subset, cfg.batch_size, cfg.device = None, batch_size, device
    cfg = cfg.resolve()
    data = build_data(cfg, dev, rank=0, world_size=1, train=False)
    normalize_as_recorded(data, cfg)
    model = build_model(cfg, data.num_classes).to(dev)
    load_weights(model, weights)
    metrics = evaluate(model, data.test, num_classes=data.num_classes, device=dev)
    return {
        "model": cfg.model, "dataset": cfg.dataset, "classes": data.classes, "weights": str(weights),
        "class_images": [sum(row) for row in metrics["confusion"]], **metrics,
    }  # fmt: skip
