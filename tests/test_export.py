"""Export to ONNX and TorchScript: every family, every attention module, every SE placement, on SE's fast
path; the files agree with eager PyTorch at two batch sizes and two input sizes, SE's squeeze is a global
mean, and the verification catches a planted mismatch. ``senet export`` refuses bad input in one line.

Tolerance: 1e-4 relative to the largest output (``senet.export.RTOL``). The file and PyTorch both compute
in float32 but with different kernels (onnxruntime's MLAS, TorchScript's graph executor vs eager ATen and
oneDNN), which sum in different orders; float32's epsilon (6e-8), grown by the square root of a
convolution's 10^3..10^4 terms and compounded over the layers, gives the 1e-7..2e-6 measured here
(docs/export.md). A real defect (a wrong weight, a dropped op, a size baked into the graph) is 1e-2 or more.
"""

import contextlib
import functools
import json
import sys
from collections import Counter

import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import senet
from senet.cli.main import main
from senet.export import (
    RTOL,
    MissingDependencyError,
    VerificationError,
    export_onnx,
    export_torchscript,
)
from senet.export import _onnx as onnx_module
from senet.export import _torchscript as torchscript_module
from senet.export._mode import export_mode
from senet.export._onnx import squeeze_nodes
from senet.layers import SqueezeExcite
from senet.models.registry import PLACEMENTS, get_model_entry
from senet.train.checkpoint import save_weights
from senet.train.config import TrainConfig

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

# One network per family (the SE variant), at a small input. Where the full network does not fit the test
# budget, fewer blocks of the same kinds (docs/export.md has the full networks' errors at their own sizes):
# - resnet, resnext: a projection and an identity block in stages 2 and 3, a projection block after;
# - preact: two bottlenecks per stage. At random weights ResNet-164's float32 output is already 1e-4 from
#   float64 (measured; 54 residual additions without a closing BatchNorm amplify rounding), so no float32
#   file can match it to 1e-4; with fewer blocks it is 1e-7, like the others;
# - inception_resnet_v2: one block of each of A, B and C (each with SE) between the same stem and reductions;
# - vgg: its head pools adaptively to 7x7, which ONNX cannot express for a free input size (the file falls
#   back to a fixed size, see test_fixed_size_fallback), and fc6 would be 25088 x 4096. pool_size=1 and
#   narrower fc6, fc7 keep every SE block and export with a free size.
FAMILIES = {
    "resnet": ("se_resnet50", 64, {"layers": (2, 2, 1, 1)}),
    "resnext": ("se_resnext50_32x4d", 64, {"layers": (2, 2, 1, 1)}),
    "cifar_resnet": ("se_cifar_resnet20", 32, {}),
    "preact": ("se_preact_resnet164", 32, {"layers": (2, 2, 2)}),
    "wrn": ("se_wrn16_8", 32, {}),
    "vgg": ("se_vgg16_bn", 64, {"pool_size": 1, "hidden_features": 256}),
    "densenet": ("se_densenet121", 64, {}),
    "mobilenet_v1": ("se_mobilenet_v1", 64, {}),
    "mobilenet_v3": ("mobilenet_v3_large", 64, {}),
    "efficientnet": ("efficientnet_b0", 64, {}),
    "shufflenet": ("se_shufflenet_v1_g3", 64, {}),
    "bn_inception": ("se_bn_inception", 64, {}),
    "inception_resnet_v2": ("se_inception_resnet_v2", 32, {"blocks": (1, 1, 1)}),  # padded to 75 in the graph
}


def _model(name, **options):
    """``name`` with non-trivial BatchNorm statistics and affine parameters (so folding BN into the
    convolutions, which the exporter does, is exercised), in training mode as ``create_model`` returns it."""
    torch.manual_seed(0)
    model = senet.create_model(name, **options)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            with torch.no_grad():
                m.weight.uniform_(0.8, 1.2), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.8, 1.2)
    return model


@functools.cache
def _family_model(family):
    """The network of a FAMILIES row, built once per test process and shared by its ONNX and TorchScript
    tests (each export restores the model's mode and weights, which test_export_leaves_the_model_as_it_was
    checks); both tests of a family run in one xdist worker (``xdist_group``, with ``--dist loadgroup``)."""
    name, _, options = FAMILIES[family]
    return _model(name, **options)


