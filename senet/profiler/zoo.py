"""Builds registered models for profiling: on the 'meta' device when their constructor allows it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..models.registry import create_model
from ..utils.skeleton import meta_skeleton
from .counter import profile
from .report import ProfileReport


def build_model(name: str, *, device: str | torch.device = "meta", **create_kwargs: Any) -> nn.Module:
    """Builds ``create_model(name, **create_kwargs)`` on ``device`` (on meta: no memory, and no initialisation
    work, see ``senet.utils.skeleton``).

    A constructor that cannot run on meta (one that reads tensor values, e.g. ``.item()``) is retried
    on the CPU.

    Args:
        name: A name from ``senet.models.list_models()``.
        device: The device to build on.
        **create_kwargs: Arguments of ``create_model`` (``reduction=8``, ``se_stages=(2,)``, ...).

    Returns:
        The model.

    Raises:
        ValueError: On an unknown model or argument (from ``create_model``).
    """
    try:
        with meta_skeleton() if torch.device(device).type == "meta" else torch.device(device):
            return create_model(name, **create_kwargs)
    except (ValueError, TypeError):
        raise
    except (NotImplementedError, RuntimeError):
        return create_model(name, **create_kwargs)


def count_parameters(model: nn.Module) -> int:
    """Returns the number of parameters of ``model`` (shared ones counted once)."""
    return sum(p.numel() for p in model.parameters())


def profile_model(
    name: str, input_size: Sequence[int] | None = None, *, batch_size: int = 1, **create_kwargs: Any
) -> ProfileReport:
    """Builds a registered model on the meta device and profiles it.

    Args:
        name: A name from ``senet.models.list_models()``.
        input_size: One sample's shape, e.g. ``(3, 299, 299)``; default: the network's natural input
            (``get_model_entry(name).input_size``: 32 px for the CIFAR networks, 224 px for most).
        batch_size: The batch size of the profiled pass.
        **create_kwargs: Arguments of ``create_model`` (``attention``, ``reduction``, ``se_stages``, ...).

    Returns:
        The ``ProfileReport``, named after the model.

    Raises:
        ValueError: On an unknown model or argument, or an invalid input size.
    """
    model = build_model(name, **create_kwargs)
    return profile(model, input_size, batch_size=batch_size, name=name)
