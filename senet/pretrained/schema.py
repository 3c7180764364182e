"""The pretrained table's schema: one public checkpoint (``PretrainedWeights``) and the preprocessing it
was trained to see (``Preprocessing``). The entries are data, in ``senet.pretrained.entries``; the
look-ups (``list_pretrained``, ``get_pretrained``) in ``senet.pretrained.table``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Preprocessing:
    """How a checkpoint's network was trained (and is evaluated) to see its input.

    Attributes:
        input_size: (C, H, W) of the network's input: the center crop.
        crop_pct: The crop's share of the resized image's shorter side (0.875: resize to 256, crop 224);
            1.0 with CIFAR's 32x32 images at ``input_size`` 32 means no resize and no crop (the pixels as
            they are).
        interpolation: ``'bilinear'`` or ``'bicubic'`` (the resize filter).
        mean: Per-channel mean subtracted, in the 0..1 range, in the order of ``channel_order``.
        std: Per-channel standard deviation divided by, same order.
        channel_order: ``'RGB'`` or ``'BGR'`` (the order the network's first convolution expects).
    """

    input_size: tuple[int, int, int] = (3, 224, 224)
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"

    @property
    def resize(self) -> int:
        """The shorter side the image is resized to before the center crop (256 for 224 at 0.875).

        ``floor(crop / crop_pct)`` as timm and pretrainedmodels compute it; the tiny tolerance keeps a
        ratio written as a fraction (``224 / 232``) from rounding down across its integer.
        """
        return math.floor(self.input_size[-1] / self.crop_pct + 1e-6)

    def as_dict(self) -> dict[str, Any]:
        """The preprocessing as plain values (JSON-ready)."""
        return {
            "input_size": list(self.input_size),
            "crop_pct": self.crop_pct,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": self.channel_order,
        }


@dataclass(frozen=True)
class PretrainedWeights:
    """One public checkpoint file.

    Attributes:
        model: The registered model it loads into (``'se_resnet50'``).
        tag: Its name among the model's checkpoints (``'caffe'``, ``'tv_in1k'``, ``'timm_in1k'``...).
        url: Where the publisher serves the file.
        naming: Its key naming (one of ``senet.list_namings()``).
        options: The model options (``create_model(**options)``) under which our network computes what the
            publisher's network computes (e.g. ``stride_in_1x1=False``); see ``senet.convert``.
        preprocessing: The input preprocessing it was trained and evaluated with.
        top1: The publisher's top-1 accuracy (%) on ``dataset``'s evaluation split (ImageNet-1k validation,
            CIFAR-10 test), or ``None`` if unpublished.
        top5: Likewise top-5.
        sha256: The full sha256 of the file where the publisher gives it, else ``None``.
        sha256_prefix: The sha256 prefix in the file name (torchvision and Cadene name files
            ``<name>-<first 8 hex digits of sha256>.pth``), else ``None``.
        size_bytes: The file's size in bytes where known, else ``None``.
        source: Where the URL, the figures and the preprocessing are documented (a URL).
        default: Whether this is the checkpoint ``pretrained=True`` picks for ``model``.
        notes: Anything a user should know in one line (licence, training recipe).
        num_classes: The classifier's size in the file.
        dataset: What it was trained on and ``top1`` measured on: ``'imagenet-1k'`` or ``'cifar10'``.
    """

    model: str
    tag: str
    url: str
    naming: str
    preprocessing: Preprocessing
    source: str
    options: tuple[tuple[str, Any], ...] = ()
    top1: float | None = None
    top5: float | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    size_bytes: int | None = None
    default: bool = False
    notes: str = ""
    num_classes: int = field(default=1000)
    dataset: str = "imagenet-1k"

    @property
    def file_name(self) -> str:
        """The name the file has in the cache (``senet pretrained fetch`` writes it there under this name)."""
        return cache_file_name(self.url)


def cache_file_name(url: str) -> str:
    """The name a downloaded file gets in the cache: the last part of its URL; for a Hugging Face Hub file,
    whose names repeat (``pytorch_model.bin``), the repository's name joined to it
    (``timm--inception_resnet_v2.tf_in1k--pytorch_model.bin``). The one rule for ``fetch`` and the table.

    Raises:
        ValueError: If the URL names no file.
    """
    parsed = urlparse(url)
    parts = [p for p in parsed.path.split("/") if p]
    name = parts[-1] if parts else ""
    if not name or name in (".", ".."):
        raise ValueError(f"{url} names no file")
    if parsed.netloc == "huggingface.co" and "resolve" in parts and parts.index("resolve") >= 2:
        owner, repo = parts[parts.index("resolve") - 2 : parts.index("resolve")]
        name = f"{owner}--{repo}--{name}"
    return name
