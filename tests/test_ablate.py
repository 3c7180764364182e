"""`senet ablate`: one SE option varied over settings, trained with one recipe and seeds, resumable run by
run; and every careless command line answered in one line, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import senet.experiments.grid as grid_module
import senet.train.run as run_module
from senet.cli.ablate import VARY_KEYS as CLI_VARY_KEYS
from senet.cli.main import main
from senet.data.provenance import EMBEDDED_NOTE, EMBEDDED_SOURCE
from senet.experiments.ablate import ablation_settings, build_report, render_markdown
from senet.experiments.vary import VARY_KEYS, Vary, parse_vary
from senet.models.registry import get_model_entry
from senet.train.config import TrainConfig
from senet.train.run import build_model

# 100 images in 4 batches of 25, tested on 50 (5 per class): small, and still several steps an epoch.
TINY = ["--subset", "100", "--test-subset", "50", "--batch-size", "25", "--no-progress", "--device", "cpu"]


def _one_line_error(capsys, code: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_ablate_runs_end_to_end_and_resumes_without_retraining_a_finished_setting(tmp_path, monkeypatch, capsys):
    """Two placements, 2 epochs each; Ctrl-C after the second setting's first epoch. --resume keeps the first
    setting as it is (not trained again, its files untouched) and continues the second from its checkpoint
    (one epoch trained, not two). 'pre' changes the SE modules' widths, so a run rebuilt without its recorded
    placement could not load its checkpoint: the option travels with the run."""
    out = tmp_path / "ablation"
    args = ["ablate", "--model", "se_cifar_resnet20", "--vary", "placement=standard,pre", "--epochs", "2", *TINY,
            "--out", str(out)]  # fmt: skip
    real_save = run_module.save_checkpoint
    saved = []

    def save_then_interrupt(out_dir, **kwargs):
        real_save(out_dir, **kwargs)
        saved.append((Path(out_dir).name, kwargs["epoch"]))
        if len(saved) == 3:  # standard: epochs 1, 2; pre: epoch 1, then Ctrl-C
            raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "save_checkpoint", save_then_interrupt)
    assert main(args) == 130
    assert saved == [("placement-standard-seed0", 1), ("placement-standard-seed0", 2), ("placement-pre-seed0", 1)]
    captured = capsys.readouterr()
    assert "[1/2] placement-standard, seed 0: training" in captured.out
    assert captured.err.count("\n") == 1, captured.err  # one line: the finished run is kept, and how to continue
    assert captured.err.startswith("senet: interrupted; the finished runs are kept; continue with: senet ablate "
                                   f"--model se_cifar_resnet20 --vary placement=standard,pre --seeds 1 --out {out} "
                                   "--resume"), captured.err  # fmt: skip
    first, second = out / "placement-standard-seed0", out / "placement-pre-seed0"
    assert (first / "summary.json").is_file() and not (second / "summary.json").exists()
    partial = json.loads((out / "ablate.json").read_text())
    assert not partial["complete"] and partial["runs_done"] == 1
    assert partial["data"]["source"].startswith(EMBEDDED_SOURCE) and partial["data"]["lossy_copy"]
    assert partial["data"]["note"] == EMBEDDED_NOTE
    assert f"Note: {EMBEDDED_NOTE}." in (out / "ablate.md").read_text()
    assert "In progress: 1 of 2 runs" in (out / "ablate.md").read_text()
    kept = {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}

    monkeypatch.setattr(run_module, "save_checkpoint", real_save)
    trained, epochs = [], []
    real_fit, real_epoch = grid_module.fit, run_module.train_one_epoch
    monkeypatch.setattr(grid_module, "fit", lambda cfg: trained.append((Path(cfg.out).name, cfg.resume)) or
                        real_fit(cfg))  # fmt: skip
    monkeypatch.setattr(run_module, "train_one_epoch", lambda *a, **k: epochs.append(1) or real_epoch(*a, **k))
    assert main([*args, "--resume"]) == 0
    assert trained == [("placement-pre-seed0", True)], "the finished setting was trained again"
    assert len(epochs) == 1, "the interrupted setting did not continue from its checkpoint"
    assert kept == {p: p.stat().st_mtime_ns for p in first.rglob("*") if p.is_file()}
    printed = capsys.readouterr().out
    assert "[1/2] placement-standard, seed 0: had finished, kept" in printed
    assert f"resuming {second} after epoch 1 of 2" in printed

    report = json.loads((out / "ablate.json").read_text())
    assert report["complete"] and report["vary"] == {"key": "placement", "values": ["standard", "pre"]}
    assert len(report["codes"]) == 2 and report["code"] == report["codes"][-1]  # each session's code, read at its start
    standard, pre = report["rows"]
    assert [standard["label"], pre["label"]] == ["standard", "pre"] and standard["paper_choice"]
    for row, run in ((standard, first), (pre, second)):  # each row's error is its own run's test error
        accuracy = json.loads((run / "summary.json").read_text())["test_accuracy"]
        assert row["seeds_done"] == 1 and row["error_std"] == 0
        assert row["error_mean"] == pytest.approx(100 * (1 - accuracy)), (row["error_mean"], accuracy)
        assert row["macs"] > 40e6 and row["train_seconds"] > 0
    assert pre["params"] != standard["params"]  # SE on the block input: other widths
    assert standard["paper_imagenet"] == {"top1": 22.28, "top5": 6.03, "params_m": None}
    config = json.loads((second / "config.json").read_text())
    assert config["extra"] == {"create_model": {"se_placement": "pre"}} and config["epochs"] == 2
    md = (out / "ablate.md").read_text()
    assert "| **standard** (paper's choice) |" in md and "| 22.23 / 6.00 |" in md and "SE-ResNet-50, ImageNet" in md
    assert (out / "ablate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The finished ablation is kept from a plain rerun: one line, nothing overwritten.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _one_line_error(capsys, main(args), "already holds a finished ablation", "--resume", "--force")
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # A resume that changes what is compared is refused.
    _one_line_error(capsys, main([*args[:4], "placement=standard,post", *args[5:], "--resume"]),
                    "is an ablation of placement=standard,pre")  # fmt: skip
    _one_line_error(capsys, main([*args, "--resume", "--lr", "0.05"]), "--lr 0.05", "differ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--vary", "depth=20,56"], "KEY one of reduction, squeeze, gate, placement, stages, attention"),
        (["--vary", "reduction"], "--vary reduction needs its values: --vary reduction=V1,V2"),
        (["--vary", "reduction="], "comma-separated list of values"),
        (["--vary", "reduction=4,,8"], "without empty ones"),
        (["--vary", "reduction=nan,4"], "must be a positive number, got 'nan'"),
        (["--vary", "reduction=4,0"], "must be a positive number, got '0'"),
        (["--vary", "reduction=-1,4"], "must be a positive number, got '-1'"),
        (["--vary", "reduction=inf,4"], "must be a positive number, got 'inf'"),
        (["--vary", "reduction=four,8"], "must be a positive number, got 'four'"),
        (["--vary", "reduction=8,8.0"], "8 is given more than once"),
        (["--vary", "reduction=8"], "at least two"),
        (["--vary", "attention=se,sk"], "unknown attention 'sk'"),
        (["--vary", "placement=standard,sideways"], "unknown placement 'sideways'"),
        (["--vary", "stages=2,9"], "has no stage 9; its stages (the stem is stage 1): 2, 3, 4"),
        (["--vary", "stages=2,conv3"], "a stage number or stages joined by '+'"),
        (["--vary", "gate=sigmoid,swish"], "unknown gate 'swish'; valid names:"),
        (["--vary", "squeeze=avg,median"], "unknown squeeze 'median'; valid: avg, max, avgmax"),
        (["--vary", "squeeze=avg,max", "--attention", "eca"], "attention 'eca' takes no argument 'squeeze'"),
        (["--vary", "reduction=4,8", "--reduction", "4"], "--reduction and --vary reduction both set"),
        (["--vary", "attention=se,eca", "--attention", "se"], "--attention and --vary attention both set"),
        (["--vary", "gate=sigmoid,tanh", "--model", "cifar_resnet20"], "cifar_resnet20 has no attention"),
        (["--vary", "reduction=4,8", "--seeds", "0"], "--seeds must be a positive number"),
        (["--vary", "reduction=4,8", "--seeds", "-2"], "--seeds must be a positive number"),
        (["--vary", "reduction=4,8", "--model", "resnet5O"], "unknown model 'resnet5O'"),
        (["--vary", "reduction=4,8", "--epochs", "0"], "--epochs must be positive"),
        (["--vary", "attention=se,none", "--baseline"], "already has"),
        ([], "the following arguments are required: --vary"),
    ],
)
def test_careless_command_lines_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "ablation"
    code = main(["ablate", "--model", "se_cifar_resnet20", *args, *TINY, "--out", str(out)])
    _one_line_error(capsys, code, message)
    assert not out.exists()


def _fake_ablation(out: Path) -> dict[Path, bytes]:
    (out / "placement-standard-seed0").mkdir(parents=True)
    (out / "ablate-config.json").write_text(json.dumps({"vary": "reduction=4,8", "baseline": False, "seeds": 1,
                                                        "config": TrainConfig().to_dict()}))  # fmt: skip
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_an_existing_ablation_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "ablation"
    before = _fake_ablation(out)
    code = main(["ablate", "--vary", "reduction=4,8", *TINY, "--out", str(out)])
    _one_line_error(capsys, code, "already holds an unfinished ablation", "--resume", "--force")
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_resume_needs_an_ablation_and_out_must_be_a_folder(tmp_path, capsys):
    _one_line_error(capsys, main(["ablate", "--vary", "reduction=4,8", *TINY, "--out", str(tmp_path), "--resume"]),
                    "holds no ablation; start one without --resume")  # fmt: skip
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    _one_line_error(capsys, main(["ablate", "--vary", "reduction=4,8", *TINY, "--out", str(file)]), "is a file")
    assert file.read_text() == "mine"


def test_parse_vary_spells_values_canonically():
    assert parse_vary("reduction=2,4.0,0.5") == Vary("reduction", ("2", "4", "0.5"))
    assert parse_vary(" Gate = Sigmoid, TANH ") == Vary("gate", ("sigmoid", "tanh"))
    assert parse_vary("stages=3+2,all,none,4") == Vary("stages", ("2+3", "all", "none", "4"))
    assert str(parse_vary("placement=pre,post")) == "placement=pre,post"
    assert CLI_VARY_KEYS == VARY_KEYS  # the command line's help, kept free of torch


@pytest.mark.parametrize(
    ("vary", "check"),
    [
        ("reduction=2,32", lambda att: {m.hidden for m in att} in ({8, 16, 32}, {1, 2})),
        ("gate=tanh,relu", lambda att: type(att[0].gate).__name__ in ("Tanh", "ReLU")),
        ("squeeze=max,avgmax", lambda att: att[0].squeeze_mode in ("max", "avgmax")),
        ("stages=3,2+4", lambda att: len(att) in (3, 6)),
        ("stages=none,all", lambda att: len(att) in (0, 9)),
        ("attention=eca,cbam", lambda att: type(att[0]).__name__ in ("EfficientChannelAttention", "CBAM")),
    ],
)
def test_each_setting_builds_the_model_it_names(vary, check):
    """What each --vary key changes reaches the model built from the run's configuration (nothing trained)."""
    base = TrainConfig(model="se_cifar_resnet20", device="cpu")
    settings = ablation_settings(base, parse_vary(vary), baseline=True)
    assert settings[0].name == "baseline"
    assert build_model(settings[0].apply(base).resolve(), 10).attention_modules() == {}
    for setting in settings[1:]:
        cfg = TrainConfig.from_dict(json.loads(json.dumps(setting.apply(base).to_dict())))  # as recorded, reread
        model = build_model(cfg.resolve(), get_model_entry(base.model).num_classes)
        assert check(list(model.attention_modules().values())), setting


