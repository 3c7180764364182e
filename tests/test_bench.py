"""The benchmark harness: interleaving, statistics, the memory tracker and ``senet bench``.

Timing is never asserted: fake timers give the harness known numbers.
"""

import json
import math
import os

import pytest
import torch

import senet.bench.runner as runner_module
from senet.bench import BenchOptions, Check, StorageTracker, compare, geometric_mean
from senet.bench.environment import code_version, cpu_model, machine_info
from senet.bench.harness import Stats, calibrate, quantile
from senet.bench.memory import measure_step_memory, state_bytes
from senet.bench.result import SuiteResult
from senet.bench.se_block import TextbookSE
from senet.cli.main import main
from senet.layers import SqueezeExcite


class FakeTimer:
    """Returns scripted seconds per call for each contender, calling it ``number`` times."""

    def __init__(self, times):
        self.times = {name: list(values) for name, values in times.items()}
        self.log = []

    def __call__(self, fn, number):
        for _ in range(number):
            fn()
        name = self.log[-1]
        return self.times[name].pop(0)


def _contenders(timer, names):
    return {name: (lambda name=name: timer.log.append(name)) for name in names}


def test_compare_interleaves_rounds_and_computes_medians_and_ratios():
    timer = FakeTimer({"a": [1.0, 3.0, 2.0, 10.0], "b": [2.0, 2.0, 1.0, 4.0]})
    result = compare(_contenders(timer, ["a", "b"]), repeats=4, warmup=1, number=1, timer=timer)
    # Warm-up a, b; then rounds that rotate the starting contender: never all of a, then all of b.
    assert timer.log == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert result.order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert result.samples == {"a": [1.0, 3.0, 2.0, 10.0], "b": [2.0, 2.0, 1.0, 4.0]}
    a, b = result.stats("a"), result.stats("b")
    assert (a.median, a.min, a.max, a.n) == (2.5, 1.0, 10.0, 4)
    assert (b.median, b.q1, b.q3) == (2.0, 1.75, 2.5)
    ratio = result.ratio("a", "b")
    # Paired per-round ratios 1/2, 3/2, 2/1, 10/4: median 1.75; the medians' ratio 2.5 / 2.0.
    assert ratio.value == pytest.approx(1.75) and ratio.of_medians == pytest.approx(1.25)
    assert (ratio.paired.min, ratio.paired.median, ratio.paired.max) == (0.5, 1.75, 2.5)
    assert ratio.paired.q1 == pytest.approx(1.25) and ratio.paired.q3 == pytest.approx(2.125)
    scaled = ratio.scaled(2)
    assert (scaled.value, scaled.paired.q3, scaled.of_medians) == pytest.approx((3.5, 4.25, 2.5))


def test_compare_three_contenders_and_sample_counts():
    timer = FakeTimer({n: [1.0] * 3 for n in "xyz"})
    result = compare(_contenders(timer, list("xyz")), repeats=3, warmup=0, number={"x": 2}, timer=timer)
    assert result.order == list("xyz") + list("yzx") + list("zxy")
    assert result.number == {"x": 2, "y": 1, "z": 1}
    assert timer.log.count("x") == 6 and timer.log.count("y") == 3
    with pytest.raises(ValueError):
        compare({}, repeats=1)
    with pytest.raises(ValueError):
        compare({"x": lambda: None}, repeats=0)


def test_calibrate_grows_number_until_min_time():
    calls = []

    def timer(fn, number):  # every call "takes" 1 ms
        calls.append(number)
        return 1e-3

    assert calibrate(lambda: None, timer, 0.05) >= 50
    assert calls[0] == 1 and calls == sorted(calls)
    assert calibrate(lambda: None, lambda fn, n: 1.0, 0.05) == 1


