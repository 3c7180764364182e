"""``senet predict``: the top-k classes of images, from any source ``senet.load_model`` takes.

    >>> model = senet.load_model("runs/se_cifar_resnet20-...")
    >>> for row in predict(model, ["cat.png", "photos/"], top_k=3):
    ...     print(row.path, row.labels[0], row.probabilities[0])

Images go through the source's own preprocessing (``senet.data_config``: resize, centre crop, mean/std,
channel order), as its publisher or its run evaluated it, in batches.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from tqdm.auto import tqdm

from .data import normalize
from .data.folder import image_extensions
from .data.transforms import ResizeCenterCrop
from .pretrained import data_config

PROGRESS_FROM = 64  # images: a progress bar from this many on


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image.

    Attributes:
        path: The image file.
        indices: The k class indices, most probable first.
        labels: Their names (the index as text where the source records no names).
        probabilities: Their softmax probabilities.
    """

    path: str
    indices: tuple[int, ...]
    labels: tuple[str, ...]
    probabilities: tuple[float, ...]


def find_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by ``inputs``: files, folders (searched recursively) and glob patterns, in order,
    each once.

    Raises:
        FileNotFoundError: If an input names nothing, or no image is found at all.
    """
    extensions = image_extensions()
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        matches = sorted(glob.glob(os.path.expanduser(text), recursive=True)) if glob.has_magic(text) else [text]
        if not matches or not all(Path(m).expanduser().exists() for m in matches):
            raise FileNotFoundError(f"{text}: no such file or folder")
        for match in map(lambda m: Path(m).expanduser(), matches):
            if match.is_dir():
                found += sorted(p for p in match.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
            else:
                found.append(match)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise FileNotFoundError(f"no image found in {', '.join(map(str, inputs))}")
    return unique


def predict(
    model: nn.Module,
    images: Sequence[str | os.PathLike],
    *,
    top_k: int = 5,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Iterator[Prediction]:
    """Yields the top-k classes of each image, in order.

    Args:
        model: A model; ``model.source_info.classes`` (from ``senet.load_model``) names the classes.
        images: Image files, folders or glob patterns (``find_images``).
        top_k: How many classes per image (at most the number of classes).
        batch_size: Images per forward pass.
        device: Where the model runs.
        progress: A progress bar on PROGRESS_FROM images or more.

    Raises:
        ValueError: On a bad ``top_k``/``batch_size`` or an image that cannot be decoded (naming the file).
        FileNotFoundError: If an input names nothing.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"--top-k must be a positive whole number, got {top_k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be a positive whole number, got {batch_size!r}")
    files = find_images(images)
    config = data_config(model)
    transform = ResizeCenterCrop(config["input_size"][-1], resize=config["resize"],
                                 interpolation=config["interpolation"], draft=False)  # fmt: skip
    mean, std = torch.tensor(config["mean"], device=device), torch.tensor(config["std"], device=device)
    info = getattr(model, "source_info", None)
    names = list(info.classes) if info is not None and info.classes else None
    model = model.to(device).eval()
    bar = tqdm(total=len(files), unit="img", disable=not progress or len(files) < PROGRESS_FROM, leave=False)
    with bar, torch.no_grad():
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            batch = torch.stack([_load(path, transform) for path in chunk]).to(device)
            if config["channel_order"] == "BGR":
                batch = batch.flip(1)
            probabilities = model(normalize(batch, mean, std)).float().softmax(dim=1)
            k = min(top_k, probabilities.shape[1])
            values, indices = probabilities.topk(k, dim=1)
            for path, p, i in zip(chunk, values.tolist(), indices.tolist(), strict=True):
                labels = tuple(names[j] if names and j < len(names) else str(j) for j in i)
                yield Prediction(str(path), tuple(i), labels, tuple(p))
            bar.update(len(chunk))


def _load(path: Path, transform: ResizeCenterCrop) -> torch.Tensor:
    """(3, S, S) uint8 of one image file."""
    try:
        with Image.open(path) as img:
            crop = transform(img)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable image ({e})") from None
    return torch.from_numpy(np.asarray(crop, dtype=np.uint8).copy()).permute(2, 0, 1)
