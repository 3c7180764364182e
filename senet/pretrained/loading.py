"""``load_pretrained``: a checkpoint's weights into a model, from any public naming, with a report.

    >>> model = senet.create_model("se_resnet50", stem_pool="ceil")
    >>> report = senet.load_pretrained(model, "se_resnet50-ce0d4300.pth")    # the authors' Caffe model
    >>> report.naming
    'legacy'

The file is read without running pickled code (``reading.read_state_dict``), its naming recognised from
the keys and converted (``senet.convert``), and every tensor checked against the model: missing and
unexpected keys by name, a shape that does not fit as one error naming the key and both shapes. With
``strict=False`` what fits is loaded and the rest reported (e.g. a new classifier for fine-tuning).

A file is read as ours only when it says so (``provenance.senet_record``); a bare file whose keys are
both ours and a public naming's is the publisher's. A model built without the options under which it
computes what the file's network computes (``senet.convert.naming_options``, or the options a senet
file records) is refused: loading would give it the weights of another function. ``strict=False``
loads anyway and reports the options (``LoadReport.options``, and a warning).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..convert import (
    OURS,
    convert_state_dict,
    detect_naming,
    fitting_namings,
    get_naming,
    model_layout,
    naming_options,
    strip_prefixes,
)
from ..io import read_state_dict
from .hub import fetch, is_url
from .provenance import SenetRecord, senet_record

# Counters BatchNorm fills in itself; old checkpoints (PyTorch < 0.4.1) do not have them.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


@dataclass
class LoadReport:
    """What ``load_pretrained`` did.

    Attributes:
        source: The file read (or the description of an in-memory state dict).
        naming: The checkpoint's naming (``'ours'`` or one of ``senet.list_namings()``).
        loaded: The model keys that received a tensor.
        missing: Model keys the checkpoint has no tensor for (left as they were).
        unexpected: Checkpoint keys (in its own naming) the model has no place for.
        mismatched: ``(model key, checkpoint shape, model shape)`` of tensors that do not fit (not loaded).
        options: Model options under which the model computes what the publisher's network computes,
            that the model was not built with (``{}`` when it was); see ``senet.convert.naming_options``.
    """

    source: str
    naming: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every model tensor was loaded and every checkpoint tensor used."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """One line: what was loaded and what was not."""
        parts = [f"loaded {len(self.loaded)} tensors from {self.source} ({self.naming} naming)"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing: {_listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected: {_listing(self.unexpected)}")
        if self.mismatched:
            shown = "; ".join(
                f"{k} {tuple(a)} in the checkpoint, {tuple(b)} in the model" for k, a, b in self.mismatched[:2]
            )
            parts.append(f"{len(self.mismatched)} of another shape: {shown}")
        return "; ".join(parts)


def _listing(keys: list[str], n: int = 3) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_pretrained(
    model: nn.Module,
    path_or_url: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    source: str = "auto",
    strict: bool = True,
    progress: bool = True,
) -> LoadReport:
    """Loads a checkpoint into ``model``, converting it from its public naming when needed.

    Args:
        model: The model (any zoo model; built with ``create_model``).
        path_or_url: A checkpoint file (``.pth``/``.pt``/``.tar``/``.bin`` with or without a
            ``state_dict``/``model`` wrapper, or ``.safetensors``), a senet run directory, a URL
            (downloaded into the cache), or a state dict.
        source: The checkpoint's naming: ``'auto'`` (recognised from the keys), ``'ours'`` or one of
            ``senet.list_namings()``.
        strict: Refuse (and load nothing) unless every tensor fits and the model is built with the options
            the file's network needs; ``False`` loads what fits and reports the rest (e.g. a classifier of
            another size) and the options (``report.options``, with a warning).
        progress: Show a progress bar while downloading.

    Returns:
        The ``LoadReport``.

    Raises:
        FileNotFoundError: On a missing file or a failed download.
        UnsafeCheckpointError: On a pickle that asks to run code (nothing of it runs).
        ValueError: On an unreadable file, a naming that does not fit, or, with ``strict``, any missing,
            unexpected or misshapen tensor (one line naming the keys and both shapes), or a model built
            without the options the file's network needs (one line naming them).
    """
    record = None
    if isinstance(path_or_url, Mapping):
        state, where = dict(path_or_url), "the state dict"
    else:
        path = fetch(path_or_url, progress=progress) if is_url(path_or_url) else Path(path_or_url).expanduser()
        state, where = read_state_dict(path), str(path)
        record = senet_record(path)
    if not state:
        raise ValueError(f"{where} holds no tensors")
    try:
        naming = _naming_of(state, model, source, record)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    if strict:
        # The converter checks every key and shape and says what does not fit, in one line.
        try:
            ours = convert_state_dict(state, naming, model=model)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        report = _compare(ours, model, where, naming)
        if not report.complete:
            raise ValueError(f"{where} does not fit the model: {report.summary().split('; ', 1)[1]}")
    else:
        ours, unexpected = _rename_leniently(state, naming, model)
        report = _compare(ours, model, where, naming)
        report.unexpected = unexpected + report.unexpected
    options = _options_not_set(model, naming, record)
    if options and strict:
        shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
        hint = " (or source='ours' if the file is this library's own)" if naming == "modern" else ""
        raise ValueError(
            f"{where} holds a network that computes another function in this model: its weights ({naming} "
            f"naming) need {shown}; build the model with them (create_model(..., pretrained=path) does){hint}, "
            "or pass strict=False to load them anyway"
        )
    fitting = {k: ours[k] for k in report.loaded}
    with torch.no_grad():
        model.load_state_dict(fitting, strict=False)
    report.options = options
    if report.options:
        shown = ", ".join(f"{k}={v!r}" for k, v in report.options.items())
        warnings.warn(
            f"{where} was trained with a network that differs from this model: build it with {shown} "
            f"(create_model(..., pretrained=path) does this) to compute what the original computes",
            stacklevel=2,
        )
    return report


def _naming_of(state: Mapping[str, Any], model: nn.Module, source: str, record: SenetRecord | None) -> str:
    if source != "auto":
        if source != OURS:
            get_naming(source)  # an unknown naming fails here, listing the valid ones
        return source
    return checkpoint_naming(state, model, record)


def checkpoint_naming(state: Mapping[str, Any], model: str | nn.Module, record: SenetRecord | None = None) -> str:
    """The naming of a checkpoint's keys for ``model``.

    * A file this library wrote (``record``, from ``provenance.senet_record``): the naming it records.
    * Otherwise the public naming (one covering the model's family) that every key fits, also where the
      keys are our own too (the modern ResNet naming): a bare file is the publisher's.
    * Otherwise ``'ours'`` when every key is the model's, or when the keys fit no naming but are mostly
      the model's (the missing and extra keys are then reported by name).

    Wrapper prefixes (``module.``, ``_orig_mod.``, ...) are ignored.

    Args:
        state: The checkpoint's state dict (or its keys).
        model: A registered name or a model.
        record: What the file says about itself, if it was written by this library.

    Raises:
        ValueError: When the keys fit no naming (one line naming the closest, where any key fits it, and
            the keys that do not fit), or fit two public namings whose networks differ (one line naming
            both and ``source=``, which picks one).
    """
    keys = list(strip_prefixes(dict.fromkeys(state))[0])
    family, shown, own = model_layout(model)
    if record is not None:
        return record.naming
    public = fitting_namings(keys, family)
    readings = {n: _options_or_none(n, model) for n in public}
    if len({repr(o) for o in readings.values()}) > 1:
        first, second = public[:2]
        raise ValueError(
            f"the keys fit both the {first!r} naming ({_shown(readings[first])}) and the {second!r} naming "
            f"({_shown(readings[second])}), which compute different functions in model {shown}; pick one with "
            f"source={first!r} or source={second!r} (load_pretrained; senet convert --source)"
        )
    if public:
        return public[0]
    if all(k in own for k in keys):
        return OURS
    mostly_ours = sum(k in own for k in keys) * 2 > len(keys)
    try:
        detected = detect_naming(keys)
    except ValueError:
        if mostly_ours:
            return OURS
        raise
    if mostly_ours and family not in detected.families:  # our keys of a variant (SE or not): named key by key
        return OURS
    return detected.name


def _options_or_none(naming: str, model: str | nn.Module) -> dict[str, Any] | None:
    try:
        return naming_options(naming, getattr(model, "model_name", None) or model)
    except (ValueError, TypeError):
        return None


def _shown(options: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items()) if options else "the model's defaults"


def _rename_leniently(
    state: Mapping[str, torch.Tensor], naming: str, model: nn.Module
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The checkpoint under the model's keys, as far as its keys map; and the keys that do not."""
    state, _ = strip_prefixes(state)
    if naming == OURS:
        own = model.state_dict()
        return {k: v for k, v in state.items() if k in own}, [k for k in state if k not in own]
    public = get_naming(naming)
    family, _, layout = model_layout(model)
    if family not in public.families:
        raise ValueError(f"naming {naming!r} covers the {', '.join(public.families)} models, not a {family}")
    theirs_to_ours = {theirs: ours for ours, theirs in public.key_map(family, list(layout)).items() if theirs}
    renamed, unexpected = {}, []
    for key, value in state.items():
        canonical = public._canonical(key)
        if canonical in theirs_to_ours:
            renamed[theirs_to_ours[canonical]] = value
        else:
            unexpected.append(key)
    return renamed, unexpected


def _compare(ours: Mapping[str, torch.Tensor], model: nn.Module, where: str, naming: str) -> LoadReport:
    own = model.state_dict()
    report = LoadReport(source=where, naming=naming)
    for key, target in own.items():
        if key not in ours:
            if not key.endswith(_OPTIONAL_SUFFIX):
                report.missing.append(key)
        elif tuple(ours[key].shape) != tuple(target.shape):
            report.mismatched.append((key, tuple(ours[key].shape), tuple(target.shape)))
        else:
            report.loaded.append(key)
    report.unexpected = [k for k in ours if k not in own]
    return report


def model_options_of(model: nn.Module) -> dict[str, Any]:
    """The config fields of a zoo model (``{}`` for a model ``create_model`` did not build)."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return {}
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def _options_not_set(model: nn.Module, naming: str, record: SenetRecord | None = None) -> dict[str, Any]:
    """The options the file's network was built with (the publisher's, for this model and naming, or those
    a senet file records) that ``model`` was built without."""
    name = getattr(model, "model_name", None)
    if name is None:
        return {}
    if record is not None and record.model_options is not None and naming == record.naming:
        wanted = dict(record.model_options)
    elif naming == OURS:
        return {}
    else:
        try:
            wanted = naming_options(naming, name)
        except ValueError:  # a naming that does not cover the model: the conversion says so
            return {}
    have = model_options_of(model)
    return {k: v for k, v in wanted.items() if k in have and have[k] != v}