def test_statistics():
    assert quantile([3, 1, 2], 0.5) == 2
    assert quantile([1, 2, 3, 4], 0.25) == 1.75
    s = Stats.of([4.0, 1.0, 3.0, 2.0])
    assert (s.median, s.iqr, s.n) == (2.5, 1.5, 4)
    assert s.scaled(1e3).median == 2500.0
    assert geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert geometric_mean([1.5] * 8) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        geometric_mean([1.0, 0.0])


def test_checks_mark_without_failing():
    assert Check("speed-up", 1.6, ">=", 1.5).mark == "PASS"
    assert Check("overhead", 1.06, "<=", 1.05).mark == "FAIL"
    assert Check("missing", None, "<=", 1.05).mark == "n/a"
    with pytest.raises(ValueError):
        Check("bad", 1.0, "==", 1.0)


def test_memory_tracker_counts_a_known_pattern():
    with StorageTracker() as tracker:
        a = torch.empty(1000)  # 4000 bytes
        b = torch.empty(500, dtype=torch.float64)  # 4000 bytes
        view = a.view(10, 100)  # a view: no new storage
        a.add_(1)  # in place: no new storage
        assert (tracker.live, tracker.peak) == (8000, 8000)
        del a, view  # the storage dies with its last tensor
        assert tracker.live == 4000
        c = torch.empty(250)  # 1000 bytes
        assert (tracker.live, tracker.peak) == (5000, 8000)
        del b, c
    assert (tracker.live, tracker.peak, tracker.allocated) == (0, 8000, 9000)


def test_memory_tracker_ignores_storages_older_than_the_block():
    w = torch.randn(50, 100)
    with StorageTracker() as tracker:
        wt = w.t()  # a view of an older storage
        w.mul_(2)  # in place on it
        assert tracker.live == 0
        del wt


def test_memory_tracker_on_a_linear_layer_by_hand():
    torch.manual_seed(0)
    linear = torch.nn.Linear(100, 50)  # weight 50x100, bias 50 (float32)
    x = torch.randn(32, 100)
    with StorageTracker() as tracker:
        y = linear(x)  # 32x50 output: 6400 bytes
        y.sum().backward()  # sum 4 B, its grad 4 B (both freed), weight grad 20000 B, bias grad 200 B
    grads = [linear.weight.grad, linear.bias.grad]
    assert tracker.peak == 6400 + 4 + 4 + 20000 + 200
    assert tracker.live == 6400 + 20000 + 200  # y and the two gradients are still alive
    assert tracker.peak_without(grads) == 6400 + 4 + 4
    assert state_bytes(linear) == 2 * (50 * 100 + 50) * 4  # parameters + gradients


