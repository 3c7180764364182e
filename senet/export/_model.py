"""The model to export: a registered network, with the weights of a run or of a safetensors file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


def load_model(name: str, weights: str | Path | None = None) -> nn.Module:
    """Builds the registered network ``name`` with ``weights``, ready to export.

    Args:
        name: A registered model name (or alias; see ``senet list``).
        weights: What ``senet eval --checkpoint`` reads: a run directory (its final weights, else its newest
            checkpoint), a checkpoint directory inside one, or a ``model.safetensors`` of either; or any
            safetensors file of this network's ``state_dict`` (e.g. converted pretrained weights). From
            a run, the network is built as the run built it (its attention, reduction, dropout and number
            of classes); from a bare file, the number of classes is read off the classifier's weights.
            ``None``: freshly initialised weights.

    Returns:
        The model, in eval mode.

    Raises:
        ValueError: On an unknown model, an unreadable or truncated weights file, weights of another
            network, or a run of another model than ``name``.
        FileNotFoundError: If ``weights`` does not exist or holds no weights.
    """
    from ..models import create_model
    from ..models.registry import canonical_model_name, get_model_entry

    entry = get_model_entry(name)  # an unknown name fails here, with its close matches
    if weights is None:
        return create_model(name).eval()
    from ..train.checkpoint import load_weights, read_safetensors
    from ..train.config import TrainConfig
    from ..train.run import build_model, find_weights

    path = Path(weights)
    if not path.exists():
        raise FileNotFoundError(f"--weights {path} does not exist")
    try:
        file, run_dir = find_weights(path)
    except FileNotFoundError:
        if not path.is_file():
            raise
        file, run_dir = path, None  # a safetensors file outside a run
    num_classes = _num_classes(name, read_safetensors(file))
    if num_classes is None:
        num_classes = entry.num_classes
    if run_dir is None:
        model = create_model(name, num_classes=num_classes)
    else:
        config = run_dir / "config.json"
        try:
            cfg = TrainConfig.from_dict(json.loads(config.read_text()))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{config} is not a readable run configuration ({e})") from None
        if canonical_model_name(cfg.model) != entry.name:
            raise ValueError(f"{path} holds a run of {cfg.model}, not {name}; give --model {cfg.model}")
        model = build_model(cfg, num_classes)
    load_weights(model, file)
    return model.eval()


def _num_classes(name: str, state: dict[str, torch.Tensor]) -> int | None:
    """The classifier size the weights were trained for (``None``: the network's default)."""
    from ..models import create_model

    with torch.device("meta"):  # the architecture only: no memory, no initialisation
        model = create_model(name)
    get = getattr(model, "get_classifier", None)
    classifier = get() if callable(get) else None
    for path, module in model.named_modules():
        if module is classifier and isinstance(module, nn.Linear):
            weight = state.get(f"{path}.weight")
            if weight is not None and weight.dim() == 2:
                return int(weight.shape[0])
    return None
