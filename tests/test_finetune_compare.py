"""`senet compare --init-from SOURCE`: fine-tune a real checkpoint plain and with SE retrofitted, side by side.

The source is the publisher's own ResNet-20 file (akamaster/pytorch_resnet_cifar10, shipped in
tests/data/akamaster-cifar10/). Both twins must start at exactly what that file computes: the attention
twin has SE retrofitted as the identity, and both normalise their inputs as the publisher trained them
(ImageNet's mean and std, not CIFAR's). What the file computes is checked against the publisher's own
outputs in test_pretrained_akamaster.py; here the expected step-0 accuracy is computed directly from the
file on the same test images.
"""

import json
from pathlib import Path

import pytest
import torch

import senet
from senet.cli.main import main
from senet.data import IMAGENET_MEAN, IMAGENET_STD, load_dataset
from senet.experiments.compare import compare, render_markdown
from senet.factory import ARCHITECTURE, NORMALIZATION
from senet.train.checkpoint import save_weights
from senet.train.config import TrainConfig

CHECKPOINT = Path(__file__).resolve().parent / "data" / "akamaster-cifar10" / "resnet20-12fca82f.th"
TEST_IMAGES = 200

# The module's fine-tuned comparison (a fixture) is trained once: its tests run in one xdist worker.
pytestmark = pytest.mark.xdist_group("finetune-compare")


def checkpoint_on_test_images(test_subset: int, seed: int) -> tuple[float, float]:
    """The file's accuracy and mean cross-entropy on the test subset a run of ``seed`` evaluates on, with the
    publisher's preprocessing."""
    data = load_dataset("cifar10", test_subset=test_subset, seed=seed, progress=False)
    model = senet.load_model(str(CHECKPOINT), model="cifar_resnet20").eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (data.test.images.float() / 255 - mean) / std
    with torch.no_grad():
        logits = model(x)
    accuracy = (logits.argmax(1) == data.test.labels).float().mean().item()
    return accuracy, torch.nn.functional.cross_entropy(logits, data.test.labels).item()


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune") / "compare"
    cfg = TrainConfig(model="cifar_resnet20", init_from=str(CHECKPOINT), recipe="finetune_cifar", epochs=1,
                      subset=256, test_subset=TEST_IMAGES, batch_size=64, device="cpu", out=str(out),
                      progress=False)  # fmt: skip
    return compare(cfg, seeds=1), out


def test_both_twins_start_at_the_checkpoints_accuracy(finetuned):
    report, out = finetuned
    expected, loss = checkpoint_on_test_images(TEST_IMAGES, seed=0)
    assert 0.5 < expected < 0.95  # the real network (81% on the full test split), not chance
    plain, se = report["results"]["plain"], report["results"]["se"]
    # The same images, the same function: the counts of correct images are equal, not merely close.
    assert round(plain["initial_test_accuracies"][0] * TEST_IMAGES) == round(expected * TEST_IMAGES)
    assert se["initial_test_accuracies"] == plain["initial_test_accuracies"]
    # The loss tells a near miss apart (inputs normalised with CIFAR's statistics instead of the publisher's
    # change it by about 2%, while the images they flip can be too few to move the accuracy). Tolerance: the
    # same float32 function on other batch shapes differs in rounding only (~1e-6 relative).
    for name in ("plain", "se"):
        summary = json.loads((out / f"{name}-seed0" / "summary.json").read_text())
        assert summary["initial_test_loss"] == pytest.approx(loss, rel=1e-4), name
    text = render_markdown(report)
    assert "At step 0 the twins of each seed score the same" in text and "step 0 test accuracy" in text


def test_the_attention_twin_is_the_checkpoint_with_se_retrofitted(finetuned):
    report, out = finetuned
    se_run, plain_run = out / "se-seed0", out / "plain-seed0"
    config = json.loads((se_run / "config.json").read_text())
    arch = config["extra"][ARCHITECTURE]
    assert arch["retrofit"]["attention"] == "se" and arch["retrofit"]["identity_init"]
    assert arch[NORMALIZATION] == {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert json.loads((plain_run / "config.json").read_text())["extra"][ARCHITECTURE]["retrofit"] is None
    assert report["results"]["se"]["params"] - report["results"]["plain"]["params"] == 2373  # 9 SE blocks, r=16
    # The retrofitted modules were trained: their last layers started at zero (the identity) and moved.
    model = senet.load_model(str(se_run))
    modules = senet.retrofit.attention_modules(model)
    assert len(modules) == 9
    for module in modules.values():
        assert module.fc2.weight.abs().sum() > 0 and module.fc2.bias.abs().sum() > 0


def test_eval_of_a_finetuned_run_uses_the_kept_normalisation(finetuned, capsys):
    report, out = finetuned
    summary = json.loads((out / "se-seed0" / "summary.json").read_text())
    code = main(["eval", "--checkpoint", str(out / "se-seed0"), "--test-subset", str(TEST_IMAGES), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"], abs=0.5 / TEST_IMAGES)


def test_retrofit_and_attention_together_are_refused_before_training(tmp_path, capsys):
    code = main(["compare", "--init-from", str(CHECKPOINT), "--retrofit", "se", "--attention", "eca",
                 "--out", str(tmp_path / "c"), "--subset", "64", "--epochs", "1"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--retrofit se and --attention eca" in err, err
    assert not (tmp_path / "c").exists()


def test_a_run_of_a_plain_network_is_compared_from_and_one_with_attention_is_refused(finetuned, tmp_path, capsys):
    """`compare --init-from RUN` once failed in its plain twin ('records its network, which other options cannot
    change (attention); ... retrofit it (--retrofit se)') even with --retrofit se; a run with attention trained
    its 'plain' twin before the retrofit failed."""
    _, out = finetuned
    tiny = ["--subset", "20", "--test-subset", "20", "--batch-size", "10", "--epochs", "1", "--device", "cpu",
            "--no-progress"]  # fmt: skip
    code = main(["compare", "--model", "cifar_resnet20", "--init-from", str(out / "plain-seed0"), *tiny,
                 "--out", str(tmp_path / "c")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "c" / "compare.json").read_text())
    plain, se = report["results"]["plain"], report["results"]["se"]
    assert se["initial_test_accuracies"] == plain["initial_test_accuracies"] and se["params"] > plain["params"]
    capsys.readouterr()
    se_run = tmp_path / "se-run"  # a run of SE-ResNet-20 (built with SE), as `senet train` leaves it
    se_run.mkdir()
    (se_run / "config.json").write_text(json.dumps(TrainConfig(model="se_cifar_resnet20").to_dict()))
    save_weights(senet.create_model("se_cifar_resnet20"), se_run / "model.safetensors")
    code = main(["compare", "--model", "se_cifar_resnet20", "--init-from", str(se_run), *tiny,
                 "--out", str(tmp_path / "d")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "attention already" in err, err
    assert not (tmp_path / "d").exists()
