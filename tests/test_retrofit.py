"""senet.retrofit: attention inserted into CNNs written without it, starting as the identity.

The networks (tests/retrofit_classics.py) are written in the styles of torchvision's ResNet, MobileNetV2,
timm's bottleneck and others, not taken from this library; the zoo's ResNets serve as the independent
reference for parameter counts, multiply-adds and placements.
"""

import copy
import pickle

import pytest
import torch
from retrofit_classics import (
    BasicBlock,
    DynamicResNet,
    InvertedResidual,
    InvertedResidualNet,
    PlainResNet,
    PreActBlock,
    TimmBottleneck,
    randomise_norms,
    vgg_style,
)
from torch import nn

import senet
from senet.retrofit import DoubledGate, attention_modules, attention_paths, retrofit, to_paper_gate

torch.manual_seed(0)


def attention_children(module):
    return [m for m in module.modules() if hasattr(m, "attention_label")]


X = torch.randn(4, 3, 32, 32)
NETWORKS = {"plain_resnet": (PlainResNet, BasicBlock), "inverted_residual": (InvertedResidualNet, InvertedResidual)}


# --- Acceptance: identity start, one module per block, gradients, training moves the gates ------------
@pytest.mark.parametrize("network", NETWORKS)
def test_identity_init_keeps_outputs_and_puts_one_module_per_residual_block(network):
    net_cls, block_cls = NETWORKS[network]
    model = randomise_norms(net_cls()).eval()
    with torch.no_grad():
        before = model(X)
    new, report = retrofit(model, reduction=4)
    with torch.no_grad():
        after = new.eval()(X)
    torch.testing.assert_close(after, before, atol=1e-6, rtol=0)
    assert torch.equal(after, before)  # x * 1.0 is x: exact, not merely close
    residual = [m for m in new.modules() if isinstance(m, block_cls) and getattr(m, "use_res_connect", True)]
    assert len(residual) == 4 and len(report.inserted) == 4
    assert all(len(attention_children(block)) == 1 for block in residual)
    assert report.method == "fx"
    assert all(isinstance(m.gate, DoubledGate) for m in attention_modules(new).values())
    assert model is not new and not attention_children(model)  # inplace=False left the original alone


@pytest.mark.parametrize("network", NETWORKS)
def test_gradients_reach_every_new_parameter(network):
    model, _ = retrofit(randomise_norms(NETWORKS[network][0]()), reduction=4)
    modules = attention_modules(model).values()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    target = torch.randint(0, 10, (X.shape[0],))
    nn.functional.cross_entropy(model(X), target).backward()
    # Step 1: the zero-initialised last layer gets a gradient; the first layer's is defined but exactly
    # zero, dL/dW1 = W2^T (...) with W2 = 0 (see senet/retrofit/identity.py).
    for se in modules:
        assert se.fc2.weight.grad.abs().sum() > 0 and se.fc2.bias.grad.abs().sum() > 0
        assert se.fc1.weight.grad is not None and torch.count_nonzero(se.fc1.weight.grad) == 0
    optimizer.step()
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(X), target).backward()
    # Step 2: every new parameter has a non-zero gradient.
    for se in modules:
        for name, p in se.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("network", NETWORKS)
def test_a_few_training_steps_change_the_gates(network):
    model, _ = retrofit(randomise_norms(NETWORKS[network][0]()), reduction=4)
    modules = list(attention_modules(model).values())
    for se in modules:
        se.record_gate = True
    model.eval()(X)
    assert all(torch.equal(se.last_gate, torch.ones_like(se.last_gate)) for se in modules)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    target = torch.randint(0, 10, (X.shape[0],))
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X), target).backward()
        optimizer.step()
    model.eval()(X)
    for se in modules:
        assert (se.last_gate - 1).abs().max() > 1e-4, se.attention_label
        assert se.last_gate.std(dim=0).max() > 0  # input-dependent: the gate differs between images


# --- Insertion: keys, labels, copies -------------------------------------------------------------------
def test_state_dict_keys_are_kept_and_the_new_ones_are_the_attention_modules():
    model = randomise_norms(PlainResNet())
    new, report = retrofit(model)
    old_keys, new_keys = set(model.state_dict()), set(new.state_dict())
    assert old_keys < new_keys
    assert {k.rpartition(".")[0].rpartition(".")[0] for k in new_keys - old_keys} == {m.path for m in report.inserted}
    assert [m.path for m in report.inserted] == ["layer1.0.se", "layer1.1.se", "layer2.0.se", "layer2.1.se"]
    # The pretrained checkpoint loads into the retrofitted network: only the new modules are missing.
    fresh, _ = retrofit(PlainResNet())
    result = fresh.load_state_dict(model.state_dict(), strict=False)
    assert set(result.missing_keys) == new_keys - old_keys and not result.unexpected_keys
    # ...and the retrofitted weights load into a network retrofitted the same way.
    again, _ = retrofit(PlainResNet())
    again.load_state_dict(new.state_dict())
    with torch.no_grad():
        assert torch.equal(again.eval()(X), new.eval()(X))


