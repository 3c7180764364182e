"""How the twins are timed (``senet compare``, ``senet reproduce``'s estimate): the method, not the clock.

A fake clock and networks that record their calls show that warm-up steps are not counted, that the twins
are timed in interleaved rounds (A B B A ...), that the fastest round counts, that a comparison too short
to time says "not measured", and that a resumed estimate does not measure again."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import senet.experiments.estimate as estimate_module
from senet.experiments.compare import render_markdown, trained_steps, twin_throughputs
from senet.experiments.estimate import StepTime, estimate_runs, measure_step_times
from senet.experiments.timing import MIN_TRAINED_STEPS, time_interleaved
from senet.train.config import TrainConfig


class FakeClock:
    """Seconds that advance only when a step says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Calls(list):
    """The record of calls, shared by a network and its copies (compare trains a copy)."""

    def __deepcopy__(self, memo):
        return self


class Recorder(nn.Module):
    """A network that records its name at each forward pass."""

    def __init__(self, name: str, calls: list[str]) -> None:
        super().__init__()
        self.name, self.calls = name, calls
        self.fc = nn.Linear(3 * 4 * 4, 10)
        self.default_input_size = (3, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(self.name)
        return self.fc(x.flatten(1))


def test_warm_up_is_not_counted_the_twins_alternate_and_the_fastest_round_counts():
    clock, calls = FakeClock(), []
    # Each step's duration, in call order: two warm-up steps (one fast: it must not count), then a busy
    # spell on round 2.
    durations = {"plain": iter([0.5, 9.0, 1.0, 5.0, 1.2]), "se": iter([9.0, 9.0, 1.1, 5.0, 1.05])}

    def step(name):
        def run():
            calls.append(name)
            clock.now += next(durations[name])
        return run

    best = time_interleaved({"plain": step("plain"), "se": step("se")}, warmup=2, rounds=3, clock=clock)
    assert calls == ["plain", "plain", "se", "se",  # warm-up, not counted
                     "plain", "se", "se", "plain", "plain", "se"]  # fmt: skip
    assert best == pytest.approx({"plain": 1.0, "se": 1.05})
    with pytest.raises(ValueError, match="rounds"):
        time_interleaved({"a": lambda: None}, rounds=0)


def test_compare_times_its_twins_interleaved_after_a_warm_up():
    calls = Calls()
    models = {"plain": Recorder("plain", calls), "se": Recorder("se", calls)}
    speed = twin_throughputs(models, (3, 4, 4), num_classes=10, device=torch.device("cpu"), batch_size=4)
    rounds = ["plain", "se", "se", "plain", "plain", "se", "se", "plain", "plain", "se"]
    warm = ["plain", "plain", "se", "se"]
    assert calls == warm + rounds + warm + rounds  # training steps, then inference passes
    assert all(v["train"] > 0 and v["inference"] > 0 for v in speed.values())


def test_a_comparison_too_short_to_time_says_not_measured():
    short = [{"history": [{"train_images": 200}]}]  # 4 steps of 50
    assert trained_steps(short, 50) == 4 < MIN_TRAINED_STEPS
    assert trained_steps([{"history": [{"train_images": 200}] * 4}], 50) == 16 >= MIN_TRAINED_STEPS
    assert trained_steps([{"history": [{"epoch": 1}]}], 50) is None  # an older run: unknown
    row = {"test_accuracy_mean": 0.5, "test_accuracy_std": 0.0, "params": 10, "macs": 20,
           "train_images_per_second": None, "inference_images_per_second": None}  # fmt: skip
    report = {"model": "m", "attention": "se", "dataset": "cifar10", "epochs": 1, "recipe": "r", "seeds": 1,
              "device": "cpu", "data": None, "results": {"plain": row, "se": row}, "accuracy_gain_points": 0.0,
              "overhead_percent": {"params": 0.0, "macs": 0.0, "train_time": None, "inference_time": None}}
    md = render_markdown(report)
    assert "training time not measured, inference time not measured" in md
    assert "| not measured | not measured |" in md and "%" not in md.split("overhead:")[1].split("training")[1]


def test_the_estimate_measures_the_models_interleaved_and_a_resume_does_not_measure_again(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(estimate_module, "build_model", lambda cfg, n: Recorder(cfg.model, calls))
    cfgs = [TrainConfig(model=m, batch_size=4).resolve() for m in ("cifar_resnet20", "se_cifar_resnet20")]
    steps = measure_step_times(cfgs, num_classes=10, device=torch.device("cpu"))
    a, b = "cifar_resnet20", "se_cifar_resnet20"
    # Each model's batch-picking warm-up, then one more warm-up each at the batch, then 3 rounds interleaved;
    # then the forward passes, 2 rounds interleaved.
    assert calls == [a, b, a, b, a, b, b, a, a, b, a, b, b, a]
    assert set(steps) == {a, b} and all(s.batch == 4 for s in steps.values())

    def no_measuring(cfgs, **_):
        raise AssertionError(f"measured again: {[c.model for c in cfgs]}")

    monkeypatch.setattr(estimate_module, "measure_step_times", no_measuring)
    known = {a: StepTime(0.01, 0.002, 4), b: StepTime(0.011, 0.002, 4)}
    total, again = estimate_runs(cfgs, num_classes=10, device=torch.device("cpu"), train_images=100,
                                 test_images=10, known=known)  # fmt: skip
    assert again == known and total > 0


def test_short_runs_are_measured_at_the_small_batch_and_long_ones_at_their_own(monkeypatch):
    batches: list[int] = []

    def recording(cfgs, *, num_classes, device, small=False):
        batches.append(estimate_module.SMALL_BATCH if small else cfgs[0].batch_size)
        return {c.model: StepTime(0.01, 0.002, batches[-1]) for c in cfgs}

    monkeypatch.setattr(estimate_module, "measure_step_times", recording)
    cfg = TrainConfig(model="cifar_resnet20", batch_size=128, epochs=2).resolve()
    for images in (300, 50_000):  # 600 images trained: seconds, a rough figure will do; 100,000: measured well
        estimate_runs([cfg], num_classes=10, device=torch.device("cpu"), train_images=images, test_images=10)
    assert batches == [estimate_module.SMALL_BATCH, 128]
