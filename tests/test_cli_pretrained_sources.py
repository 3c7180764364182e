"""Every command that takes a public checkpoint succeeds with one, as a user calls it: ``senet pretrained
fetch``, ``senet train --init-from TAG|URL``, ``senet retrofit --pretrained``, ``senet eval --model ...
--pretrained``. The pretrained table is replaced by two entries served over loopback http (with their
checksums): a CIFAR ResNet-20 in akamaster's naming (option-A zeros on both sides) and an SE-ResNet-18 in
the SE authors' legacy naming. Random weights; every check compares with the served network."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json

import pytest
import torch
from random_weights import randomized
from safetensors.torch import load_file
from test_data_cifar import make_cifar_archive
from test_pretrained_models import make_val_folder, reference_scores

import senet
from senet.cli.main import main
from senet.convert import convert_state_dict, naming_options
from senet.pretrained import pretrained_dir, table


def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _serve(root, base, model, naming, options, preprocessing, num_classes):
    """Writes ``model``'s random weights in ``naming`` under the publisher's file-name scheme; its entry."""
    original = randomized(senet.create_model(model, **options)).eval()
    payload = root / "mirror" / "tmp.pth"
    torch.save({"state_dict": convert_state_dict(original.state_dict(), model=model, target=naming)}, payload)
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    name = f"{model}-{digest[:8]}.pth"
    payload.rename(root / "mirror" / name)
    entry = table.PretrainedWeights(
        model=model, tag="test", url=f"{base}/{name}", naming=naming, options=tuple(options.items()),
        preprocessing=preprocessing, source="test", default=True, sha256=digest, num_classes=num_classes,
    )  # fmt: skip
    return entry, original


@pytest.fixture
def served(monkeypatch, server):
    root, base = server
    (root / "mirror").mkdir()
    cifar = _serve(root, base, "cifar_resnet20", "akamaster", {"shortcut_pad": "both"},
                   table.Preprocessing(input_size=(3, 32, 32), crop_pct=1.0), 10)  # fmt: skip
    imagenet = _serve(root, base, "se_resnet18", "legacy", naming_options("legacy", "se_resnet18"),
                      table.Preprocessing(input_size=(3, 64, 64), crop_pct=1.0), 1000)  # fmt: skip
    monkeypatch.setattr(table, "PRETRAINED", (cifar[0], imagenet[0]))
    files = [pretrained_dir() / e.file_name for e, _ in (cifar, imagenet)]
    yield {"cifar_resnet20": cifar, "se_resnet18": imagenet}
    for path in files:  # the cache outlives the test; the next test serves other bytes under other names
        for stale in (path, path.with_name(path.name + ".sha256")):
            stale.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    make_cifar_archive(folder, "cifar10", per_class=2)
    return folder


def test_pretrained_fetch_downloads_the_verified_file_and_prints_its_path(served, server):
    entry, _ = served["cifar_resnet20"]
    code, out, err = cli("pretrained", "fetch", "resnet20", "--tag", "test")
    assert code == 0, err
    path = pretrained_dir() / entry.file_name
    assert out.strip() == str(path)
    assert path.read_bytes() == (server[0] / "mirror" / entry.file_name).read_bytes()


@pytest.mark.parametrize("how", ["tag", "url"])
def test_train_init_from_a_tag_or_a_url_starts_from_the_served_weights(served, tiny_cifar, tmp_path, how):
    entry, original = served["cifar_resnet20"]
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--model", "cifar_resnet20", "--init-from", "test" if how == "tag" else entry.url,
        "--data-dir", tiny_cifar, "--subset", "20", "--test-subset", "10", "--batch-size", "10", "--epochs", "1",
        "--lr", "1e-12", "--weight-decay", "0", "--no-progress", "--device", "cpu", "--out", out,
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["init_from"] == ("test" if how == "tag" else entry.url)
    # The run rebuilds the publisher's network: the option the keys cannot show travels with it.
    assert json.dumps({"shortcut_pad": "both"})[1:-1] in json.dumps(config)
    weights = load_file(out / "model.safetensors")
    for key, value in original.state_dict().items():
        if key.endswith(("weight", "bias")):
            # lr 1e-12 (it must be positive): two steps move a weight by ~1e-12, below float32's resolution
            # at these magnitudes; another initialisation would differ by ~0.1.
            torch.testing.assert_close(weights[key], value, rtol=0, atol=1e-6, msg=key)


def test_retrofit_pretrained_inserts_se_into_the_served_network(served, tmp_path):
    _, original = served["cifar_resnet20"]
    code, out, err = cli("retrofit", "--model", "cifar_resnet20", "--pretrained", "test", "--out", tmp_path / "rf")
    assert code == 0, err
    assert "se modules inserted into cifar_resnet20" in out
    model = senet.load_model(tmp_path / "rf")
    assert len(senet.retrofit.attention_modules(model)) == 9
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))  # identity start from the served weights, zeros on both sides


def test_eval_model_pretrained_scores_the_served_network(served, tmp_path):
    entry, original = served["se_resnet18"]
    wnids = ["n01440764", "n01443537"]
    root = make_val_folder(tmp_path / "val", wnids, per_class=2)
    code, out, err = cli("eval", "--model", "se_resnet18", "--pretrained", "--dataset", root, "--json",
                         "--workers", 0, "--no-progress", "--device", "cpu")  # fmt: skip
    assert code == 0, err
    m = json.loads(out)
    assert m["checkpoint"] == "test" and m["naming"] == "legacy" and m["images"] == 4
    top1, top2 = reference_scores(original, root, wnids, entry.preprocessing.as_dict())
    assert m["top1"] == pytest.approx(top1) and m["top5"] == pytest.approx(top2)
