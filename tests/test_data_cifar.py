"""The official CIFAR python archives: reading, downloading over loopback, checksums, load_dataset."""

import dataclasses
import hashlib
import io
import pickle
import socket
import tarfile

import numpy as np
import pytest
import torch

from senet._subsets import named_sizes
from senet.data import CIFAR_ARCHIVES, ChecksumError, list_datasets, load_dataset, read_cifar_archive
from senet.data.cifar import fetch_cifar_archive


def make_cifar_archive(directory, name, per_class=3, num_classes=None):
    """Writes a small archive in the official format: the same members, pickles and keys, few images.

    Returns:
        The archive's path and its (train, test) data and labels, to compare with.
    """
    spec = CIFAR_ARCHIVES[name]
    num_classes = num_classes or (10 if name == "cifar10" else 100)
    rng = np.random.default_rng(0)
    expected = {}
    batches = {}
    for split, members in (("train", spec.train), ("test", spec.test)):
        labels = np.tile(np.arange(num_classes), per_class * len(members))
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        expected[split] = (data, labels)
        for i, member in enumerate(members):
            rows = slice(i * len(labels) // len(members), (i + 1) * len(labels) // len(members))
            batches[member] = {"batch_label": f"batch {i}", spec.label_key: labels[rows].tolist(), "data": data[rows]}
    names = [f"class_{c}" for c in range(num_classes)]
    batches[spec.meta[0]] = {spec.meta[1]: names}
    path = directory / spec.filename
    with tarfile.open(path, "w:gz") as tf:
        for member, content in batches.items():
            blob = pickle.dumps(content, protocol=2)
            info = tarfile.TarInfo(f"{spec.folder}/{member}")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
    return path, expected, names


def test_every_named_data_set_has_its_sizes_known_before_reading():
    """``named_sizes`` (refusing a subset or a class count before an archive is read) and the data sets
    ``load_dataset`` knows are two tables: a name added to one only would go unchecked."""
    assert set(list_datasets()) == {name for name in list_datasets() if named_sizes(name) is not None}
    assert {name: named_sizes(name)[1:] for name in list_datasets()} == {n: (50_000, 10_000) for n in list_datasets()}


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_reads_official_archive(tmp_path, name):
    path, expected, names = make_cifar_archive(tmp_path, name, per_class=2)
    arrays = read_cifar_archive(path, name)
    for split in ("train", "test"):
        data, labels = expected[split]
        np.testing.assert_array_equal(arrays[f"{split}_images"], data.reshape(-1, 3, 32, 32))
        np.testing.assert_array_equal(arrays[f"{split}_labels"], labels)
    assert arrays["classes"].tolist() == names
    assert named_sizes(name)[0] == len(names)  # what is checked before any file is read says the same
    # The extracted folder reads the same.
    with tarfile.open(path) as tf:
        tf.extractall(tmp_path / "extracted", filter="data")
    folder = read_cifar_archive(tmp_path / "extracted" / CIFAR_ARCHIVES[name].folder, name)
    np.testing.assert_array_equal(folder["train_images"], arrays["train_images"])


def test_cifar10_from_data_dir_replaces_embedded_and_subsets(tmp_path):
    path, expected, _ = make_cifar_archive(tmp_path, "cifar10", per_class=6)
    data = load_dataset("cifar10", data_dir=tmp_path, subset=20, seed=1)
    assert data.source.startswith(str(path)) and data.kind == "tensor"
    assert torch.bincount(data.train.labels, minlength=10).tolist() == [2] * 10
    assert len(data.test) == len(expected["test"][1])
    # The subset is made of real training images, with their labels, chosen by the seed.
    images = torch.from_numpy(expected["train"][0].reshape(-1, 3, 32, 32))
    rows = [int(torch.nonzero((images == x).flatten(1).all(1))[0]) for x in data.train.images]
    assert expected["train"][1][rows].tolist() == data.train.labels.tolist()
    again = load_dataset("cifar10", data_dir=tmp_path, subset=20, seed=1)
    assert torch.equal(again.train.images, data.train.images)
    other = load_dataset("cifar10", data_dir=tmp_path, subset=20, test_subset=10, seed=2)
    assert not torch.equal(other.train.images, data.train.images)
    assert torch.bincount(other.test.labels).tolist() == [1] * 10


def test_refuses_pickled_code(tmp_path):
    spec = CIFAR_ARCHIVES["cifar10"]
    (tmp_path / spec.folder).mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for member in (*spec.train, *spec.test, spec.meta[0]):
        (tmp_path / spec.folder / member).write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(ValueError, match=r"not a readable CIFAR batch \(refusing to load builtins.print"):
        read_cifar_archive(tmp_path / spec.folder, "cifar10")


def test_download_over_loopback_with_checksum(tmp_path, server, monkeypatch):
    served, url = server
    (served / "mirror").mkdir()
    path, expected, _ = make_cifar_archive(served / "mirror", "cifar100", per_class=1)
    monkeypatch.setitem(CIFAR_ARCHIVES, "cifar100", dataclasses.replace(CIFAR_ARCHIVES["cifar100"], md5=md5(path)))
    monkeypatch.setenv("SENET_CIFAR_URL", url)  # the address comes from the environment here
    data = load_dataset("cifar100", data_dir=tmp_path / "data", progress=False)
    assert data.num_classes == 100 and len(data.train) == 100 and data.mean == (0.5071, 0.4865, 0.4409)
    np.testing.assert_array_equal(data.test.labels.numpy(), expected["test"][1])
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["cifar-100-python.tar.gz"]  # no temporaries
    # Present now: found again without the server.
    monkeypatch.setenv("SENET_CIFAR_URL", "http://127.0.0.1:9/nowhere")
    assert fetch_cifar_archive("cifar100", tmp_path / "data") == tmp_path / "data" / "cifar-100-python.tar.gz"


def test_download_with_wrong_checksum_is_refused(tmp_path, server):
    served, url = server
    make_cifar_archive(served, "cifar10", per_class=1)  # not the published file: its MD5 differs
    with pytest.raises(ChecksumError, match="expected c58f30108f718f92721af3b95e74349a"):
        fetch_cifar_archive("cifar10", tmp_path / "data", url=url.removesuffix("/mirror"), progress=False)
    assert not (tmp_path / "data").exists()  # neither the archive nor a partial file, nor the folder made for them


def test_missing_archive_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz is not in .*allow downloads"):
        load_dataset("cifar100", data_dir=tmp_path, download=False)
    with socket.socket() as s:  # a port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FileNotFoundError, match="could not download .*SENET_CIFAR_URL"):
        load_dataset("cifar100", data_dir=tmp_path, url=f"http://127.0.0.1:{port}", progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown data set 'cifar1000'; valid names: cifar10, cifar100"):
        load_dataset("cifar1000")


def test_damaged_archive_is_reported(tmp_path):
    path, _, _ = make_cifar_archive(tmp_path, "cifar10", per_class=1)
    path.write_bytes(path.read_bytes()[:300])  # truncated
    with pytest.raises(ValueError, match="not a readable .*delete it and download it again"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_the_official_archive_in_the_cache_is_preferred_to_the_embedded_copy(tmp_path, monkeypatch):
    # The lossy embedded JPEG copy only when no official archive is anywhere: here one is in the cache, and
    # a --data-dir without it falls back to the cache's before the embedded copy.
    from senet.data import cache as cache_module

    monkeypatch.setenv("SENET_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "empty").mkdir()
    assert cache_module.cache_dir() == tmp_path / "cache"
    path, expected, _ = make_cifar_archive(tmp_path / "cache", "cifar10", per_class=2)
    for data_dir in (None, tmp_path / "empty"):
        data = load_dataset("cifar10", data_dir=data_dir, progress=False)
        assert data.source.startswith(str(path)), data.source
        assert len(data.test) == len(expected["test"][1])