def _family_params(families):
    return [pytest.param(f, marks=pytest.mark.xdist_group(f"export-{f}")) for f in families]


def _se_modules(model):
    return [m for m in model.modules() if isinstance(m, SqueezeExcite)]


def _checked(size):
    """The shapes a dynamic-batch export is verified at: batch 1 and 3, then a second size (32 -> 40)."""
    return [(1, 3, size, size), (3, 3, size, size), (3, 3, size + 8, size + 8)]


def _ort_run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": x.numpy()})[0])


def test_families_cover_the_registry():
    """A new family of networks needs a row in FAMILIES."""
    covered = {get_model_entry(name).builder for name, _, _ in FAMILIES.values()}
    missing = sorted({n for n in senet.list_models() if get_model_entry(n).builder not in covered})
    assert not missing, missing


@pytest.mark.parametrize("family", _family_params(FAMILIES))
def test_onnx_matches_pytorch(family, tmp_path):
    _, size, _ = FAMILIES[family]
    model = _family_model(family).train()
    se = _se_modules(model)
    assert se and all(m.fast for m in se)  # exported from the fast path (the default)
    report = export_onnx(model, tmp_path / "m.onnx", input_size=size, dynamic_batch=True)
    assert report.verified and report.fixed_size_reason is None
    assert [c.input_shape for c in report.checks] == _checked(size)
    assert report.max_rel_error <= RTOL
    assert report.fast_path_fallback == len(se) and all(m.fast for m in se) and model.training  # restored

    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.opset_import[0].version == 17
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node)  # standard ops only
    ops = Counter(node.op_type for node in proto.graph.node)
    assert "ReduceSum" not in ops  # the fast path's sum with a baked 1/(H*W) did not leak into the file
    # Every SE module's squeeze is a global mean over H and W, never a fixed-size AveragePool.
    found = squeeze_nodes(proto, model)
    assert len(found) == len(se)
    for path, node_ops in found.items():
        assert "ReduceMean" in node_ops or "GlobalAveragePool" in node_ops, (path, node_ops)
        assert "AveragePool" not in node_ops, (path, node_ops)
    for node in proto.graph.node:
        if node.op_type == "ReduceMean" and "/se/" in node.name:
            axes = next(a.ints for a in node.attribute if a.name == "axes")
            assert list(axes) == [2, 3]
    if family == "mobilenet_v3":  # the hard-sigmoid gate as the standard HardSigmoid op (alpha 1/6, beta 1/2)
        gates = [n for n in proto.graph.node if n.op_type == "HardSigmoid" and "/gate/" in n.name]
        assert len(gates) == len(se)
        attrs = {"alpha": 0.2, "beta": 0.5, **{a.name: a.f for a in gates[0].attribute}}  # ONNX's defaults
        assert attrs["alpha"] == pytest.approx(1 / 6) and attrs["beta"] == pytest.approx(0.5)


# TorchScript traces the same eager modules that the ONNX sweep exports from every family; its own risks
# are the trace itself (a size or a branch baked in at the traced input), so a few families cover them:
# the fused residual blocks (cifar_resnet), the hard-sigmoid gate (mobilenet_v3), concatenations
# (densenet) and an input padded inside the graph (inception_resnet_v2). Every attention module and the
# verification's planted mismatch are exported to TorchScript too (below).
TORCHSCRIPT_FAMILIES = ("cifar_resnet", "mobilenet_v3", "densenet", "inception_resnet_v2")


@pytest.mark.parametrize("family", _family_params(TORCHSCRIPT_FAMILIES))
def test_torchscript_matches_pytorch(family, tmp_path):
    _, size, _ = FAMILIES[family]
    model = _family_model(family).eval()
    report = export_torchscript(model, tmp_path / "m.pt", input_size=size, dynamic_batch=True)
    assert report.verified and report.method == "torch.jit.trace"
    assert [c.input_shape for c in report.checks] == _checked(size)
    assert report.max_rel_error <= RTOL
    assert report.fast_path_fallback == len(_se_modules(model)) and not model.training


