"""Whole-batch augmentation with tensor ops, on whatever device the images live.

The standard CIFAR recipe (He et al., 2016, arXiv:1512.03385, sec. 4.2): pad 4 zero pixels on every
side, take a random 32x32 crop, flip horizontally with probability 1/2, then normalise per channel.
Here the crop and the flip are one ``gather`` over the padded batch with per-sample offsets (no
per-sample Python), and the random numbers come from the caller, so the ops are deterministic and a
test can redo any sample by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip_params(
    num_samples: int, *, padding: int = 4, flip: bool = True, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draws random crop offsets and flip decisions.

    Args:
        num_samples: How many samples to draw for.
        padding: The zero padding p; offsets lie in ``[0, 2p]`` (p is the centred crop).
        flip: Whether to draw flips (else none is flipped).
        generator: The random source (a CPU generator, so results match across devices).

    Returns:
        ``offsets`` (n, 2) int64 (row, column) and ``flips`` (n,) bool.
    """
    offsets = torch.randint(0, 2 * padding + 1, (num_samples, 2), generator=generator)
    flips = torch.rand(num_samples, generator=generator) < 0.5 if flip else torch.zeros(num_samples, dtype=torch.bool)
    return offsets, flips


def crop_flip(images: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, *, padding: int = 4) -> torch.Tensor:
    """Zero-pads a batch by ``padding``, crops each image at its offset and mirrors the flagged ones.

    Args:
        images: (B, C, H, W) any dtype (uint8 in practice).
        offsets: (B, 2) int64 top-left corner (row, column) of each crop in the padded image, in
            ``[0, 2 * padding]``.
        flips: (B,) bool, True where the crop is mirrored left-right.
        padding: The zero padding p on each side.

    Returns:
        (B, C, H, W) crops: ``out[b] = pad(images[b])[:, r:r+H, c:c+W]``, flipped along W where
        ``flips[b]``.
    """
    b, c, h, w = images.shape
    device = images.device
    offsets, flips = offsets.to(device), flips.to(device)
    padded = F.pad(images, (padding, padding, padding, padding)) if padding else images  # (B, C, H+2p, W+2p)
    width = w + 2 * padding
    cols = torch.arange(w, device=device)
    cols = torch.where(flips[:, None], w - 1 - cols, cols) + offsets[:, 1:]  # (B, W), flip folded in
    rows = torch.arange(h, device=device) + offsets[:, :1]  # (B, H)
    flat = (rows[:, :, None] * width + cols[:, None, :]).view(b, 1, h * w)  # (B, 1, H*W)
    return padded.flatten(2).gather(2, flat.expand(b, c, h * w)).view(b, c, h, w)


def normalize(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, channels_last: bool = False
) -> torch.Tensor:
    """Converts uint8 images to float32 ``(x / 255 - mean) / std``.

    Args:
        images: (B, C, H, W) uint8.
        mean: (C,) per-channel mean of the data in [0, 1].
        std: (C,) per-channel standard deviation in [0, 1].
        channels_last: Return the channels_last memory format (faster convolutions on GPUs and
            recent CPUs); the shape is unchanged.

    Returns:
        (B, C, H, W) float32 on the images' device.
    """
    scale = (1.0 / (255.0 * std)).view(1, -1, 1, 1).to(images.device, torch.float32)
    shift = (-mean / std).view(1, -1, 1, 1).to(images.device, torch.float32)
    out = images.float().mul_(scale).add_(shift)  # in place: about 3x faster than addcmul on CPU
    # Normalising first and converting after is the fastest order on CPU: a (1, C, 1, 1) broadcast
    # over a channels_last tensor takes a slow path.
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out
