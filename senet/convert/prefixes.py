"""The prefixes that real checkpoints put before every key, and their removal.

A model wrapped for training saves its keys under the wrapper's attribute: ``module.`` (``DataParallel``,
``DistributedDataParallel``), ``_orig_mod.`` (``torch.compile``), ``model.`` / ``backbone.`` /
``encoder.`` (a task model holding the network; Lightning modules), ``state_dict_ema.`` and
``model_ema.`` (an EMA copy). Wrappers nest (``module._orig_mod.``), so prefixes are removed as long as
every key carries one of them. A prefix that only some keys carry is not removed: the file then fits no
naming and the error names the prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "encoder.", "state_dict_ema.", "model_ema.")


def strip_prefixes(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The state dict without the wrapper prefixes that every one of its keys carries.

    Args:
        state_dict: ``{key: tensor}`` as read from a file.

    Returns:
        The same tensors under the shortened keys (in the same order), and the prefixes removed, outermost
        first (``[]`` when none was).
    """
    state = dict(state_dict)
    removed: list[str] = []
    while state:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None or any(k == prefix for k in state):
            break
        state = {k[len(prefix) :]: v for k, v in state.items()}
        removed.append(prefix)
    return state, removed


def common_prefix(keys: list[str]) -> str | None:
    """The first dotted component that every key shares (``'net.'``), for an error message; else ``None``."""
    heads = {k.split(".", 1)[0] + "." if "." in k else k for k in keys}
    return heads.pop() if len(heads) == 1 and "." in next(iter(keys), "") else None