@pytest.mark.parametrize("attention", senet.list_attention())
def test_every_attention_module_exports(attention, tmp_path):
    model = _model("cifar_resnet20", attention=attention)
    onnx_report = export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True)
    ts_report = export_torchscript(model, tmp_path / "m.pt", dynamic_batch=True)
    assert onnx_report.verified and ts_report.verified
    assert onnx_report.max_rel_error <= RTOL and ts_report.max_rel_error <= RTOL


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_every_se_placement_exports_from_the_fast_path(placement, tmp_path):
    # 'standard' runs the fused BatchNorm + scale + residual + ReLU (an autograd.Function) in training and
    # one in-place addcmul in inference; 'identity' the addcmul; the others SE's matrix-product path.
    model = _model("se_cifar_resnet20", se_placement=placement)
    report = export_onnx(model, tmp_path / "m.onnx")
    assert report.verified and report.max_rel_error <= RTOL and report.fast_path_fallback == 9


def test_export_leaves_the_model_as_it_was(tmp_path):
    model = _model("se_cifar_resnet20").train()
    model.layer1[0].bn1.eval()  # a module in another mode than its parent stays so
    state = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx")
    export_torchscript(model, tmp_path / "m.pt")
    assert model.training and not model.layer1[0].bn1.training and model.layer1[0].bn2.training
    assert all(m.fast for m in _se_modules(model))
    for key, value in model.state_dict().items():  # BatchNorm statistics untouched (exported in eval mode)
        assert torch.equal(value, state[key]), key


def test_a_plain_torch_export_of_the_fast_path_is_not_tied_to_one_size(tmp_path):
    # Without senet.export: the fast path itself takes the mean under a trace (a baked 1/HW would make the
    # file right at the traced size only) and the fused block its plain formula.
    model = _model("se_cifar_resnet20").eval()
    assert all(m.fast for m in _se_modules(model))
    path = tmp_path / "plain.onnx"
    with contextlib.redirect_stdout(sys.stderr):
        torch.onnx.export(model, torch.randn(1, 3, 32, 32), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}})  # fmt: skip
    ops = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    # One mean per SE block (the fused blocks call SE's excite, so the nodes are the block's) and the head's.
    assert ops["ReduceMean"] == len(_se_modules(model)) + 1 and not ops["ReduceSum"], ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for side in (32, 40):
        x = torch.randn(2, 3, side, side)
        with torch.no_grad():
            expected = model(x)
        got = torch.from_numpy(session.run(None, {"x": x.numpy()})[0])
        assert (got - expected).abs().max() <= RTOL * expected.abs().max(), side
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.randn(1, 3, 32, 32), check_trace=False)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        assert (traced(x) - model(x)).abs().max() <= RTOL * model(x).abs().max()


def test_fixed_batch_and_opset(tmp_path):
    model = _model("se_cifar_resnet20")
    report = export_onnx(model, tmp_path / "m.onnx", opset=20)
    assert [c.input_shape for c in report.checks] == [(1, 3, 32, 32), (1, 3, 40, 40)]
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.opset_import[0].version == 20
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [
        1, 3, "height", "width"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "n.onnx", opset=16)


def test_fixed_size_fallback(tmp_path):
    # VGG's head pools adaptively to a fixed size: ONNX has no op for that on a free input size, so the
    # file is traced with a fixed height and width, said so, and verified at that size only.
    model = _model("se_vgg16_bn", stages=((8,), (8,), (8,), (8,), (8,)), pool_size=2, hidden_features=16)
    report = export_onnx(model, tmp_path / "m.onnx", input_size=64, dynamic_batch=True)
    assert report.verified and "adaptive_avg_pool2d" in report.fixed_size_reason
    assert [c.input_shape for c in report.checks] == [(1, 3, 64, 64), (3, 3, 64, 64)]
    assert "fixed input size" in report.summary()


