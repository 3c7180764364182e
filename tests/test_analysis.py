"""senet.analysis and `senet analyze`: gates recorded by hooks equal the paper's formula on the same inputs
(fast path on and off), histograms add up, the measures mean what they say, figures are PNGs with one
panel per block, and the command works on runs, retrofitted models and careless input."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import senet
import senet.analysis.report as analysis_report
from senet.analysis import (
    BlockExcitations,
    ExcitationRecorder,
    Excitations,
    check_blocks,
    class_means_figure,
    default_blocks,
    distributions_figure,
    find_gates,
    measure_block,
    record_excitations,
    write_analysis,
)
from senet.analysis.data import AnalysisData, per_class_subset
from senet.cli.main import main
from senet.data import TensorSplit

PNG = b"\x89PNG\r\n\x1a\n"
CLASSES = 5


def _batch(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 32, 32, generator=g)
    labels = torch.arange(n) % (CLASSES - 1)  # class 4 never seen
    return images, labels


def _perturbed(model, seed=0):
    """Random weights everywhere and BatchNorm statistics of random images, so that gates differ between
    images and classes without saturating (the zoo's init starts many gates alike)."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration batch
        model.train()(torch.randn(64, 3, 32, 32, generator=g))
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def _paper_gate(se, x):
    """s = sigma(W2 delta(W1 z + b1) + b2), z the spatial mean (Eq. 2-3), in float64."""
    z = x.double().mean((2, 3))
    h = torch.relu(z @ se.fc1.weight.double().flatten(1).T + se.fc1.bias.double())
    return torch.sigmoid(h @ se.fc2.weight.double().flatten(1).T + se.fc2.bias.double())


def _set_fast(model, fast):
    for m in model.attention_modules().values():
        m.fast = fast


def _reference_gates(model, images):
    """The SE inputs captured on the textbook path (the fast path never calls SE's forward), gates by formula."""
    _set_fast(model, False)
    inputs = {}
    handles = [m.register_forward_pre_hook(lambda mod, a, k=k: inputs.__setitem__(k, a[0].detach()))
               for k, m in model.attention_modules().items()]  # fmt: skip
    with torch.no_grad():
        model(images)
    for h in handles:
        h.remove()
    with torch.no_grad():
        return {k: _paper_gate(m, inputs[k]) for k, m in model.attention_modules().items()}


@pytest.fixture(scope="module")
def se20():
    return _perturbed(senet.create_model("se_cifar_resnet20", num_classes=10))


@pytest.mark.parametrize("fast", [True, False])
def test_per_class_means_equal_the_paper_formula(se20, fast):
    images, labels = _batch()
    expected = _reference_gates(se20, images)
    _set_fast(se20, fast)
    forward_calls = []
    handles = [m.register_forward_hook(lambda *a: forward_calls.append(1)) for m in se20.attention_modules().values()]
    recorder = ExcitationRecorder(se20, num_classes=CLASSES)
    with recorder:
        recorder.record(images[:10], labels[:10])  # two batches: the sums carry over
        recorder.record(images[10:], labels[10:])
    for h in handles:
        h.remove()
    assert bool(forward_calls) is not fast  # the fast path bypasses SE's forward: module hooks would see nothing
    stats = recorder.stats()
    assert list(stats.blocks) == list(se20.attention_modules())
    for label, block in stats.blocks.items():
        s = expected[label]
        assert block.class_count.tolist() == [6, 6, 6, 6, 0]
        for k in range(CLASSES - 1):
            np.testing.assert_allclose(block.class_means[k], s[labels == k].mean(0).numpy(), atol=2e-6)
            np.testing.assert_allclose(block.class_variance[k], s[labels == k].var(0).numpy(), atol=1e-6)
        assert np.isnan(block.class_means[4]).all()
        np.testing.assert_allclose(block.mean, s.mean(0).numpy(), atol=2e-6)
        counts, _ = np.histogram(s.numpy(), bins=block.histogram.size, range=block.value_range)
        assert np.abs(block.histogram - counts).sum() <= 2  # float32 vs float64 rounding at a bin edge
        assert block.saturated_high == int((s > 0.99).sum()) and block.saturated_low == int((s < 0.01).sum())
        assert block.minimum == pytest.approx(float(s.min()), abs=2e-6)
    _set_fast(se20, True)


def test_recording_during_training_with_the_fused_autograd_path(se20):
    import copy

    images, labels = _batch(8)
    model, reference = copy.deepcopy(se20).train(), copy.deepcopy(se20).train()
    _set_fast(reference, False)
    recorders = [ExcitationRecorder(m, num_classes=CLASSES) for m in (model, reference)]
    for m, recorder in zip((model, reference), recorders, strict=True):
        with recorder, recorder.labels(labels):
            m(images).square().mean().backward()  # hooks do not disturb autograd
    assert all(p.grad is not None for p in model.parameters())
    fused, textbook = (r.stats() for r in recorders)
    for label, block in fused.blocks.items():
        np.testing.assert_allclose(block.class_sum, textbook.blocks[label].class_sum, rtol=1e-5, atol=1e-5)


def test_histogram_counts_add_up(se20):
    images, labels = _batch(16)
    full = record_excitations(se20, [(images, labels)], num_classes=CLASSES)
    # A range strictly inside every block's gates (whatever the weights): values fall below and above it.
    low = max(b.minimum for b in full.blocks.values())
    high = min(b.maximum for b in full.blocks.values())
    assert low < high
    inner = (low + (high - low) / 4, high - (high - low) / 4)
    stats = record_excitations(se20, [(images, labels)], num_classes=CLASSES, bins=7, value_range=inner)
    for block in stats.blocks.values():
        assert block.histogram.size == 7
        assert block.below > 0 and block.above > 0  # a range narrower than the gates: counted apart
        assert block.histogram.sum() + block.below + block.above + block.nonfinite == 16 * block.channels
    for block in full.blocks.values():
        assert block.value_range == (0.0, 1.0) and block.below == block.above == 0
        assert block.histogram.sum() == block.values == 16 * block.channels
    assert not se20.training


@pytest.mark.parametrize("attention", ["eca", "ese", "cbam", "scse", "coord"])
def test_other_attention_modules(attention):
    model = _perturbed(senet.create_model("cifar_resnet20", attention=attention, num_classes=10))
    images, labels = _batch(8)
    inputs = {}
    for k, m in model.attention_modules().items():
        m.register_forward_pre_hook(lambda mod, a, k=k: inputs.__setitem__(k, a[0].detach()))
    stats = record_excitations(model, [(images, labels)], num_classes=CLASSES)
    for label, m in model.attention_modules().items():
        x = inputs[label]
        with torch.no_grad():
            if attention == "cbam":
                s = m.channel_attention(x)  # Mc; the spatial map Ms is not a channel gate
            elif attention == "scse":
                s = m.cse.excite(x)
            elif attention == "coord":  # the mean over positions of g^h(i) g^w(j) = mean g^h * mean g^w
                s = (m(x) / x).flatten(2).mean(2)
            else:
                s = m.excite(x)
        block = stats.blocks[label]
        np.testing.assert_allclose(block.class_means[0], s[labels == 0].mean(0).numpy(), rtol=1e-4, atol=1e-5)
        assert block.histogram.sum() == 8 * block.channels


def test_models_without_a_channel_gate_or_attention():
    with pytest.raises(ValueError, match="no channel gate"):
        ExcitationRecorder(senet.create_model("cifar_resnet20", attention="sse"), num_classes=10)
    with pytest.raises(ValueError, match="no attention module"):
        ExcitationRecorder(senet.create_model("cifar_resnet20"), num_classes=10)


def test_recorder_guards_labels(se20):
    images, labels = _batch(4)
    recorder = ExcitationRecorder(se20, num_classes=CLASSES)
    with recorder, pytest.raises(RuntimeError, match="outside recorder.labels"), torch.no_grad():
        se20(images)
    with pytest.raises(ValueError, match=r"in \[0, 5\)"), recorder.labels(torch.tensor([0, 5, 1, 1])):
        pass
    with torch.no_grad():
        se20(images)  # removed hooks: the model runs as before
    assert recorder.stats().blocks["SE_2_1"].images == 0


def test_retrofitted_model():
    plain = _perturbed(senet.create_model("cifar_resnet20", num_classes=10))
    model, report = senet.retrofit(plain)  # identity start: 2 * sigmoid(0) = 1 everywhere
    gates = find_gates(model)
    assert list(gates) == [i.label for i in report.inserted]
    assert all(g.value_range == (0.0, 2.0) for g in gates.values())
    images, labels = _batch(8)
    stats = record_excitations(model, [(images, labels)], num_classes=CLASSES)
    for block in stats.blocks.values():
        assert block.value_range == (0.0, 2.0)
        np.testing.assert_allclose(block.mean, 1.0)
        assert block.histogram.sum() == 8 * block.channels


def _block(means, counts, sumsq=None, label="SE_2_1"):
    """A BlockExcitations with given per-class means (and no within-class variance unless sumsq)."""
    means, counts = np.asarray(means, float), np.asarray(counts)
    sums = means * counts[:, None]
    return BlockExcitations(
        label=label, path="", kind="SqueezeExcite", channels=means.shape[1], class_count=counts, class_sum=sums,
        class_sumsq=sums**2 / counts[:, None] if sumsq is None else sumsq, histogram=np.zeros(4, np.int64),
        value_range=(0.0, 1.0), range_from_gate=True, below=0, above=0, nonfinite=0, saturated_low=0,
        saturated_high=0, saturation=0.01, minimum=None, maximum=None,
    )  # fmt: skip


def test_class_specificity_means_what_it_says():
    agnostic = measure_block(_block([[0.2, 0.8, 0.5]] * 3, [10, 10, 10]))
    assert agnostic.class_specificity == pytest.approx(0.0) and agnostic.channel_spread > 0
    specific = measure_block(_block([[0.2] * 3, [0.5] * 3, [0.8] * 3], [10, 10, 10]))
    assert specific.class_specificity == pytest.approx(1.0) and specific.channel_spread == pytest.approx(0.0)
    # No class effect, but few images: the raw spread of class means is noise, and the correction removes it.
    rng = np.random.default_rng(0)
    gates = rng.uniform(0, 1, size=(4, 5, 64)) * 0.2 + np.linspace(0.2, 0.8, 64)  # (class, image, channel)
    noisy = _block(gates.mean(1), np.full(4, 5), sumsq=(gates**2).sum(1))
    raw = gates.mean(1).var(0).mean()
    assert raw > 0 and noisy.class_count.sum() == 20
    assert measure_block(noisy).class_specificity < raw / (raw + gates.mean(1).mean(0).var()) / 2
    single = measure_block(_block([[0.5, 0.6]], [3]))
    assert single.class_specificity is None and single.mean_gate == pytest.approx(0.55)


def test_default_and_chosen_blocks():
    resnet50 = [f"SE_{s}_{b}" for s, n in zip(range(2, 6), (3, 4, 6, 3), strict=True) for b in range(1, n + 1)]
    assert default_blocks(resnet50) == ["SE_2_3", "SE_3_4", "SE_4_6", "SE_5_1", "SE_5_2", "SE_5_3"]  # the paper's
    resnet20 = [f"SE_{s}_{b}" for s in (2, 3, 4) for b in (1, 2, 3)]
    assert default_blocks(resnet20) == ["SE_2_3", "SE_3_3", "SE_4_1", "SE_4_2", "SE_4_3"]
    assert check_blocks("se_4_3, SE_2_1,SE_2_1", resnet20) == ["SE_2_1", "SE_4_3"]
    with pytest.raises(ValueError, match="unknown block 'SE_2_4'; did you mean"):
        check_blocks("SE_2_4", resnet20)


def test_figures_and_files(se20, tmp_path):
    images, labels = _batch(16)
    stats = record_excitations(se20, [(images, labels)], num_classes=CLASSES, classes=list("abcde"))
    fig6 = class_means_figure(stats, ["SE_2_3", "SE_3_3", "SE_4_3"], draw=["b", 0])
    assert len(fig6.axes) == 3 and [a.get_title().split()[0] for a in fig6.axes] == ["SE_2_3", "SE_3_3", "SE_4_3"]
    assert [line.get_label() for line in fig6.axes[0].lines] == ["b", "a", "all"]
    assert len(distributions_figure(stats).axes) == 9
    written = write_analysis(stats, tmp_path / "out", about={"model": "se_cifar_resnet20"})
    assert sorted(written) == ["excitations.json", "fig6_class_means.png", "fig7_distributions.png", "summary.md"]
    for name in ("fig6_class_means.png", "fig7_distributions.png"):
        assert written[name].read_bytes()[:8] == PNG
    content = json.loads(written["excitations.json"].read_text())
    assert content["classes"] == list("abcde") and list(content["blocks"]) == list(stats.blocks)
    entry = content["blocks"]["SE_4_3"]
    np.testing.assert_allclose(entry["class_means"][1], stats.blocks["SE_4_3"].class_means[1], atol=1e-6)
    assert entry["class_means"][4][0] is None  # class 'e' has no image
    assert sum(entry["histogram"]["counts"]) == 16 * 64
    summary = written["summary.md"].read_text()
    rows = [line.split("|")[1].strip() for line in summary.splitlines() if line.startswith("| SE_")]
    assert rows == list(stats.blocks)
    with pytest.raises(FileExistsError, match="not empty"):
        write_analysis(stats, tmp_path / "out")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A senet run directory (config.json + model.safetensors) of an SE-ResNet-20 with random weights."""
    from senet.train.checkpoint import save_weights
    from senet.train.config import TrainConfig

    run = tmp_path_factory.mktemp("run")
    (run / "config.json").write_text(json.dumps(TrainConfig(model="se_cifar_resnet20").to_dict()))
    save_weights(_perturbed(senet.create_model("se_cifar_resnet20", num_classes=10)), run / "model.safetensors")
    return run


def test_analyze_a_run(run_dir, tmp_path, capsys):
    out = tmp_path / "analysis"
    code = main(["analyze", "--checkpoint", str(run_dir), "--per-class", "3", "--blocks", "SE_2_3,SE_4_3",
                 "--classes", "cat,0", "--out", str(out), "--device", "cpu", "--no-progress"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "9 attention modules over 30 images" in printed and "SE_4_3" in printed
    content = json.loads((out / "excitations.json").read_text())
    assert content["about"]["figure_blocks"] == ["SE_2_3", "SE_4_3"]
    assert all(b["class_count"] == [3] * 10 for b in content["blocks"].values())
    assert (out / "fig6_class_means.png").read_bytes()[:8] == PNG


def test_analyze_a_retrofitted_checkpoint(tmp_path, capsys, monkeypatch):
    from senet.factory import retrofit_checkpoint
    from senet.train.checkpoint import save_weights

    # The figures, drawn from the recorded gates whatever the source (test_analyze_a_run and
    # test_figures_and_files check them), are neither built nor written here: they were 80% of the time.
    for name in ("class_means_figure", "distributions_figure", "save_png"):
        monkeypatch.setattr(analysis_report, name, lambda *args, **kwargs: None)

    save_weights(_perturbed(senet.create_model("cifar_resnet20", num_classes=10)), tmp_path / "plain.safetensors")
    retrofit_checkpoint("cifar_resnet20", str(tmp_path / "plain.safetensors"), tmp_path / "retrofitted")
    out = tmp_path / "analysis"
    code = main(["analyze", "--model", "cifar_resnet20", "--weights", str(tmp_path / "retrofitted"), "--dataset",
                 "cifar10", "--per-class", "2", "--out", str(out), "--device", "cpu", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    content = json.loads((out / "excitations.json").read_text())
    assert len(content["blocks"]) == 9
    assert all(b["histogram"]["range"] == [0.0, 2.0] for b in content["blocks"].values())
    assert all(math.isclose(b["measures"]["mean_gate"], 1.0) for b in content["blocks"].values())
    # Every source goes through the one way in: --checkpoint takes the retrofit output as --weights does
    # (it records no data set of its own, so it needs --dataset).
    err = _careless(capsys, "--checkpoint", str(tmp_path / "retrofitted"))
    assert "records no data set: give --dataset" in err
    code = main(["analyze", "--checkpoint", str(tmp_path / "retrofitted"), "--dataset", "cifar10", "--per-class", "2",
                 "--out", str(tmp_path / "again"), "--device", "cpu", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "again" / "excitations.json").read_text())["blocks"] == content["blocks"]


def _careless(capsys, *argv):
    code = main(["analyze", *argv, "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_careless_use(run_dir, tmp_path, capsys):
    run = ["--checkpoint", str(run_dir)]
    assert "--per-class must be a positive" in _careless(capsys, *run, "--per-class", "0")
    assert "--per-class must be a positive" in _careless(capsys, *run, "--per-class", "-1")
    assert "invalid int value: 'nan'" in _careless(capsys, *run, "--per-class", "nan")
    assert "--batch-size must be a positive" in _careless(capsys, *run, "--batch-size", "0")
    assert "--bins must be a positive" in _careless(capsys, *run, "--bins", "0")
    assert "does not exist" in _careless(capsys, "--checkpoint", str(tmp_path / "missing"))
    assert "--model needs --dataset" in _careless(capsys, "--model", "se_cifar_resnet20", "--weights", "x")
    assert "does not exist" in _careless(capsys, "--model", "se_cifar_resnet20", "--weights", str(tmp_path / "w"),
                                       "--dataset", "cifar10")  # fmt: skip
    assert "say what to analyse" in _careless(capsys)
    assert "unknown block 'SE_2_9'; did you mean" in _careless(capsys, *run, "--blocks", "SE_2_9", "--out",
                                                               str(tmp_path / "a"))  # fmt: skip
    assert "unknown class 'kat'; did you mean cat" in _careless(capsys, *run, "--classes", "kat")
    assert "has only 1,000 images here, the fewest" in _careless(capsys, *run, "--per-class", "1001")
    # One image per class: no estimate of the within-class variance, so specificity would be noise.
    assert "--per-class 1: one image per class gives no estimate" in _careless(capsys, *run, "--per-class", "1")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "summary.md").write_text("keep me")
    assert "--force" in _careless(capsys, *run, "--out", str(taken))
    assert (taken / "summary.md").read_text() == "keep me" and len(list(taken.iterdir())) == 1
    assert not (tmp_path / "a").exists()
    plain = tmp_path / "plain.safetensors"
    from senet.train.checkpoint import save_weights

    save_weights(senet.create_model("cifar_resnet20", num_classes=10), plain)
    assert "has no attention module" in _careless(capsys, "--model", "cifar_resnet20", "--weights", str(plain),
                                                  "--dataset", "cifar10")  # fmt: skip


def test_the_class_that_limits_per_class_is_named():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)
    data = AnalysisData(TensorSplit(torch.zeros(12, 3, 2, 2, dtype=torch.uint8), labels), ("a", "b", "c"),
                        (0.5,) * 3, (0.5,) * 3)  # fmt: skip
    with pytest.raises(ValueError, match=r"class 'b' has only 3 images here, the fewest of any class; ask for at most"):
        per_class_subset(data, 10)  # classes a and c are short too, but b sets the limit
    assert len(per_class_subset(data, 3)) == 9


def test_excitations_dataclass_counts():
    block = _block([[0.5, 0.5], [0.5, 0.5]], [2, 1])
    stats = Excitations(classes=("a", "b"), blocks={"SE_2_1": block})
    assert stats.images == 3 and block.values == 6
    assert np.isnan(block.class_variance[1]).all()  # one image: no variance estimate


def test_a_huge_bins_is_refused_before_any_work(tmp_path, capsys):
    """--bins 100000000 once allocated a histogram of 800 MB per block until the kernel killed the process."""
    from senet.analysis import ExcitationRecorder

    err = _careless(capsys, "--checkpoint", str(tmp_path / "missing"), "--bins", "100000000")
    assert "--bins must be at most 10,000, got 100,000,000" in err, err
    with pytest.raises(ValueError, match="at most 10,000"):
        ExcitationRecorder(torch.nn.Sequential(), num_classes=2, bins=10_001)