def test_measure_step_memory_on_cpu():
    linear = torch.nn.Linear(100, 50)
    optimizer = torch.optim.SGD(linear.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(32, 100)

    def step():
        linear(x).sum().backward()
        optimizer.step()

    step()  # creates the momentum buffers
    peak = measure_step_memory(step, linear, optimizer)
    params = (50 * 100 + 50) * 4
    assert peak.method == "dispatch"
    assert peak.state == 2 * params  # parameters and momentum; gradients were set to None first
    # y (6400 B) dies once summed, before backward: the peak is the gradients with the 4-byte sum and its
    # 4-byte incoming gradient; without the gradients it is y with its sum.
    assert peak.step == params + 4 + 4
    assert peak.activations == 6400 + 4
    assert peak.total == peak.state + peak.step


def test_textbook_se_matches_ours():
    ours = SqueezeExcite(64).eval()
    textbook = TextbookSE(64).eval()
    textbook.load_state_dict(ours.state_dict())
    x = torch.randn(2, 64, 7, 7)
    torch.testing.assert_close(textbook(x), ours(x))


def test_environment_records_machine_and_code(tmp_path):
    info = machine_info("cpu")
    assert info["torch"] == torch.__version__ and info["num_threads"] == torch.get_num_threads()
    assert "cuda_device" in info
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n")
    assert cpu_model(cpuinfo) == "Test CPU 9000"
    cpu_model(tmp_path / "missing")  # no file: falls back, never raises
    assert code_version(tmp_path)["commit"] is None  # not a repository
    assert code_version(tmp_path)["dirty"] is None


def test_code_version_in_a_repository(git_repo):
    root = git_repo.root
    clean = code_version(root)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False and not clean["describe"].endswith("-dirty")
    (root / "f.txt").write_text("2")
    dirty = code_version(root)
    assert dirty["dirty"] is True and dirty["dirty_files"] == ["f.txt"] and dirty["describe"].endswith("-dirty")
    # What the caller itself writes into the checkout (a benchmark's record) is not a change of the code.
    assert code_version(root, ignore=[root / "f.txt"]) == clean
    (root / "docs").mkdir()
    (root / "docs" / "zoo.json").write_text("{}")
    git_repo.commit()
    (root / "docs" / "zoo.json").write_text('{"runs": []}')
    (root / "f.txt").write_text("3")
    both = code_version(root / "docs", ignore=[root / "docs" / "zoo.json"])  # from a subfolder: the same paths
    assert both["dirty_files"] == ["f.txt"] and both["describe"].endswith("-dirty")
    git_repo("checkout", "--", "f.txt")
    own = code_version(root / "docs", ignore=[root / "docs" / "zoo.json"])
    assert own["dirty"] is False and own["dirty_files"] == [] and not own["describe"].endswith("-dirty")


def test_options_are_validated():
    with pytest.raises(ValueError, match="unknown suite"):
        BenchOptions(suite="nope")
    with pytest.raises(ValueError, match="threads"):
        BenchOptions(threads=0)
    with pytest.raises(ValueError, match="device must be cpu, cuda or cuda:N"):
        BenchOptions(device="bogus")
    assert BenchOptions(suite="all").suites == ["se", "network", "engine", "cifar", "compile"]


def test_cli_quick_se_writes_a_record(tmp_path, capsys):
    # --threads 1: two threads beside the other xdist worker spin-wait for each other (4 s -> 14-20 s measured).
    # The test's own count is set to another, so that a bench that kept its 1 thread would be seen.
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert main(["bench", "--suite", "se", "--quick", "--threads", "1", "--out", str(tmp_path)]) == 0
        assert torch.get_num_threads() == 3  # restored
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "textbook/ours" in out and "| check | measured | target | result | note |" in out
    (json_path,) = tmp_path.glob("bench-se-*.json")
    (md_path,) = tmp_path.glob("bench-se-*.md")
    assert md_path.stem == json_path.stem
    record = json.loads(json_path.read_text())
    assert {"suite", "started", "finished", "seconds", "config", "machine", "code", "suites"} <= set(record)
    assert record["config"]["threads"] == 1 and record["config"]["quick"] is True  # the option, recorded
    assert record["config"]["dtype"] == "float32"
    assert {"cpu", "torch", "num_threads", "cuda_device"} <= set(record["machine"])
    assert record["machine"]["num_threads"] == 1
    assert {"describe", "commit", "dirty"} <= set(record["code"])
    se = record["suites"]["se"]
    assert {"batch", "shapes_chw", "memory_formats", "repeats", "dtype"} <= set(se["config"])
    assert set(se["data"]["cases"]) == {"256x56x56 NCHW", "256x56x56 channels_last", "2048x7x7 NCHW",
                                        "2048x7x7 channels_last"}  # fmt: skip
    case = se["data"]["cases"]["256x56x56 channels_last"]
    assert set(case["inference"]) == {"textbook", "ours", "reference", "clone"}
    assert set(case["training"]) == {"textbook", "ours", "reference"}
    assert len(case["inference"]["ours"]["samples"]) == 3
    assert case["max_abs_error_vs_textbook"] < 1e-4
    assert all(math.isfinite(c["value"]) and c["passed"] in (True, False) for c in se["checks"])
    assert {c["name"] for c in se["checks"]} >= {"inference textbook/ours, geometric mean",
                                                 "forward+backward textbook/ours, geometric mean"}  # fmt: skip
    assert md_path.read_text().startswith("## senet bench --suite se --quick")


def test_cli_rejects_unknown_suite(capsys):
    assert main(["bench", "--suite", "nope"]) == 2  # argparse's refusal, as one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("senet bench: error: argument --suite: invalid choice: 'nope'")


def test_ctrl_c_after_a_finished_suite_keeps_it(tmp_path, monkeypatch, capsys):
    ran = []

    def fake_suite(name, options):  # 'se' finishes, Ctrl-C arrives during 'network'
        ran.append(name)
        if name == "network":
            raise KeyboardInterrupt
        return SuiteResult(name=name, description="a fake suite", config={}, data={"value": 1.0})

    monkeypatch.setattr(runner_module, "_run_suite", fake_suite)
    assert main(["bench", "--suite", "all", "--out", str(tmp_path)]) == 130
    assert ran == ["se", "network"]  # nothing after the interrupted suite
    captured = capsys.readouterr()
    assert "stopped during the network suite; 1 finished suite kept in" in captured.out
    assert "senet: interrupted" in captured.err
    (json_path,) = tmp_path.glob("bench-all-*.json")
    record = json.loads(json_path.read_text())
    assert list(record["suites"]) == ["se"] and record["complete"] is False and record["stopped_during"] == "network"
    (md_path,) = tmp_path.glob("bench-all-*.md")
    assert "Stopped (Ctrl-C) during the network suite" in md_path.read_text()
    # Stopped before any suite finished: nothing to keep, nothing written.
    empty = tmp_path / "empty"
    ran.clear()
    monkeypatch.setattr(runner_module, "_run_suite", lambda name, options: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["bench", "--suite", "all", "--out", str(empty)]) == 130
    assert not list(empty.glob("*.json"))


def test_the_cifar_suite_times_se_over_plain_eager_and_compiled(monkeypatch):
    """The suite's two modes and its record, on ResNet-20 at a small batch; torch.compile replaced by the
    identity (what is checked is the suite's bookkeeping: a real compile is the compile suite's, and the slow
    tier's, cost)."""
    from senet.bench import cifar

    compiled = []
    monkeypatch.setattr(cifar.torch, "compile", lambda m: compiled.append(m) or m)
    small = {**cifar.settings(BenchOptions(suite="cifar", quick=True)), "compiled": True}
    monkeypatch.setattr(cifar, "settings", lambda options: small)
    suite = cifar.run(BenchOptions(suite="cifar", repeats=2))
    assert len(compiled) == 2  # both networks of the pair
    record = suite.data["ResNet-20"]
    assert set(record["eager"]) == {"se_cifar_resnet20", "cifar_resnet20"}
    assert len(record["compiled"]["cifar_resnet20"]["samples"]) == 2
    assert record["eager_se_over_plain"]["value"] > 0 and record["compiled_se_over_plain"]["value"] > 0
    assert set(record["first_compiled_step_seconds"]) == {"se_cifar_resnet20", "cifar_resnet20"}
    (table,) = suite.tables
    assert len(table.columns) == 9 and table.rows[0][0] == "ResNet-20" and len(table.rows[0]) == 9
    assert [c.name for c in suite.checks] == ["ResNet-20 training step SE/plain, eager",
                                              "ResNet-20 training step SE/plain, compiled"]  # fmt: skip
    monkeypatch.undo()
    quick = cifar.run(BenchOptions(suite="cifar", quick=True))  # the real settings: eager only
    assert quick.config["batch"] == 16 and "compiled" not in quick.data["ResNet-20"]
    assert len(quick.tables[0].columns) == 4


def test_more_threads_than_cpus_are_refused_in_one_line(capsys):
    """`bench --threads 100000` once ended in a segmentation fault (exit 139) inside the OpenMP runtime."""
    from senet.cli.main import main

    too_many = max(os.cpu_count() or 1, 2) + 1
    assert main(["bench", "--quick", "--no-write", "--suite", "se", "--threads", str(too_many)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"--threads must be at most {too_many - 1}" in err, err
