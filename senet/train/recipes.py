"""Named training recipes: every value can be overridden from the command line.

- ``paper_cifar``: the CIFAR protocol of the paper (after He et al. 2016): SGD lr 0.1, momentum 0.9,
  weight decay 1e-4, batch 128, 164 epochs, lr divided by 10 at 50% and 75% of training; flips and
  4-pixel pad-and-crop.
- ``quick_cifar``: a CPU-friendly CIFAR recipe: few epochs, a one-cycle schedule with Nesterov momentum
  and a short warm-up, which reaches useful accuracy in minutes on a laptop.
- ``quick_folder``: the default for image folders (ImageNet-style photos, trained from scratch): batch 64,
  lr 0.025 (0.1 per 256 images, the linear scaling rule of Goyal et al. 2017) with Nesterov momentum, half an
  epoch of warm-up, a cosine schedule and label smoothing 0.1. Stable from the first step for ResNet and
  SE-ResNet, where ``quick_cifar``'s lr 0.2 diverges on photos.
- ``finetune_cifar``: fine-tuning trained weights on CIFAR (``--init-from``, with or without ``--retrofit``):
  2 epochs at lr 0.01 with Nesterov momentum, no warm-up, a cosine schedule to 0 and weight decay 5e-4;
  small enough steps that the start (the checkpoint's accuracy) is not thrown away.
- ``paper_imagenet``: the paper's ImageNet recipe: SGD momentum 0.9, batch 1024 (on 8 GPUs), lr 0.6
  divided by 10 every 30 epochs, 100 epochs, 224 px random-resized crops and flips; weight decay 1e-4.
"""

from __future__ import annotations

from typing import Any

from .._validation import did_you_mean

RECIPES: dict[str, dict[str, Any]] = {
    "paper_cifar": {
        "epochs": 164,
        "batch_size": 128,
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 1e-4,
        "schedule": "step",
        "milestones": (0.5, 0.75),
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
    },
    "quick_cifar": {
        "epochs": 5,
        "batch_size": 128,
        "lr": 0.2,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "milestones": (0.5, 0.75),
        "warmup_epochs": 0.5,
        "label_smoothing": 0.0,
    },
    "finetune_cifar": {
        "epochs": 2,
        "batch_size": 128,
        "lr": 0.01,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "cosine",
        "milestones": (0.5, 0.75),
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
    },
    "quick_folder": {
        "epochs": 10,
        "batch_size": 64,
        "lr": 0.025,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-5,
        "schedule": "cosine",
        "milestones": (0.5, 0.75),
        "warmup_epochs": 0.5,
        "label_smoothing": 0.1,
    },
    "paper_imagenet": {
        "epochs": 100,
        "batch_size": 1024,
        "lr": 0.6,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 1e-4,
        "schedule": "step",
        "milestones": (0.3, 0.6, 0.9),
        "warmup_epochs": 0.0,
        "label_smoothing": 0.0,
        "image_size": 224,
    },
}


def list_recipes() -> list[str]:
    """The recipe names."""
    return sorted(RECIPES)


CIFAR_DATASETS = ("cifar10", "cifar100")


def default_recipe(dataset: str) -> str:
    """The recipe a run on ``dataset`` uses unless told otherwise: ``quick_cifar`` for CIFAR-10/100,
    ``quick_folder`` for an image folder."""
    return "quick_cifar" if str(dataset).lower() in CIFAR_DATASETS else "quick_folder"


def get_recipe(name: str) -> dict[str, Any]:
    """The settings of recipe ``name``.

    Raises:
        ValueError: On an unknown recipe, listing the valid ones.
    """
    if name not in RECIPES:
        hint = did_you_mean(name, list_recipes(), n=3)
        raise ValueError(f"unknown recipe {name!r}{hint} (valid: {', '.join(list_recipes())})")
    return dict(RECIPES[name])
