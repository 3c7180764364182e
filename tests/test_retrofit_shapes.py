"""senet.retrofit on the shapes it once refused (timm's EfficientNet, MobileNetV2, RegNet, CSPResNet,
torchvision's ConvNeXt; see ``retrofit_nets.py``): identity start, one module per block, every new
parameter trained; the refusal of a network with no place; multiply-adds at the network's own size.

Outputs are compared with ``torch.equal``: the identity start multiplies by exactly 1.0 and the return to
the paper's gate by powers of two, so no tolerance is needed (or allowed).
"""

import contextlib
import copy
import io
import json
from pathlib import Path

import pytest
import torch
from retrofit_nets import NETWORKS, ChannelsLastNet, PlainConvNet
from retrofit_table import TABLE_BEGIN, TABLE_END, table
from torch import nn

import senet
from senet.cli.main import main
from senet.retrofit import DoubledGate, attention_modules, retrofit, to_paper_gate

X = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
TARGET = torch.tensor([0, 3, 5, 9])


def build(name):
    """The network with random norm statistics and affine parameters, so a norm is not the identity."""
    torch.manual_seed(1)
    model = NETWORKS[name][0]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model


def run(model, train):
    """One forward pass with the same drop-path draws every time (both networks draw the same numbers)."""
    torch.manual_seed(2)
    return model.train(train)(X)


def owner(path):
    return path.rsplit(".", 1)[0]


@pytest.mark.parametrize("name", NETWORKS)
def test_identity_start_is_bit_exact_in_eval_and_training_mode(name):
    model = build(name)
    new, report = retrofit(model, reduction=4)
    assert report.method == "fx" and len(report.inserted) > 0
    assert all(isinstance(m.gate, DoubledGate) for m in attention_modules(new).values())
    for train in (False, True):
        plain, retrofitted = copy.deepcopy(model), copy.deepcopy(new)  # training mode moves BN statistics
        with torch.no_grad():
            assert torch.equal(run(retrofitted, train), run(plain, train)), f"train={train}"
        if train:  # the batch statistics moved the same way: the norms saw the same tensors
            moved = retrofitted.state_dict()
            for key, value in plain.state_dict().items():
                assert torch.equal(moved[key], value), key


@pytest.mark.parametrize("name", NETWORKS)
def test_one_attention_module_in_every_residual_block_and_nowhere_else(name):
    model = build(name)
    blocks = NETWORKS[name][1](model)
    new, report = retrofit(model, reduction=4)
    assert len(blocks) >= 3
    assert [owner(m.path) for m in report.inserted] == blocks
    for block in blocks:
        inside = [m for m in new.get_submodule(block).modules() if hasattr(m, "attention_label")]
        assert len(inside) == 1, block
    assert len(attention_modules(new)) == len(blocks)
    assert all(m.position.startswith("residual branch") for m in report.inserted)


@pytest.mark.parametrize("name", NETWORKS)
def test_gradients_reach_every_new_parameter(name):
    model, _ = retrofit(build(name), reduction=4)
    modules = list(attention_modules(model).values())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(run(model, True), TARGET).backward()
    # Step 1: the zero last layer gets a gradient; the first layer's is exactly zero (W2 = 0).
    for se in modules:
        assert se.fc2.weight.grad.abs().sum() > 0 and se.fc2.bias.grad.abs().sum() > 0, se.attention_label
        assert se.fc1.weight.grad is not None and torch.count_nonzero(se.fc1.weight.grad) == 0
    optimizer.step()
    optimizer.zero_grad()
    nn.functional.cross_entropy(run(model, True), TARGET).backward()
    # Step 2: every new parameter has a non-zero gradient.
    for se in modules:
        for pname, p in se.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{se.attention_label}.{pname}"


