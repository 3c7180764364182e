"""ImageNet-style per-image transforms in Pillow, for image folders decoded in ``DataLoader`` workers.

Training: a random crop of 8%-100% of the area with aspect ratio in [3/4, 4/3], resized to S x S, and
a horizontal flip with probability 1/2 (Szegedy et al., 2015, arXiv:1409.4842; the SE paper's recipe,
arXiv:1709.01507 sec. 6). Evaluation: the shorter side resized to S * 256/224, then the centre S x S.
Both follow torchvision's algorithms without importing it. Each transform takes an opened (not yet
decoded) image, so JPEGs far larger than needed are decoded at reduced scale (``Image.draft``), and a
``random.Random`` so the caller decides how randomness is seeded. Normalisation happens later, on the
training device, on whole batches (:func:`senet.data.augment.normalize`).
"""

from __future__ import annotations

import math
import random

from PIL import Image

from .rgb import to_rgb

_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def random_resized_crop_box(
    width: int,
    height: int,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    rng: random.Random | None = None,
) -> tuple[int, int, int, int]:
    """Draws the crop of a random-resized crop, as torchvision's ``RandomResizedCrop`` does.

    Ten tries at a box of random area fraction in ``scale`` and log-uniform aspect ratio in ``ratio``;
    if none fits, the largest centred box whose ratio is clamped into ``ratio``.

    Args:
        width: The image width W.
        height: The image height H.
        scale: Range of the crop's area as a fraction of W * H.
        ratio: Range of the crop's width / height.
        rng: The random source (default: the ``random`` module's).

    Returns:
        ``(left, top, crop_width, crop_height)``.
    """
    rng = rng if rng is not None else random  # the module's functions share its global generator
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


class RandomResizedCropFlip:
    """Training transform: random-resized crop to ``size`` x ``size``, then a random horizontal flip.

    Args:
        size: The output side S.
        scale: Range of the crop's area fraction.
        ratio: Range of the crop's aspect ratio.
        flip: Whether to flip with probability 1/2.
    """

    def __init__(
        self,
        size: int,
        *,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: bool = True,
    ) -> None:
        self.size, self.scale, self.ratio, self.flip = size, scale, ratio, flip

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        """Returns the RGB crop of an opened image."""
        width, height = img.size
        left, top, w, h = random_resized_crop_box(width, height, scale=self.scale, ratio=self.ratio, rng=rng)
        flip = self.flip and rng.random() < 0.5
        # Decode a JPEG at 1/2, 1/4 or 1/8 scale when the crop still covers S x S pixels after it.
        img.draft("RGB", (math.ceil(width * self.size / w), math.ceil(height * self.size / h)))
        sx, sy = img.size[0] / width, img.size[1] / height
        img = to_rgb(img)
        box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
        img = img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio}, flip={self.flip})"


class ResizeCenterCrop:
    """Evaluation transform: shorter side to ``round(size * 256 / 224)``, then the centre ``size`` x ``size``.

    Args:
        size: The output side S.
        resize: The shorter side before cropping; defaults to ``round(size * 256 / 224)``.
        interpolation: The resize filter, ``'bilinear'`` (default) or ``'bicubic'``.
        draft: Let JPEGs decode at a reduced scale first (faster on large photos, but not the
            publisher's exact pixels: pretrained checkpoints are evaluated with ``draft=False``).
    """

    def __init__(self, size: int, *, resize: int | None = None, interpolation: str = "bilinear",
                 draft: bool = True) -> None:  # fmt: skip
        if interpolation not in _FILTERS:
            raise ValueError(f"unknown interpolation {interpolation!r}; valid: {', '.join(_FILTERS)}")
        self.size = size
        self.resize = resize or round(size * 256 / 224)
        self.interpolation, self.draft = interpolation, draft
        if self.resize < size:
            raise ValueError(f"cannot crop {size} pixels out of a shorter side of {self.resize}")

    def __call__(self, img: Image.Image, rng: random.Random | None = None) -> Image.Image:
        """Returns the RGB centre crop of an opened image (``rng`` is unused)."""
        width, height = img.size
        if width <= height:
            new_w, new_h = self.resize, int(self.resize * height / width)
        else:
            new_w, new_h = int(self.resize * width / height), self.resize
        if self.draft:
            img.draft("RGB", (new_w, new_h))
        img = to_rgb(img)
        img = img.resize((new_w, new_h), _FILTERS[self.interpolation])
        left, top = round((new_w - self.size) / 2), round((new_h - self.size) / 2)
        return img.crop((left, top, left + self.size, top + self.size))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, resize={self.resize}, "
                f"interpolation={self.interpolation!r}, draft={self.draft})")
