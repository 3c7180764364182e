"""First use of the command line: it never lies. A refused input is one line on stderr, exit code 2, no
traceback and no file written; defaults are the model's own; ``--help`` is instant (no torch)."""

import json
import subprocess
import sys

import pytest

from senet.bench import BenchOptions
from senet.cli.main import build_parser, main
from senet.models import create_model, get_model_entry
from senet.profiler.paper import PAPER
from senet.profiler.zoo import profile_model


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


def _refused(capsys, argv, message, folder=None):
    """Runs ``senet argv``; asserts the one-line refusal containing ``message``, and nothing written."""
    before = _files(folder) if folder is not None else None
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"senet {argv[0]}: error: "), lines[0]
    assert message in lines[0], lines[0]
    if folder is not None:
        assert _files(folder) == before
    return lines[0]


# 1. senet profile


@pytest.mark.parametrize(
    ("name", "size"),
    [("se_cifar_resnet20", [3, 32, 32]), ("wrn16_8", [3, 32, 32]), ("resnet18", [3, 224, 224]),
     ("inception_resnet_v2", [3, 299, 299])],
)  # fmt: skip
def test_profile_uses_the_models_natural_input_size(capsys, name, size):
    assert main(["profile", name, "--json", "--depth", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"] == size
    assert list(get_model_entry(name).input_size) == size
    assert list(create_model(name, in_chans=1).default_input_size) == [1, *size[1:]]


def test_explicit_input_size_and_the_paper_rows_keep_their_sizes(capsys):
    assert main(["profile", "se_cifar_resnet20", "--input-size", "3", "64", "48", "--json", "--depth", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["input_size"] == [3, 64, 48]
    assert profile_model("cifar_resnet20", (3, 224, 224)).input_size == (3, 224, 224)
    assert main(["profile", "cifar_resnet20", "--input-size", "1", "32", "32", "--json", "--depth", "1"]) == 0
    data = json.loads(capsys.readouterr().out)  # built for one channel: its first convolution has 16 x 1 x 3 x 3
    assert data["input_size"] == [1, 32, 32]
    assert next(r for r in data["layers"] if r["name"] == "conv1")["params"] == 16 * 1 * 3 * 3
    sizes = {r.model: r.input_size for r in PAPER if r.quantity in ("GFLOPs", "MFLOPs")}
    assert sizes["inception_resnet_v2"] == (3, 299, 299)
    assert {s for m, s in sizes.items() if "inception_resnet" not in m} == {(3, 224, 224)}


def test_profile_out_never_overwrites_without_force(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text("keep me\n")
    _refused(capsys, ["profile", "cifar_resnet20", "--json", "--out", str(path)], "add --force", tmp_path)
    assert path.read_text() == "keep me\n"
    assert main(["profile", "cifar_resnet20", "--json", "--out", str(path), "--force"]) == 0
    assert json.loads(path.read_text())["model"] == "cifar_resnet20"
    assert _files(tmp_path) == [path.relative_to(tmp_path)]  # written in place of the old one, no leftovers
    missing_folder = str(tmp_path / "no" / "r.json")
    _refused(capsys, ["profile", "cifar_resnet20", "--out", missing_folder], "does not exist", tmp_path)
    _refused(capsys, ["profile", "cifar_resnet20", "--force"], "--force only applies to --out", tmp_path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--input-size", "3", "32"], "--input-size takes three positive numbers C H W"),
        (["--input-size", "3", "32", "32", "32"], "got 3 32 32 32"),
        (["--input-size", "3", "0", "32"], "--input-size takes three positive numbers"),
        (["--input-size", "3", "-32", "32"], "--input-size takes three positive numbers"),
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--batch-size", "-2"], "--batch-size must be a positive integer, got -2"),
        (["--se-stages", "9"], "has no stage 9; its stages (the stem is stage 1): 2, 3, 4, 5"),
        (["--se-stages", "2", "9"], "has no stage 9"),
        (["--se-placement", "bogus"], "invalid choice: 'bogus'"),  # argparse's own refusals are one line too
        (["--input-size", "3", "x", "32"], "invalid int value: 'x'"),
        (["--json", "--format", "csv"], "--json and --format csv disagree"),
        (["--attention", "none", "--reduction", "8"], "--reduction need attention; se_resnet50 has none here"),
    ],
)
def test_profile_refuses_bad_options_in_one_line(tmp_path, capsys, options, message):
    argv = ["profile", "se_resnet50", *options, "--out", str(tmp_path / "r.txt")]
    _refused(capsys, argv, message, tmp_path)


def test_profile_refuses_an_input_the_network_cannot_take(tmp_path, capsys):
    # VGG's fifth pooling has nothing left to pool below 32 px: the forward pass's error, as one line.
    argv = ["profile", "vgg16_bn", "--input-size", "3", "16", "16", "--out", str(tmp_path / "r.txt")]
    _refused(capsys, argv, "vgg16_bn cannot take a 3x16x16 input: ", tmp_path)


def test_create_model_refuses_a_stage_the_network_does_not_have():
    with pytest.raises(ValueError, match=r"model 'se_cifar_resnet20' has no stage 5; .*: 2, 3, 4$"):
        create_model("se_cifar_resnet20", se_stages=(2, 5))
    with pytest.raises(ValueError, match="has no stage 0"):
        create_model("resnet50", attention="se", se_stages=[0])
    with pytest.raises(ValueError, match="se_stages must be integers"):
        create_model("se_resnet50", se_stages=(2.5,))
    with pytest.raises(ValueError, match="se_stages must be a sequence"):
        create_model("se_resnet50", se_stages="23")
    # A stage whose blocks carry no SE by design is still a stage (MobileNetV3's stage 5).
    assert list(create_model("mobilenet_v3_large", se_stages=(4, 5)).attention_modules())[0] == "SE_4_1"


def test_profile_json_is_format_json(capsys):
    assert main(["profile", "cifar_resnet20", "--json"]) == 0
    by_flag = capsys.readouterr().out
    assert main(["profile", "cifar_resnet20", "--format", "json"]) == 0
    assert capsys.readouterr().out == by_flag
    assert main(["profile", "cifar_resnet20", "--json", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "cifar_resnet20"


# 2. senet list, and unknown names


def test_list_applies_the_pattern_to_attention_modules(capsys):
    assert main(["list", "--attention", "s*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["scse", "se", "sse"]
    _refused(capsys, ["list", "--attention", "zz*"], "no attention module matches 'zz*'")
    _refused(capsys, ["list", "zz*"], "no model matches 'zz*'")


def test_list_finds_a_part_of_the_name_and_shows_the_input_size(capsys):
    assert main(["list", "resnet20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["cifar_resnet20", "se_cifar_resnet20"]
    assert all("3x32x32" in line for line in lines)
    assert main(["list", "se_resnet5*"]) == 0  # a glob stays a glob
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["se_resnet50"]


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("wrn16", "did you mean wrn16_8, se_wrn16_8"), ("resnet5O", "did you mean resnet50")],
)
def test_unknown_model_suggests_names_containing_it(capsys, name, suggestion):
    _refused(capsys, ["profile", name], f"unknown model {name!r}; {suggestion}")
    with pytest.raises(ValueError, match=suggestion):
        create_model(name)
    assert create_model("resnet50").default_input_size == (3, 224, 224)  # exact names are never aliases


# 3. and 4. senet --help: fast, and every option explained


def test_building_the_parser_imports_no_torch():
    code = "import sys; from senet.cli.main import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "False"
    code = "import senet; print(senet.SqueezeExcite(64).hidden, senet.models.create_model.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["4", "create_model"]  # the package's names still load, on first use


COMMANDS = (
    "list", "profile", "train", "eval", "compare", "bench", "demo", "pretrained", "convert", "export", "analyze",
    "retrofit",
)  # fmt: skip


def test_every_command_and_option_has_help():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert set(COMMANDS) <= set(helps) and all(helps.values()), helps
    for name in helps:
        parser = sub.choices[name]
        assert parser.description or name == "list", name
        parsers = [parser] + [p for a in parser._actions if a.choices and isinstance(a.choices, dict)
                              for p in a.choices.values()]  # fmt: skip
        for p in parsers:  # a command's actions (`senet pretrained list`) too
            missing = [a.dest for a in p._actions if not a.help]
            assert not missing, (name, p.prog, missing)


# 5. senet bench (nothing is timed here)


def test_bench_quick_leaves_out_the_compile_suite():
    assert BenchOptions(quick=True).suites == ["se", "network", "engine", "cifar"]
    assert BenchOptions(quick=True).skipped == ["compile"]
    assert BenchOptions(suite="compile", quick=True).suites == ["compile"]  # asked for by name: it runs
    assert BenchOptions().suites == ["se", "network", "engine", "cifar", "compile"] and not BenchOptions().skipped
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    quick = next(a for a in sub.choices["bench"]._actions if a.dest == "quick")
    assert "leaves out the compile suite" in quick.help and "about 10 s" in quick.help


def _no_suite_may_run(monkeypatch):
    import importlib

    import senet.bench.runner as runner

    real = importlib.import_module
    suites = {f"senet.bench.{module}" for module in runner.SUITES.values()}

    def guarded(name, *args):
        if name in suites:
            raise AssertionError(f"a suite ran: {name}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", guarded)


def test_bench_checks_out_before_running_anything(tmp_path, capsys, monkeypatch):
    _no_suite_may_run(monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    # A folder under a regular file can never be created, even as root (where chmod does not stop writes).
    _refused(capsys, ["bench", "--suite", "se", "--quick", "--out", str(blocker / "sub")], "cannot write the records",
             tmp_path)  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [(["--device", "bogus"], "device must be cpu, cuda or cuda:N, got 'bogus'"), (["--threads", "0"], "threads"),
     (["--suite", "nope"], "invalid choice: 'nope'")],
)  # fmt: skip
def test_bench_refuses_bad_options_in_one_line(tmp_path, capsys, monkeypatch, options, message):
    _no_suite_may_run(monkeypatch)
    _refused(capsys, ["bench", "--quick", *options, "--out", str(tmp_path / "records")], message, tmp_path)
