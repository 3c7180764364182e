"""Evaluating an ImageNet classifier on a ``val/<wnid>/*.JPEG`` folder, as its publisher did.

The images get the checkpoint's own preprocessing (``data_config``: resize of the shorter side with
its filter, centre crop, mean/std, channel order) and the labels the ImageNet-1k class index (the 1000
synsets in wnid order, ``imagenet_classes()``), whatever subset of the classes the folder holds. On a
folder with only some of the classes the model is scored among those classes' logits (the other
classes cannot be predicted), and the result says so: such figures are not comparable with the
published 1000-class top-1.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.folder import ImageFolder
from ..data.transforms import ResizeCenterCrop

_WNID = re.compile(r"n\d{8}")


@functools.cache
def imagenet_classes() -> tuple[tuple[str, str], ...]:
    """The ImageNet-1k classes in class-index order: ``((wnid, name), ...)``, 1000 of them."""
    text = resources.files("senet.data").joinpath("imagenet_classes.txt").read_text()
    return tuple(tuple(line.split("\t", 1)) for line in text.splitlines() if line)  # type: ignore[misc]


def imagenet_folder_classes(root: str | os.PathLike) -> list[int]:
    """The ImageNet class indices of the class folders under ``root`` (sorted by wnid).

    Raises:
        FileNotFoundError: If ``root`` is not a folder.
        ValueError: If it has no class folders, or a folder name is not an ImageNet-1k wnid.
    """
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root} is not a folder (expected val/<wnid>/*.JPEG)")
    folders = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not folders:
        raise ValueError(f"{root} has no class folders: expected one folder per ImageNet synset (val/<wnid>/*.JPEG)")
    index = {wnid: i for i, (wnid, _) in enumerate(imagenet_classes())}
    foreign = [f for f in folders if f not in index]
    if foreign:
        shown = ", ".join(map(repr, foreign[:3]))
        kind = "not ImageNet-1k synsets" if all(_WNID.fullmatch(f) for f in foreign) else "not ImageNet synset ids"
        raise ValueError(
            f"{root}: {len(foreign)} folder(s) are {kind} (e.g. {shown}); expected val/<wnid>/*.JPEG with "
            "wnids such as n01440764"
        )
    return [index[f] for f in folders]


def evaluate_imagenet_folder(
    model: nn.Module,
    root: str | os.PathLike,
    config: dict[str, Any],
    *,
    batch_size: int = 64,
    workers: int = 2,
    device: torch.device | str = "cpu",
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Top-1 and top-5 accuracy of an ImageNet-1k classifier on ``root/<wnid>/*``.

    Args:
        model: A 1000-class model.
        root: The folder; any subset of the 1000 classes.
        config: The preprocessing (``data_config(model)``).
        batch_size: Images per batch.
        workers: Decoding processes.
        device: Where the model runs.
        limit: Evaluate only the first ``limit`` images of each class (``None``: all).
        progress: Show a progress bar.

    Returns:
        ``{'top1', 'top5', 'images', 'classes', 'all_classes', 'k'}``: accuracies in [0, 1]; ``k`` is
        the top-k of the "top-5" figure (fewer than 5 when the folder holds fewer than 5 classes);
        ``all_classes`` whether all 1000 classes were present (else scores are among the folder's classes).

    Raises:
        ValueError: If the model does not have 1000 outputs, or the folder is not an ImageNet layout.
    """
    indices = imagenet_folder_classes(root)
    wnids = tuple(imagenet_classes()[i][0] for i in indices)
    size = config["input_size"][-1]
    transform = ResizeCenterCrop(size, resize=config["resize"], interpolation=config["interpolation"], draft=False)
    data = ImageFolder(root, transform=transform, classes=wnids)
    if limit is not None:
        keep = [i for c in range(len(wnids)) for i in (data.targets == c).nonzero().flatten()[:limit].tolist()]
        data = data.select(keep)
    device = torch.device(device)
    mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1)
    bgr = config.get("channel_order", "RGB") == "BGR"
    columns = torch.tensor(indices, device=device)
    k = min(5, len(indices))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, num_workers=workers)
    model.eval().to(device)
    top1 = topk = seen = 0
    with torch.inference_mode(), tqdm(total=len(data), desc="evaluating", unit="img", disable=not progress) as bar:
        for images, labels in loader:
            x = images.to(device).float().div_(255)
            x = x.flip(1) if bgr else x  # the file's RGB -> the network's BGR
            logits = model((x - mean) / std)
            if logits.shape[-1] != 1000:
                raise ValueError(f"the model has {logits.shape[-1]} outputs; an ImageNet-1k classifier has 1000")
            best = logits[:, columns].topk(k, dim=1).indices  # positions among the folder's classes
            labels = labels.to(device)
            top1 += int((best[:, 0] == labels).sum())
            topk += int((best == labels[:, None]).any(1).sum())
            seen += len(labels)
            bar.update(len(labels))
    return {
        "top1": top1 / seen, "top5": topk / seen, "k": k, "images": seen, "classes": len(indices),
        "all_classes": len(indices) == 1000,
    }  # fmt: skip