def test_labels_and_attention_modules_naming():
    model, report = retrofit(InvertedResidualNet())
    assert [m.label for m in report.inserted] == ["SE_2_1", "SE_3_1", "SE_4_1", "SE_4_2"]  # new stage per stride
    assert list(attention_modules(model)) == ["SE_2_1", "SE_3_1", "SE_4_1", "SE_4_2"]
    assert attention_paths(model)["SE_4_2"] == "features.6.se"
    zoo, zoo_report = retrofit(senet.create_model("resnet18"))
    # The zoo's own method and the paper's names (conv2_x is stage 2), as in se_resnet18.
    assert list(zoo.attention_modules()) == list(senet.create_model("se_resnet18").attention_modules())
    assert zoo_report.inserted[0].path == "layer1.0.retrofit_se"  # the zoo's blocks keep se = None


def test_deepcopy_and_pickle_carry_the_hooks_to_the_copy():
    model, _ = retrofit(randomise_norms(PlainResNet()))
    model.eval()
    with torch.no_grad():
        reference = model(X)
        clone = copy.deepcopy(model)
        for se in attention_modules(clone).values():
            se.fc2.bias.fill_(3.0)  # gate 2 * sigmoid(3) != 1: the copy's output must change...
        assert not torch.allclose(clone(X), reference)
        assert torch.equal(model(X), reference)  # ...and the original's must not
        restored = pickle.loads(pickle.dumps(clone))
        assert torch.equal(restored(X), clone(X))


# --- The zoo as an independent reference ----------------------------------------------------------------
def test_resnet50_retrofit_adds_what_se_resnet50_has():
    plain, se = senet.create_model("resnet50"), senet.create_model("se_resnet50")
    size = (3, 64, 64)
    _, report = retrofit(plain, identity_init=False, input_size=size)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert len(report.inserted) == 16
    assert report.params_added == params(se) - params(plain) == 2_530_992
    se_macs = senet.profile(se, size).macs - senet.profile(plain, size).macs
    assert report.macs_added == se_macs
    _, identity = retrofit(plain, input_size=size)
    assert identity.params_added == report.params_added
    # The doubled gate's 2 * sigma(z): one multiplication per channel and block.
    assert identity.macs_added == se_macs + sum(m.channels for m in identity.inserted)


@pytest.mark.parametrize("placement", ["standard", "pre", "post", "after_3x3"])
def test_placements_compute_what_the_zoo_computes(placement):
    """Retrofitted resnet18 with SE weights copied into the zoo's se_resnet18 at the same placement."""
    plain = randomise_norms(senet.create_model("resnet18", num_classes=10)).eval()
    model, report = retrofit(plain, placement=placement, identity_init=False)
    assert len(report.inserted) == 8
    zoo = senet.create_model("se_resnet18", num_classes=10, se_placement=placement).eval()
    state = {k.replace(".retrofit_se.", ".se."): v for k, v in model.state_dict().items()}
    zoo.load_state_dict(state)
    x = torch.randn(2, 3, 64, 64).double()
    with torch.no_grad():  # float64, as in the fine-tuned twin test below: different kernels, ReLU kinks
        torch.testing.assert_close(model.eval().double()(x), zoo.double()(x), atol=1e-9, rtol=1e-9)


def test_identity_placement_on_projection_shortcuts():
    plain = randomise_norms(PlainResNet()).eval()
    model, report = retrofit(plain, placement="identity", where="layer2.0")
    assert [m.position for m in report.inserted] == ["shortcut, after layer2.0.downsample.1"]
    with torch.no_grad():
        assert torch.equal(model.eval()(X), plain(X))


