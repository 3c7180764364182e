"""Untrusted archives and downloads: a member that could write outside its folder or is not a plain file
refuses the whole archive before anything is written; truncated archives, a download with another checksum
or cut short are one clear error, and nothing partial is kept.
"""

import gzip
import hashlib
import http.server
import io
import tarfile

import numpy as np
import pytest
from conftest import serving
from PIL import Image
from test_data_cifar import make_cifar_archive

from senet.data import read_cifar_archive
from senet.data.cache import UnsafeArchiveError, extract_archive
from senet.data.download import ChecksumError, download_file
from senet.data.embedded_cifar10 import decode_image_archive

# ---------------------------------------------------------------------------------------------------------
# Archives: member kinds that could write outside the target folder, truncation


def tar_file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = (1, 3) if kind == tarfile.CHRTYPE else (8, 0)
    return info, None


def malicious_members(kind, prefix, outside):
    """The members of an archive attacking ``outside`` (a folder beside the target), under ``prefix``."""
    secret = outside / "secret.txt"
    return {
        "traversal": [tar_file("../escaped.txt", b"pwned")],
        "nested traversal": [tar_file(f"{prefix}/../../escaped.txt", b"pwned")],
        "absolute path": [tar_file(str(outside / "escaped.txt"), b"pwned")],
        "symlink out": [_special(f"{prefix}/link", tarfile.SYMTYPE, str(outside)),
                        tar_file(f"{prefix}/link/escaped.txt", b"pwned")],
        "relative symlink out": [_special(f"{prefix}/up", tarfile.SYMTYPE, "../../.."),
                                 tar_file(f"{prefix}/up/escaped.txt", b"pwned")],
        "symlink inside": [_special(f"{prefix}/alias", tarfile.SYMTYPE, "a.txt")],
        "hard link out": [_special(f"{prefix}/hard", tarfile.LNKTYPE, str(secret)),
                          tar_file(f"{prefix}/hard", b"pwned")],
        "character device": [_special(f"{prefix}/null", tarfile.CHRTYPE)],
        "block device": [_special(f"{prefix}/disk", tarfile.BLKTYPE)],
        "fifo": [_special(f"{prefix}/pipe", tarfile.FIFOTYPE)],
    }[kind]  # fmt: skip


MEMBER_KINDS = [
    "traversal", "nested traversal", "absolute path", "symlink out", "relative symlink out", "symlink inside",
    "hard link out", "character device", "block device", "fifo",
]  # fmt: skip


def write_tar(path, members, fmt=None):
    """Writes ``(TarInfo, data)`` members as given (GNU format unless ``fmt``; gzipped for a .gz name)."""
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode, format=fmt or tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.fixture
def arena(tmp_path):
    """tmp_path/work (where archives and targets go) and tmp_path/outside (holding secret.txt)."""
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("do not touch")
    return tmp_path / "work", tmp_path / "outside"


def png_bytes(size=(32, 32), mode="RGB", color=0):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_extract_archive_refuses_unsafe_members_and_writes_nothing(arena, kind):
    work, outside = arena
    members = [tar_file("data/a.txt", b"fine"), *malicious_members(kind, "data", outside)]
    archive = write_tar(work / "evil.tar.gz", members)
    before = _snapshot(work.parent)
    with pytest.raises(UnsafeArchiveError) as info:
        extract_archive(archive, work / "out")
    assert "\n" not in str(info.value) and str(archive) in str(info.value) and "refused" in str(info.value)
    assert _snapshot(work.parent) == before  # not the target, not a temporary, nothing outside
    assert not (work / "escaped.txt").exists() and not (outside / "escaped.txt").exists()


@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_extract_without_the_data_filter_refuses_the_same(arena, kind, monkeypatch):
    """Python < 3.11.4 has no 'data' filter: the explicit checks alone give the same refusals."""
    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    work, outside = arena
    archive = write_tar(work / "evil.tar", [tar_file("data/a.txt"), *malicious_members(kind, "data", outside)])
    before = _snapshot(work.parent)
    with pytest.raises(UnsafeArchiveError):
        extract_archive(archive, work / "out")
    assert _snapshot(work.parent) == before