@pytest.mark.parametrize("name", NETWORKS)
def test_back_to_the_paper_gate_exactly_after_training(name):
    model, _ = retrofit(build(name), reduction=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(run(model, True), TARGET).backward()
        optimizer.step()
    paper = to_paper_gate(model)
    assert not any(isinstance(m.gate, DoubledGate) for m in attention_modules(paper).values())
    with torch.no_grad():
        assert torch.equal(run(paper, False), run(model, False))
        assert torch.equal(run(copy.deepcopy(paper), True), run(copy.deepcopy(model), True))


def test_a_norm_that_applies_silu_cannot_take_the_paper_gate_s_factor_2():
    # silu(2a) != 2 silu(a): after timm's BatchNormAct2d with SiLU, to_paper_gate must refuse, not drift.
    model, report = retrofit(build("efficientnet_b0"), where="blocks.1.0.conv_pw", input_size=32)
    assert [m.path for m in report.inserted] == ["blocks.1.0.bn1.se"]
    with pytest.raises(ValueError, match="no layer next to it can take the doubled gate's factor 2"):
        to_paper_gate(model)
    relu6, _ = retrofit(build("mobilenetv2"), where="blocks.1.0.conv_pw", input_size=32)
    with pytest.raises(ValueError, match="no layer next to it"):
        to_paper_gate(relu6)  # ReLU6 clips: 2 relu6(a) != relu6(2a) either
    relu, _ = retrofit(build("regnet"), where="s1.b1.conv1.conv", input_size=32)  # ReLU: exact
    with torch.no_grad():
        assert torch.equal(run(to_paper_gate(relu), False), run(relu, False))


@pytest.mark.parametrize(
    "name, hooked, exact",
    [("efficientnet_b0", "blocks.0.0.bn1", False), ("regnet", "s1.b1.conv2.bn", True),
     ("cspresnet", "stages.0.blocks.0.conv2.bn", True)],
)  # fmt: skip
def test_after_3x3_attends_the_output_of_a_norm_that_applies_the_activation(name, hooked, exact):
    # EfficientNet's own SE position: after the depthwise 3x3 convolution's BatchNormAct2d.
    model = build(name)
    new, report = retrofit(model, reduction=4, placement="after_3x3")
    assert [owner(m.path) for m in report.inserted] == NETWORKS[name][1](model)
    assert report.inserted[0].position == f"after {hooked} (the 3x3 convolution's)"
    with torch.no_grad():
        assert torch.equal(run(new, False), run(model, False))
    if exact:  # ReLU, LeakyReLU: the factor 2 passes the norm's activation
        with torch.no_grad():
            assert torch.equal(run(to_paper_gate(new), False), run(new, False))
    else:  # SiLU
        with pytest.raises(ValueError, match="no layer next to it"):
            to_paper_gate(new)


def test_convnext_attends_the_channels_first_branch_before_the_layer_scale():
    model = build("convnext")
    new, report = retrofit(model, reduction=4)
    first = report.inserted[0]
    assert (first.path, first.channels) == ("features.1.0.se", 8)
    assert first.position == "residual branch, after features.1.0.block.6, before the addition"
    assert [m.label for m in report.inserted] == ["SE_2_1", "SE_2_2", "SE_3_1", "SE_3_2"]


def test_timm_convnext_attends_the_channels_last_mlp_output_through_permutes():
    model = build("convnext_timm")
    new, report = retrofit(model, reduction=4)
    first = report.inserted[0]
    assert (first.path, first.channels) == ("stages.0.blocks.0.se", 8)
    assert first.position == "residual branch, after stages.0.blocks.0.mlp.drop2 (channels-last), before the addition"
    seen = {}
    new.stages[1].blocks[0].se.register_forward_hook(lambda m, args, out: seen.update(shape=args[0].shape))
    new(X)
    assert seen["shape"] == (4, 16, 4, 4)  # SE sees (N, C, H, W), C = 16 at 4 x 4; the MLP emitted (N, H, W, C)


def test_a_branch_ending_channels_last_is_not_taken_for_a_channels_first_one():
    # The blocks add a Linear's (N, H, W, C) output: SE there would pool over W and C, not H and W.
    with pytest.raises(ValueError, match="found no residual block"):
        retrofit(ChannelsLastNet())


def test_a_network_without_places_is_refused_in_one_line_that_says_how_to_name_them():
    with pytest.raises(ValueError) as info:
        retrofit(PlainConvNet())
    message = str(info.value)
    assert "\n" not in message
    assert "looked for residual blocks and conv + norm pairs" in message
    assert "where=['features.0', 'features.3'] (CLI: --where features.0,features.3)" in message


def test_where_names_any_convolution_when_there_is_no_default_place():
    model = PlainConvNet().eval()
    new, report = retrofit(model, where=["features.0", "features.3"], input_size=32)
    assert [m.path for m in report.inserted] == ["features.0.se", "features.3.se"]
    assert [m.label for m in report.inserted] == ["SE_1_1", "SE_2_1"]  # a pooling between them
    with torch.no_grad():
        assert torch.equal(new.eval()(X), model(X))
    with pytest.raises(ValueError, match=r"'features\.1' is neither .* did you mean features\.\d"):
        retrofit(model, where="features.1")


def test_multiply_adds_are_counted_at_the_network_s_own_input_size():
    # No recorded size, no argument: not counted, rather than counted at a guessed 224 px.
    _, unknown = retrofit(build("regnet"), reduction=4)
    assert unknown.macs_added is None and "input_size=" in unknown.macs_note
    # An image side (channels from the model) or a full (C, H, W).
    plain = build("regnet")
    new, side = retrofit(plain, reduction=4, input_size=32)
    assert side.input_size == (3, 32, 32) and side.input_size_source == "input_size argument"
    assert side.macs_added == senet.profile(new, (3, 32, 32)).macs - senet.profile(plain, (3, 32, 32)).macs
    assert retrofit(plain, reduction=4, input_size=(3, 32, 32))[1].macs_added == side.macs_added
    # A zoo model records its size: the CIFAR ResNet is profiled at 32 px, not 224.
    cifar = senet.create_model("cifar_resnet20")
    _, zoo = retrofit(cifar)
    assert zoo.input_size == (3, 32, 32) and zoo.input_size_source == "model.default_input_size"
    assert "Multiply-adds at 3x32x32 (model.default_input_size)" in zoo.summary()
    assert zoo.macs_added == 174_384  # docs/retrofit.md's row; at 224 px it would be 49 times larger
    with pytest.raises(ValueError, match=r"the image side \(input_size; CLI --image-size\) must be positive, got 0"):
        retrofit(cifar, input_size=0)
    with pytest.raises(ValueError, match="input_size must hold positive integers"):
        retrofit(cifar, input_size=(3, 0, 32))


def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def test_cli_image_size_sets_where_multiply_adds_are_counted(tmp_path):
    plain = senet.create_model("cifar_resnet20")
    torch.save(plain.state_dict(), tmp_path / "plain.pth")
    reports = {}
    for size in (None, 64):
        out = tmp_path / f"rf{size}"
        extra = ("--image-size", size) if size else ()
        code, _, err = cli("retrofit", "--model", "cifar_resnet20", "--weights", tmp_path / "plain.pth",
                           "--out", out, *extra)  # fmt: skip
        assert code == 0, err
        reports[size] = json.loads((out / "retrofit.json").read_text())["report"]
    assert reports[None]["input_size"] == [3, 32, 32] and reports[64]["input_size"] == [3, 64, 64]
    assert reports[64]["macs_added"] == retrofit(plain, input_size=64)[1].macs_added != reports[None]["macs_added"]


def test_docs_table_matches_the_test_networks():
    docs = (Path(__file__).parents[1] / "docs" / "retrofit.md").read_text()
    start, end = docs.index(TABLE_BEGIN) + len(TABLE_BEGIN), docs.index(TABLE_END)
    assert docs[start:end].strip() == table().strip(), "regenerate it: python tests/retrofit_table.py"
