"""Starting a run from existing weights: ``--init-from FILE`` and ``--retrofit ATTENTION``.

* ``--init-from FILE``: the weights of the same network (any known naming, a URL, a tag of the pretrained
  table, a run directory), loaded strictly; the network is built as the checkpoint's publisher built it
  (``naming_options``), and a classifier of another size is replaced by a new one (fine-tuning).
* ``--retrofit se``: attention inserted into the loaded network, starting as the identity
  (``senet.retrofit``), so fine-tuning starts from the checkpoint's accuracy.
* ``--init-from OUT --retrofit se`` with the output of ``senet retrofit``: that retrofitted network.

What the run needs to rebuild its network later (resume, ``senet eval``, ``senet export``) without the
init file is recorded in ``cfg.extra[ARCHITECTURE]``: the model options and the retrofit arguments.
"""

from __future__ import annotations

from typing import Any

from torch import nn

ARCHITECTURE = "architecture"  # the key of ``TrainConfig.extra`` holding the recorded network


def initial_model(
    name: str, create_kwargs: dict[str, Any], *, init_from: str | None, retrofit: str | None,
    reduction: float | None,
) -> tuple[nn.Module, dict[str, Any]]:  # fmt: skip
    """The network a run starts from, with its weights, and the record that rebuilds it.

    Args:
        name: The run's model.
        create_kwargs: ``create_model`` arguments of the run (``num_classes``, attention, ...).
        init_from: The checkpoint to start from, or ``None`` (the model's own initialisation).
        retrofit: The attention to retrofit, or ``None``.
        reduction: The retrofitted modules' reduction ratio (``None``: 16).

    Returns:
        ``(model, record)``; ``build_recorded(record, num_classes)`` rebuilds the same network.

    Raises:
        ValueError: On a checkpoint that does not fit, a retrofitted checkpoint without ``--retrofit``
            (or of another model), or an attention that cannot be retrofitted (one line).
    """
    from ..models import create_model
    from ..models.registry import changed_options
    from ..pretrained import load_pretrained
    from ..retrofit.api import retrofit as insert
    from ..retrofit.checkpoint import retrofit_record

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
        model = build_recorded(arch, name, create_kwargs, replace_classifier=False)
        load_pretrained(model, init_from, source="ours")
        if num_classes is not None and num_classes != model.num_classes:
            model.reset_classifier(num_classes)
        return model, {**arch, "num_classes": num_classes}
    if init_from is not None:
        model = create_model(name, pretrained=init_from, **create_kwargs)
        options = changed_options(model)
    else:
        model, options = create_model(name, **create_kwargs), {}
    arch: dict[str, Any] = {"model_options": options, "retrofit": None, "num_classes": num_classes}
    if retrofit is not None:
        args = {"attention": retrofit, "reduction": reduction or 16, "placement": "standard",
                "identity_init": True, "where": None}  # fmt: skip
        model, _ = insert(model, args["attention"], reduction=args["reduction"], placement=args["placement"],
                          identity_init=True, inplace=True)  # fmt: skip
        arch["retrofit"] = args
    return model, arch


def build_recorded(
    arch: dict[str, Any], name: str, create_kwargs: dict[str, Any], *, replace_classifier: bool = True
) -> nn.Module:
    """Rebuilds the network recorded by ``initial_model`` (its weights are loaded by the caller).

    Args:
        arch: The record (``cfg.extra[ARCHITECTURE]``).
        name: The run's model.
        create_kwargs: The run's ``create_model`` arguments; ``num_classes`` is the classifier wanted.
        replace_classifier: Build with the record's class count and replace the classifier when
            ``create_kwargs`` asks for another (``False``: keep the record's, for loading its weights).
    """
    from ..models import create_model
    from ..retrofit.api import retrofit as insert

    kwargs = {**create_kwargs, **arch["model_options"]}
    wanted = kwargs.get("num_classes")
    if arch.get("num_classes") is not None:
        kwargs["num_classes"] = arch["num_classes"]
    model = create_model(name, **kwargs)
    args = arch.get("retrofit")
    if args:
        model, _ = insert(model, args["attention"], reduction=args["reduction"], placement=args["placement"],
                          identity_init=args["identity_init"], where=args["where"], inplace=True)  # fmt: skip
    if replace_classifier and wanted is not None and wanted != model.num_classes:
        model.reset_classifier(wanted)
    return model
