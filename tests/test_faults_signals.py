"""Faults from outside the process: a run killed (SIGKILL), stopped (SIGTERM, SIGINT) at any moment resumes to
the very weights of an uninterrupted run; compare, ablate and reproduce keep their finished runs and continue
the stopped one; a two-process run survives a dead rank and a preemption (docs/reliability.md).

The runs are those of test_faults.py (``fault_runs.QUICK``). Subprocesses run in sessions of their own and are
killed as a process group in a ``finally``; the ``SENET_TEST_*`` hooks slow steps or saves so that a signal can
land where the test wants it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import fault_runs
import pytest
from fault_runs import (
    QUICK,
    assert_identical_runs,
    assert_no_partial_checkpoint,
    assert_same_checkpoint,
    checkpoint_files,
    finish,
    latest_name,
    reduction_8_reference,
    running,
    saving_now,
    se_twin_reference,
    wait_for,
)
from two_process import DDP_TRAIN
from two_process import GROUP as TWO_PROCESS

from senet.cli.main import main
from senet.io import (
    checkpoint_name,
    list_checkpoints,
)
from senet.train import saving

cifar10 = fault_runs.cifar10  # the shared fixtures: pytest finds them by name in the module
reference = fault_runs.reference

# --- real signals and kills on a subprocess --------------------------------------------------------------------


def test_sigkill_at_any_moment_then_resume_is_bit_identical(reference, tmp_path):
    """Killed (SIGKILL) after a checkpoint, in the middle of writing the next one, and at a random moment:
    every checkpoint on disk stays complete, and the resumed run ends identical to the uninterrupted one."""
    run = tmp_path / "run"
    args = ["train", *QUICK, "--out", str(run), "--save-every", "1"]
    held = tmp_path / "held"
    hold = {"SENET_TEST_HOLD_IN_SAVE": str(held), "SENET_TEST_HOLD_AFTER_SAVES": "1"}
    with running(args, hold) as proc:  # 1. after the first checkpoint, while the second is written
        wait_for(held.exists, proc, what="a checkpoint being written")  # its weights are written, its state is not
        proc.kill_group()
    assert_no_partial_checkpoint(run, keep=2)
    assert saving_now(run), "the kill was to land while a checkpoint was being written"
    # The first checkpoint is whole and the newest: the write it was killed in never became the newest.
    assert [p.name for p in list_checkpoints(run)] == [latest_name(run)] == [checkpoint_name(0, 1)]
    with running([*args, "--resume"], {"SENET_TEST_STEP_SLEEP": "0.1"}) as proc:  # 2. at a random moment
        wait_for(lambda: any("resuming" in line for line in proc.out), proc, what="training to resume")
        time.sleep(random.Random(13).uniform(0.1, 1.0))
        proc.kill_group()
    assert_no_partial_checkpoint(run, keep=2)
    finish(run)
    assert_identical_runs(run, reference)
    assert not saving_now(run)  # the leftover temporary directory was cleaned up by a later save


def test_sigterm_and_sigint_stop_with_a_checkpoint_and_one_line(reference, tmp_path):
    """SIGTERM (preemption), then SIGINT: each stops after its step with a checkpoint, one line saying how
    to resume, exit 143 / 130. Resumed after both, the run ends identical."""
    run = tmp_path / "run"
    args = ["train", *QUICK, "--out", str(run), "--save-every", "2"]
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        before = latest_name(run)
        resume = ["--resume"] if before is not None else []
        with running([*args, *resume], {"SENET_TEST_STEP_SLEEP": "0.3"}) as proc:
            wait_for(lambda b=before: latest_name(run) not in (None, b), proc, what="a checkpoint")
            proc.signal(signum)
            exit_code, out, err = proc.wait(timeout=60)
        assert exit_code == code, err
        name = signal.Signals(signum).name
        assert err.count("\n") == 1 and err.startswith(f"stopped by {name} at "), err
        assert f"; checkpoint written; resume with: senet train --model cifar_resnet20 --out {run} --resume" in err
        assert latest_name(run) == _stop_checkpoint(err)  # written at the step it stopped at, even off the cadence
        assert_no_partial_checkpoint(run, keep=2)
    finish(run)
    assert_identical_runs(run, reference)


@pytest.mark.slow  # a third launch and a save held open for 3 s; the first Ctrl-C is the default tier's, above
def test_a_second_sigint_while_the_checkpoint_is_written_stops_at_once(reference, tmp_path):
    """A second Ctrl-C while the first one's checkpoint is written stops at once: nothing partial, LATEST as it
    was. Resumed, the run ends identical."""
    run = tmp_path / "run"
    args = ["train", *QUICK, "--out", str(run), "--save-every", "2"]
    with running(args, {"SENET_TEST_STEP_SLEEP": "0.3"}) as proc:
        wait_for(lambda: latest_name(run) is not None, proc, what="a checkpoint")
        proc.kill_group()
    before, files = latest_name(run), checkpoint_files(run)
    env = {"SENET_TEST_STEP_SLEEP": "0.3", "SENET_TEST_PAUSE_IN_SAVE": "3"}
    with running([*args, "--resume", "--save-every", "1000"], env) as proc:
        wait_for(lambda: any("resuming" in line for line in proc.out), proc, what="training to resume")
        proc.signal(signal.SIGINT)
        first = time.monotonic()
        wait_for(lambda: saving_now(run), proc, what="the stop's checkpoint being written")
        time.sleep(max(0.0, first + 1.2 - time.monotonic()))  # a second Ctrl-C, not the first one repeated
        proc.signal(signal.SIGINT)
        exit_code, out, err = proc.wait(timeout=60)
    assert exit_code == 130 and "interrupted" in err and "checkpoint written" not in err, err
    assert latest_name(run) == before and checkpoint_files(run) == files  # nothing partial, nothing new
    assert not saving_now(run)
    finish(run)
    assert_identical_runs(run, reference)


def _stop_checkpoint(line: str) -> str:
    """The checkpoint a 'stopped by SIGX at epoch E step S; ...' (or '... at the end of epoch E') line means."""
    where = line.split(" at ", 1)[1].split(";")[0].split(" of run ")[0].split()
    if where[0] == "the":  # the end of epoch E
        return checkpoint_name(int(where[-1]))
    return checkpoint_name(int(where[1]) - 1, int(where[3]))


# --- compare and ablate: several runs, one of them killed mid-epoch ------------------------------------------
# Slow tier: a SIGKILL at any moment is the train test's above (the runs of compare and ablate are trainings),
# and that an experiment keeps its finished runs and continues the stopped one to the uninterrupted weights is
# the SIGTERM / SIGINT tests' below, which stay in the default tier.


@pytest.mark.slow
def test_compare_killed_mid_run_keeps_the_finished_twin_and_resumes_the_other(tmp_path, cifar10):
    out = tmp_path / "cmp"
    args = ["compare", *QUICK, "--epochs", "1", "--out", str(out), "--save-every", "1"]
    se = out / "se-seed0"
    with running(args, {"SENET_TEST_STEP_SLEEP": "0.2"}) as proc:
        wait_for(lambda: latest_name(se) == "epoch_0000_step_000002", proc, what="the SE twin's second step")
        proc.kill_group()
    assert_no_partial_checkpoint(se, keep=2)
    plain = {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert main([*args, "--resume"]) == 0
    assert plain == {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert_identical_runs(se, se_twin_reference())


@pytest.mark.slow
def test_ablate_killed_mid_run_resumes_the_interrupted_setting_mid_epoch(tmp_path, cifar10, capsys):
    out = tmp_path / "ablation"
    args = ["ablate", *QUICK, "--model", "se_cifar_resnet20", "--vary", "reduction=4,8", "--epochs", "1",
            "--out", str(out), "--save-every", "1"]  # fmt: skip
    second = out / "reduction-8-seed0"
    with running(args, {"SENET_TEST_STEP_SLEEP": "0.2"}) as proc:
        wait_for(lambda: latest_name(second) == "epoch_0000_step_000003", proc, what="the second setting's step 3")
        proc.kill_group()
    assert_no_partial_checkpoint(second, keep=2)
    assert main([*args, "--resume"]) == 0
    assert f"resuming {second} at epoch 1 step 3" in capsys.readouterr().out
    assert_identical_runs(second, reduction_8_reference())


# --- compare, ablate and reproduce: a signal stops the run in progress after a checkpoint --------------------


def _stopped_line(err: str, name: str, run: str) -> str:
    """The one line a stopped experiment prints; returns its resume command."""
    assert err.count("\n") == 1 and err.startswith(f"stopped by {name} at "), err
    assert f" of {run}; checkpoint written; resume with: senet " in err, err
    return err.split("resume with: ", 1)[1].strip()


def _stop_experiment(
    args: list[str], started: str, what: str, delay: float, sig: signal.Signals, run: str, step_sleep: float = 0.3
):
    """Runs the experiment ``args`` with steps slowed by ``step_sleep`` s, sends ``sig`` ``delay`` s after a line
    containing ``started``, and checks the exit code (128 + signal) and the one line; returns (resume command,
    stderr)."""
    with running(args, {"SENET_TEST_STEP_SLEEP": str(step_sleep)}) as proc:
        wait_for(lambda: any(started in line for line in proc.out), proc, what=what)
        time.sleep(delay)
        proc.signal(sig)
        code, _, err = proc.wait(timeout=60)
    assert code == 128 + sig, err
    return _stopped_line(err, sig.name, run), err


def test_sigterm_stops_compare_with_a_checkpoint_and_its_short_resume_command_continues_it(tmp_path, cifar10):
    """SIGTERM in the SE twin: a checkpoint at that step, one line, exit 143. The line's command names only
    the model and the folder: the comparison continues with its recorded options (subset, batch, dropout,
    ...), keeps the finished twin, and the SE twin ends identical to an uninterrupted run."""
    out = tmp_path / "cmp"
    args = ["compare", *QUICK, "--epochs", "1", "--out", str(out), "--save-every", "1000"]
    se = out / "se-seed0"
    command, err = _stop_experiment(args, "se-seed0", "the SE twin to start", 0.5, signal.SIGTERM, "run 2/2 (se-seed0)")
    assert command == f"senet compare --model cifar_resnet20 --out {out} --resume"
    assert latest_name(se) == _stop_checkpoint(err)
    assert_no_partial_checkpoint(se, keep=2)
    plain = {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert main(command.split()[1:]) == 0
    assert plain == {p: p.stat().st_mtime_ns for p in (out / "plain-seed0").rglob("*") if p.is_file()}
    assert json.loads((out / "compare.json").read_text())["complete"]
    assert_identical_runs(se, se_twin_reference())


# Slow tier: a real SIGINT is the train test's above, an experiment stopped by a real signal and continued by
# the command it prints is compare's and reproduce's tests here, and ablate's line after Ctrl-C and its
# continuation are test_ablate.py's end-to-end test (in process); this one is their combination for ablate.
@pytest.mark.slow
def test_sigint_stops_ablate_with_a_checkpoint_and_the_command_that_continues_it(tmp_path, cifar10):
    """Ctrl-C in the second setting of an ablation writes a checkpoint at the step it stopped at, prints one
    line naming the run and the resume command, and exits 130; that command finishes the ablation, the
    interrupted setting identical to an uninterrupted run."""
    out = tmp_path / "ablation"
    args = ["ablate", *QUICK, "--model", "se_cifar_resnet20", "--vary", "reduction=4,8", "--epochs", "1",
            "--out", str(out)]  # fmt: skip
    second = out / "reduction-8-seed0"
    command, err = _stop_experiment(
        args, "reduction-8", "the second setting", 0.5, signal.SIGINT, "run 2/2 (reduction-8-seed0)"
    )
    assert command.startswith("senet ablate --model se_cifar_resnet20 --vary reduction=4,8 ") and "--resume" in command
    assert latest_name(second) == _stop_checkpoint(err)
    assert main(command.split()[1:]) == 0
    assert_identical_runs(second, reduction_8_reference())


def test_sigterm_stops_reproduce_with_a_checkpoint_and_the_command_that_continues_it(tmp_path, cifar10, capsys,
                                                                                     monkeypatch):  # fmt: skip
    """SIGTERM in the first run of a reproduction: a checkpoint at the step it stopped at, one line naming the
    run and the resume command, exit 143; that command finishes the reproduction.

    In process: the signal is sent to this process after the first run's first step (the handler that
    ``senet reproduce`` installs turns it into a stop request, as for an outside signal); that a signal from
    outside reaches a running experiment is the compare test's above."""
    out = tmp_path / "repro"
    # 300 images: 2 steps of the protocol's batch of 128 per run (a third of the work of 1,000 images).
    args = ["reproduce", "cifar10", "--protocol", "quick", "--seeds", "1", "--epochs", "1", "--subset", "300",
            "--test-subset", "50", "--device", "cpu", "--no-progress", "--out", str(out)]  # fmt: skip
    first = out / "resnet20-plain-seed0"
    sent = []

    def sigterm_after_the_first_step(rank: int, global_step: int) -> None:
        if not sent:
            sent.append(global_step)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(saving, "injected_faults_after_step", sigterm_after_the_first_step)
    capsys.readouterr()
    assert main(args) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    command = _stopped_line(err, "SIGTERM", "run 1/2 (resnet20-plain-seed0)")
    assert command == f"senet reproduce cifar10 --protocol quick --models resnet20 --seeds 1 --out {out} --resume"
    assert latest_name(first) == _stop_checkpoint(err) == checkpoint_name(0, 1)  # after step 1, where it stopped
    assert_no_partial_checkpoint(first, keep=2)
    monkeypatch.undo()
    assert main(command.split()[1:]) == 0
    report = json.loads((out / "reproduce.json").read_text())
    assert report["complete"] and report["runs_done"] == 2


