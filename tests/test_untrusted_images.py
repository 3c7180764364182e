"""Untrusted images: a broken file is one error naming it (or skipped and counted when asked); unusual modes
and sizes are converted, not refused; so are the images of an embedded-style archive.
"""

import io
import random
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_untrusted_archives import png_bytes, tar_file, write_tar

from senet.data import CorruptImageError, ImageFolder, RandomResizedCropFlip, ResizeCenterCrop
from senet.data.embedded_cifar10 import decode_image_archive

# ---------------------------------------------------------------------------------------------------------
# Images: broken files are one error naming the file (or skipped and counted); odd modes are converted


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_header_claiming(width, height):
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _encoded(fmt, size=(48, 40), mode="RGB"):
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


BROKEN_IMAGES = {
    "truncated.jpg": lambda: _encoded("JPEG")[:400],
    "truncated.png": lambda: _encoded("PNG")[:300],
    "header-only.jpg": lambda: _encoded("JPEG")[:20],
    "empty.jpg": lambda: b"",
    "empty.png": lambda: b"",
    "text.jpg": lambda: b"this is a text file, not an image\n" * 4,
    "html.png": lambda: b"<html><body>404 Not Found</body></html>",
    "bad-crc.png": lambda: _encoded("PNG")[:29] + b"\0\0\0\0" + _encoded("PNG")[33:],
    "bomb.png": lambda: png_header_claiming(100_000, 100_000),
    "zero-size.png": lambda: png_header_claiming(0, 0),
}


def _uint16_png():
    buf = io.BytesIO()
    Image.fromarray(np.linspace(0, 65535, 40 * 48).astype(np.uint16).reshape(40, 48)).save(buf, format="PNG")
    return buf.getvalue()