def _plant_bug(monkeypatch, module):
    """Makes the exporter see a model whose first SE gate bias is off by 0.5 (restored afterwards)."""

    def wrong_weight_export_mode(model):
        se = _se_modules(model)[0]
        with export_mode(model) as n, torch.no_grad():
            se.fc2.bias += 0.5
            try:
                yield n
            finally:
                se.fc2.bias -= 0.5

    monkeypatch.setattr(module, "export_mode", contextlib.contextmanager(wrong_weight_export_mode))


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_verification_catches_a_mismatch(fmt, tmp_path, monkeypatch):
    model = _model("se_cifar_resnet20")
    out = tmp_path / f"m.{fmt}"
    export = export_onnx if fmt == "onnx" else export_torchscript
    _plant_bug(monkeypatch, onnx_module if fmt == "onnx" else torchscript_module)
    with pytest.raises(VerificationError, match="disagrees with PyTorch.*max relative error"):
        export(model, out)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
    report = export(model, out, verify=False)  # unverified, the planted bug goes through: the check is the test
    assert not report.verified and report.not_verified_reason
    monkeypatch.undo()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model.eval()(x)
    ours = _ort_run(out, x[:1]) if fmt == "onnx" else torch.jit.load(str(out))(x)
    assert (ours - ref[: len(ours)]).abs().max() > 1e-3  # the file really is wrong


def test_tolerance_is_a_parameter(tmp_path):
    with pytest.raises(VerificationError, match=r"> 1e-12"):
        export_onnx(_model("se_cifar_resnet20"), tmp_path / "m.onnx", rtol=1e-12)


def test_atomic_write_and_force(tmp_path):
    model = _model("se_cifar_resnet20")
    out = tmp_path / "m.onnx"
    out.write_text("keep me")
    with pytest.raises(FileExistsError, match="force"):
        export_onnx(model, out)
    with pytest.raises(FileExistsError, match="force"):
        export_torchscript(model, out)
    assert out.read_text() == "keep me"
    report = export_onnx(model, out, force=True)
    assert report.verified and onnx.load(str(out)).graph.node
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_onnx(model, tmp_path / "missing" / "m.onnx")
    with pytest.raises(IsADirectoryError):
        export_torchscript(model, tmp_path)


@pytest.mark.parametrize("size", [0, -1, float("nan"), 2.5, "32", (32,), True])
def test_nonsense_input_size(size, tmp_path):
    with pytest.raises(ValueError, match="input"):
        export_onnx(_model("se_cifar_resnet20"), tmp_path / "m.onnx", input_size=size)
    assert list(tmp_path.iterdir()) == []


