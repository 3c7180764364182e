"""Starting a run from existing weights: ``--init-from SOURCE`` and ``--retrofit ATTENTION``.

* ``--init-from SOURCE``: anything ``senet.load_model`` takes (a file in any known naming, a URL, a tag of
  the pretrained table, a run folder, a ``senet retrofit`` output) for the run's network, loaded strictly;
  a checkpoint's network is built as its publisher built it (``naming_options``), and a classifier of
  another size is replaced by a new one (fine-tuning).
* ``--retrofit se``: attention inserted into the loaded network, starting as the identity
  (``senet.retrofit``), so fine-tuning starts from the checkpoint's accuracy.
* ``--init-from OUT --retrofit se`` with the output of ``senet retrofit``: that retrofitted network.

The run normalises its inputs as the source's network was trained (its mean and std, e.g. ImageNet's for
the akamaster CIFAR-10 checkpoints), so that step 0 computes exactly what the checkpoint computes.

What the run needs to rebuild its network later (resume, ``senet eval``, ``senet export``) without the
init file is recorded in ``cfg.extra[ARCHITECTURE]``: the model options and the retrofit arguments
(``senet.factory.build_recorded`` rebuilds it).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..factory import ARCHITECTURE, NORMALIZATION, build_recorded, load_model, read_run_config, retrofit_record
from ..factory.runs import run_create_kwargs
from ..models import create_model
from ..models.registry import changed_options
from ..pretrained import load_pretrained
from ..pretrained.factory import PretrainedInfo
from ..retrofit.api import retrofit as insert

__all__ = ["ARCHITECTURE", "initial_model", "source_normalization"]


def source_normalization(preprocessing: dict[str, Any]) -> dict[str, list[float]] | None:
    """The input normalisation a source's network was trained with (``{'mean', 'std'}``), which a run
    fine-tuning it keeps (else its start is not the checkpoint's function); ``None`` where unknown."""
    mean, std = preprocessing.get("mean"), preprocessing.get("std")
    if mean is None or std is None:
        return None
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def initial_model(
    name: str, create_kwargs: dict[str, Any], *, init_from: str | None, retrofit: str | None,
    reduction: float | None,
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    """The network a run starts from, with its weights, and the record that rebuilds it.

    Args:
        name: The run's model.
        create_kwargs: ``create_model`` arguments of the run (``num_classes``, attention, ...).
        init_from: The source to start from (see ``senet.load_model``), or ``None`` (the model's own
            initialisation).
        retrofit: The attention to retrofit, or ``None``.
        reduction: The retrofitted modules' reduction ratio (``None``: 16).

    Returns:
        ``(model, record)``; ``build_recorded(record, name, create_kwargs)`` rebuilds the same network.

    Raises:
        ValueError: On a checkpoint that does not fit, a retrofitted checkpoint without ``--retrofit``
            (or of another model), or an attention that cannot be retrofitted (one line).
    """
    num_classes = create_kwargs.get("num_classes")
    record = retrofit_record(init_from) if init_from else None
    if record is not None:
        if retrofit is None:
            raise ValueError(
                f"--init-from {init_from} is a retrofitted {record['model']} (senet retrofit); add --retrofit "
                f"{record['retrofit']['attention']} to train it"
            )
        if record["model"] != name:
            raise ValueError(f"--init-from {init_from} holds a retrofitted {record['model']}, not {name}")
        if retrofit != record["retrofit"]["attention"]:
            raise ValueError(
                f"--init-from {init_from} was retrofitted with {record['retrofit']['attention']}, not {retrofit}"
            )
        arch = {"model_options": record["model_options"], "retrofit": record["retrofit"],
                "num_classes": record["num_classes"]}  # fmt: skip
        normalization = source_normalization(record.get("preprocessing") or {})
        if normalization is not None:
            arch[NORMALIZATION] = normalization
        model = build_recorded(arch, name, create_kwargs, replace_classifier=False)
        report = load_pretrained(model, init_from, source="ours")
        replaced = num_classes is not None and num_classes != model.num_classes
        if replaced:
            model.reset_classifier(num_classes)
        model.pretrained_info = PretrainedInfo(str(init_from), "ours", None, report, replaced)  # as load_model says
        return model, {**arch, "num_classes": num_classes}
    if init_from is not None:
        options = {k: v for k, v in create_kwargs.items() if k != "num_classes"}
        model = load_model(init_from, model=name, num_classes=num_classes, **options).train()
        options, recorded = changed_options(model), None
        normalization = source_normalization(model.source_info.preprocessing)
        if model.source_info.kind == "run":  # rebuilt later as that run built it (attention, retrofit, ...)
            config = read_run_config(model.source_info.run_dir)
            recorded = (config.get("extra") or {}).get(ARCHITECTURE)
            options = {**{k: v for k, v in run_create_kwargs(config, 0).items() if k != "num_classes"}, **options}
    else:
        model, options, normalization = create_model(name, **create_kwargs), {}, None
    arch: dict[str, Any] = {"model_options": options, "retrofit": None, "num_classes": num_classes}
    if normalization is not None:
        arch[NORMALIZATION] = normalization
    if init_from is not None and recorded and recorded.get("retrofit"):
        if retrofit is not None:
            raise ValueError(f"--init-from {init_from} is a run of a network retrofitted with "
                             f"{recorded['retrofit']['attention']} already; leave out --retrofit")  # fmt: skip
        arch["retrofit"] = recorded["retrofit"]
        arch["model_options"] = {**options, **recorded["model_options"]}
    if retrofit is not None:
        args = {"attention": retrofit, "reduction": reduction or 16, "placement": "standard",
                "identity_init": True, "where": None}  # fmt: skip
        model, _ = insert(model, args["attention"], reduction=args["reduction"], placement=args["placement"],
                          identity_init=True, inplace=True)  # fmt: skip
        arch["retrofit"] = args
    return model, arch
