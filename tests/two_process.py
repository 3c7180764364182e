"""The two-process reference run, trained once per test run and shared by every test (and xdist worker)
that needs an uninterrupted 2-process `senet train`: test_train.py checks what it reports, test_faults_signals.py
compares an interrupted run's checkpoints with its own (and, in the slow tier, resumes it to its very
weights)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from senet.data.lock import exclusive_lock

# ResNet-20 with dropout (the RNG state matters) on 200 CIFAR-10 images, 100 per process in batches of 25:
# 4 steps per epoch, 2 epochs; evaluated on 50 test images.
DDP_TRAIN = [
    "--model", "cifar_resnet20", "--subset", "200", "--test-subset", "50", "--batch-size", "25",
    "--drop-rate", "0.2", "--epochs", "2", "--no-progress", "--device", "cpu",
]  # fmt: skip


# The tests that launch 2-process runs share one xdist worker (``--dist loadgroup``): each launch keeps the 2
# cores busy, and the first of them trains the shared reference that the others would wait for, idle.
GROUP = pytest.mark.xdist_group("two-process")

# The reference keeps a checkpoint after every step, which an interrupted run's checkpoints are compared with
# (the checkpoints change nothing of the run: the single-process runs of test_faults.py show it).
REFERENCE_SAVES = ["--save-every", "1", "--keep-checkpoints", "100"]


def torchrun(args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs a 2-process torchrun job in a session of its own. On a timeout (or any error here) the whole
    process group (torchrun's agent and its workers) is killed, so nothing outlives the test."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def two_process_reference(shared: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """The run folder of ``senet train DDP_TRAIN`` on 2 processes, a checkpoint kept after every step
    (``REFERENCE_SAVES``), and the job's result, under ``shared``.

    The first caller trains it (under a file lock); later callers, in this process or another, wait for
    the lock and read the recorded result. A failed run is recorded too, so every test that needs it fails
    with its output instead of training it again.
    """
    out, record = shared / "two-process-reference", shared / "two-process-reference.json"
    with exclusive_lock(shared / ".two-process-reference.lock"):
        if not record.is_file():
            result = torchrun(["-m", "senet", "train", *DDP_TRAIN, *REFERENCE_SAVES, "--out", str(out)])
            done = {"args": result.args, "returncode": result.returncode, "stdout": result.stdout,
                    "stderr": result.stderr}  # fmt: skip
            record.write_text(json.dumps(done))
    done = json.loads(record.read_text())
    return out, subprocess.CompletedProcess(done["args"], done["returncode"], done["stdout"], done["stderr"])