def _rgb48_png():
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one): written chunk by chunk."""
    rows = np.linspace(0, 65535, 40 * 48 * 3).astype(">u2").reshape(40, 48 * 3)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", 48, 40, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


UNUSUAL_IMAGES = {
    "gray.png": lambda: _encoded("PNG", mode="L"),
    "gray-alpha.png": lambda: _encoded("PNG", mode="LA"),
    "rgba.png": lambda: _encoded("PNG", mode="RGBA"),
    "palette.png": lambda: _encoded("PNG", mode="P"),
    "bilevel.png": lambda: _encoded("PNG", mode="1"),
    "cmyk.jpg": lambda: _encoded("JPEG", mode="CMYK"),
    "gray.jpg": lambda: _encoded("JPEG", mode="L"),
    "gray16.png": _uint16_png,
    "rgb48.png": _rgb48_png,
    "int32.tif": lambda: _encoded("TIFF", mode="I"),
    "float.tif": lambda: _encoded("TIFF", mode="F"),
    "one-pixel.png": lambda: _encoded("PNG", size=(1, 1)),
    "one-row.png": lambda: _encoded("PNG", size=(300, 1)),
    "webp.webp": lambda: _encoded("WEBP"),
    "bmp.bmp": lambda: _encoded("BMP"),
    "gif.gif": lambda: _encoded("GIF", mode="P"),
}


@pytest.mark.parametrize("name", list(BROKEN_IMAGES))
def test_a_broken_image_is_one_error_naming_the_file(tmp_path, name):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / name).write_bytes(BROKEN_IMAGES[name]())
    data = ImageFolder(tmp_path, transform=RandomResizedCropFlip(32))
    with pytest.raises(CorruptImageError) as info:
        data[0]
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "cls" / name) in message and "skip_corrupt=True" in message


def test_broken_images_are_skipped_and_counted_when_asked(tmp_path):
    (tmp_path / "cls").mkdir()
    for name, make in BROKEN_IMAGES.items():
        (tmp_path / "cls" / name).write_bytes(make())
    (tmp_path / "cls" / "zz-good.png").write_bytes(_encoded("PNG"))
    data = ImageFolder(tmp_path, transform=RandomResizedCropFlip(32), skip_corrupt=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [data[i] for i in range(len(data))]
    assert all(image.shape == (3, 32, 32) for image, _ in items)  # every broken one replaced by the good one
    assert data.num_corrupt == len(BROKEN_IMAGES)
    assert sorted(Path(p).name for p in data.corrupt_files) == sorted(BROKEN_IMAGES)
    named = {str(w.message).split(": ")[0] for w in caught if "using the next readable image" in str(w.message)}
    assert named == {f"cannot decode image {tmp_path / 'cls' / name}" for name in BROKEN_IMAGES}


@pytest.mark.parametrize("name", list(UNUSUAL_IMAGES))
def test_unusual_modes_and_sizes_are_converted_not_refused(tmp_path, name):
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / name).write_bytes(UNUSUAL_IMAGES[name]())
    image, label = ImageFolder(tmp_path, transform=RandomResizedCropFlip(32))[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label == 0
    whole = ImageFolder(tmp_path).load(0)
    assert whole.shape[0] == 3 and whole.dtype == torch.uint8


def _png_of(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _tiff_of(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="TIFF")
    return buf.getvalue()


RAMP = np.linspace(0, 1, 40 * 48).reshape(40, 48)  # black to white: mean 127.5 once in 0..255


@pytest.mark.parametrize(
    "name, blob, mean",
    [
        ("gray16.png", lambda: _png_of((RAMP * 65535).astype(np.uint16)), 127.5),  # Pillow's I;16
        ("dark16.png", lambda: _png_of((RAMP * 255).astype(np.uint16)), 0.5),  # 16-bit: 0..255 of 65535 is dark
        ("int16.tif", lambda: _tiff_of((RAMP * 65535).astype(np.int32)), 127.5),  # mode I holding 16-bit values
        ("int8.tif", lambda: _tiff_of((RAMP * 255).astype(np.int32)), 127.5),  # mode I holding 8-bit values
        ("float8.tif", lambda: _tiff_of((RAMP * 255).astype(np.float32)), 127.5),  # mode F, 0..255
        ("float-nan.tif", lambda: _tiff_of(np.where(RAMP < 0.5, np.nan, 255).astype(np.float32)), 127.5),
    ],
)
def test_wide_grayscale_images_keep_their_brightness(tmp_path, name, blob, mean):
    """Pillow's own RGB conversion clips 16-bit samples at 255 (the ramp turns almost white): to_rgb scales
    them. Every pixel is checked against the ramp (an 8-bit level is at most 1 off after rounding)."""
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / name).write_bytes(blob())
    image = ImageFolder(tmp_path).load(0).float()
    assert image.shape == (3, 40, 48) and torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
    assert abs(image.mean().item() - mean) < 1, image.mean().item()
    if name in ("gray16.png", "int16.tif", "int8.tif", "float8.tif"):
        assert (image[0] - torch.from_numpy(RAMP * 255).float()).abs().max() <= 1
    with Image.open(tmp_path / "cls" / name) as img:  # the clipping these tests guard against is real
        clipped = np.asarray(img.convert("RGB"), dtype=np.float64).mean()
    if name in ("gray16.png", "int16.tif"):
        assert clipped > 250


@pytest.mark.parametrize("draw", ["ImageNet train crop", "ImageNet evaluation crop", "embedded archive"])
def test_every_decoding_path_scales_16_bit_images(tmp_path, draw):
    blob = _png_of((np.full((64, 64), 0.25) * 65535).astype(np.uint16))  # a quarter grey: 64 of 255
    if draw == "embedded archive":
        arrays = decode_image_archive(_image_archive(tmp_path / "images.tar", _png_of(
            (np.full((32, 32), 0.25) * 65535).astype(np.uint16))), progress=False)
        pixels = torch.from_numpy(arrays["train_images"][0]).float()
    else:
        (tmp_path / "cls").mkdir()
        (tmp_path / "cls" / "q.png").write_bytes(blob)
        transform = RandomResizedCropFlip(32) if draw == "ImageNet train crop" else ResizeCenterCrop(32)
        pixels = ImageFolder(tmp_path, transform=transform).load(0, random.Random(0)).float()
    assert (pixels - 64).abs().max() <= 1


def _image_archive(path, train_blob, name="0.png"):
    return write_tar(path, [tar_file(f"train/a/{name}", train_blob), tar_file("test/a/0.png", png_bytes())])


@pytest.mark.parametrize(
    "name, blob, match",
    [
        ("0.jpg", lambda: _encoded("JPEG", size=(32, 32))[:300], "cannot decode"),
        ("0.png", lambda: b"", "cannot decode"),
        ("0.jpg", lambda: b"not an image at all", "cannot decode"),
        ("0.png", lambda: png_bytes(size=(1, 1)), "is 1x1, expected 32x32"),
        ("0.png", lambda: png_bytes(size=(33, 32)), "is 33x32, expected 32x32"),
        ("0.png", lambda: png_header_claiming(100_000, 100_000), "100000x100000|decompression bomb"),
        ("0.png", lambda: png_header_claiming(12_000, 8_000), "12000x8000, expected 32x32"),
    ],
)
def test_embedded_style_archive_images_are_one_error_naming_the_member(tmp_path, name, blob, match):
    archive = _image_archive(tmp_path / "images.tar", blob(), name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning for the 96-megapixel header
        with pytest.raises(ValueError, match=match) as info:
            decode_image_archive(archive, progress=False)
    assert "\n" not in str(info.value) and f"train/a/{name}" in str(info.value)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_embedded_style_archive_converts_other_modes(tmp_path, mode):
    if mode == "I;16":
        blob = io.BytesIO()
        Image.fromarray(np.full((32, 32), 300, np.uint16)).save(blob, format="PNG")
        blob = blob.getvalue()
    elif mode == "CMYK":
        blob = _encoded("JPEG", size=(32, 32), mode="CMYK")
    else:
        blob = png_bytes(mode=mode)
    arrays = decode_image_archive(_image_archive(tmp_path / "images.tar", blob), progress=False)
    assert arrays["train_images"].shape == (1, 3, 32, 32) and arrays["train_images"].dtype == np.uint8
