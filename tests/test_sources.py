"""One way in: every command that takes weights accepts every kind of source, and computes what it computed.

The sources (a run folder, a checkpoint folder inside it, a bare ``.pth`` state dict, a bare ``.safetensors``,
a URL, and a ``senet retrofit`` output) are made here from two random networks: a plain ResNet-20 and an
SE-ResNet-20. Each command (``eval``, ``predict``, ``export``, ``analyze``, ``retrofit``, ``train --init-from``)
is driven with each source and its outputs are compared with the in-memory network the source was made
from. Float32 comparisons between two runs of the same network on the same batch are exact (the same
kernels on the same data); the ones across a different runtime (TorchScript) allow 1e-5 relative.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

import senet
import senet.analysis.report as analysis_report
from senet.analysis import from_source
from senet.cli.main import main
from senet.data import CIFAR10_CLASSES
from senet.train.checkpoint import save_weights
from senet.train.config import TrainConfig
from senet.train.init import initial_model

KINDS = ("run", "checkpoint", "pth", "safetensors", "url", "retrofit")


def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def _random_bn(model):
    """Non-trivial BatchNorm statistics, so that a wrong normalisation or a dropped layer shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def _run_folder(root, model, name):
    """A finished run of ``name`` on CIFAR-10 as `senet train` lays it out, without training."""
    root.mkdir()
    cfg = TrainConfig(model=name, dataset="cifar10")
    (root / "config.json").write_text(json.dumps(cfg.to_dict()))
    save_weights(model, root / "model.safetensors", metadata={"model": name})
    (root / "summary.json").write_text(json.dumps({"classes": list(CIFAR10_CLASSES)}))
    ckpt = root / "checkpoints" / "epoch_0001"
    ckpt.mkdir(parents=True)
    save_weights(model, ckpt / "model.safetensors", metadata={"model": name})
    (root / "checkpoints" / "LATEST").write_text("epoch_0001")
    return root


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """{(network, kind): (source, --model or None, the network it must compute)} for both networks."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("sources")
    served = tmp / "served"
    served.mkdir()
    found = {}
    for name in ("cifar_resnet20", "se_cifar_resnet20"):
        model = _random_bn(senet.models.create_model(name))
        run = _run_folder(tmp / f"run-{name}", model, name)
        torch.save({"state_dict": model.state_dict()}, tmp / f"{name}.pth")
        save_weights(model, tmp / f"{name}.safetensors")  # no metadata: a bare file
        shutil.copy(tmp / f"{name}.pth", served / f"{name}.pth")
        found[name, "run"] = (run, None, model)
        found[name, "checkpoint"] = (run / "checkpoints" / "epoch_0001", None, model)
        found[name, "pth"] = (tmp / f"{name}.pth", name, model)
        found[name, "safetensors"] = (tmp / f"{name}.safetensors", name, model)
        found[name, "url"] = (f"{name}.pth", name, model)  # served below, per test
    plain = found["cifar_resnet20", "run"][2]
    assert cli("retrofit", "--model", "cifar_resnet20", "--weights", tmp / "cifar_resnet20.pth",
               "--out", tmp / "retrofitted").returncode == 0  # fmt: skip
    found["retrofitted", "retrofit"] = (tmp / "retrofitted", None, plain)  # identity start: the plain function
    return found, served


@pytest.fixture
def resolve(sources, server):
    """The source of (network, kind), with URLs pointing at this test's loopback server."""
    found, served = sources
    root, base = server
    for f in served.iterdir():
        shutil.copy(f, root / f.name)

    def get(key):
        source, model, expected = found[key]
        if key[1] == "url":
            (root / "mirror").mkdir(exist_ok=True)
            shutil.copy(root / source, root / "mirror" / source)
            source = f"{base}/{source}"
        return str(source), model, expected

    return get


PAIRS = [(n, k) for n in ("cifar_resnet20", "se_cifar_resnet20") for k in KINDS if k != "retrofit"] + [
    ("retrofitted", "retrofit")
]


def _model_args(model):
    return ["--model", model] if model else []