# --- Other shapes: no residual blocks, untraceable forward, where ---------------------------------------
def test_vgg_style_network_takes_attention_after_chosen_conv_norm_layers():
    model = randomise_norms(vgg_style()).eval()
    with torch.no_grad():
        before = model(X)
    new, report = retrofit(model, where=["0", "8"])  # a conv's name stands for its conv + norm pair
    assert [m.place for m in report.inserted] == ["1", "8"]
    assert [m.path for m in report.inserted] == ["2.se", "9.se"]  # after the ReLU following each norm
    assert [m.label for m in report.inserted] == ["SE_1_1", "SE_2_1"]  # the max pool starts stage 2
    with torch.no_grad():
        assert torch.equal(new.eval()(X), before)
    _, every = retrofit(model)  # no residual block: every conv + norm pair
    assert [m.place for m in every.inserted] == ["1", "4", "8"]


class FunctionalPools(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv3, self.bn3 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)

    def forward(self, x):
        x = nn.functional.max_pool2d(self.bn1(self.conv1(x)), 2)  # halves the resolution: a new stage
        x = nn.functional.avg_pool2d(self.bn2(self.conv2(x)), 3, 1, 1)  # stride 1: the same stage
        return self.bn3(self.conv3(x))


def test_stages_follow_resolution_changes():
    _, report = retrofit(FunctionalPools())
    assert [m.label for m in report.inserted] == ["SE_1_1", "SE_2_1", "SE_2_2"]
    assert [m.position for m in report.inserted] == ["after bn1", "after bn2", "after bn3"]  # no activation module


def test_untraceable_network_goes_the_structural_path():
    model = randomise_norms(DynamicResNet()).eval()
    with torch.no_grad():
        before = model(X)
    new, report = retrofit(model, reduction=4)
    assert report.method == "structural" and "torch.fx could not trace DynamicResNet" in report.note
    assert [m.place for m in report.inserted] == ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    with torch.no_grad():
        assert torch.equal(new.eval()(X), before)


@pytest.mark.parametrize("placement", ["standard", "pre", "post", "after_3x3"])
def test_timm_style_blocks(placement):
    model = randomise_norms(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), TimmBottleneck(16, 8), TimmBottleneck(32, 8)))
    new, report = retrofit(model.train(), placement=placement)  # traced in eval mode: drop path is not frozen
    assert [m.path for m in report.inserted] == ["1.retrofit_se", "2.retrofit_se"]  # se = None is the block's
    assert new.training and new[1].retrofit_se.training
    with torch.no_grad():
        assert torch.equal(new.eval()(X), model.eval()(X))
    new.train()(X)  # drop path still active in training mode (no error, random masks)


def test_preactivation_blocks():
    model = randomise_norms(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), PreActBlock(16), PreActBlock(16)))
    _, standard = retrofit(model)
    assert standard.inserted[0].position == "residual branch, after 1.conv2, before the addition"
    post, report = retrofit(model, placement="post")
    assert report.inserted[0].position == "after the addition, on 1's output"
    with torch.no_grad():
        assert torch.equal(post.eval()(X), model.eval()(X))


def test_where_takes_names_and_predicates():
    _, by_name = retrofit(PlainResNet(), where=["layer2.1", "layer1.0"])
    assert [m.place for m in by_name.inserted] == ["layer1.0", "layer2.1"]  # forward order
    assert [m.label for m in by_name.inserted] == ["SE_2_1", "SE_3_2"]  # the labels of the full retrofit
    _, by_predicate = retrofit(PlainResNet(), where=lambda name, module: name.startswith("layer2"))
    assert [m.place for m in by_predicate.inserted] == ["layer2.0", "layer2.1"]


# --- Profiler, report, paper gate ------------------------------------------------------------------------
def test_profiler_sees_the_retrofitted_modules():
    model, report = retrofit(PlainResNet(), input_size=(3, 32, 32))
    profiled = senet.profile(model, (3, 32, 32))
    labels = [layer.attention_label for layer in profiled.attention_modules()]
    assert labels == ["SE_2_1", "SE_2_2", "SE_3_1", "SE_3_2"]
    assert profiled.params == report.params_after and profiled.macs == report.macs_after
    assert sum(m.macs for m in report.inserted) == report.macs_added
    # SE at C = 16, r = 16 on 32x32: squeeze C*H*W + fc1 C*1 + fc2 1*C + doubling C + scale C*H*W.
    assert report.inserted[0].macs == 2 * 16 * 32 * 32 + 16 + 16 + 16
    table = report.format("markdown")
    assert "| SE_2_1 | layer1.0.se | layer1.0 |" in table and f"{report.params_added:,}" in table


