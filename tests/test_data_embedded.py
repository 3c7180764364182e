"""The embedded CIFAR-10: its content, its decoding and the cache of decoded arrays."""

import concurrent.futures
import io
import tarfile
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from senet.data import CIFAR10_CLASSES, EMBEDDED_ARCHIVE, archive_counts, cache_dir, load_dataset
from senet.data import embedded_cifar10 as embedded
from senet.data.embedded_cifar10 import decode_image_archive, load_embedded_cifar10


def test_embedded_archive_holds_the_full_cifar10():
    # From the tar member list alone: no decoding.
    counts = archive_counts(EMBEDDED_ARCHIVE)
    assert set(counts) == {"train", "test"}
    assert tuple(sorted(counts["train"])) == CIFAR10_CLASSES == tuple(sorted(counts["test"]))
    assert set(counts["train"].values()) == {5000} and sum(counts["train"].values()) == 50_000
    assert set(counts["test"].values()) == {1000} and sum(counts["test"].values()) == 10_000


def test_decoding_some_members_matches_pillow():
    arrays = decode_image_archive(EMBEDDED_ARCHIVE, classes=CIFAR10_CLASSES, per_class=2, progress=False)
    assert arrays["train_images"].shape == (20, 3, 32, 32) and arrays["train_images"].dtype == np.uint8
    assert arrays["test_labels"].tolist() == [c for c in range(10) for _ in range(2)]
    with tarfile.open(EMBEDDED_ARCHIVE) as tf:  # the archive starts with train/airplane/
        blob = next(tf.extractfile(m).read() for m in tf if m.name == "train/airplane/0001.jpg")
    expected = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(arrays["train_images"][1], expected)


def test_embedded_cifar10_loads_in_full():
    # Uses the test run's private cache (conftest.py): the first load of a run decodes the 60,000 JPEGs
    # (5-15 s, depending on the CPU), once for all xdist workers; later loads read the cache. Not slow:
    # other tests of `make test` load the data set anyway.
    start = time.perf_counter()
    data = load_dataset("cifar10", progress=False)
    seconds = time.perf_counter() - start
    print(f"\nembedded CIFAR-10 loaded in {seconds:.2f} s (cache: {cache_dir()})")
    assert data.kind == "tensor" and data.num_classes == 10 and data.classes == CIFAR10_CLASSES
    assert data.train.images.shape == (50_000, 3, 32, 32) and data.train.images.dtype == torch.uint8
    assert data.test.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(data.train.labels).tolist() == [5000] * 10
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    # The published CIFAR-10 channel means hold for the re-encoded JPEGs too.
    mean = data.train.images[::10].float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(data.mean), atol=0.005)


def _png_archive(path, colours):
    """A tar.gz of <split>/<class>/<n>.png, 32x32 images of one colour each (exact after decoding)."""
    with tarfile.open(path, "w:gz") as tf:
        for split, classes in colours.items():
            for cls, values in classes.items():
                for n, rgb in enumerate(values):
                    buf = io.BytesIO()
                    Image.new("RGB", (32, 32), rgb).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"{split}/{cls}/{n:04d}.png")
                    info.size = len(buf.getvalue())
                    tf.addfile(info, io.BytesIO(buf.getvalue()))


COLOURS = {
    "train": {"airplane": [(255, 0, 0), (0, 255, 0)], "automobile": [(0, 0, 255)]},
    "test": {"airplane": [(1, 2, 3)], "automobile": [(4, 5, 6)]},
}


def _entries(cache):
    """The cache entries (not the hidden lock files beside them)."""
    return [p for p in cache.iterdir() if not p.name.startswith(".")]


