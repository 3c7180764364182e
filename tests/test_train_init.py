"""`senet train --init-from FILE [--retrofit se]`: fine-tuning starts from the checkpoint, exactly."""

import copy
import json

import pytest
import torch
from random_weights import randomized

import senet
import senet.train.run as run_module
from senet.cli.main import main
from senet.convert import convert_state_dict
from senet.pretrained import read_state_dict
from senet.train.config import TrainConfig
from senet.train.init import ARCHITECTURE
from senet.train.run import build_model

QUICK = ["--subset", "200", "--test-subset", "100", "--batch-size", "50", "--no-progress", "--device", "cpu",
         "--epochs", "1"]  # fmt: skip


def one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A plain CIFAR ResNet-20 with 5 classes and random weights, as a torch.save file with a wrapper."""
    model = randomized(senet.create_model("cifar_resnet20", num_classes=5))
    path = tmp_path_factory.mktemp("init") / "plain.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 30}, path)
    return model, path


def test_init_from_loads_everything_but_a_classifier_of_another_size(plain):
    original, path = plain
    cfg = TrainConfig(model="cifar_resnet20", init_from=str(path))
    model = build_model(cfg, 10, initial=True)
    assert model.fc.out_features == 10
    own = model.state_dict()
    for key, value in original.state_dict().items():
        assert torch.equal(own[key], value) != key.startswith("fc."), key
    assert cfg.extra[ARCHITECTURE]["retrofit"] is None


def test_init_from_with_retrofit_starts_from_the_same_function(plain):
    original, path = plain
    cfg = TrainConfig(model="cifar_resnet20", init_from=str(path), retrofit="se")
    model = build_model(cfg, 5, initial=True).eval()
    assert len(senet.retrofit.attention_modules(model)) == 9
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))  # identity start: fine-tuning begins at the checkpoint's accuracy
    # Resume and eval rebuild the recorded network without reading the init file.
    rebuilt = build_model(cfg, 5)
    assert set(rebuilt.state_dict()) == set(model.state_dict())


def _features(model, x):
    """What ``model`` computes up to its classifier (a copy in eval mode, so the model itself is untouched)."""
    model = copy.deepcopy(model).eval()
    model.fc = torch.nn.Identity()
    with torch.no_grad():
        return model(x)


def test_a_retrofitted_run_trains_resumes_and_evaluates(plain, tmp_path, capsys, monkeypatch):
    original, path = plain
    out = tmp_path / "run"
    args = ["train", "--model", "cifar_resnet20", "--init-from", str(path), "--retrofit", "se", *QUICK]
    # The run's first step starts from the checkpoint's function (SE's identity start): the network that
    # train_one_epoch receives computes what the checkpoint did, up to the classifier (5 classes there, 10 here).
    x, started, real_epoch = torch.randn(4, 3, 32, 32), [], run_module.train_one_epoch
    monkeypatch.setattr(run_module, "train_one_epoch",
                        lambda model, *a, **k: started.append(_features(model, x)) or real_epoch(model, *a, **k))
    assert main([*args, "--out", str(out)]) == 0
    assert torch.equal(started[0], _features(original, x))
    step0 = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step 0")]
    assert len(step0) == 1 and "classifier was replaced by a new one for 10 classes" in step0[0], step0
    monkeypatch.undo()
    weights = read_state_dict(out)
    assert sum(".retrofit_se.fc1.weight" in k for k in weights) == 9  # CIFAR blocks have an `se` slot (None)
    config = json.loads((out / "config.json").read_text())
    assert config["extra"][ARCHITECTURE]["retrofit"]["attention"] == "se"
    path_moved = path.with_name("moved.pth")
    path.rename(path_moved)  # eval and resume must not need the init file
    try:
        assert main(["eval", "--checkpoint", str(out), "--device", "cpu", "--json"]) == 0
        assert main([*args, "--out", str(out), "--resume", "--epochs", "2"]) == 0
    finally:
        path_moved.rename(path)
    capsys.readouterr()
    recorded = json.loads((out / "summary.json").read_text())["config"]["extra"][ARCHITECTURE]
    assert set(recorded) == {"model_options", "retrofit", "num_classes", "normalization"}


def test_from_a_senet_retrofit_output(tmp_path, capsys):
    original = randomized(senet.create_model("cifar_resnet20"))
    torch.save(original.state_dict(), tmp_path / "plain.pth")
    assert main(["retrofit", "--model", "cifar_resnet20", "--weights", str(tmp_path / "plain.pth"),
                 "--out", str(tmp_path / "rf")]) == 0  # fmt: skip
    cfg = TrainConfig(model="cifar_resnet20", init_from=str(tmp_path / "rf"), retrofit="se")
    model = build_model(cfg, 10, initial=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original.eval()(x))
    capsys.readouterr()
    code = main(["train", "--model", "cifar_resnet20", "--init-from", str(tmp_path / "rf"), *QUICK,
                 "--out", str(tmp_path / "run")])  # fmt: skip
    one_line_error(capsys, code, "retrofitted", "--retrofit se")
    code = main(["train", "--model", "resnet20", "--init-from", str(tmp_path / "rf"), "--retrofit", "eca", *QUICK,
                 "--out", str(tmp_path / "run")])  # fmt: skip
    one_line_error(capsys, code, "retrofitted with se, not eca")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--init-from", "{tmp}/missing.pth"], "does not exist"),
        (["--init-from", "{tmp}/junk.pth"], "not a readable"),
        (["--retrofit", "se", "--attention", "eca"], "not with --attention"),
        (["--retrofit", "cbam"], "starting as the identity supports"),
        (["--retrofit", "sex"], "did you mean se"),
        (["--init-from", "{tmp}/other.pth"], "does not fit"),
    ],
)
def test_bad_starts_are_one_line_and_write_nothing(tmp_path, capsys, extra, needle):
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02junk" * 40)
    torch.save(senet.create_model("resnet18", num_classes=10).state_dict(), tmp_path / "other.pth")
    extra = [a.format(tmp=tmp_path) for a in extra]
    code = main(["train", "--model", "cifar_resnet20", *extra, *QUICK, "--out", str(tmp_path / "run")])
    one_line_error(capsys, code, needle)
    assert not (tmp_path / "run").exists()


def test_public_naming_init(tmp_path):
    # A public checkpoint of a zoo model (here: SE-ResNet-18 in the SE authors' naming) fine-tunes on 10 classes,
    # built as its publisher's network.
    original = randomized(senet.create_model("se_resnet18", stem_pool="ceil", relu_before_se=True))
    torch.save(convert_state_dict(original.state_dict(), model="se_resnet18", target="legacy"), tmp_path / "l.pth")
    cfg = TrainConfig(model="se_resnet18", init_from=str(tmp_path / "l.pth"))
    model = build_model(cfg, 10, initial=True)
    assert cfg.extra[ARCHITECTURE]["model_options"] == {"stem_pool": "ceil", "relu_before_se": True}
    assert torch.equal(model.layer4[1].se.fc2.weight, original.layer4[1].se.fc2.weight)


@pytest.mark.parametrize("classes", [5, 10])
def test_the_step_0_line_says_when_the_files_classifier_was_replaced(tmp_path, capsys, classes):
    """Step 0 of a run whose file has another number of classes scores about chance: the line says why (once it
    printed 9.8% without a word). Through `senet retrofit`'s output, whose record is read apart."""
    original = randomized(senet.create_model("cifar_resnet20", num_classes=classes))
    torch.save(original.state_dict(), tmp_path / "plain.pth")
    assert main(["retrofit", "--model", "cifar_resnet20", "--weights", str(tmp_path / "plain.pth"),
                 "--out", str(tmp_path / "rf")]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["train", "--model", "cifar_resnet20", "--init-from", str(tmp_path / "rf"), "--retrofit", "se",
                 *QUICK, "--out", str(tmp_path / "run")]) == 0  # fmt: skip
    step0 = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step 0")]
    assert len(step0) == 1, step0
    assert ("classifier was replaced" in step0[0]) == (classes != 10), step0
