"""``senet retrofit``'s output: a checkpoint loaded into its network, attention retrofitted, written with
what it takes to rebuild it (``OUT/model.safetensors`` with the record in its metadata, ``OUT/retrofit.json``
and ``OUT/report.md``). ``load_model(OUT)`` reads it back exactly (``retrofitted.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..io import MODEL_FILE, atomic_save_tensors, check_output_folder, holds_run, replace_folder
from ..models.registry import changed_options
from ..retrofit.api import retrofit
from ..retrofit.report import RetrofitReport
from .load import load_model
from .retrofitted import METADATA_KEY, retrofit_record


def retrofit_checkpoint(
    model: str,
    weights: str | os.PathLike | bool,
    out: str | os.PathLike,
    *,
    attention: str = "se",
    reduction: float = 16,
    placement: str = "standard",
    identity_init: bool = True,
    where: list[str] | None = None,
    force: bool = False,
    input_size: int | tuple[int, ...] | None = None,
) -> RetrofitReport:
    """Loads a checkpoint into its zoo model, retrofits attention and writes the result to ``out``.

    Args:
        model: The registered model the checkpoint belongs to (the plain network: ``'resnet50'``).
        weights: Any source ``senet.load_model`` takes: a checkpoint file in any known naming, a run
            folder, a URL, ``True`` or a tag of the pretrained table.
        out: The folder to write (created; an existing non-empty one needs ``force``).
        attention, reduction, placement, identity_init, where: As ``senet.retrofit``.
        force: Replace an existing non-empty ``out``.
        input_size: Where the report counts multiply-adds, as ``senet.retrofit`` (default: the model's).

    Returns:
        The retrofit report.

    Raises:
        FileExistsError: If ``out`` holds files and ``force`` is not set, or (with or without ``force``) holds a
            ``senet train`` run or the checkpoint to read (nothing is written).
        ValueError: From loading or retrofitting (one line).
    """
    out = check_output_folder(out, force)
    _refuse_replacing_inputs(out, weights)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder {out.parent} does not exist")
    base = load_model(weights, model=model).train()
    info = base.source_info
    options = changed_options(base)
    built, report = retrofit(base, attention, reduction=reduction, placement=placement,
                             identity_init=identity_init, where=where, inplace=True, input_size=input_size)  # fmt: skip
    record = {
        "model": base.model_name, "num_classes": base.num_classes, "model_options": options,
        "retrofit": {"attention": attention, "reduction": reduction, "placement": placement,
                     "identity_init": identity_init, "where": where},
        "source": {"file": info.weights, "naming": info.naming, "tag": info.tag, "kind": info.kind},
        "classes": list(info.classes) if info.classes else None,
        "preprocessing": info.preprocessing,
    }  # fmt: skip
    with replace_folder(out) as staging:
        atomic_save_tensors(built.state_dict(), staging / MODEL_FILE, metadata={METADATA_KEY: json.dumps(record)})
        (staging / "retrofit.json").write_text(json.dumps({**record, "report": report.to_dict()}, indent=1))
        (staging / "report.md").write_text(report.format("markdown") + "\n")
    return report


def _refuse_replacing_inputs(out: Path, weights: str | os.PathLike | bool) -> None:
    """``force`` replaces an earlier output, never a training run nor the checkpoint being read (both would be
    lost: the folder is replaced whole)."""
    if not out.is_dir():
        return
    if holds_run(out) and retrofit_record(out) is None:  # a retrofit output holds model.safetensors too
        raise FileExistsError(f"{out} already holds a training run (of `senet train`); the retrofit needs a "
                              "folder of its own: give another --out")  # fmt: skip
    if isinstance(weights, (str, os.PathLike)) and Path(weights).expanduser().exists():
        source, folder = Path(weights).expanduser().resolve(), out.resolve()
        if source == folder or folder in source.parents:
            raise FileExistsError(f"{out} holds the checkpoint to retrofit ({weights}); give another --out")
