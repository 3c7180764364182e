"""The profiler on tiny hand-made models whose costs are computed by hand."""

import csv
import io
import json

import pytest
import torch
from torch import nn

import senet
from senet.models.base import label_attention
from senet.profiler import Cost, profile


def _paths(report):
    return [(r.name, r.total.params, r.total.macs, r.total.activation_bytes) for r in report.layers]


def test_convolution():
    r = profile(nn.Conv2d(3, 8, 3, padding=1), (3, 10, 10))
    assert r.macs == 8 * 10 * 10 * 3 * 3 * 3  # one multiply-add per output element and per kernel tap
    assert r.params == 8 * 3 * 3 * 3 + 8
    assert r.activation_bytes == 8 * 10 * 10 * 4
    assert r.device == "meta" and r.attention == Cost()


def test_grouped_strided_convolution():
    r = profile(nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False), (8, 10, 10))
    assert r.macs == 16 * 5 * 5 * (8 // 4) * 3 * 3
    assert r.params == 16 * 2 * 3 * 3


def test_transposed_convolution():
    r = profile(nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), (4, 5, 5))
    assert r.macs == 4 * 5 * 5 * (6 // 2) * 2 * 2  # every input element meets C_out/groups * k*k weights
    assert r.params == 4 * 3 * 2 * 2 + 6


@pytest.mark.parametrize("input_size, rows", [((10,), 1), ((4, 10), 4)])
def test_linear(input_size, rows):
    r = profile(nn.Linear(10, 5), input_size, batch_size=3)
    assert r.macs == 3 * rows * 10 * 5
    assert r.params == 55


def _se_macs(c, hidden, hw):
    return c * hw + c * hidden + hidden * c + c * hw  # pooling, fc1, fc2, scaling


@pytest.mark.parametrize("fast", [True, False])
def test_se_block_counts_pooling_scaling_and_both_fcs(fast):
    se = senet.SqueezeExcite(32, reduction=4, fast=fast)
    r = profile(se, (32, 7, 7), batch_size=2)
    assert r.macs == 2 * _se_macs(32, 8, 49) == 7296
    assert r.params == 2 * 32 * 8 + 8 + 32
    assert r.layer("fc1").total.macs == r.layer("fc2").total.macs == 2 * 32 * 8
    assert r.attention == r.total  # the whole model is the attention module
    assert r.attention_share() == {"params": 100.0, "macs": 100.0, "activation_bytes": 100.0}


def test_se_fast_and_reference_paths_profile_identically():
    reports = [profile(senet.SqueezeExcite(48, reduction=16, fast=f), (48, 9, 9)) for f in (True, False)]
    fast, reference = ({name: rest for name, *rest in _paths(r)} for r in reports)
    assert fast == reference


class TinyNet(nn.Module):
    """conv -> SE -> global pool -> linear, with the SE block labelled as in the zoo."""

    def __init__(self, fast=True, fused=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.se = label_attention(senet.SqueezeExcite(16, reduction=4, fast=fast, record_gate=True), 2, 1)
        self.fc = nn.Linear(16, 10)
        self.fused = fused

    def forward(self, x):
        x = self.conv(x)
        if self.fused:  # the scale fused into a residual addition, outside the SE module's forward
            x = torch.addcmul(x, x, self.se.excite(x)[:, :, None, None])
        else:
            x = x + self.se(x)
        return self.fc(x.mean((2, 3)))  # this mean is outside attention: free


def test_network_totals_and_se_share():
    r = profile(TinyNet(), (3, 8, 8))
    conv, fc, se = 16 * 64 * 27, 16 * 10, _se_macs(16, 4, 64)
    assert r.macs == conv + se + fc
    assert r.attention.macs == se
    assert r.attention.params == 2 * 16 * 4 + 4 + 16
    assert r.attention_share()["macs"] == pytest.approx(100 * se / (conv + se + fc))
    assert r.attention_share()["params"] == pytest.approx(100 * r.attention.params / r.params)
    [module] = r.attention_modules()
    assert (module.name, module.attention_label, module.total.macs) == ("se", "SE_2_1", se)
    assert r.layer("conv").attention == Cost()


def test_fused_scale_counts_like_the_module():
    plain, fused = profile(TinyNet(), (3, 8, 8)), profile(TinyNet(fused=True), (3, 8, 8))
    assert fused.macs == plain.macs and fused.attention.macs == plain.attention.macs
    assert fused.layer("se").total.macs == plain.layer("se").total.macs
    # and its bytes: the scaled map s * u (SE's) and the sum (the network's), as the module's x * s and the +
    assert fused.activation_bytes == plain.activation_bytes
    assert fused.layer("se").total.activation_bytes == plain.layer("se").total.activation_bytes


def test_unregistered_module_with_attention_label_counts_its_pooling():
    class Gate(nn.Module):
        def forward(self, x):
            return x * x.amax((2, 3), keepdim=True).sigmoid()

    gate = Gate()
    assert profile(gate, (4, 5, 5)).macs == 0  # not attention: elementwise work is free
    gate.attention_label = "SE_3_1"
    assert profile(gate, (4, 5, 5)).macs == 2 * 4 * 25


def test_model_is_left_untouched():
    model = TinyNet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    profile(model, (3, 8, 8))
    assert model.training and model.se.training
    assert model.se.last_gate is None
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_model_that_cannot_run_on_meta_runs_on_its_device():
    class ReadsValues(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) * float(x.abs().sum().item() >= 0)

    r = profile(ReadsValues(), (4,))
    assert (r.device, r.macs) == ("cpu", 16)


def test_shared_parameters_count_once():
    model = nn.Sequential(nn.Linear(6, 6, bias=False), nn.ReLU())
    model.append(model[0])
    r = profile(model, (6,))
    assert (r.params, r.macs) == (36, 72)


def test_depth_rolls_up_to_the_total():
    r = profile(TinyNet(), (3, 8, 8))
    top = r.rows(depth=1)
    assert [x.name for x in top] == ["", "conv", "se", "fc"]
    assert sum((x.total for x in top[1:]), r.layers[0].own) == r.total
    assert [x.name for x in r.rows(depth=0)] == [""]


def test_formats():
    r = profile(TinyNet(), (3, 8, 8), name="tiny")
    table = r.format("table")
    assert "tiny" in table and "se [SE_2_1]" in table and "SE/attention (1 modules)" in table
    assert r.format("markdown").count("\n| ") > 5
    data = json.loads(r.format("json", depth=1))
    assert data["total"] == {"params": r.params, "macs": r.macs, "activation_bytes": r.activation_bytes}
    assert data["attention_modules"][0]["label"] == "SE_2_1" and len(data["layers"]) == 4
    rows = list(csv.DictReader(io.StringIO(r.format("csv"))))
    assert int(rows[0]["macs"]) == r.macs and {row["name"] for row in rows} >= {"se.fc1", "se.fc2"}
    with pytest.raises(ValueError, match="valid: table, markdown, json, csv"):
        r.format("html")


def test_invalid_input_size():
    with pytest.raises(ValueError, match="input_size"):
        profile(nn.Linear(2, 2), (0,))
