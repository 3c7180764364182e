"""`senet reproduce`: the protocols as data, the estimate and the confirmation a CPU needs for the paper's
protocol, the quick protocol end to end on a tiny subset (and its resume), and one line for every careless
command line."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest
import torch

import senet.experiments.estimate as estimate_module
import senet.experiments.grid as grid_module
import senet.experiments.report as report_module
from senet.cli.main import main
from senet.cli.reproduce import PROTOCOL_NAMES
from senet.data.provenance import EMBEDDED_NOTE, EMBEDDED_SOURCE
from senet.experiments.estimate import StepTime, measure_step_time, run_seconds
from senet.experiments.grid import run_order
from senet.experiments.paper_results import PAPER_CIFAR
from senet.experiments.protocols import PROTOCOLS, QUICK_EPOCHS, protocol_settings
from senet.experiments.reproduce import build_report, render_markdown
from senet.models import list_models
from senet.train.config import TrainConfig
from senet.train.recipes import list_recipes

reproduce_module = importlib.import_module("senet.experiments.reproduce")  # the package's name is the function

TINY = ["--subset", "200", "--test-subset", "100", "--no-progress", "--device", "cpu"]


def _one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_the_protocols_name_registered_networks_recipes_and_the_papers_numbers():
    assert tuple(PROTOCOLS) == PROTOCOL_NAMES  # the command line's choices, kept free of torch
    for protocol in PROTOCOLS.values():
        assert protocol.recipe in list_recipes()
        for net in protocol.networks:
            assert {net.plain, net.se} <= set(list_models()), net
    paper = PROTOCOLS["paper"]
    assert [n.key for n in paper.networks] == list(PAPER_CIFAR) == ["resnet110", "resnet164", "wrn16_8"]
    assert paper.needs_gpu and not PROTOCOLS["quick"].needs_gpu and PROTOCOLS["quick"].seeds == 3
    base = TrainConfig(model="cifar_resnet110", recipe=paper.recipe)
    runs = {s.name: s.apply(base).resolve() for s in protocol_settings(paper.networks)}
    assert len(runs) == 6
    # He et al.'s ResNet recipe (paper.md): 164 epochs, lr 0.1 / 10 at 50% and 75%, batch 128, wd 1e-4.
    r110 = runs["resnet110-se"]
    assert (r110.model, r110.epochs, r110.lr, r110.batch_size, r110.weight_decay, tuple(r110.milestones)) == (
        "se_cifar_resnet110", 164, 0.1, 128, 1e-4, (0.5, 0.75))
    assert runs["resnet164-plain"].model == "preact_resnet164" and runs["resnet164-plain"].epochs == 164
    assert runs["wrn16_8-se"].epochs == 200 and runs["wrn16_8-se"].weight_decay == 5e-4
    quick = [s.apply(base).resolve() for s in protocol_settings(PROTOCOLS["quick"].networks)]
    assert [(c.model, c.epochs, c.subset) for c in quick] == [
        ("cifar_resnet20", QUICK_EPOCHS, None), ("se_cifar_resnet20", QUICK_EPOCHS, None)]
    # An option the user gave keeps its value over the protocol's.
    short = protocol_settings(paper.networks, overridden=["epochs"])[0].apply(dataclasses.replace(base, epochs=2))
    assert short.resolve().epochs == 2


def test_the_estimate_scales_a_step_to_the_runs():
    cfg = TrainConfig(model="cifar_resnet110", recipe="paper_cifar").resolve()
    step = StepTime(train=0.01, inference=0.002, batch=16)
    # 164 epochs of 390 full batches of 128, and 164 + 1 evaluations of 10,000 images.
    expected = 164 * 390 * 128 * 0.01 + 165 * 10_000 * 0.002
    assert run_seconds(cfg, step, train_images=50_000, test_images=10_000) == pytest.approx(expected)
    measured = measure_step_time(TrainConfig(model="se_cifar_resnet20").resolve(), num_classes=10,
                                 device=torch.device("cpu"))  # fmt: skip
    assert 0 < measured.inference < measured.train < 1.0


def test_the_paper_protocol_on_a_cpu_states_its_estimate_and_waits_for_yes(tmp_path, monkeypatch, capsys):
    measured = []

    def fake_measure(cfgs, *, num_classes, device, small=False):
        measured.extend(dict.fromkeys(c.model for c in cfgs))
        return {c.model: StepTime(train=0.02, inference=0.005, batch=16) for c in cfgs}

    monkeypatch.setattr(estimate_module, "measure_step_times", fake_measure)
    monkeypatch.setattr(grid_module, "fit", lambda cfg: pytest.fail("trained without --yes"))
    out = tmp_path / "paper"
    code = main(["reproduce", "cifar10", "--device", "cpu", "--out", str(out), "--no-progress"])
    err = _one_line_error(capsys, code, "add --yes to start", "--protocol quick")
    assert len(measured) == 6 and len(set(measured)) == 6  # each network, without and with SE, once
    # 164 epochs x 49,920 images x 20 ms (+ evaluations) for 4 runs, 200 epochs for the 2 WRN runs.
    hours = (4 * run_seconds(TrainConfig(recipe="paper_cifar").resolve(), StepTime(0.02, 0.005, 16),
                             train_images=50_000, test_images=10_000)  # fmt: skip
             + 2 * (200 * 49_920 * 0.02 + 201 * 10_000 * 0.005)) / 3600
    assert f"estimated {hours:,.0f} hours on this CPU (6 runs)" in err
    assert not out.exists()
    (tmp_path / "cifar-100-python.tar.gz").touch()  # found where --data-dir says (its content is not read here)
    code = main(["reproduce", "cifar100", "--models", "wrn16_8", "--device", "cpu", "--out", str(out),
                 "--data-dir", str(tmp_path)])  # fmt: skip
    _one_line_error(capsys, code, f"estimated {2 * (200 * 49_920 * 0.02 + 201 * 10_000 * 0.005) / 3600:,.0f} hours",
                    "(2 runs)")  # fmt: skip


def test_the_quick_protocol_end_to_end_then_a_resume_trains_nothing(tmp_path, monkeypatch, capsys):
    # The estimate times its steps at batch 16 only: on a fast CPU it would also time 4 steps of the run's
    # batch of 128 per network, more than the tiny runs themselves (test_the_estimate_... measures a step).
    monkeypatch.setattr(estimate_module, "QUICK_STEP", 0.0)
    out = tmp_path / "quick"
    args = ["reproduce", "cifar10", "--protocol", "quick", "--seeds", "2", "--epochs", "1", *TINY, "--out", str(out)]
    # The code version is the one the command started with, though the checkout changes while the runs train.
    started, later = ({"describe": name, "commit": name, "dirty": False} for name in ("abc1234", "def5678"))
    monkeypatch.setattr(reproduce_module, "code_version", lambda: started)
    monkeypatch.setattr(report_module, "code_version", lambda: later)
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "4 run(s) to train; estimated" in printed and "[4/4] resnet20-se, seed 1" in printed
    report = json.loads((out / "reproduce.json").read_text())
    assert report["complete"] and report["protocol"] == "quick" and report["seeds"] == 2
    assert report["overridden"] == ["epochs", "subset", "test_subset"]
    (row,) = report["rows"]
    plain, se = row["plain"], row["se"]
    assert plain["model"] == "cifar_resnet20" and se["model"] == "se_cifar_resnet20"
    assert plain["n"] == se["n"] == 2 and plain["epochs"] == 1 and se["params"] > plain["params"]
    assert row["gain"] == pytest.approx(plain["mean"] - se["mean"])
    assert row["gain_exceeds_spread"] == (row["gain"] > max(plain["std"], se["std"]))
    assert report["data"]["source"].startswith(EMBEDDED_SOURCE) and report["data"]["lossy_copy"]
    assert f"Note: {EMBEDDED_NOTE}." in printed  # said where the table is printed
    md = (out / "reproduce.md").read_text()
    assert f"Data: {EMBEDDED_SOURCE}" in md and f"Note: {EMBEDDED_NOTE}." in md
    assert "| ResNet-20 |" in md and "gain > spread?" in md and "changed from the protocol: epochs" in md
    assert "Command: `senet reproduce cifar10 --protocol quick --seeds 2 --epochs 1" in md
    assert report["code"] == started and report["codes"] == [started] and "; senet abc1234. Runs in" in md
    assert (out / "reproduce.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    monkeypatch.setattr(grid_module, "fit", lambda cfg: pytest.fail(f"{cfg.out} was trained again"))
    monkeypatch.setattr(reproduce_module, "code_version", lambda: later)  # a resume by newer code: both said
    assert main([*args, "--resume"]) == 0
    md = (out / "reproduce.md").read_text()
    assert "; senet abc1234 then def5678 (one per session). Runs in" in md
    assert "0 run(s) to train" in capsys.readouterr().out
    resumed = json.loads((out / "reproduce.json").read_text())
    assert resumed["rows"] == report["rows"] and resumed["command"] == report["command"]
    (again,) = resumed["resumed_with"]
    assert again.split() == [*report["command"].split()[:-1], "--resume", "--no-progress"]
    _one_line_error(capsys, main(args), "already holds a finished reproduction", "--resume")
    _one_line_error(capsys, main([*args, "--resume", "--models", "resnet110"]), "the quick protocol has no network")
    _one_line_error(capsys, main(["reproduce", "cifar100", *args[2:], "--resume"]), "is the quick protocol on cifar10")


def test_a_resumed_reproduction_reuses_the_step_times_it_measured(tmp_path, monkeypatch, capsys):
    """A resume estimates from the step times its first start recorded, measuring nothing again (the quick
    protocol once estimated 1.9 h, then 46.7 h on --resume: the network measured again on a busy machine)."""
    measured = []

    def fake_measure(cfgs, *, num_classes, device, small=False):
        measured.append([c.model for c in cfgs])
        return {c.model: StepTime(train=0.02 * len(measured), inference=0.005, batch=16) for c in cfgs}

    def stop_in_the_first_run(cfg):  # the first run's folder is made, then the experiment stops
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        raise ValueError("stopped in the first run")

    monkeypatch.setattr(estimate_module, "measure_step_times", fake_measure)
    monkeypatch.setattr(grid_module, "fit", stop_in_the_first_run)
    args = ["reproduce", "cifar10", "--protocol", "quick", "--seeds", "1", *TINY, "--out", str(tmp_path / "q")]
    estimates = []
    for extra in ([], ["--resume"]):
        assert main([*args, *extra]) == 2
        printed = capsys.readouterr()
        assert "stopped in the first run" in printed.err
        (line,) = [x for x in printed.out.splitlines() if "run(s) to train; estimated" in x]
        estimates.append(line)
    assert measured == [["cifar_resnet20", "se_cifar_resnet20"]]  # once, by the first start
    assert estimates[0] == estimates[1] and "cifar_resnet20 20.00 ms (batch 16)" in estimates[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["imagenet"], "argument dataset: invalid choice: 'imagenet'"),
        (["cifar10", "--protocol", "fast"], "argument --protocol: invalid choice: 'fast'"),
        (["cifar10", "--models", "resnet50"], "the paper protocol has no network 'resnet50'"),
        (["cifar10", "--models", "resnet110", "cifar_resnet110"], "names a network twice"),
        (["cifar10", "--protocol", "quick", "--seeds", "0"], "--seeds must be a positive number"),
        (["cifar10", "--protocol", "quick", "--epochs", "0"], "--epochs must be positive"),
        (["cifar10", "--protocol", "quick", "--resume"], "holds no reproduction"),
        ([], "the following arguments are required: dataset"),
    ],
)
def test_careless_command_lines_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setattr(grid_module, "fit", lambda cfg: pytest.fail("trained"))
    out = tmp_path / "out"
    code = main(["reproduce", *args, "--device", "cpu", "--out", str(out)])
    _one_line_error(capsys, code, message)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cifar10", "--protocol", "quick", "--subset", "5"],
         "--subset 5: a class-balanced subset of 5 images cannot hold one image of each of the 10 classes"),
        (["cifar10", "--protocol", "quick", "--test-subset", "20000"], "--test-subset 20000: a subset of 20,000"),
        (["cifar100", "--protocol", "quick", "--subset", "50"], "--subset 50: a class-balanced subset of 50 images"),
        (["cifar100", "--protocol", "quick"], "cifar-100-python.tar.gz"),
        (["cifar100", "--models", "wrn16_8"], "cifar-100-python.tar.gz"),
    ],
)
def test_the_data_is_checked_before_anything_is_measured_or_written(tmp_path, capsys, monkeypatch, args, message):
    """A subset that cannot be drawn and a CIFAR-100 archive that is not there (and cannot be downloaded) are
    refused before a step is measured, a folder made or a run started (once `--subset 5` measured for 20 s and
    started a run, and `cifar100` without its archive estimated for 80 s, before refusing)."""

    def not_yet(*args, **kwargs):
        raise AssertionError("measured or trained before the data was checked")

    def offline(url, dest, **kwargs):
        raise FileNotFoundError(f"cannot download {url} (no network)")

    monkeypatch.setattr(estimate_module, "measure_step_times", not_yet)
    monkeypatch.setattr(grid_module, "fit", not_yet)
    monkeypatch.setattr("senet.data.cifar.download_file", offline)
    out = tmp_path / "out"
    code = main(["reproduce", *args, "--device", "cpu", "--out", str(out), "--data-dir", str(tmp_path / "data"),
                 "--no-progress"])  # fmt: skip
    _one_line_error(capsys, code, message)
    assert not out.exists() and not (tmp_path / "data").exists()


def test_the_table_says_whether_the_gain_exceeds_the_spread():
    def record(accuracy):
        return {"summary": {"test_accuracy": accuracy, "params": 10, "macs": 20, "epochs": 5, "train_seconds": 1.0,
                            "config": {"out": "x"}, "device": "cpu"}}  # fmt: skip

    protocol = PROTOCOLS["quick"]
    base = TrainConfig(model="cifar_resnet20", recipe="quick_cifar", out="runs/q")
    results = {"resnet20-plain": [record(a) for a in (0.80, 0.81, 0.79)],
               "resnet20-se": [record(a) for a in (0.83, 0.84, 0.82)]}  # fmt: skip
    report = build_report(base, protocol, protocol.networks, results, seeds=3, wall_seconds=3600.0)
    (row,) = report["rows"]
    assert row["gain"] == pytest.approx(3.0) and row["plain"]["std"] == pytest.approx(1.0)
    assert row["gain_exceeds_spread"] is True and row["gain_standard_error"] == pytest.approx((2 / 3) ** 0.5)
    md = render_markdown(report)
    assert "| ResNet-20 | 20.00 ± 1.00 | 17.00 ± 1.00 | +3.00 | yes | 10 / 10 | — |" in md
    results["resnet20-se"] = [record(a) for a in (0.80, 0.83, 0.80)]
    (row,) = build_report(base, protocol, protocol.networks, results, seeds=3)["rows"]
    assert row["gain"] == pytest.approx(1.0) and row["gain_exceeds_spread"] is False
    one_seed = {k: v[:1] for k, v in results.items()}
    (row,) = build_report(base, protocol, protocol.networks, one_seed, seeds=1)["rows"]
    assert row["gain_exceeds_spread"] is None  # no spread to compare with one seed
    assert run_order(protocol_settings(protocol.networks), 2, 0)[1][0].name == "resnet20-se"  # seed by seed