def test_to_paper_gate_returns_to_sigmoid_exactly_after_fine_tuning():
    for placement, where in (("standard", None), ("pre", None), ("identity", "layer2.0")):
        model, _ = retrofit(randomise_norms(PlainResNet()), reduction=4, placement=placement, where=where)
        fine_tune(model)
        paper = to_paper_gate(model.eval())
        assert all(isinstance(m.gate, nn.Sigmoid) for m in attention_modules(paper).values())
        with torch.no_grad():
            assert torch.equal(paper.eval()(X), model(X))  # powers of two: exact, in eval mode...
            assert torch.equal(paper.train()(X), model.train()(X))  # ...and in training mode
    vgg, _ = retrofit(randomise_norms(vgg_style()))
    fine_tune(vgg)
    with torch.no_grad():
        assert torch.equal(to_paper_gate(vgg).eval()(X), vgg.eval()(X))


def fine_tune(model):
    """Moves every parameter away from the identity start: two SGD steps, then noise on the attention."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(X).square().mean().backward()
        optimizer.step()
    with torch.no_grad():
        for module in attention_modules(model).values():
            for p in module.parameters():
                p.add_(0.3 * torch.randn_like(p))


def test_fine_tuned_retrofit_of_a_zoo_resnet_becomes_its_se_twin():
    """Identity start, fine-tuning, paper gate: the weights then load into se_resnet18 and compute the same."""
    plain = randomise_norms(senet.create_model("resnet18", num_classes=10))
    model, _ = retrofit(plain)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for module in attention_modules(model).values():
            for p in module.parameters():
                p.add_(0.3 * torch.randn_like(p))
    paper = to_paper_gate(model).eval()
    zoo = senet.create_model("se_resnet18", num_classes=10).eval()
    zoo.load_state_dict({k.replace(".retrofit_se.", ".se."): v for k, v in paper.state_dict().items()})
    # In float64: the two compute the same function by different kernels (the zoo's fused scale-and-residual,
    # the retrofit's hooks), and in float32 a ReLU input within rounding of zero flips between them and
    # spreads through the following layers (2.3e-5 of the logits measured on one Xeon); in float64 such a
    # flip needs a value within 1e-15 of the kink, so 1e-9 separates rounding from a real difference.
    with torch.no_grad():
        torch.testing.assert_close(zoo.double()(x.double()), model.eval().double()(x.double()), atol=1e-9, rtol=1e-9)


# --- Refusals: one line each ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, kwargs, message",
    [
        (lambda: senet.create_model("se_resnet18"), {}, "already has attention"),
        (lambda: retrofit(PlainResNet())[0], {}, "already has attention"),
        (lambda: nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), {}, "no residual block"),
        (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), {}, "no convolution followed by a normalisation"),
        (PlainResNet, {"placement": "standrd"}, "unknown placement 'standrd'; did you mean standard"),
        (PlainResNet, {"where": ["layer1.3"]}, "'layer1.3' is neither a residual block nor a conv/norm layer"),
        (PlainResNet, {"where": lambda name, m: False}, "where chose none of the 4 places"),
        (PlainResNet, {"placement": "post"}, "the sum feeds neither one activation module called once"),
        (PlainResNet, {"placement": "identity"}, "adds its input unchanged (identity shortcut)"),
        (PlainResNet, {"attention": "cbam"}, "identity_init supports the attention modules"),
        (PlainResNet, {"attention": "sse", "reduction": 8}, "takes no reduction"),
        (PlainResNet, {"attention": "nope"}, "unknown attention 'nope'"),
        (vgg_style, {"placement": "pre"}, "placement 'pre' applies to residual blocks"),
    ],
)
def test_refusals_are_one_clear_line(make, kwargs, message):
    with pytest.raises(ValueError) as info:
        retrofit(make(), **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_where_suggests_close_names():
    with pytest.raises(ValueError, match=r"did you mean .*layer1\.0"):
        retrofit(PlainResNet(), where="layer1.O")


def test_post_placement_refusal_of_to_paper_gate_and_other_attention():
    model, report = retrofit(senet.create_model("resnet18"), placement="post", where="layer1.0")
    assert report.inserted[0].position == "after the addition, before layer1.0.act2"
    with pytest.raises(ValueError, match="no layer next to it can take the doubled gate's factor 2"):
        to_paper_gate(model)
    plain = randomise_norms(PlainResNet()).eval()
    eca, eca_report = retrofit(plain, "eca")
    with torch.no_grad():
        assert torch.equal(eca.eval()(X), plain(X))
    assert eca_report.attention == "eca" and len(eca_report.inserted) == 4


def test_senet_retrofit_is_callable_and_importable():
    assert callable(senet.retrofit)
    model, report = senet.retrofit(PlainResNet())
    assert len(report.inserted) == 4
