"""Property-based tests of the checkpoint converters (hypothesis), on the public listings of keys and shapes
(tests/reference/checkpoint-keys) as meta tensors: damaged listings are converted exactly or refused in one line,
every naming round-trips, bad names are refused clearly (the contract: tests/properties.py).
"""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from properties import SETTINGS, assert_clear_error, examples, raises_clearly
from publisher_nets import listing_layout

from senet.convert import convert_state_dict, get_naming
from senet.models import create_model
from senet.utils.skeleton import meta_skeleton

LISTINGS = {
    "legacy_seresnet18": ("legacy", "se_resnet18"),
    "legacy_seresnet50": ("legacy", "se_resnet50"),
    "resnet50": ("modern", "resnet50"),
    "seresnext50_32x4d": ("modern", "se_resnext50_32x4d"),
    "tv_resnet18": ("modern", "resnet18"),
    "tv_vgg16_bn": ("torchvision", "vgg16_bn"),
    "tv_densenet121": ("torchvision", "densenet121"),
    "tv_mobilenet_v3_large": ("torchvision", "mobilenet_v3_large"),
    "tv_efficientnet_b0": ("torchvision", "efficientnet_b0"),
    "inception_resnet_v2": ("tf_slim", "inception_resnet_v2"),
}
listing = functools.cache(listing_layout)  # the rows of tests/reference/checkpoint-keys/<name>.txt


@functools.cache
def model_builder(name):
    with meta_skeleton():
        return create_model(name)


@functools.cache
def model_keys(name):
    return list(model_builder(name).state_dict())


def meta(rows):
    return {k: torch.empty(s, device="meta") for k, s in rows}


@st.composite
def damaged_listings(draw):
    name = draw(st.sampled_from(sorted(LISTINGS)))
    rows = list(listing(name))
    kind = draw(st.sampled_from(["shuffle", "drop", "rename", "reshape", "extra", "module prefix", "non-str key"]))
    if kind == "shuffle":
        rows = draw(st.permutations(rows))
    elif kind == "drop":
        drop = set(draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=5)))
        rows = [r for i, r in enumerate(rows) if i not in drop]
    elif kind == "rename":
        i = draw(st.integers(0, len(rows) - 1))
        key, shape = rows[i]
        how = draw(st.sampled_from(["suffix", "typo", "case", "prefix", "empty"]))
        if how == "suffix":
            new = key + draw(st.sampled_from(["_", ".0", "x"]))
        elif how == "typo":
            j = draw(st.integers(0, len(key) - 1))
            new = key[:j] + ("#" if key[j] != "#" else "@") + key[j + 1 :]
        elif how == "case":
            new = key.upper() if key.upper() != key else key + "X"
        elif how == "prefix":
            new = draw(st.sampled_from(["model.", "backbone.", "encoder."])) + key
        else:
            new = ""
        assume(new not in dict(rows))
        rows[i] = (new, shape)
    elif kind == "reshape":
        i = draw(st.integers(0, len(rows) - 1))
        key, shape = rows[i]
        rows[i] = (key, (*shape[:-1], shape[-1] + draw(st.integers(1, 3))) if shape else (2,))
    elif kind == "extra":
        rows.insert(draw(st.integers(0, len(rows))), (draw(st.sampled_from(["extra.weight", "head.fc.bias"])), (3,)))
    elif kind == "module prefix":
        rows = [(f"module.{k}", s) for k, s in rows]
    state = meta(rows)
    if kind == "non-str key":
        state[draw(st.sampled_from([0, 1.5, None, ("a",)]))] = torch.empty(1, device="meta")
    return name, kind, state


@given(case=damaged_listings())
@settings(SETTINGS, max_examples=examples(200))
def test_convert_gives_the_exact_model_keys_or_refuses_in_one_line(case):
    name, kind, state = case
    naming, model = LISTINGS[name]
    try:
        out = convert_state_dict(state, model=model)
    except Exception as e:  # noqa: BLE001
        assert_clear_error(e)
        event(f"{kind}: refused")
        assert isinstance(e, ValueError)
        assert kind not in ("shuffle", "module prefix"), f"refused an intact state dict ({kind}): {e}"
        return
    event(f"{kind}: converted")
    expected = model_keys(model)
    assert kind in ("shuffle", "module prefix", "drop"), f"accepted a damaged state dict ({kind})"
    if kind == "drop":  # only num_batches_tracked may be missing: BatchNorm fills it in on a strict load
        assert set(expected) - set(out) <= {k for k in expected if k.endswith("num_batches_tracked")}
        assert list(out) == [k for k in expected if k in out]
    else:
        assert list(out) == expected
    for value in out.values():
        assert any(value is v for v in state.values())  # the same tensors, renamed, never copied


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_convert_round_trips_exactly(name):
    naming, model = LISTINGS[name]
    public = meta(listing(name))
    ours = convert_state_dict(public, model=model)
    back = convert_state_dict(ours, "ours", target=naming, model=model)
    assert list(back) == list(public) and all(back[k] is public[k] for k in public)
    # Between two public namings, where both cover the network (the ResNets: legacy <-> modern).
    family = type(model_builder(model)).__name__
    for other in ("legacy", "modern", "torchvision", "tf_slim"):
        if other != naming and family in get_naming(other).families:
            there = convert_state_dict(public, naming, target=other, model=model)
            again = convert_state_dict(there, other, target=naming, model=model)
            assert list(again) == list(public) and all(again[k] is public[k] for k in public)


@given(
    model=st.one_of(st.sampled_from(["resnet5O", "", "not a model"]), st.just(3), st.just(None)),
    source=st.sampled_from(["auto", "legacyy", "timm", "", "ours"]),
    target=st.sampled_from(["ours", "modernn", "torchvision"]),
)
@settings(SETTINGS, max_examples=examples(60))
def test_convert_with_bad_names_refuses_clearly(model, source, target):
    state = meta(listing("tv_resnet18"))
    event(type(raises_clearly(convert_state_dict, state, source, model=model, target=target)).__name__)
