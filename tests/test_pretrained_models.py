"""create_model(pretrained=...), the preprocessing that travels with it, ImageNet-folder evaluation, the CLI."""

import contextlib
import dataclasses
import hashlib
import io
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from random_weights import randomized

import senet
from senet.cli.main import main
from senet.convert import convert_state_dict, naming_options
from senet.pretrained import table
from senet.pretrained.evaluate import evaluate_imagenet_folder, imagenet_classes
from senet.utils.skeleton import meta_skeleton


def cli(*args):
    """Runs the command line in this process (the same code path as `senet ...`, without a new interpreter)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def published(tmp_path, name, naming, **options):
    """A random model built as the publisher's network, written to a file in the publisher's naming."""
    original = randomized(senet.create_model(name, **options))
    path = tmp_path / f"{name}-{naming}.pth"
    torch.save(convert_state_dict(original.state_dict(), model=name, target=naming), path)
    return original, path


ROOT = Path(__file__).resolve().parents[1]

# What each data set's checkpoints are fed: (input sizes, mean/std pairs, class counts).
DATASET_INPUTS = {
    "imagenet-1k": ({224, 288, 299}, {(table.IMAGENET_MEAN, table.IMAGENET_STD), (table.INCEPTION_MEAN,
                                                                                  table.INCEPTION_STD)}, {1000, 1001}),
    "cifar10": ({32}, {(table.IMAGENET_MEAN, table.IMAGENET_STD)}, {10}),
}  # fmt: skip


def test_the_table_is_consistent():
    entries = senet.list_pretrained()
    models = {w.model for w in entries}
    # The README and docs/pretrained.md state the table's size: the same figure, and the table's own.
    for doc in ("README.md", "docs/pretrained.md"):
        text = " ".join((ROOT / doc).read_text(encoding="utf-8").split())
        stated = re.findall(r"(?<![\w-])(\d+) files for (\d+) models", text)
        assert stated and {(int(f), int(m)) for f, m in stated} == {(len(entries), len(models))}, (doc, stated)
    assert len(entries) == 46 and len(models) == 26  # 40 ImageNet-1k files for 20 models + 6 CIFAR-10 files
    for w in entries:  # each entry's preprocessing fits its data set
        sizes, stats, classes = DATASET_INPUTS[w.dataset]
        p = w.preprocessing
        assert p.input_size[0] == 3 and p.input_size[1] == p.input_size[2] in sizes, w
        assert (p.mean, p.std) in stats and w.num_classes in classes, w
        assert p.interpolation in ("bilinear", "bicubic") and p.channel_order == "RGB", w
        assert 0.8 < p.crop_pct <= 1.0 and p.input_size[-1] <= p.resize <= p.input_size[-1] / 0.8, w
        if w.dataset == "cifar10":  # fed as they are: no resize, no crop
            assert p.crop_pct == 1.0 and p.resize == 32, w
    namings = set(senet.list_namings())
    for w in entries:
        assert w.model in senet.list_models() and w.naming in namings, w
        assert w.url.startswith("https://") or w.url.startswith("http://"), w
        if w.sha256_prefix:
            assert w.sha256_prefix in w.file_name
    # Every entry's options build its model (each distinct build once: 31 for the 46 entries).
    for model, num_classes, options in sorted({(w.model, w.num_classes, tuple(sorted(w.options)))
                                               for w in entries}):  # fmt: skip
        with meta_skeleton():
            built = senet.create_model(model, num_classes=num_classes, **dict(options))
        assert built.num_classes == num_classes and all(p.is_meta for p in built.parameters())
    for model in {w.model for w in entries}:
        assert sum(w.default for w in senet.list_pretrained(model)) == 1, model
    # The paper's models are there, with the authors' weights as the default.
    for model in ("se_resnet50", "se_resnet101", "se_resnet152", "se_resnext50_32x4d", "senet154"):
        default = table.get_pretrained(model)
        assert default.naming == "legacy" and default.top1 is not None


@pytest.mark.parametrize(
    "name, naming, side",
    [("se_resnet50", "legacy", 64), ("se_resnext50_32x4d", "legacy", 64), ("se_resnet18", "legacy", 64),
     ("efficientnet_b0", "torchvision", 64),
     # 56M parameters at 75 px (6 s): the default tier builds it from a tf_slim file in test_publisher_outputs.py
     pytest.param("inception_resnet_v2", "tf_slim", 75, marks=pytest.mark.slow)],
)  # fmt: skip
def test_create_model_from_a_file_builds_the_publishers_network(tmp_path, name, naming, side):
    options = naming_options(naming, name)
    defaults = senet.create_model(name, num_classes=0).config
    assert any(getattr(defaults, k) != v for k, v in options.items()), "the publisher's network is not our default"
    original, path = published(tmp_path, name, naming, **options)
    model = senet.create_model(name, pretrained=path).eval()
    assert model.pretrained_info.naming == naming and model.pretrained_info.report.complete
    for key, value in options.items():
        assert getattr(model.config, key) == value
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
        # The options matter: the same weights in our default network compute something else.
        default = senet.create_model(name).eval()
        with pytest.raises(ValueError, match="computes another function"):
            senet.load_pretrained(default, path)
        with pytest.warns(UserWarning, match="differs from this model"):
            senet.load_pretrained(default, path, strict=False)
        ours, theirs = default.forward_features(x), original.forward_features(x)
        assert (ours - theirs).abs().max() > 1e-4 * theirs.abs().max()


def test_loading_into_a_model_without_the_options_is_refused_unless_not_strict(tmp_path):
    _, path = published(tmp_path, "se_resnet50", "legacy", **naming_options("legacy", "se_resnet50"))
    model = senet.create_model("se_resnet50")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    refusal = r"need stem_pool='ceil'; .*create_model\(\.\.\., pretrained=path\).*strict=False"
    with pytest.raises(ValueError, match=refusal):
        senet.load_pretrained(model, path)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing loaded
    with pytest.warns(UserWarning, match="stem_pool='ceil'"):
        report = senet.load_pretrained(model, path, strict=False)
    assert report.options == {"stem_pool": "ceil"} and report.complete
    # Built with the options, it loads strictly and silently.
    senet.load_pretrained(senet.create_model("se_resnet50", stem_pool="ceil"), path)


def test_a_new_classifier_for_fine_tuning_keeps_everything_else(tmp_path):
    original, path = published(tmp_path, "se_resnet18", "legacy", **naming_options("legacy", "se_resnet18"))
    model = senet.create_model("se_resnet18", pretrained=path, num_classes=7)
    assert model.fc.out_features == 7 and model.pretrained_info.classifier_replaced
    own = model.state_dict()
    for key, value in original.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(own[key], value), key


def test_our_own_run_with_another_class_count_loads(tmp_path):
    original = randomized(senet.create_model("cifar_resnet20", num_classes=5))
    torch.save(original.state_dict(), tmp_path / "ours.pth")
    model = senet.create_model("cifar_resnet20", pretrained=tmp_path / "ours.pth")
    assert model.fc.out_features == 5 and model.pretrained_info.naming == "ours"


def test_features_only_backbone_holds_the_checkpoints_weights(tmp_path):
    original, path = published(tmp_path, "se_resnet18", "legacy", **naming_options("legacy", "se_resnet18"))
    backbone = senet.create_model("se_resnet18", pretrained=path, features_only=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(backbone(x)[-1], original.forward_features(x))


@pytest.fixture
def fake_table(monkeypatch, server, tmp_path):
    """One published entry for se_resnet18 (legacy naming) served by the local server, with its checksum."""
    options = naming_options("legacy", "se_resnet18")
    original = randomized(senet.create_model("se_resnet18", **options))
    root, base = server
    (root / "mirror").mkdir()
    payload = root / "mirror" / "tmp.pth"
    torch.save(convert_state_dict(original.state_dict(), model="se_resnet18", target="legacy"), payload)
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    name = f"se_resnet18-{digest[:8]}.pth"
    payload.rename(root / "mirror" / name)
    entry = table.PretrainedWeights(
        model="se_resnet18", tag="test", url=f"{base}/{name}", naming="legacy", options=tuple(options.items()),
        preprocessing=table.Preprocessing(interpolation="bicubic", crop_pct=0.95), source="test", default=True,
        sha256_prefix=digest[:8],
    )  # fmt: skip
    monkeypatch.setattr(table, "PRETRAINED", (entry,))
    cached = senet.pretrained.pretrained_dir() / name
    for stale in (cached, cached.with_name(name + ".sha256")):  # another test's download of the same file
        stale.unlink(missing_ok=True)
    yield entry, original, root / "mirror" / name
    for stale in (cached, cached.with_name(name + ".sha256")):
        stale.unlink(missing_ok=True)


def test_pretrained_true_downloads_verifies_and_loads(fake_table):
    entry, original, _ = fake_table
    model = senet.create_model("se_resnet18", pretrained=True).eval()
    assert model.pretrained_info.weights == entry
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), original(x))
    config = senet.data_config(model)
    assert config["interpolation"] == "bicubic" and config["crop_pct"] == 0.95 and config["resize"] == 235
    assert senet.data_config("se_resnet18") == config  # by name: the default checkpoint's
    assert (senet.pretrained.pretrained_dir() / entry.file_name).is_file()
    with pytest.raises(ValueError, match="no checkpoint tagged 'tset'.*test"):
        senet.create_model("se_resnet18", pretrained="tset")


def test_a_tampered_download_is_refused_and_not_kept(fake_table):
    entry, _, served = fake_table
    served.write_bytes(served.read_bytes()[:-10] + b"0123456789")  # same size, other content
    with pytest.raises(senet.data.download.ChecksumError, match="SHA-256"):
        senet.create_model("se_resnet18", pretrained=True)
    assert not (senet.pretrained.pretrained_dir() / entry.file_name).exists()


def test_data_config_defaults():
    assert senet.data_config(senet.create_model("cifar_resnet20"))["input_size"] == [3, 32, 32]
    config = senet.data_config(senet.create_model("inception_resnet_v2", num_classes=0))
    assert config["input_size"] == [3, 299, 299] and config["crop_pct"] == 0.875


# ---------------------------------------------------------------------------------------------------------
# Evaluation on an ImageNet-style folder


class PixelClassifier(torch.nn.Module):
    """A 1000-class "model" whose logits are a fixed function of the mean colour: known answers, no weights."""

    num_classes = 1000

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 1000)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(1000, 3, generator=torch.Generator().manual_seed(0)))
            self.proj.bias.zero_()

    def forward(self, x):
        return self.proj(x.mean((2, 3)))


def make_val_folder(root, wnids, per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    for wnid in wnids:
        (root / wnid).mkdir(parents=True)
        for i in range(per_class):
            h, w = rng.integers(40, 90, size=2)
            # A colour of its own per image (the test classifier looks at the mean colour), with texture.
            colour = rng.integers(0, 256, 3)
            pixels = np.clip(colour + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / wnid / f"img{i}.JPEG")
    return root


def reference_scores(model, root, wnids, config):
    """Top-1/top-k computed directly: PIL resize + centre crop as torchvision does, then the model."""
    index = [w for w, _ in imagenet_classes()]
    columns = [index.index(w) for w in wnids]
    size, resize = config["input_size"][-1], config["resize"]
    hits1 = hitsk = total = 0
    k = min(5, len(wnids))
    for label, wnid in enumerate(wnids):
        for path in sorted((root / wnid).iterdir()):
            img = Image.open(path).convert("RGB")
            w, h = img.size
            new = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
            img = img.resize(new, Image.Resampling.BICUBIC if config["interpolation"] == "bicubic" else
                             Image.Resampling.BILINEAR)  # fmt: skip
            left, top = round((new[0] - size) / 2), round((new[1] - size) / 2)
            img = img.crop((left, top, left + size, top + size))
            x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
            if config["channel_order"] == "BGR":
                x = x.flip(1)
            x = (x - torch.tensor(config["mean"]).view(1, 3, 1, 1)) / torch.tensor(config["std"]).view(1, 3, 1, 1)
            with torch.no_grad():
                ranked = model(x)[0, columns].argsort(descending=True)
            hits1 += int(ranked[0] == label)
            hitsk += int(label in ranked[:k].tolist())
            total += 1
    return hits1 / total, hitsk / total


@pytest.mark.parametrize("channel_order", ["RGB", "BGR"])
def test_imagenet_folder_scores_equal_a_direct_computation(tmp_path, channel_order):
    wnids = ["n01440764", "n01443537", "n02085620", "n04591713", "n09999999"[:0] or "n15075141", "n07714571"]
    root = make_val_folder(tmp_path / "val", wnids)
    model = PixelClassifier()
    config = dataclasses.replace(
        table.Preprocessing(input_size=(3, 32, 32), crop_pct=0.8, interpolation="bicubic"), channel_order=channel_order
    ).as_dict()
    m = evaluate_imagenet_folder(model, root, config, batch_size=4, workers=0, progress=False)
    top1, top5 = reference_scores(model, root, sorted(wnids), config)
    assert m["images"] == 18 and m["classes"] == 6 and not m["all_classes"] and m["k"] == 5
    assert m["top1"] == pytest.approx(top1) and m["top5"] == pytest.approx(top5)


def test_a_subset_folder_is_scored_among_its_own_classes(tmp_path):
    # A model that always ranks class 0 (absent) first and the folder's own class second: perfect among
    # the folder's classes, zero among all 1000.
    wnids = ["n01443537", "n01484850"]
    root = make_val_folder(tmp_path / "val", wnids, per_class=2)

    class Oracle(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(len(x), 1000)
            logits[:, 0] = 10
            bright = x.mean((1, 2, 3)) > -10  # every image: the label comes from the batch order below
            logits[bright, 1] = 5
            return logits

    m = evaluate_imagenet_folder(Oracle(), root, table.Preprocessing(input_size=(3, 16, 16)).as_dict(),
                                 batch_size=8, workers=0, progress=False)  # fmt: skip
    assert m["top1"] == 0.5 and m["top5"] == 1.0 and m["k"] == 2  # class 1 always first among {1, 2}


def test_folder_errors(tmp_path):
    (tmp_path / "val" / "cats").mkdir(parents=True)
    with pytest.raises(ValueError, match="not ImageNet synset ids.*'cats'"):
        evaluate_imagenet_folder(PixelClassifier(), tmp_path / "val", {}, progress=False)
    with pytest.raises(FileNotFoundError):
        evaluate_imagenet_folder(PixelClassifier(), tmp_path / "nothing", {}, progress=False)


def test_imagenet_classes():
    classes = imagenet_classes()
    assert len(classes) == 1000 and classes[0] == ("n01440764", "tench") and classes[-1][0] == "n15075141"
    wnids = [w for w, _ in classes]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000  # the class index is the sorted wnid order


# ---------------------------------------------------------------------------------------------------------
# Command line


def test_cli_eval_with_weights_on_an_imagenet_folder(tmp_path):
    original, path = published(tmp_path, "se_resnet18", "legacy", **naming_options("legacy", "se_resnet18"))
    root = make_val_folder(tmp_path / "val", ["n01440764", "n01443537", "n01484850"], per_class=2)
    out = cli("eval", "--model", "se_resnet18", "--weights", path, "--dataset", root, "--json", "--workers", 0,
              "--no-progress")
    assert out.returncode == 0, out.stderr
    m = json.loads(out.stdout)
    assert m["naming"] == "legacy" and m["images"] == 6 and m["k"] == 3
    model = senet.create_model("se_resnet18", pretrained=path).eval()
    top1, top3 = reference_scores(model, root, ["n01440764", "n01443537", "n01484850"], senet.data_config(model))
    assert m["top1"] == pytest.approx(top1) and m["top5"] == pytest.approx(top3)
    text = cli("eval", "--model", "se_resnet18", "--weights", path, "--dataset", root, "--workers", 0)
    assert "3 of the 1000 classes" in text.stdout and "not comparable" in text.stdout


@pytest.mark.parametrize(
    "args, match",
    [
        (["eval"], "say what to evaluate"),
        (["eval", "--model", "se_resnet18"], "--pretrained"),
        (["eval", "--model", "se_resnet18", "--pretrained"], "--dataset"),
        (["eval", "--model", "se_resnet18", "--weights", "nope.pth", "--dataset", "{val}"], "does not exist"),
        (["eval", "--model", "se_resnet18", "--pretrained", "--dataset", "{tmp}"], "not ImageNet synset ids"),
        (["eval", "--model", "wrn16_8", "--pretrained", "--dataset", "{val}"], "no public checkpoint exists"),
        (["eval", "--model", "se_resnet18", "--pretrained", "nope", "--dataset", "{val}"], "no checkpoint tagged"),
        (["eval", "--model", "se_resnet18", "--pretrained", "--dataset", "{val}", "--batch-size", "0"], "positive"),
        (["convert", "{tmp}/missing.pth", "{tmp}/o.safetensors", "--model", "resnet18"], "does not exist"),
        (["convert", "{tmp}/junk.pth", "{tmp}/o.safetensors", "--model", "resnet18"], "not a readable"),
        (["convert", "{tmp}/junk.pth", "{tmp}/o.pth", "--model", "resnet18"], "safetensors"),
        (["convert", "{tmp}/junk.pth", "{tmp}/o.safetensors", "--model", "resnet99"], "unknown model"),
        (["pretrained", "list", "nothing-like-this"], "no public checkpoint"),
        (["pretrained", "fetch", "se_resnet20"], "no public checkpoint exists"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, match):
    val = make_val_folder(tmp_path / "val", ["n01440764"], per_class=1)
    (tmp_path / "cats").mkdir()
    (tmp_path / "junk.pth").write_bytes(b"junk" * 100)
    args = [a.format(tmp=tmp_path, val=val) for a in args]
    out = cli(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("\n") == 1 and match in out.stderr, out.stderr


def test_cli_convert_round_trip_and_no_overwrite(tmp_path):
    original = randomized(senet.create_model("se_resnet18"))
    public = tmp_path / "legacy.pth"
    torch.save({"state_dict": convert_state_dict(original.state_dict(), model="se_resnet18", target="legacy")}, public)
    ours = tmp_path / "ours.safetensors"
    out = cli("convert", public, ours, "--model", "se_resnet18")
    assert out.returncode == 0, out.stderr
    back = senet.pretrained.read_state_dict(ours)
    assert all(torch.equal(back[k], v) for k, v in original.state_dict().items())
    again = tmp_path / "legacy-again.safetensors"
    assert cli("convert", ours, again, "--model", "se_resnet18", "--to", "legacy").returncode == 0
    assert set(senet.pretrained.read_state_dict(again)) == set(torch.load(public)["state_dict"])
    before = ours.read_bytes()
    out = cli("convert", public, ours, "--model", "se_resnet18")
    assert out.returncode == 2 and "--force" in out.stderr and ours.read_bytes() == before


def test_cli_pretrained_list():
    out = cli("pretrained", "list", "se_resnet50")
    assert out.returncode == 0 and "caffe *" in out.stdout and "legacy" in out.stdout
    rows = json.loads(cli("pretrained", "list", "--json").stdout)
    assert len(rows) == len(senet.list_pretrained()) and all("preprocessing" in r for r in rows)


def test_pretrained_list_shows_the_file_name_fetch_writes(monkeypatch):
    """For every entry of the table, the file `senet pretrained list` names (table and --json) is the file
    `senet pretrained fetch` writes (once the Hub's generic 'pytorch_model.bin' was listed, and fetch wrote
    'timm--inception_resnet_v2.tf_in1k--pytorch_model.bin')."""
    written = []

    def download(url, dest, **kwargs):  # what fetch would download to, without a network
        written.append(Path(dest))
        return Path(dest)

    monkeypatch.setattr("senet.pretrained.hub.download_file", download)
    entries = senet.list_pretrained()
    table_rows = cli("pretrained", "list").stdout.split("\n\n")[0].splitlines()[1:]
    listed = [row.split()[-1] for row in table_rows]
    as_json = [r["file"] for r in json.loads(cli("pretrained", "list", "--json").stdout)]
    for entry in entries:
        out = cli("pretrained", "fetch", entry.model, "--tag", entry.tag)
        assert out.returncode == 0, out.stderr
        assert Path(out.stdout.strip()) == written[-1] == senet.pretrained.pretrained_dir() / written[-1].name
    assert listed == as_json == [p.name for p in written] and len(written) == len(entries)