@pytest.mark.parametrize("data_filter", [True, False])
def test_extract_archive_extracts_a_safe_archive(arena, data_filter, monkeypatch):
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    work, _ = arena
    members = [tar_file("data/a.txt", b"fine"), tar_file("data/sub/b.bin", bytes(range(256)))]
    archive = write_tar(work / "good.tar.gz", members)
    assert extract_archive(archive, work / "out") == work / "out"
    assert (work / "out" / "data" / "a.txt").read_bytes() == b"fine"
    assert (work / "out" / "data" / "sub" / "b.bin").read_bytes() == bytes(range(256))
    assert sorted(p.name for p in work.iterdir()) == ["good.tar.gz", "out"]  # no temporaries left
    with pytest.raises(FileExistsError):
        extract_archive(archive, work / "out")


@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_cifar_archive_with_an_unsafe_member_is_refused(arena, kind):
    work, outside = arena
    path, _, _ = make_cifar_archive(work, "cifar10", per_class=1)
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf]
    members += malicious_members(kind, "cifar-10-batches-py", outside)
    write_tar(path, members)
    before = _snapshot(work.parent)
    with pytest.raises(UnsafeArchiveError) as info:
        read_cifar_archive(path, "cifar10")
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert _snapshot(work.parent) == before


def test_cifar_archive_member_named_like_a_batch_but_a_device_is_refused(arena):
    work, _ = arena
    path, _, _ = make_cifar_archive(work, "cifar10", per_class=1)
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf if not m.name.endswith("test_batch")]
    write_tar(path, [*members, _special("cifar-10-batches-py/test_batch", tarfile.CHRTYPE)])
    with pytest.raises(UnsafeArchiveError, match="a device file"):
        read_cifar_archive(path, "cifar10")


@pytest.mark.parametrize("path_kind", ["fast", "slow"])
@pytest.mark.parametrize("kind", MEMBER_KINDS)
def test_image_archive_with_an_unsafe_member_is_refused(arena, kind, path_kind):
    """decode_image_archive parses plain ustar headers itself (fast) and hands anything else to tarfile
    (slow, forced here by a GNU long name): both refuse."""
    work, outside = arena
    members = [tar_file("train/a/0.png", png_bytes()), tar_file("test/a/0.png", png_bytes())]
    if path_kind == "slow":
        members.append(tar_file("train/a/" + "long" * 40 + ".png", png_bytes()))
    members += malicious_members(kind, "train/a", outside)
    archive = write_tar(work / "images.tar", members, fmt=tarfile.USTAR_FORMAT if path_kind == "fast" else None)
    with pytest.raises(UnsafeArchiveError) as info:
        decode_image_archive(archive, progress=False)
    assert "\n" not in str(info.value) and str(archive) in str(info.value)