def test_decode_cache_and_invalidation(tmp_path, monkeypatch):
    archive, cache = tmp_path / "tiny.tar.gz", tmp_path / "cache"
    _png_archive(archive, COLOURS)
    arrays = load_embedded_cifar10(archive=archive, cache=cache, progress=False)
    assert arrays["classes"].tolist() == list(CIFAR10_CLASSES)
    assert arrays["train_labels"].tolist() == [0, 0, 1] and arrays["test_labels"].tolist() == [0, 1]
    assert arrays["train_images"][1, :, 5, 7].tolist() == [0, 255, 0]
    assert arrays["test_images"][1, :, 0, 0].tolist() == [4, 5, 6]

    # Cached under the archive's sha256, written whole (no temporary left behind).
    (first,) = _entries(cache)
    assert first.name.startswith("tiny-") and sorted(p.name for p in first.iterdir())[0] == "classes.npy"

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(embedded, "decode_image_archive", no_decoding)
    cached = load_embedded_cifar10(archive=archive, cache=cache, progress=False)
    np.testing.assert_array_equal(cached["train_images"], arrays["train_images"])

    # A changed archive has another sha256, hence another cache entry.
    monkeypatch.setattr(embedded, "decode_image_archive", decode_image_archive)
    _png_archive(archive, {**COLOURS, "test": {"airplane": [(9, 9, 9)], "automobile": [(4, 5, 6)]}})
    changed = load_embedded_cifar10(archive=archive, cache=cache, progress=False)
    assert changed["test_images"][0, :, 0, 0].tolist() == [9, 9, 9]
    assert len(_entries(cache)) == 2

    # A damaged cache entry is reported and rebuilt.
    (entry,) = [p for p in _entries(cache) if p != first]
    (entry / "test_images.npy").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="decoding again"):
        rebuilt = load_embedded_cifar10(archive=archive, cache=cache, progress=False)
    np.testing.assert_array_equal(rebuilt["test_images"], changed["test_images"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_embedded_cifar10(archive=archive, cache=cache, progress=False)


def test_two_loads_at_once_decode_once(tmp_path, monkeypatch):
    """Two loaders racing for an empty cache (two xdist workers, two runs): one decodes, the other waits
    for its copy and reads it (the file lock of senet.data.lock; flock locks conflict between threads too,
    each opening the lock file on its own)."""
    archive, cache = tmp_path / "tiny.tar.gz", tmp_path / "cache"
    _png_archive(archive, COLOURS)
    decodes = []

    def slow_decode(*args, **kwargs):
        decodes.append(1)
        time.sleep(0.5)  # long enough for the other thread to arrive while this one decodes
        return decode_image_archive(*args, **kwargs)

    monkeypatch.setattr(embedded, "decode_image_archive", slow_decode)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: load_embedded_cifar10(archive=archive, cache=cache, progress=False), "ab"))
    assert len(decodes) == 1, "both loaders decoded"
    np.testing.assert_array_equal(results[0]["train_images"], results[1]["train_images"])
    assert len(_entries(cache)) == 1


def test_decode_rejects_wrong_sizes_and_broken_images(tmp_path):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        for name, blob in [("train/a/0.jpg", b"not a jpeg"), ("test/a/0.png", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match="cannot decode .*train/a/0.jpg"):
        decode_image_archive(archive, progress=False)
    _png_archive(archive, {"train": {"a": [(0, 0, 0)]}, "test": {"a": [(0, 0, 0)]}})
    with pytest.raises(ValueError, match="expected 16x16"):
        decode_image_archive(archive, image_size=16, progress=False)
    # A JPEG one column short: libjpeg alone would happily fill a 32x32 image with it.
    jpeg = io.BytesIO()
    Image.new("RGB", (31, 32)).save(jpeg, format="JPEG")
    with tarfile.open(archive, "w") as tf:
        for name in ("train/a/0.jpg", "test/a/0.jpg"):
            info = tarfile.TarInfo(name)
            info.size = len(jpeg.getvalue())
            tf.addfile(info, io.BytesIO(jpeg.getvalue()))
    with pytest.raises(ValueError, match="train/a/0.jpg is 31x32, expected 32x32"):
        decode_image_archive(archive, progress=False)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_tar_index_matches_tarfile(tmp_path, fmt):
    names = ["train/a/0.png", "test/b/" + "long" * 30 + ".png", "test/ü/1.png"]
    if fmt == tarfile.USTAR_FORMAT:
        names = names[:1] + ["test/b/" + "x" * 120 + "/1.png"]  # ustar splits long paths into prefix + name
    with tarfile.open(tmp_path / "t.tar", "w", format=fmt) as tf:
        for i, name in enumerate(names):
            info = tarfile.TarInfo(name)
            info.size = 10 + i
            tf.addfile(info, io.BytesIO(bytes(range(10 + i))))
    raw = (tmp_path / "t.tar").read_bytes()
    expected = [(m.name, m.offset_data, m.size) for m in tarfile.open(tmp_path / "t.tar") if m.isfile()]
    assert embedded._tar_index(raw) == expected
    assert [raw[o : o + s] for _, o, s in expected][1] == bytes(range(11))
