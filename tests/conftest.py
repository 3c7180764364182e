"""Shared test settings: one thread, a private cache shared by the xdist workers, no proxies."""

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from two_process import two_process_reference

# Hypothesis profiles (tests/properties.py::examples scales each test's examples by max_examples / 100, at least 10):
# 'fast' is the default (`make test`), 'thorough' runs every example (`make test-all`, which passes
# --hypothesis-profile thorough; that option, read after this file, overrides the default).
settings.register_profile("fast", max_examples=12)
settings.register_profile("thorough", max_examples=100)
settings.load_profile("fast")

PROXY_VARIABLES = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tests run small tensors, where intra-op threads cost more in hand-offs than they save (and on
    # a busy 2-core machine OpenMP threads spin waiting for each other). One thread, restored after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seeded():
    # Every test starts from the same random state, whatever ran before it: a test's random weights and
    # inputs must not depend on the order tests run in (or on which tests were selected).
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


_SAVED_CACHE = "_senet_saved_cache"
SHARED = "SENET_TEST_SHARED"  # a folder of this test run shared by all workers (made with the cache)


def pytest_configure(config):
    """Points SENET_CACHE at a private folder for the whole test run (subprocesses inherit it), so tests
    never read or write the user's ~/.cache/senet, and SENET_TEST_SHARED at a folder beside it. Both are
    made by the controlling process before any xdist worker starts, so every worker inherits the same
    folders: the embedded CIFAR-10 is decoded once for the run (``senet.data.lock`` makes a second worker
    wait for the first's copy, not decode again), and so is the two-process reference run."""
    if hasattr(config, "workerinput"):  # an xdist worker: SENET_CACHE came from the controller
        return
    _check_xdist_groups(config)
    setattr(config, _SAVED_CACHE, os.environ.get("SENET_CACHE"))
    root = Path(tempfile.mkdtemp(prefix="senet-test-"))
    (root / "cache").mkdir()
    (root / "shared").mkdir()
    os.environ["SENET_CACHE"] = str(root / "cache")
    os.environ[SHARED] = str(root / "shared")


def _check_xdist_groups(config) -> None:
    """xdist_group keeps the float64 checks of the big networks apart (two at once exhaust 24 GB) and the tests
    that share a costly fixture together. pytest-xdist 3.8 marks a test's group in ``item._nodeid``, which
    pytest 9 no longer reads (the groups then silently vanish): stop before running without them."""
    from _pytest import nodes

    if config.getoption("dist", "no") == "loadgroup" and "_nodeid" not in getattr(nodes.Node, "__slots__", ()):
        raise pytest.UsageError(f"pytest {pytest.__version__} ignores pytest-xdist's test groups (--dist loadgroup): "
                                "install the versions pyproject.toml names (pytest < 9)")


def pytest_unconfigure(config):
    if not hasattr(config, _SAVED_CACHE):
        return
    shutil.rmtree(Path(os.environ.pop(SHARED)).parent, ignore_errors=True)  # 180 MB of decoded images: not kept
    saved = getattr(config, _SAVED_CACHE)
    if saved is None:
        os.environ.pop("SENET_CACHE", None)
    else:
        os.environ["SENET_CACHE"] = saved


@pytest.fixture(autouse=True)
def _private_downloads(monkeypatch):
    """Each test downloads checkpoints into a folder of its own (SENET_PRETRAINED_DIR): the cache is shared by
    the xdist workers, and a test that serves and then removes a file must not take it from another's."""
    monkeypatch.setenv("SENET_PRETRAINED_DIR", tempfile.mkdtemp(prefix="pretrained-", dir=os.environ[SHARED]))


@pytest.fixture(scope="session")
def ddp_reference() -> tuple[Path, subprocess.CompletedProcess]:
    """The uninterrupted 2-process run of ``two_process.DDP_TRAIN``: trained once for the whole test run,
    whichever worker asks first (see two_process.py); returns its folder and the torchrun job's result."""
    return two_process_reference(Path(os.environ[SHARED]))


@pytest.fixture
def no_proxy(monkeypatch):
    """Loopback requests go straight to the test's server: urllib honours *_proxy variables."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@contextlib.contextmanager
def serving(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves ``handler`` over http on 127.0.0.1 from a thread; yields the base URL; shut down on leaving."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(tmp_path, no_proxy):
    """Serves tmp_path/served over http on 127.0.0.1 from a thread, shut down after the test."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    with serving(functools.partial(Quiet, directory=str(root))) as url:
        yield root, f"{url}/mirror"


# The tests that take longest (5-20 s each on 2 cores: subprocesses, 2-process runs, real training), run
# first: the workers then end on short tests and finish together, instead of one idling while the other
# runs a long test that it happened to draw last (measured: 25-40 s of a 6-minute run).
LONG_FIRST = (
    "test_faults_signals.py::test_sigterm_and_sigint",
    "test_faults_signals.py::test_sigkill_at_any_moment",
    "test_train.py::test_two_process",
    "test_train.py::test_two_processes",
    "test_train.py::test_training_on_real_data",
    "test_ablate.py::test_ablate_runs_end_to_end",
    "test_faults_signals.py::test_sigterm_stops",
    "test_train_first_use.py::test_the_defaults_learn",
    "test_properties_models.py::test_create_model",
    "test_publisher_outputs.py",
    "test_profile_cli.py::test_paper_table",
    "test_finetune_compare.py",
)


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own, which appends "@<group>" to a grouped test's id
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not any(name in item.nodeid for name in LONG_FIRST))  # stable: order kept within
    # The same check, on what the worker sees: a grouped test whose id does not carry its group.
    if hasattr(config, "workerinput") and config.getvalue("loadgroup"):
        ungrouped = [i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid]
        if ungrouped:
            raise pytest.UsageError(f"pytest-xdist's --dist loadgroup did not group {ungrouped[0]} (pytest "
                                    f"{pytest.__version__}); install the versions pyproject.toml names")


@pytest.fixture
def git_repo(tmp_path):
    """A git repository of the test's own in ``tmp_path``, immune to the user's git configuration (no global
    or system config: identity, signing, hooks, templates), with one commit of ``f.txt``. Yields a ``git(*args)``
    that runs a time-bounded git command in it; ``git.root`` is the folder. Skips where git is not installed."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TEMPLATE_DIR": ""}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, env=env, timeout=60)

    def commit(message: str = "c") -> None:
        git("add", "-A")
        git("-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "commit", "-qm", message)

    git("init", "-q")
    (tmp_path / "f.txt").write_text("1")
    commit()
    git.root, git.commit = tmp_path, commit
    return git