def _images(tmp_path, count=3):
    """CIFAR-sized PNGs (32 x 32: the CIFAR preprocessing leaves them as they are)."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _direct(expected, paths):
    """What the source's network computes on the images, preprocessed as CIFAR-10 (the runs' own statistics)."""
    x = torch.stack([torch.from_numpy(np.array(Image.open(p).convert("RGB"))).permute(2, 0, 1) for p in paths])
    mean, std = torch.tensor(senet.data.CIFAR10_MEAN), torch.tensor(senet.data.CIFAR10_STD)
    with torch.no_grad():  # the library's own normalisation: the same float32 operations as predict's
        return expected.eval()(senet.data.normalize(x, mean, std))


@pytest.mark.parametrize("key", PAIRS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_load_model_computes_what_the_source_computed(resolve, key):
    source, model, expected = resolve(key)
    loaded = senet.load_model(source, model=model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), expected.eval()(x))
    kinds = {"pth": "file", "safetensors": "file", "checkpoint": "run"}  # a checkpoint is read as its run's
    assert loaded.source_info.kind == kinds.get(key[1], key[1])


@pytest.mark.parametrize("key", PAIRS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_predict_takes_every_source(resolve, key, tmp_path):
    source, model, expected = resolve(key)
    paths = _images(tmp_path)
    out = cli("predict", source, *paths, *_model_args(model), "--top-k", "3", "--json", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    probabilities = _direct(expected, paths).softmax(dim=1)
    for row, p in zip(rows, probabilities, strict=True):
        top = p.topk(3)
        assert [c["index"] for c in row["classes"]] == top.indices.tolist()
        # The same network on the same batch after the same normalisation: the same float32 operations.
        assert [c["probability"] for c in row["classes"]] == top.values.tolist()
        if key[1] in ("run", "checkpoint", "retrofit"):  # sources that record their classes name them
            assert [c["label"] for c in row["classes"]] == [CIFAR10_CLASSES[i] for i in top.indices.tolist()]


@pytest.mark.parametrize("key", PAIRS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_eval_takes_every_source_on_cifar10(resolve, key):
    source, model, expected = resolve(key)
    out = cli("eval", "--checkpoint", source, *_model_args(model), "--dataset", "cifar10", "--per-class", "2",
              "--json", "--device", "cpu", "--no-progress")  # fmt: skip
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    data = senet.analysis.per_class_subset(
        senet.analysis.model_data("cifar10", senet.data_config(expected)), 2
    )  # the images eval picks (2 per class, seed 0)
    with torch.no_grad():
        logits = torch.cat([expected.eval()(x) for x, _ in data.batches(256, torch.device("cpu"))])
    predicted = logits.argmax(1)
    assert m["images"] == 20 and m["classes"] == list(CIFAR10_CLASSES)
    assert m["accuracy"] == pytest.approx((predicted == data.labels).float().mean().item())
    confusion = torch.zeros(10, 10, dtype=torch.int64)
    confusion.index_put_((data.labels, predicted), torch.ones(20, dtype=torch.int64), accumulate=True)
    assert m["confusion"] == confusion.tolist()


@pytest.mark.parametrize("key", PAIRS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_export_takes_every_source(resolve, key, tmp_path):
    source, model, expected = resolve(key)
    out = cli("export", tmp_path / "m.pt", "--weights", source, *_model_args(model))
    assert out.returncode == 0, out.stderr
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got, ref = torch.jit.load(str(tmp_path / "m.pt"))(x), expected.eval()(x)
    # TorchScript runs its own graph of the same operations: equal to float32 rounding.
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()


@pytest.mark.parametrize("key", [k for k in PAIRS if k[0] != "cifar_resnet20"], ids=lambda k: f"{k[0]}-{k[1]}")
def test_analyze_takes_every_source(resolve, key, tmp_path, monkeypatch):
    # The two figures (90% of the command's time) are drawn from the recorded gates alone, whatever the
    # source; test_analysis.py checks them. Here they are neither built nor written; the other files are.
    for name in ("class_means_figure", "distributions_figure", "save_png"):
        monkeypatch.setattr(analysis_report, name, lambda *args, **kwargs: None)
    source, model, expected = resolve(key)
    loaded = from_source(source, model=model, dataset="cifar10")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), expected.eval()(x))
    assert loaded.data.classes == CIFAR10_CLASSES
    out = cli("analyze", "--checkpoint", source, *_model_args(model), "--dataset", "cifar10", "--per-class", "2",
              "--out", tmp_path / "a", "--no-progress", "--device", "cpu")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "gates of 9 attention modules over 20 images" in out.stdout
    assert len(json.loads((tmp_path / "a" / "excitations.json").read_text())["blocks"]) == 9


@pytest.mark.parametrize("key", [k for k in PAIRS if k[0] == "cifar_resnet20"], ids=lambda k: f"{k[0]}-{k[1]}")
def test_retrofit_takes_every_source(resolve, key, tmp_path):
    source, _, expected = resolve(key)
    out = cli("retrofit", "--model", "cifar_resnet20", "--weights", source, "--out", tmp_path / "r")
    assert out.returncode == 0, out.stderr
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # the identity start: exactly the source's function
        assert torch.equal(senet.load_model(tmp_path / "r")(x), expected.eval()(x))


@pytest.mark.parametrize("key", PAIRS, ids=lambda k: f"{k[0]}-{k[1]}")
def test_train_init_from_takes_every_source(resolve, key):
    source, _, expected = resolve(key)
    name = "cifar_resnet20" if key[0] == "retrofitted" else key[0]
    model, _ = initial_model(name, {"num_classes": 10}, init_from=source,
                             retrofit="se" if key[1] == "retrofit" else None, reduction=None)  # fmt: skip
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), expected.eval()(x))


def test_a_folder_of_runs_is_refused_listing_them(sources, tmp_path):
    found, _ = sources
    shutil.copytree(found["cifar_resnet20", "run"][0], tmp_path / "runs" / "a")
    out = cli("eval", "--checkpoint", tmp_path / "runs", "--dataset", "cifar10")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "holds several runs" in out.stderr and str(tmp_path / "runs" / "a") in out.stderr


def test_eval_refuses_a_data_set_of_other_classes(sources, tmp_path):
    found, _ = sources
    folder = tmp_path / "pets"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        _images(folder / cls, 1)
    out = cli("eval", "--checkpoint", found["cifar_resnet20", "run"][0], "--dataset", folder)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "cat, dog" in out.stderr and "airplane, automobile" in out.stderr


FRUIT = ("apple", "banana", "cherry", "date", "elder", "fig", "grape", "hazel", "iris", "jujube")


@pytest.mark.parametrize("reverse", [False, True], ids=["cifar10-run-on-other-classes", "other-run-on-cifar10-classes"])
def test_eval_refuses_a_data_set_of_as_many_other_classes(tmp_path, reverse):
    """Ten classes, but not the run's: refused, naming both lists, in either direction (once the run was scored
    on them, its accuracies printed under the other data set's class names). The class counts agree, so only
    the names can tell. (The reverse direction's data set is a folder with CIFAR-10's class names: decoding
    CIFAR-10 itself would take seconds.)"""
    run_classes, data_classes = (FRUIT, CIFAR10_CLASSES) if reverse else (CIFAR10_CLASSES, FRUIT)
    folder = tmp_path / "data"
    for cls in data_classes:
        (folder / cls).mkdir(parents=True)
        _images(folder / cls, 1)
    run = _run_folder(tmp_path / "run", senet.models.create_model("cifar_resnet20"), "cifar_resnet20")
    if reverse:  # a run trained on an image folder of other classes
        config = TrainConfig(model="cifar_resnet20", dataset=str(tmp_path / "fruit")).to_dict()
        (run / "config.json").write_text(json.dumps(config))
        (run / "summary.json").write_text(json.dumps({"classes": list(run_classes)}))
    out = cli("eval", "--checkpoint", run, "--dataset", folder, "--device", "cpu")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert "does not have the classes of" in out.stderr, out.stderr
    assert "apple, banana" in out.stderr and "airplane, automobile" in out.stderr, out.stderr


def test_eval_refuses_cifar100_for_a_cifar10_run_before_looking_for_its_archive(sources, tmp_path, monkeypatch):
    """CIFAR-100's class count is known from its name: a 10-class run is refused at once, naming both, and no
    download is tried (once the archive was downloaded, or its absence reported, before the classes were)."""

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted before the classes were checked")

    for where in ("senet.data.cifar.download_file", "senet.data.datasets.fetch_cifar_archive"):
        monkeypatch.setattr(where, no_download)
    found, _ = sources
    out = cli("eval", "--checkpoint", found["cifar_resnet20", "run"][0], "--dataset", "cifar100",
              "--data-dir", tmp_path)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
    assert "cifar100 has 100 classes" in out.stderr and "10 classes (airplane, automobile" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_eval_names_a_test_subset_cifar_cannot_give_before_reading_it(sources, monkeypatch):
    monkeypatch.setattr("senet.data.datasets.load_embedded_cifar10", lambda *a, **k: pytest.fail("data was read"))
    found, _ = sources
    out = cli("eval", "--checkpoint", found["cifar_resnet20", "run"][0], "--test-subset", "5")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "--test-subset 5: a class-balanced subset of 5 images cannot hold one image of each" in out.stderr


def test_a_run_is_rebuilt_as_its_config_records(tmp_path):
    """A run's options (here attention ECA and a dropout) come from its config.json, not from defaults."""
    model = _random_bn(senet.models.create_model("cifar_resnet20", attention="eca", drop_rate=0.1))
    run = tmp_path / "run"
    run.mkdir()
    cfg = TrainConfig(model="cifar_resnet20", dataset="cifar10", attention="eca", drop_rate=0.1)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    save_weights(model, run / "model.safetensors", metadata={"model": "cifar_resnet20"})
    loaded = senet.load_model(run)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert senet.create_model("cifar_resnet20", pretrained=run).attention_modules().keys() == \
        model.attention_modules().keys()  # create_model(pretrained=RUN) reads the run's config too
