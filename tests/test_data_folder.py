"""Image folders: scanning, ImageNet-style transforms, loaders with workers, unreadable files, errors."""

import random
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from senet.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CorruptImageError,
    ImageFolder,
    RandomResizedCropFlip,
    ResizeCenterCrop,
    create_loader,
    load_dataset,
)
from senet.data.transforms import random_resized_crop_box


def make_folder(root, corrupt=True):
    """root/train/{cat,dog}/ with PNG and JPEG files of several sizes and modes, root/val/ likewise."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 5), ("val", 2)):
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                if i == 1:
                    image.convert("L").save(folder / f"{i}.jpg", quality=90)
                elif i == 2:
                    image.convert("RGBA").save(folder / f"{i}.png")
                else:
                    image.save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
            (folder / "notes.txt").write_text("not an image")
    if corrupt:
        (root / "train" / "dog" / "9_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_scan_lists_images_only(tmp_path):
    make_folder(tmp_path)
    train = ImageFolder(tmp_path / "train")
    assert train.classes == ("cat", "dog") and len(train) == 11  # 5 + 5 + the broken one, no .txt
    assert train.targets.tolist() == [0] * 5 + [1] * 6


def test_a_corrupt_image_raises_one_clear_error(tmp_path):
    make_folder(tmp_path)
    train = ImageFolder(tmp_path / "train", transform=RandomResizedCropFlip(32))
    image, label = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8 and label == 0
    with pytest.raises(CorruptImageError, match=r"cannot decode image .*9_broken\.jpg.*skip_corrupt=True"):
        train[len(train) - 1]


def test_skip_corrupt_replaces_and_counts_across_workers(tmp_path):
    make_folder(tmp_path)
    data = load_dataset(tmp_path, image_size=32, skip_corrupt=True)
    train = create_loader(data, "train", batch_size=4, num_workers=1, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the worker's warning names the file
        batches = list(train)
    assert [len(y) for _, y in batches] == [4, 4, 3]  # sizes kept: the broken image was replaced
    assert data.train.num_corrupt == 1 and data.train.corrupt_files[0].endswith("9_broken.jpg")


def test_folder_dataset_through_load_dataset(tmp_path):
    make_folder(tmp_path, corrupt=False)
    data = load_dataset(str(tmp_path), image_size=48)
    assert data.kind == "folder" and data.classes == ("cat", "dog") and data.num_classes == 2
    assert (len(data.train), len(data.test)) == (10, 4) and data.mean == IMAGENET_MEAN
    subset = load_dataset(str(tmp_path), image_size=48, subset=4, seed=0)
    assert subset.train.targets.tolist() == [0, 0, 1, 1] and len(subset.test) == 4
    train = create_loader(data, "train", batch_size=4, num_workers=0, seed=1, channels_last=True)
    x, y = next(iter(train))
    assert x.shape == (4, 3, 48, 48) and x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    # Seeded: the same epoch gives the same crops, with or without workers; the next epoch others.
    again = create_loader(data, "train", batch_size=4, num_workers=1, seed=1)
    assert torch.equal(next(iter(again))[0], x)
    assert not torch.equal(next(iter(train))[0], x)
    # Evaluation: the centre crop of the image resized to a shorter side of 48 * 256 / 224 = 55.
    test = create_loader(data, "test", batch_size=4, num_workers=0)
    x, y = next(iter(test))
    assert y.tolist() == [0, 0, 1, 1]
    path = data.test.samples[0][0]
    expected = ResizeCenterCrop(48)(Image.open(path))
    pixels = torch.from_numpy(np.array(expected.convert("RGB"))).permute(2, 0, 1).float() / 255
    normalised = (pixels - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    torch.testing.assert_close(x[0], normalised, rtol=0, atol=1e-5)


def test_resize_center_crop_geometry():
    image = Image.new("RGB", (100, 50))
    image.paste((255, 0, 0), (0, 0, 50, 50))  # left half red
    out = ResizeCenterCrop(40, resize=50)(image)  # shorter side already 50: only the centre crop
    assert out.size == (40, 40)
    assert out.getpixel((0, 0)) == (255, 0, 0) and out.getpixel((39, 0)) == (0, 0, 0)  # columns 30..69


def test_random_resized_crop_box_follows_its_ranges():
    rng = random.Random(0)
    for _ in range(500):
        left, top, w, h = random_resized_crop_box(200, 100, rng=rng)
        assert 0 <= left and left + w <= 200 and 0 <= top and top + h <= 100
        assert 0.08 * 20000 * 0.9 <= w * h <= 20000
    assert random_resized_crop_box(1000, 10, rng=rng) == (493, 0, 13, 10)  # fallback: centred, ratio 4/3
    a = RandomResizedCropFlip(24)(Image.new("RGB", (60, 40), (9, 9, 9)), random.Random(3))
    assert a.size == (24, 24) and a.getpixel((5, 5)) == (9, 9, 9)


def test_missing_and_empty_folders_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="has no train/ folder"):
        load_dataset(tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="has no val/ folder"):
        load_dataset(tmp_path)
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        load_dataset(tmp_path)
    (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        load_dataset(tmp_path)
    with pytest.raises(ValueError, match="unknown data set 'imagenet'; valid names: cifar10, cifar100"):
        load_dataset("imagenet")
