"""``senet profile`` from the command line."""

import json

import pytest

from senet.cli.main import main


# The table measures every network of the paper (senet.profiler.paper.measure, cached per process): in the
# xdist worker of tests/test_profile_paper.py, which measures the same networks, the second of the two is
# nearly free.
@pytest.mark.xdist_group("paper-profiles")
def test_paper_table(capsys):
    assert main(["profile", "--paper"]) == 0
    out = capsys.readouterr().out
    for text in (
        "Table 2",
        "Table 3",
        "SE-ResNeXt-101 (32x4d)",
        "se_resnet50(reduction=4)",
        "ours/paper",
        "Inception-ResNet-v2 (299) [1]",
        "13.2 G",
    ):
        assert text in out
    assert "FAIL" not in out
    resnet50 = next(line for line in out.splitlines() if line.startswith("ResNet-50 "))
    assert "3.86" in resnet50 and "3.858" in resnet50 and resnet50.endswith("ok")


def test_model_markdown(capsys):
    assert main(["profile", "se_resnet50", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| module | type | output |" in out
    assert "| layer1.0.se [SE_2_1] | SqueezeExcite |" in out
    assert "| total | 28.088M | 3.872G |" in out
    assert "SE/attention (16 modules)" in out


def test_model_options_and_json_file(tmp_path, capsys):
    path = tmp_path / "r.json"
    args = ["profile", "resnet50", "--attention", "se", "--reduction", "8", "--se-stages", "2", "--depth", "1"]
    assert main([*args, "--format", "json", "--out", str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["attention"]["params"] == 3 * (2 * 256 * 32 + 32 + 256)
    assert {layer["depth"] for layer in data["layers"]} == {0, 1}


def test_errors_are_one_line(capsys):
    assert main(["profile"]) == 2
    assert main(["profile", "no_such_net"]) == 2
    assert main(["profile", "--paper", "--reduction", "8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("senet profile: error:") for line in err)
