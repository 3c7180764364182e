"""The attention contract: registry, shapes, parameter counts, errors, batch and spatial edge cases."""

import functools

import pytest
import torch

import senet
from senet.layers import CBAM, CoordAttention, SqueezeExcite
from senet.layers.common import check_dims

NAMES = ["cbam", "coord", "eca", "ese", "scse", "se", "sse"]
CASES = [(name, dims) for name in NAMES for dims in (1, 2, 3) if not (name == "coord" and dims == 1)]


# ----------------------------------------------------------------------------------------- registry
def test_import_senet_registers_all_seven():
    assert senet.list_attention() == NAMES


def test_create_attention_accepts_name_class_partial_and_none():
    assert isinstance(senet.create_attention("CBAM", 32), CBAM)
    assert isinstance(senet.create_attention(CoordAttention, 32), CoordAttention)
    se = senet.create_attention(functools.partial(SqueezeExcite, reduction=4), 32)
    assert se.hidden == 8
    assert senet.create_attention(None, 32) is None
    assert senet.create_attention("none", 32) is None


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown attention 'sk'") as info:
        senet.create_attention("sk", 32)
    for name in NAMES:
        assert name in str(info.value)


def test_unknown_keyword_fails_at_the_first_door():
    with pytest.raises(TypeError):
        senet.create_attention("eca", 32, reduction=16)  # ECA has no reduction


# --------------------------------------------------------------------------------- shape contract
@pytest.mark.parametrize("name,dims", CASES)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_any_spatial_size_and_batch_one(name, dims, train):
    m = senet.create_attention(name, 12, dims=dims).train(train)
    # Sizes from 1 up, unequal axes (size, size + 1, ...), batch 1 included.
    for batch, size in [(1, 1), (3, 1), (1, 5), (2, 7)]:
        x = torch.randn(batch, 12, *[size + i for i in range(dims)])
        y = m(x)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert torch.isfinite(y).all()
        m.zero_grad()
        y.sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


def test_coord_batch_one_at_1x1_in_train_mode_is_the_documented_degenerate_case():
    # Both profiles equal x, so the batch variance is 0 and the gate ignores the input (docstring).
    m = CoordAttention(16).train()
    x1, x2 = torch.randn(1, 16, 1, 1), torch.randn(1, 16, 1, 1)
    torch.testing.assert_close(m(x1) / x1, m(x2) / x2)
    m.eval()  # with running statistics the gate depends on the input again
    assert not torch.allclose(m(x1) / x1, m(x2) / x2)


