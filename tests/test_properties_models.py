"""Property-based tests of ``create_model`` (hypothesis): every registered network with random valid options builds
and runs, and one invalid or conflicting option is refused in one line (the contract: tests/properties.py).
"""

from __future__ import annotations

import re

import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from properties import (
    ATTENTION,
    BAD_REDUCTIONS,
    GATED,
    REDUCED,
    SETTINGS,
    assert_clear_error,
    examples,
    valid_reductions,
)
from sweep import HUGE

from senet.models import create_model, get_model_entry, list_models
from senet.utils.skeleton import meta_skeleton

MODELS = [n for n in list_models() if n not in HUGE]  # ResNet-1202: swept in the slow tier (tests/sweep.py)
CIFAR = {n for n in MODELS if get_model_entry(n).input_size[1] == 32}
MISSING = object()  # the option is not passed at all


# Values that are wrong whatever the network: a call holding one of them must be refused.
BAD_MODEL_OPTIONS = {
    "name": ["resnet5O", "se_resnet", "", "RESNET50"],
    "num_classes": [-1, True, 2.5, "10", None],
    "in_chans": [0, -1, True, 3.0, "3"],
    "attention": ["sex", 3],
    "reduction": BAD_REDUCTIONS,
    "se_stages": ["23", 2.5, [True], [2.0], 3, [0], [9], [2, 9]],
    "se_placement": ["sideways", "", None, "Standard"],
    "unknown option": ["bogus_option", "drop_rat", "num_class", "attention_kwarg"],
}


@st.composite
def model_calls(draw):
    """A registered network with random valid options (two calls in three), or with one option made
    invalid, or with options that may not fit together (e.g. a gate for an attention without one)."""
    bad = draw(st.one_of(st.none(), st.none(), st.sampled_from([*BAD_MODEL_OPTIONS, "conflict"])))
    name = draw(st.sampled_from(MODELS))
    entry = get_model_entry(name)
    options = {}

    def maybe(key, strategy):
        if draw(st.booleans()):
            options[key] = draw(strategy)

    maybe("num_classes", st.integers(0, 20))
    maybe("in_chans", st.integers(1, 4))
    maybe("attention", st.sampled_from([*ATTENTION, None, "none"]))
    attention = options.get("attention", entry.attention)
    if attention in REDUCED:
        maybe("reduction", valid_reductions)
    if attention in GATED:
        maybe("attention_kwargs", st.sampled_from([{"gate": "tanh"}, {"gate": "hard_sigmoid"}, {}]))
    if draw(st.integers(0, 3)) == 0:  # attention in a subset of the stages the network has
        # Stages 2-4 exist in every network but the Inception ones, whose stem spans stages 1-2 (3, 4, 5).
        stages = (3, 4, 5) if "inception" in name else (2, 3, 4)
        options["se_stages"] = draw(st.lists(st.sampled_from(stages), max_size=2, unique=True))
    maybe("se_placement", st.sampled_from(entry.placements))
    if bad == "name":
        name = draw(st.sampled_from(BAD_MODEL_OPTIONS["name"]))
    elif bad == "unknown option":
        options[draw(st.sampled_from(BAD_MODEL_OPTIONS[bad]))] = 1
    elif bad == "conflict":
        key, value = draw(st.sampled_from([
            ("reduction", 8), ("attention_kwargs", {"gate": "tanh"}), ("attention_kwargs", {"kernel_size": 3}),
            ("se_placement", "after_3x3"), ("se_stages", [1, 5]), ("attention_kwargs", {"gate": "nope"}),
        ]))  # fmt: skip
        options[key] = value
    elif bad is not None:
        options[bad] = draw(st.sampled_from(BAD_MODEL_OPTIONS[bad]))
    return name, options, "none" if bad is None else bad


@given(call=model_calls())
@settings(SETTINGS, max_examples=examples(200))
def test_create_model_builds_a_working_network_or_refuses_clearly(call):
    name, options, bad = call
    real = name in CIFAR and options.get("in_chans", 3) in range(1, 5)
    try:
        if real:
            model = create_model(name, **options)
        else:
            with meta_skeleton():
                model = create_model(name, **options)
    except Exception as e:  # noqa: BLE001
        assert_clear_error(e)
        assert bad != "none", f"valid options refused: {name}, {options}: {e}"
        event(f"{bad} refused ({type(e).__name__}): {re.sub(r'[0-9]+', 'N', str(e))[:70]}")
        return
    event("built and ran" if real else "built and ran on the meta device")
    assert bad in ("none", "conflict"), f"accepted an invalid {bad}: {options}"
    entry = get_model_entry(name)
    num_classes = options.get("num_classes", entry.num_classes)
    in_chans = options.get("in_chans", 3)
    assert model.default_input_size == (in_chans, *entry.input_size[1:])
    batch = 2
    model.eval()
    with torch.no_grad():
        if real:
            x = torch.randn(batch, *model.default_input_size, generator=torch.Generator().manual_seed(0))
            y = model(x)
            assert torch.isfinite(y).all()
        else:
            with meta_skeleton():
                y = model(torch.empty(batch, *model.default_input_size))
    # Without a classifier the output is the head's last hidden layer where the head has one (VGG's fc7,
    # MobileNetV3's 1280-wide layer: ``head_hidden_size``, as timm names it), else the pooled features.
    width = getattr(model, "head_hidden_size", model.num_features)
    assert y.shape == (batch, num_classes if num_classes else width), (y.shape, options)
