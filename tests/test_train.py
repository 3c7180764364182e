"""The training engine and its command line, end to end on real CIFAR-10 images (a few hundred)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from senet.cli.main import main
from senet.train import checkpoint as ckpt_module
from senet.train.checkpoint import latest_checkpoint
from senet.train.optim import lr_multiplier, param_groups

QUICK = [
    "--model", "cifar_resnet20", "--subset", "200", "--test-subset", "100", "--batch-size", "50",
    "--no-progress", "--device", "cpu",
]  # fmt: skip


def _train(out: Path, *extra: str) -> int:
    return main(["train", *QUICK, "--out", str(out), *extra])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_one_epoch_through_the_cli_then_eval(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--epochs", "1") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "cifar_resnet20" and summary["dataset"] == "cifar10" and summary["epochs"] == 1
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["params"] == 269_722  # ResNet-20 with option-A shortcuts, 10 classes
    assert summary["macs"] > 40e6 and summary["train_seconds"] > 0 and summary["images_per_second"] > 0
    assert summary["config"]["subset"] == 200 and summary["config"]["recipe"] == "quick_cifar"
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["epoch"] == 1
    assert (out / "model.safetensors").is_file() and latest_checkpoint(out) is not None
    capsys.readouterr()
    # Evaluating the saved weights on the run's own test subset reproduces the run's accuracy.
    assert main(["eval", "--checkpoint", str(out), "--json", "--device", "cpu"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["images"] == 100
    assert metrics["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert len(metrics["confusion"]) == 10 and sum(map(sum, metrics["confusion"])) == 100
    assert main(["eval", "--checkpoint", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "per-class accuracy" in text and "airplane" in text and "confusion matrix" in text


def test_resume_gives_bit_identical_weights(tmp_path):
    straight = tmp_path / "straight"
    assert _train(straight, "--epochs", "2") == 0
    # Interrupt a copy after epoch 1: keep only its first checkpoint, then resume it.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(straight / "config.json", resumed / "config.json")
    shutil.copytree(straight / "checkpoints" / "epoch_0001", resumed / "checkpoints" / "epoch_0001")
    (resumed / "checkpoints" / "LATEST").write_text("epoch_0001")
    assert _train(resumed, "--epochs", "2", "--resume") == 0
    a, b = _weights(straight / "model.safetensors"), _weights(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # The log is rebuilt from the checkpoint's history, without duplicates.
    epochs = [json.loads(line)["epoch"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_a_crash_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = ckpt_module.save_file
    calls = {"n": 0}

    def flaky_save(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's checkpoint
            real_save(tensors, filename, metadata)
            raise OSError("disk full")
        return real_save(tensors, filename, metadata)

    monkeypatch.setattr(ckpt_module, "save_file", flaky_save)
    assert _train(out, "--epochs", "2") == 2  # one clear error, no traceback
    latest = latest_checkpoint(out)
    assert latest is not None and latest.name == "epoch_0001"
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]  # no half-written leftovers
    monkeypatch.setattr(ckpt_module, "save_file", real_save)
    assert _train(out, "--epochs", "2", "--resume") == 0
    assert latest_checkpoint(out).name == "epoch_0002"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet5O"], "unknown model 'resnet5O'; did you mean resnet50"),
        (["--model", "cifar_resnet20", "--dataset", "imagenette"], "unknown data set 'imagenette'"),
        (["--model", "cifar_resnet20", "--recipe", "quick"], "unknown recipe 'quick'"),
        (["--model", "cifar_resnet20", "--dataset", "/nonexistent/folder"], "/nonexistent/folder"),
        (["--model", "cifar_resnet20", "--lr", "-1"], "--lr must be positive"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path, capsys, args, message):
    code = main(["train", *args, "--out", str(tmp_path / "run"), "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_existing_run_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--epochs", "1") == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert _train(out, "--epochs", "1") == 2
    assert "--resume" in capsys.readouterr().err
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_a_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--epochs", "1") == 0
    config = json.loads((out / "config.json").read_text())
    config["model"] = "cifar_resnet32"
    (out / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "do not fit this model" in err and "Traceback" not in err
    assert main(["train", *QUICK, "--model", "cifar_resnet44", "--out", str(out), "--resume"]) == 2
    assert "holds a run of 'cifar_resnet32'" in capsys.readouterr().err


def test_compare_writes_the_table_the_json_and_the_curves(tmp_path):
    out = tmp_path / "cmp"
    assert main(["compare", *QUICK, "--epochs", "1", "--out", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    plain, se = report["results"]["plain"], report["results"]["se"]
    assert se["params"] > plain["params"] and se["macs"] > plain["macs"]
    assert report["overhead_percent"]["params"] == pytest.approx(100 * (se["params"] / plain["params"] - 1))
    assert plain["inference_images_per_second"] > 0 and se["train_images_per_second"] > 0
    md = (out / "compare.md").read_text()
    assert "| plain |" in md and "| se |" in md and "overhead" in md
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_weight_decay_skips_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    decay, no_decay = param_groups(model, 1e-4)
    assert {p.ndim for p in decay["params"]} == {2, 4} and len(decay["params"]) == 2
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0


def test_schedules():
    step = lr_multiplier("step", total_steps=100, milestones=(0.5, 0.75))
    assert [step(0), step(49), step(50), step(74), step(75), step(99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    warm = lr_multiplier("cosine", total_steps=100, warmup_steps=10)
    assert warm(0) == pytest.approx(0.1) and warm(9) == pytest.approx(1.0) and warm(99) < 0.01
    one = lr_multiplier("onecycle", total_steps=100)
    assert one(0) < 0.05 and one(29) == pytest.approx(1.0) and one(99) < 0.01
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier("linear", total_steps=10)


def test_two_process_gloo_run_keeps_ranks_identical(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "senet", "train", *QUICK, "--epochs", "1", "--out", str(out),
    ]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_identical"] is True
    # Each rank saw half of each epoch: 200 images / 2 ranks / 50 per batch = 2 steps of 50 per rank.
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert record["epoch"] == 1


def test_bf16_autocast_with_channels_last_trains(tmp_path):
    out = tmp_path / "bf16"
    assert _train(out, "--epochs", "1", "--amp", "bf16", "--channels-last", "--model", "se_cifar_resnet20") == 0
    summary = json.loads((out / "summary.json").read_text())
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert summary["config"]["amp"] == "bf16" and summary["config"]["channels_last"] is True
    assert record["train_loss"] == pytest.approx(record["train_loss"]) and 0 < record["train_loss"] < 10


def test_fp16_on_cpu_is_refused_with_one_line(tmp_path, capsys):
    assert _train(tmp_path / "fp16", "--epochs", "1", "--amp", "fp16") == 2
    err = capsys.readouterr().err
    assert "fp16 mixed precision needs CUDA" in err and "Traceback" not in err
    assert not (tmp_path / "fp16").exists()  # refused before anything was written
