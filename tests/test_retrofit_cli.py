"""`senet retrofit` and retrofitted checkpoints: written with their record, rebuilt exactly, refused clearly."""

import contextlib
import io
import json

import pytest
import torch
from random_weights import randomized

import senet
from senet.cli.main import main
from senet.convert import convert_state_dict
from senet.factory import load_retrofitted, retrofit_record


def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def legacy_checkpoint(tmp_path_factory):
    """A plain ResNet-18 with random weights (BatchNorm statistics too), written in the modern naming. It has the
    default stem: `senet retrofit --weights` builds --model with its defaults (an option such as the Caffe
    stem, which moves no key, cannot be read off a file), so its output is compared with this very network."""
    original = randomized(senet.create_model("resnet18")).eval()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save({"model": convert_state_dict(original.state_dict(), model="resnet18", target="modern")}, path)
    return original, path


def test_retrofit_writes_a_model_that_rebuilds_and_computes_what_the_original_did(tmp_path, legacy_checkpoint):
    original, path = legacy_checkpoint
    code, out, err = cli("retrofit", "--model", "resnet18", "--weights", path, "--out", tmp_path / "rf")
    assert code == 0, err
    assert "8 se modules inserted into resnet18 (89,080 parameters" in out and "--init-from" in out
    record = retrofit_record(tmp_path / "rf")
    assert record["model"] == "resnet18" and record["retrofit"]["attention"] == "se"
    report = json.loads((tmp_path / "rf" / "retrofit.json").read_text())["report"]
    assert report["params_added"] == 89_080 and len(report["inserted"]) == 8
    model = load_retrofitted(tmp_path / "rf").eval()
    assert set(original.state_dict()) < set(model.state_dict())  # every original key kept, SE added
    assert len(senet.retrofit.attention_modules(model)) == 8
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))  # identity start: the original network's very outputs
    assert load_retrofitted(tmp_path / "rf", num_classes=5).fc.out_features == 5


def test_an_existing_output_is_kept_without_force(tmp_path, legacy_checkpoint):
    _, path = legacy_checkpoint
    out = tmp_path / "rf"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    code, _, err = cli("retrofit", "--model", "resnet18", "--weights", path, "--out", out)
    assert code == 2 and "--force" in err and (out / "mine.txt").read_text() == "keep me"
    code, _, err = cli("retrofit", "--model", "resnet18", "--weights", path, "--out", out, "--force")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "report.md", "retrofit.json"]
    assert not any(p.name.startswith(".rf.") for p in tmp_path.iterdir())  # no staging folder left


@pytest.mark.parametrize(
    "args, match",
    [
        ([], "--weights FILE or --pretrained"),
        (["--weights", "{ckpt}", "--pretrained"], "one of them"),
        (["--weights", "{tmp}/missing.pth"], "does not exist"),
        (["--weights", "{ckpt}", "--reduction", "nan"], "positive number"),
        (["--weights", "{ckpt}", "--reduction", "0"], "positive number"),
        (["--weights", "{ckpt}", "--attention", "cbam"], "starting as the identity (the default) supports"),
        (["--weights", "{ckpt}", "--attention", "sex"], "did you mean"),
        (["--weights", "{ckpt}", "--placement", "sideways"], "sideways"),
        (["--weights", "{ckpt}", "--where", "layer9.0"], "did you mean"),
        (["--weights", "{ckpt}", "--where", ","], "names no block"),
        (["--weights", "{tmp}/junk.pth"], "not a readable"),
    ],
)
def test_bad_input_is_one_line(tmp_path, legacy_checkpoint, args, match):
    (tmp_path / "junk.pth").write_bytes(b"\x80junk" * 50)
    args = [a.format(tmp=tmp_path, ckpt=legacy_checkpoint[1]) for a in args]
    code, _, err = cli("retrofit", "--model", "resnet18", *args, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "out").exists()


def test_a_model_with_se_already_is_refused(tmp_path):
    se = randomized(senet.create_model("se_resnet18"))
    torch.save(se.state_dict(), tmp_path / "se.pth")
    code, _, err = cli("retrofit", "--model", "se_resnet18", "--weights", tmp_path / "se.pth", "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1 and "attention" in err, err


@pytest.mark.parametrize("held", ["run", "input"])
def test_force_never_replaces_a_training_run_or_the_checkpoint_it_reads(tmp_path, legacy_checkpoint, held):
    out = tmp_path / "out"
    out.mkdir()
    if held == "run":  # a folder as `senet train` left it
        weights = legacy_checkpoint[1]
        (out / "config.json").write_text(json.dumps({"model": "resnet18", "epochs": 3}))
        (out / "notes.txt").write_text("mine")
    else:  # the checkpoint lies in the folder --force would replace
        weights = out / "resnet18.pth"
        weights.write_bytes(legacy_checkpoint[1].read_bytes())
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = cli("retrofit", "--model", "resnet18", "--weights", weights, "--out", out, "--force")
    assert code == 2 and err.count("\n") == 1 and "give another --out" in err, err
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
