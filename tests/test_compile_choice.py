"""Compiled or eager: the run measures, chooses, says so in its first line and records it; ``--compile`` /
``--no-compile`` decide; where Inductor cannot work the run trains eagerly after one line.

The choice's arithmetic is tested on stated timings (the timer replaced), since real timings differ
from machine to machine; the fallback is tested on a real Inductor failure (no C++ compiler)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from senet.cli.main import main
from senet.train import compile_choice
from senet.train import run as run_module
from senet.train.compile_choice import MIN_EAGER_SECONDS, MIN_STEPS, choose_compile, experiment_mode

# Raised inside Dynamo/Inductor when they import TorchScript pieces: not the project's.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script_method.*:DeprecationWarning")

QUICK = ["--model", "cifar_resnet20", "--subset", "100", "--test-subset", "50", "--batch-size", "25",
         "--no-progress", "--device", "cpu"]  # fmt: skip
CPU = torch.device("cpu")


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))  # fmt: skip


@pytest.fixture
def timings(monkeypatch):
    """Replaces the timer by stated seconds (eager pass, first compiled pass, compiled pass) and torch.compile
    by the identity, so the arithmetic is checked without compiling. ``slowed``: that many passes after the
    compiling one take 1.6x (a slow moment of a noisy machine); ``passes``: every pass timed, in order, as
    ("eager" | "compiled", seconds)."""
    stated = {"eager": 1.0, "first": 30.0, "compiled": 0.8, "slowed": 0, "passes": []}
    calls = {}  # passes of each compiled model so far

    def fake_compile(model, **kwargs):
        calls[id(model)] = 0
        return model

    def fake_seconds(model, x, y, amp, device):
        if id(model) not in calls:
            kind, seconds = "eager", stated["eager"]
        else:
            calls[id(model)] += 1
            kind, seconds = "compiled", stated["first"] if calls[id(model)] == 1 else stated["compiled"]
        passes = stated["passes"]
        compiled_at = next((i for i, (k, _) in enumerate(passes) if k == "compiled"), None)
        if compiled_at is not None and len(passes) - compiled_at <= stated["slowed"]:
            seconds *= 1.6
        passes.append((kind, seconds))
        return seconds

    monkeypatch.setattr(compile_choice.torch, "compile", fake_compile)
    monkeypatch.setattr(compile_choice, "_pass_seconds", fake_seconds)
    return stated


def _choose(requested, steps):
    return choose_compile(requested, _tiny(), batch=(2, 3, 8, 8), num_classes=10, steps=steps, device=CPU)


def test_a_run_too_short_to_pay_stays_eager_without_compiling(timings):
    choice = _choose(None, steps=int(MIN_EAGER_SECONDS) - 1)  # 1 s a step: just under the floor
    assert not choice.compile and choice.reason.startswith("eager: about 5.0 min of training, too short"), choice
    timings["first"] = float("inf")  # a compile would now never pay back, and is not even tried
    assert not _choose(None, steps=100).compile
    timings["eager"] = float("nan")  # too few steps: not even measured
    assert (
        _choose(None, steps=MIN_STEPS - 1).reason
        == f"eager: {MIN_STEPS - 1} steps, too few for compiling to pay back (--compile to compile)"
    )
    assert _choose(None, steps=1).reason.startswith("eager: 1 step, too few")  # once '1 steps' (batch >= the data)


def test_a_long_run_compiles_when_the_saving_exceeds_the_compile(timings):
    # 1,000 steps of 1.0 s eager, 0.8 s compiled: 200 s saved for 30 s of compiling.
    choice = _choose(None, steps=1000)
    assert choice.compile, choice
    assert choice.reason == ("compiled: a step 1.25x as fast saves about 3.3 min of 16.7 min for 30 s of compiling "
                             "(--no-compile for eager)")  # fmt: skip
    # The same speed-up over 400 steps saves 80 s: less than a 120 s compile, so eager, and it says why.
    timings["first"] = 120.0
    choice = _choose(None, steps=400)
    assert not choice.compile and "would save 80 s for 2.0 min of compiling" in choice.reason, choice
    # A compiled step that is slower saves nothing, however long the run.
    timings.update(first=1.0, compiled=1.5)
    assert not _choose(None, steps=100_000).compile


def test_a_slow_moment_after_compiling_does_not_hide_the_speed_up(timings):
    """The machine slows down (x1.6) for the four passes after the compile, as a noisy VM does: timed three
    compiled passes in a row, the 1.25x speed-up read as 0.78x and the run stayed eager; timed alternately
    with eager passes, the fastest of each still shows it."""
    timings["slowed"] = 4
    choice = _choose(None, steps=100_000)
    passes = timings["passes"]
    assert choice.compile and "a step 1.25x as fast" in choice.reason, (choice, passes)
    after = [kind for kind, _ in passes[passes.index(("compiled", 30.0)) + 1 :]]
    assert after == ["eager", "compiled"] * 6  # 6 rounds for a long run, alternating


def test_set_modes_are_kept_without_measuring(timings):
    timings["eager"] = float("nan")  # any measurement of the eager pass would show in the reason
    assert _choose(False, steps=10**6) == compile_choice.CompileChoice(False, "eager (as set)")
    choice = _choose(True, steps=1)
    assert choice.compile and choice.reason == "compiled (as set; compiling took 30 s)"


def test_an_experiment_keeps_its_first_runs_mode():
    assert experiment_mode(None, {"config": {"compile": True}}) is True
    assert experiment_mode(False, {"config": {"compile": True}}) is False  # set by the user: kept
    assert experiment_mode(None, {"config": {}}) is None


def test_the_choice_leaves_the_model_and_the_random_state_alone():
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    choice = choose_compile(None, model, batch=(2, 3, 8, 8), num_classes=10, steps=MIN_STEPS, device=CPU)
    assert not choice.compile and "of training, too short" in choice.reason  # measured for real: far too short
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.fixture
def no_compiler():
    """What a machine without a C++ compiler gives Inductor (the cache off, so nothing compiled before helps)."""
    import torch._inductor.config as inductor_config  # here: importing Inductor costs 2 s of every worker's start

    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/c++"), "force_disable_caches": True}):
        yield
    torch._dynamo.reset()


@pytest.mark.filterwarnings("ignore:dynamo_pgo force disabled")
def test_without_a_compiler_compile_falls_back_to_eager_in_one_line(no_compiler):
    choice = choose_compile(True, _tiny(), batch=(2, 3, 8, 8), num_classes=10, steps=5, device=CPU)
    assert not choice.compile
    assert choice.reason.startswith("eager: torch.compile does not work here (compiling was set): ")
    assert "C++ compiler" in choice.reason and "\n" not in choice.reason


@pytest.mark.filterwarnings("ignore:dynamo_pgo force disabled")
def test_train_compile_without_a_compiler_trains_eagerly_and_says_so(tmp_path, capsys, monkeypatch, no_compiler):
    # A small network in the run (Dynamo traces it in a second, where ResNet-20 takes ten before the compiler fails).
    monkeypatch.setattr(run_module, "build_model", lambda cfg, num_classes, **kw: _tiny())
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--compile", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    first = captured.out.splitlines()[0]
    assert "; eager: torch.compile does not work here (compiling was set): InvalidCxxCompiler" in first, first
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    config = json.loads((out / "config.json").read_text())
    assert config["compile"] is False  # what ran is recorded: a resume continues eagerly
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1


def test_the_run_reports_and_records_its_choice_and_a_resume_keeps_it(tmp_path, capsys, monkeypatch):
    compiled = []

    def spy(model, **kwargs):  # the run's torch.compile: recorded, the model returned as it is
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", spy)

    chosen = compile_choice.CompileChoice(True, "compiled: (stated for the test)")
    calls = []

    def choose(requested, *args, set_by="as set", **kwargs):
        calls.append(requested)
        return chosen if requested is None else compile_choice.CompileChoice(bool(requested), f"compiled ({set_by})")

    monkeypatch.setattr(run_module, "choose_compile", choose)
    out = tmp_path / "run"
    assert main(["train", *QUICK, "--epochs", "1", "--out", str(out)]) == 0
    assert "; compiled: (stated for the test); run in" in capsys.readouterr().out.splitlines()[0]
    assert len(compiled) == 1 and calls == [None]
    assert json.loads((out / "config.json").read_text())["compile"] is True
    # A resume (here: two more epochs) continues in the recorded mode without choosing again.
    assert main(["train", *QUICK, "--epochs", "2", "--out", str(out), "--resume"]) == 0
    assert calls == [None, True] and len(compiled) == 2
    assert "; compiled (as the run was started); run in" in capsys.readouterr().out  # not 'as set': nobody set it
    # A short run left to choose, measured for real, stays eager and records it.
    monkeypatch.setattr(run_module, "choose_compile", choose_compile)
    short = tmp_path / "short"
    capsys.readouterr()
    assert main(["train", *QUICK, "--epochs", "1", "--out", str(short)]) == 0
    assert "; eager: 4 steps, too few for compiling to pay back" in capsys.readouterr().out.splitlines()[0]
    assert json.loads((short / "config.json").read_text())["compile"] is False and len(compiled) == 2


def test_an_experiments_later_runs_say_their_mode_is_the_first_runs(tmp_path, capsys):
    """compare's second twin trains in the mode its first one chose, and says so (not 'as set')."""
    assert main(["compare", *QUICK, "--epochs", "1", "--seeds", "1", "--out", str(tmp_path / "cmp")]) == 0
    firsts = [line for line in capsys.readouterr().out.splitlines() if "; run in " in line]  # each run's first line
    assert len(firsts) == 2, firsts
    assert "; eager: 4 steps, too few for compiling to pay back (--compile to compile); run in" in firsts[0]
    assert "; eager (as configured: an experiment's runs train in its first run's mode); run in" in firsts[1]
    # Set on the command line, every run says so.
    set_eager = ["compare", *QUICK, "--epochs", "1", "--seeds", "1", "--no-compile", "--out", str(tmp_path / "c2")]
    assert main(set_eager) == 0
    firsts = [line for line in capsys.readouterr().out.splitlines() if "; run in " in line]
    assert len(firsts) == 2 and all("; eager (as set); run in" in line for line in firsts), firsts
