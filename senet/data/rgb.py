"""Any decoded image as 8-bit RGB, keeping its brightness.

Pillow's ``convert("RGB")`` clips wider samples at 255 instead of scaling them: a 16-bit grayscale PNG
(mode ``I;16``, 0..65535) comes out almost white. Here such images are scaled to 0..255 first:

* ``I;16`` (any byte order): the bit depth is known, so v -> round(v * 255 / 65535);
* ``I`` (32-bit integers) and ``F`` (32-bit floats): the depth is not recorded, so the values decide: all
  in 0..255 are kept (an 8-bit image stored wide), a larger maximum up to 65535 is read as 16-bit, and a
  larger one still is scaled by it. Negative values and NaN become 0.

Every other mode (palette, grayscale, alpha, CMYK, ...) goes through Pillow's own conversion.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def to_rgb(img: Image.Image) -> Image.Image:
    """Returns ``img`` in mode RGB with 8-bit samples (``img`` itself when it already is)."""
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT or img.mode in ("I", "F"):
        values = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(values.max()) if values.size else 0.0
        if img.mode in _SIXTEEN_BIT or top > 255:
            values = values * np.float32(255.0 / max(top, 65535.0))
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        img = Image.fromarray(gray)  # 2-D uint8: mode L
    return img.convert("RGB")