def test_without_onnx(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'senet\[onnx\]'"):
        export_onnx(_model("se_cifar_resnet20"), tmp_path / "m.onnx")
    code = main(["export", "--model", "se_cifar_resnet20", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err == "senet export: error: ONNX export needs the onnx extra: pip install 'senet[onnx]'\n"
    assert list(tmp_path.iterdir()) == []
    assert main(["export", "--model", "se_cifar_resnet20", str(tmp_path / "m.pt")]) == 0  # TorchScript needs none


def test_without_onnxruntime_exports_unverified(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    report = export_onnx(_model("se_cifar_resnet20"), tmp_path / "m.onnx")
    assert not report.verified and "onnxruntime is not installed" in report.not_verified_reason
    assert (tmp_path / "m.onnx").is_file()


# senet export


def test_cli_exports_and_verifies(tmp_path, capsys):
    out = tmp_path / "r20.onnx"
    assert main(["export", "--model", "se_cifar_resnet20", str(out), "--dynamic-batch"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "3x3x40x40: max relative error" in printed
    assert out.is_file()
    out = tmp_path / "r20.ts"
    assert main(["export", "--model", "resnet20", "--format", "torchscript", str(out), "--no-verify"]) == 0
    assert "not verified" in capsys.readouterr().out
    assert torch.jit.load(str(out))(torch.randn(2, 3, 32, 32)).shape == (2, 10)



def test_cli_says_when_it_exports_random_weights(tmp_path, capsys):
    """Without --weights the network is exported freshly initialised, and the output says so (issue 23: random
    weights were exported without a word); with --weights it names what it loaded, and no note."""
    argv = ["export", "--model", "cifar_resnet20", "--no-verify"]
    assert main([*argv, str(tmp_path / "random.pt")]) == 0
    printed = capsys.readouterr().out
    assert "note: no --weights: cifar_resnet20 is exported with freshly initialised (random) weights" in printed
    weights = tmp_path / "w.safetensors"
    save_weights(senet.create_model("cifar_resnet20"), weights)
    assert main([*argv, "--weights", str(weights), str(tmp_path / "trained.pt")]) == 0
    printed = capsys.readouterr().out
    assert "loaded " in printed and "random" not in printed

def _run_dir(root, model_name="se_cifar_resnet20", **config):
    """A run directory as ``senet train`` leaves it: config.json and model.safetensors (trained weights)."""
    run = root / "run"
    run.mkdir()
    cfg = TrainConfig(model=model_name, dataset="cifar10", **config)
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    torch.manual_seed(1)
    model = senet.create_model(model_name, **({"reduction": config["reduction"]} if "reduction" in config else {}))
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    save_weights(model, run / "model.safetensors")
    return run, model.eval()


def test_cli_weights_of_a_run(tmp_path, capsys):
    run, model = _run_dir(tmp_path, reduction=4)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
    for i, weights in enumerate([run, run / "model.safetensors"]):
        out = tmp_path / f"m{i}.onnx"
        assert main(["export", "--model", "se_cifar_resnet20", "--weights", str(weights), str(out)]) == 0
        assert (_ort_run(out, x) - ref).abs().max() <= RTOL * ref.abs().max()  # the run's weights, reduction 4
    capsys.readouterr()


def test_cli_weights_file_outside_a_run(tmp_path):
    model = _model("se_cifar_resnet20", num_classes=7).eval()
    save_weights(model, tmp_path / "w.safetensors")
    loaded = senet.load_model(tmp_path / "w.safetensors", model="se_cifar_resnet20")  # 7 classes: the classifier
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def _refused(capsys, argv, message, folder):
    before = sorted(folder.rglob("*"))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("senet export: error: "), lines[0]
    assert message in lines[0], lines[0]
    assert sorted(folder.rglob("*")) == before
    return lines[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--image-size", "0"], "--image-size must be a positive number"),
        (["--image-size", "-1"], "--image-size must be a positive number"),
        (["--image-size", "nan"], "invalid int value: 'nan'"),
        (["--image-size", "1e9"], "invalid int value"),
        (["--model", "resnet5O"], "unknown model 'resnet5O'; did you mean resnet50"),
        (["--opset", "9"], "--opset must be from 17 to 20"),
        (["--rtol", "nan"], "--rtol must be a positive number"),
        (["--format", "tflite"], "invalid choice: 'tflite'"),
    ],
)
def test_cli_refuses_nonsense(extra, message, tmp_path, capsys):
    argv = ["export", "--model", "se_cifar_resnet20", str(tmp_path / "m.onnx"), *extra]
    _refused(capsys, argv, message, tmp_path)


def test_cli_refuses_careless_use(tmp_path, capsys):
    existing = tmp_path / "m.onnx"
    existing.write_text("keep me")
    base = ["export", "--model", "se_cifar_resnet20"]
    _refused(capsys, [*base, str(existing)], "exists; add --force", tmp_path)
    assert existing.read_text() == "keep me"
    _refused(capsys, [*base, str(tmp_path / "no" / "m.onnx")], "the folder", tmp_path)
    _refused(capsys, [*base, str(tmp_path / "m.bin")], "give --format onnx or --format torchscript", tmp_path)
    _refused(capsys, [*base, "--weights", str(tmp_path / "nothing"), str(tmp_path / "n.onnx")], "does not exist",
             tmp_path)  # fmt: skip
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1")
    _refused(capsys, [*base, "--weights", str(corrupt), str(tmp_path / "n.onnx")], "not a readable safetensors",
             tmp_path)  # fmt: skip
    other = tmp_path / "other.safetensors"
    save_weights(senet.create_model("se_resnet18"), other)
    argv = [*base, "--weights", str(other), str(tmp_path / "n.onnx")]
    _refused(capsys, argv, "does not fit model 'se_cifar_resnet20'", tmp_path)


def test_cli_refuses_a_run_of_another_model(tmp_path, capsys):
    run, _ = _run_dir(tmp_path, model_name="cifar_resnet20")
    argv = ["export", "--model", "se_cifar_resnet20", "--weights", str(run), str(tmp_path / "n.onnx")]
    _refused(capsys, argv, "holds a run of cifar_resnet20, not se_cifar_resnet20", tmp_path)