# ------------------------------------------------------------------------------- parameter counts
def _count(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize(
    "name,kwargs,expected",
    [
        ("se", {}, 2 * 256 * 16 + 16 + 256),  # 8,464: W1, b1, W2, b2 with C/r = 16
        ("se", {"bias": False}, 2 * 256 * 16),
        ("se", {"reduction": 4, "dims": 3}, 2 * 256 * 64 + 64 + 256),
        ("se", {"hidden": 10}, 2 * 256 * 10 + 10 + 256),
        ("se", {"reduction": 100, "divisor": 8}, 2 * 256 * 8 + 8 + 256),  # 2 rounded up to 8
        ("sse", {}, 256 + 1),  # W_sq and its bias
        ("scse", {}, (2 * 256 * 128 + 128 + 256) + (256 + 1)),  # cSE with r = 2, plus sSE
        ("scse", {"reduction": 16}, 8464 + 257),
        ("ese", {}, 256 * 256 + 256),  # W_C and its bias
        ("ese", {"bias": False}, 256 * 256),
        ("eca", {}, 5),  # k = psi(256) = 5, no bias
        ("eca", {"kernel_size": 9}, 9),
        ("cbam", {}, 2 * 256 * 16 + 2 * 7 * 7),  # shared MLP, f^{7x7}: 2 -> 1, no biases
        ("cbam", {"bias": True}, 2 * 256 * 16 + 16 + 256 + 2 * 7 * 7 + 1),
        ("cbam", {"kernel_size": 3, "dims": 3}, 2 * 256 * 16 + 2 * 3**3),
        ("cbam", {"kernel_size": 5, "dims": 1}, 2 * 256 * 16 + 2 * 5),
        # F1 (C -> mip, bias), BN (gamma, beta), F_h and F_w (mip -> C, bias); mip = max(8, 256 // 32) = 8
        ("coord", {}, (256 * 8 + 8) + 2 * 8 + 2 * (8 * 256 + 256)),
        ("coord", {"reduction": 8}, (256 * 32 + 32) + 2 * 32 + 2 * (32 * 256 + 256)),
        ("coord", {"dims": 3}, (256 * 8 + 8) + 2 * 8 + 3 * (8 * 256 + 256)),
    ],
)
def test_parameter_count_follows_the_formula(name, kwargs, expected):
    assert _count(senet.create_attention(name, 256, **kwargs)) == expected


def test_coord_hidden_width_is_never_below_8():
    assert CoordAttention(16).hidden == 8
    assert CoordAttention(1024).hidden == 32


# --------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name,dims", CASES)
def test_wrong_channels_or_ndim_raise_value_error_naming_channels(name, dims):
    m = senet.create_attention(name, 12, dims=dims)
    spatial = [4] * dims
    with pytest.raises(ValueError, match=r"channels") as info:
        m(torch.randn(2, 13, *spatial))
    assert "12" in str(info.value) and "13" in str(info.value)  # expected and got
    for wrong in ([2, 12, *spatial, 4], [2, 12, *spatial][:-1]):
        with pytest.raises(ValueError, match=r"channels") as info:
            m(torch.randn(*wrong))
        assert f"{dims + 2}-D" in str(info.value) and f"{len(wrong)}-D" in str(info.value)


BAD_ARGS = [
    ("se", {"reduction": 0}, "reduction"),
    ("se", {"reduction": -4}, "reduction"),
    ("se", {"hidden": 0}, "hidden"),
    ("se", {"divisor": 0}, "divisor"),
    ("se", {"squeeze": "median"}, "squeeze"),
    ("se", {"gate": "softmax"}, "gate"),
    ("se", {"activation": "swoosh"}, "activation"),
    ("se", {"dims": 4}, "dims"),
    ("sse", {"gate": "nope"}, "gate"),
    ("sse", {"dims": 0}, "dims"),
    ("scse", {"combine": "concat"}, "combine"),
    ("scse", {"reduction": 0}, "reduction"),
    ("ese", {"gate": "nope"}, "gate"),
    ("eca", {"kernel_size": 4}, "odd"),
    ("eca", {"kernel_size": 0}, "kernel_size"),
    ("eca", {"gamma": 0}, "gamma"),
    ("eca", {"dims": 4}, "dims"),
    ("cbam", {"reduction": 0}, "reduction"),
    ("cbam", {"kernel_size": 6}, "kernel_size"),
    ("cbam", {"activation": "nope"}, "activation"),
    ("coord", {"reduction": 0}, "reduction"),
    ("coord", {"activation": "nope"}, "activation"),
    ("coord", {"dims": 4}, "dims"),
    ("coord", {"dims": 1}, "at least 2 spatial dims"),
]


@pytest.mark.parametrize("name,kwargs,message", BAD_ARGS)
def test_bad_arguments_raise_value_error(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        senet.create_attention(name, 32, **kwargs)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [0, -3, 2.5, True])
def test_bad_channels_raise_value_error(name, channels):
    with pytest.raises(ValueError, match="channels"):
        senet.create_attention(name, channels)


@pytest.mark.parametrize("dims", [True, 2.0, "2"])
def test_check_dims_rejects_non_integers(dims):
    with pytest.raises(ValueError, match="dims"):
        check_dims(dims)


# ------------------------------------------------------------------------------------- record gate
@pytest.mark.parametrize("fast", [True, False])
def test_record_gate_keeps_the_last_gate_detached(fast):
    se = SqueezeExcite(16, reduction=4, record_gate=True, fast=fast)
    x = torch.randn(3, 16, 5, 5, requires_grad=True)
    y = se(x)
    gate = se.last_gate
    assert gate.shape == (3, 16) and not gate.requires_grad
    torch.testing.assert_close(y, x * gate[:, :, None, None])  # it is the gate that was applied
    se(torch.randn(2, 16, 5, 5))
    assert se.last_gate.shape == (2, 16)  # the last pass, not the first


def test_record_gate_is_off_by_default_and_stores_nothing():
    se = SqueezeExcite(16)
    assert se.record_gate is False
    se(torch.randn(2, 16, 4, 4))
    assert se.last_gate is None
    assert "last_gate" not in dict(se.named_buffers()) and "last_gate" not in se.state_dict()
