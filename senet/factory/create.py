"""``senet.create_model``: a registered network, with public weights in it when asked.

The plain builder is ``senet.models.create_model`` (the registry, which knows nothing of checkpoints);
this one sits above it and above the checkpoint helpers, as timm keeps ``create_model`` in its
``_factory.py`` above its registry and hub.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..models import create_model as build_model
from ..models import get_model_entry
from ..models.features import features_model
from ..models.registry import DEFAULT
from ..pretrained import create_pretrained
from .load import is_recorded_source, load_model


def create_model(
    name: str,
    *,
    pretrained: bool | str | os.PathLike = False,
    num_classes: Any = DEFAULT,
    features_only: bool = False,
    out_indices: tuple[int, ...] | list[int] | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> nn.Module:
    """Builds a registered network (``senet.models.create_model``), with a checkpoint's weights if asked.

    Args:
        name: A name from ``list_models()``.
        pretrained: Load weights: ``True`` (the model's default checkpoint, see ``senet pretrained list``), a
            tag of the pretrained table, a URL, a checkpoint file (any known naming), a senet run folder or a
            ``senet retrofit`` output (rebuilt as recorded: see ``senet.load_model``). A public checkpoint's
            network is built with the options under which it computes what the publisher's network computes
            (e.g. ``stem_pool='ceil'`` for the SE authors' models; options given here override them) and
            loaded strictly; a ``num_classes`` other than the checkpoint's replaces the loaded classifier by
            a new one. ``model.pretrained_info`` says what was loaded, ``senet.data_config(model)`` the
            preprocessing it expects.
        num_classes: Size of the classifier (default: the network's own, or the checkpoint's).
        features_only: Return the backbone (``senet.models.features.FeatureExtractor``; docs/backbones.md).
        out_indices: With ``features_only``, the feature maps to return.
        progress: Show a progress bar while downloading.
        **kwargs: Further ``senet.models.create_model`` arguments (attention, reduction, se_stages,
            se_placement, attention_kwargs, in_chans and model options such as ``stride_in_1x1=False``).

    Returns:
        The model.

    Raises:
        ValueError: On an unknown model, option or checkpoint (one line, listing the valid values).
    """
    if pretrained is False or pretrained is None:
        return build_model(name, num_classes=num_classes, features_only=features_only, out_indices=out_indices,
                           **kwargs)  # fmt: skip
    entry = get_model_entry(name)
    wanted = None if num_classes is DEFAULT else num_classes
    if not isinstance(pretrained, bool) and is_recorded_source(pretrained):
        model = load_model(pretrained, model=entry.name, num_classes=wanted, **kwargs).train()
    else:
        where = Path(pretrained).expanduser() if not isinstance(pretrained, bool) else pretrained
        model = create_pretrained(entry.name, where if isinstance(where, Path) and where.exists() else pretrained,
                                  num_classes=wanted, progress=progress, build=build_model, **kwargs)  # fmt: skip
    if features_only or out_indices is not None:
        model = features_model(model, name=entry.name, features_only=features_only, out_indices=out_indices,
                               num_classes=model.num_classes, default_num_classes=entry.num_classes)  # fmt: skip
    return model