# --- two processes -----------------------------------------------------------------------------------------------

DDP = DDP_TRAIN  # QUICK on 200 images: 100 per process, 4 steps of 25 per epoch (the shared reference's options)


@TWO_PROCESS
@pytest.mark.slow  # three 2-process launches (~10 s each on 2 cores, both cores busy); `make test-all`
def test_two_process_run_survives_a_dead_rank_and_a_preemption(tmp_path, cifar10, ddp_reference):
    """Rank 1 dies after step 3 (before its checkpoint): rank 0 stops within seconds with one clear line, not
    a hang. The run then resumes on two processes and is preempted (SIGTERM to torchrun): the checkpoint it
    stops with holds the very state of the uninterrupted two-process run at that step (CPU, gloo), which the
    resumed run reached from the dead rank's last checkpoint; then it resumes again and ends identical to the
    uninterrupted run. (The default tier keeps a one-process preemption and its bit-identical resume, above,
    and the 2-process run's correctness in test_train.py.)"""
    (ref, result), run = ddp_reference, tmp_path / "run"
    assert result.returncode == 0, result.stderr[-3000:]

    args = ["train", *DDP, "--out", str(run), "--save-every", "1"]
    start = time.monotonic()
    with running(args, {"SENET_TEST_DIE_AT_STEP": "1:3", "SENET_DIST_TIMEOUT": "30"}, torchrun=True) as proc:
        code, out, err = proc.wait()
    took = time.monotonic() - start
    assert code != 0
    assert "senet train: error: rank 0: another process of this 2-process run died or stopped answering" in err, err
    assert "The last good checkpoint is epoch_0000_step_000002 (epoch 1 step 2); resume the run with --resume" in err
    assert took < 60, f"rank 0 took {took:.0f} s to give up"  # measured: the whole run ~9 s, the death < 1 s of it
    assert_no_partial_checkpoint(run, keep=2)
    assert latest_name(run) == "epoch_0000_step_000002"

    with running([*args, "--resume"], {"SENET_TEST_STEP_SLEEP": "0.3"}, torchrun=True) as proc:
        wait_for(lambda: latest_name(run) not in ("epoch_0000_step_000002", None), proc, what="a new checkpoint")
        proc.signal(signal.SIGTERM)  # to torchrun's agent, which passes it on to both workers
        code, out, err = proc.wait(timeout=60)
    stopped = [line for line in err.splitlines() if line.startswith("stopped by SIGTERM")]
    assert len(stopped) == 1 and "resume with: torchrun --nproc_per_node=2 -m senet train" in stopped[0], err
    assert_no_partial_checkpoint(run, keep=2)
    assert latest_name(run) == _stop_checkpoint(stopped[0])
    # The checkpoints the resumed run wrote hold the uninterrupted run's state at their steps (the reference
    # kept one after every step; a stop on an epoch's last step is named as a step, the reference's as the
    # epoch, and has no twin there, but the one before it has).
    written = [p.name for p in list_checkpoints(run) if p.name != "epoch_0000_step_000002"]
    twins = [name for name in written if (ref / "checkpoints" / name).is_dir()]
    assert twins, (written, [p.name for p in list_checkpoints(ref)])
    for name in twins:
        assert_same_checkpoint(run / "checkpoints" / name, ref / "checkpoints" / name)

    with running([*args, "--resume"], torchrun=True) as proc:
        code, out, err = proc.wait()
    assert code == 0, err[-3000:]
    assert json.loads((run / "summary.json").read_text())["ranks_identical"] is True
    assert_identical_runs(run, ref)