def _record(accuracy: float, params: int = 1000) -> dict:
    summary = {"test_accuracy": accuracy, "params": params, "macs": 2_000_000, "train_seconds": 30.0,
               "config": {"out": "runs/x"}, "device": "cpu", "input_size": [3, 32, 32]}  # fmt: skip
    return {"summary": summary, "history": []}


def test_the_table_gives_mean_and_spread_over_seeds_and_the_papers_numbers():
    base = TrainConfig(model="se_cifar_resnet20", epochs=3, out="runs/a")
    vary = parse_vary("reduction=4,16,3")
    settings = ablation_settings(base, vary)
    results = {"reduction-4": [_record(0.90), _record(0.92)], "reduction-16": [_record(0.91)], "reduction-3": []}
    commands = ["senet ablate --vary reduction=4,16,3", "senet ablate --vary reduction=4,16,3 --resume"]
    report = build_report(base, vary, settings, results, seeds=2, commands=commands, wall_seconds=100.0)
    r4, r16, r3 = report["rows"]
    assert r4["error_mean"] == pytest.approx(9.0) and r4["error_std"] == pytest.approx(2 ** 0.5)
    assert r16["seeds_done"] == 1 and r3["error_mean"] is None and not report["complete"]
    md = render_markdown(report)
    assert "| 4 | 9.00 ± 1.41 | 1,000 | 2.00 M | 30 s | 22.25 / 6.09 (35.7M) |" in md
    assert "| **16** (paper's choice) | 9.00 (1 of 2 seeds) |" in md and "| 3 | not yet trained |" in md
    assert "In progress: 3 of 6 runs done" in md and "23.30 / 6.55" in md  # the ablations' ResNet-50
    assert "Command: `senet ablate --vary reduction=4,16,3`\nResumed with: `senet ablate" in md
    assert report["code"]["senet"] and report["machine"]["cpu_count"]


@pytest.mark.parametrize("command", [["ablate", "--vary", "reduction=4,8"], ["compare", "--model", "cifar_resnet20"]])
@pytest.mark.parametrize("extra", [[], ["--force"]])
def test_a_folder_holding_a_training_run_is_refused_and_kept(tmp_path, capsys, command, extra):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"model": "cifar_resnet20", "epochs": 3}))  # as `senet train` left it
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code = main([*command, *TINY, "--out", str(out), *extra])
    _one_line_error(capsys, code, "already holds a run of cifar_resnet20", "`senet train`", "another --out")
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