@pytest.mark.parametrize("cut", ["10%", "50%", "90%", "gzip trailer", "tar at a member's header", "tar end block"])
def test_truncated_archives_are_one_clear_error(arena, cut):
    work, _ = arena
    path, _, _ = make_cifar_archive(work, "cifar10", per_class=1)
    if cut.startswith("tar"):  # the same archive uncompressed, cut between two members or in its end block
        with tarfile.open(path) as tf:
            infos = tf.getmembers()
            members = [(m, tf.extractfile(m).read()) for m in infos]
        path = write_tar(work / "cifar-10-python.tar", members)
        with tarfile.open(path) as tf:
            infos = tf.getmembers()
        at = infos[3].offset if "header" in cut else infos[-1].offset_data + -(-infos[-1].size // 512) * 512 + 10
        (work / "cifar-10-python.tar.gz").unlink()
    else:
        at = {"10%": 0.1, "50%": 0.5, "90%": 0.9}.get(cut, 1.0) * path.stat().st_size - (cut == "gzip trailer") * 6
    path.write_bytes(path.read_bytes()[: int(at)])
    for read in (
        lambda: read_cifar_archive(path, "cifar10"),
        lambda: extract_archive(path, work / "out"),
    ):
        with pytest.raises(ValueError) as info:
            read()
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert "truncated" in str(info.value) or "not a readable" in str(info.value) or "has no" in str(info.value)
    assert sorted(p.name for p in work.iterdir()) == [path.name]  # no extracted leftovers


@pytest.mark.parametrize("fmt", ["tar", "tar.gz", "gnu-long-name.tar"])
@pytest.mark.parametrize("cut", ["30%", "70%", "at a member's header", "inside the last member", "end block"])
def test_truncated_image_archives_are_one_clear_error(arena, fmt, cut):
    """Cut anywhere, also exactly between two members (where tarfile alone would quietly end early)."""
    work, _ = arena
    rng = np.random.default_rng(0)
    members = []
    for split in ("train", "test"):
        for i in range(4):
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG")
            members.append(tar_file(f"{split}/a/{i}.png", buf.getvalue()))
    if fmt.startswith("gnu"):
        members.append(tar_file("train/a/" + "x" * 120 + ".png", members[0][1]))
    path = write_tar(work / "images.tar", members)
    blob = path.read_bytes()
    with tarfile.open(path) as tf:
        infos = tf.getmembers()
    end = infos[-1].offset_data + -(-infos[-1].size // 512) * 512  # where the end-of-archive block starts
    at = {"30%": len(blob) * 3 // 10, "70%": len(blob) * 7 // 10, "at a member's header": infos[5].offset,
          "inside the last member": infos[-1].offset_data + 100, "end block": end + 100}[cut]  # fmt: skip
    blob = blob[:at]
    if fmt == "tar.gz":
        path = work / "images.tar.gz"
        path.write_bytes(gzip.compress(blob))  # a whole gzip stream of a cut tar
    else:
        path.write_bytes(blob)
    with pytest.raises(ValueError) as info:
        decode_image_archive(path, progress=False)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_a_cut_gzip_stream_is_one_clear_error(arena):
    work, _ = arena
    path = write_tar(
        work / "images.tar.gz", [tar_file("train/a/0.png", png_bytes()), tar_file("test/a/0.png", png_bytes())]
    )
    blob = path.read_bytes()
    for at in (len(blob) // 2, len(blob) - 4, 10, 1):
        path.write_bytes(blob[:at])
        with pytest.raises(ValueError) as info:
            decode_image_archive(path, progress=False)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------------------
# Downloads: wrong checksum, transfer cut short


@pytest.fixture
def byte_server(no_proxy):
    """Serves ``routes[path] = (body, claimed_length)`` on 127.0.0.1; a claimed length above the body's
    cuts the transfer short."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body, length = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args):
            pass

    with serving(Handler) as url:
        yield routes, url


@pytest.mark.parametrize("algorithm", ["md5", "sha256", "sha256 prefix"])
def test_a_download_with_another_checksum_is_deleted_and_refused(tmp_path, byte_server, algorithm):
    routes, url = byte_server
    body = b"the published file" * 100
    routes["/f.bin"] = (body, len(body))
    wrong = hashlib.sha256(b"another file").hexdigest()
    kwargs = {"md5": hashlib.md5(b"x").hexdigest()} if algorithm == "md5" else {"sha256": wrong}
    if algorithm == "sha256 prefix":
        kwargs = {"sha256": wrong[:8]}
    with pytest.raises(ChecksumError) as info:
        download_file(f"{url}/f.bin", tmp_path / "dl" / "f.bin", progress=False, **kwargs)
    assert "\n" not in str(info.value) and "deleted" in str(info.value)
    assert not (tmp_path / "dl").exists()  # neither the file nor a partial one, nor the folder made for them
    good = hashlib.sha256(body).hexdigest()
    assert download_file(f"{url}/f.bin", tmp_path / "dl" / "f.bin", sha256=good, progress=False).read_bytes() == body


def test_a_download_cut_short_is_refused_and_not_kept(tmp_path, byte_server):
    routes, url = byte_server
    routes["/cut.tar.gz"] = (b"x" * 1000, 5000)
    with pytest.raises(FileNotFoundError) as info:
        download_file(f"{url}/cut.tar.gz", tmp_path / "dl" / "cut.tar.gz", progress=False)
    assert "\n" not in str(info.value) and "cut.tar.gz" in str(info.value)
    assert not (tmp_path / "dl").exists()
