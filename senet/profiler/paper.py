"""The paper's cost numbers as data, and their comparison with what our models count.

Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks" (arXiv:1709.01507 v4): Table 2 (GFLOPs
of the ImageNet networks with and without SE), Table 3 (MFLOPs and parameters of the mobile networks)
and the parameter counts of the SE-ResNet-50 ablations. The paper's "GFLOPs" are multiply-adds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._markdown import markdown_table
from ..models.registry import list_models
from .render import check_format, csv_table, text_table, to_json
from .zoo import build_model, count_parameters, profile_model

TABLE2 = "Table 2: ImageNet networks, GFLOPs (multiply-adds)"
TABLE3 = "Table 3: mobile networks, MFLOPs (multiply-adds) and parameters"
ABLATIONS = "Ablations on SE-ResNet-50: parameters"

NOTES = {
    "inception": (
        "BN-Inception and Inception-ResNet-v2 cannot be reproduced exactly: the paper does not publish "
        "their definitions (a common Inception-ResNet-v2 costs 13.2 G multiply-adds at 299 px against the "
        "paper's 11.75). Ours is printed beside theirs, without a pass mark."
    ),
    "rounded": (
        "The paper gives parameters to 0.1M, seemingly rounded up (r = 4 is 35.64M, printed 35.7M); a "
        "count passes within 0.1M."
    ),
    "increase": (
        "Removing the last stage's SE blocks (se_stages=(2, 3, 4)): the parameter increase over ResNet-50, "
        "the paper's 'from about 10% to about 4%'; passes within 0.5 percentage points."
    ),
}

# quantity -> (what is measured, scale, digits of the paper's number, digits of ours)
_QUANTITIES = {
    "GFLOPs": ("macs", 1e9, 2, 3),
    "MFLOPs": ("macs", 1e6, 0, 1),
    "params (M)": ("params", 1e6, 1, 3),
    "param increase (%)": ("params", 1.0, 0, 2),
}


@dataclass(frozen=True)
class PaperNumber:
    """One cost the paper reports, and how to measure it on our models.

    Attributes:
        section: The paper's table or section.
        label: The paper's name of the network (``'SE-ResNet-50'``).
        model: Our registry name.
        quantity: 'GFLOPs', 'MFLOPs', 'params (M)' or 'param increase (%)'.
        paper: The paper's number.
        rel_tol: Passes when ``|ours / paper - 1| <= rel_tol``.
        abs_tol: Passes when ``|ours - paper| <= abs_tol`` (in the quantity's unit).
        input_size: The input of the multiply-add count.
        options: Arguments of ``create_model`` (``(('reduction', 8),)``).
        baseline: For 'param increase (%)': the network the increase is measured against.
        note: A key of ``NOTES`` explaining the row, or ''.
    """

    section: str
    label: str
    model: str
    quantity: str
    paper: float
    rel_tol: float | None = None
    abs_tol: float | None = None
    input_size: tuple[int, ...] = (3, 224, 224)
    options: tuple[tuple[str, Any], ...] = ()
    baseline: str | None = None
    note: str = ""

    @property
    def tolerance(self) -> str:
        """The pass criterion as text ('±0.3%', '±0.1', or '' when the row has no pass mark)."""
        if self.rel_tol is not None:
            return f"±{self.rel_tol * 100:g}%"
        if self.abs_tol is not None:
            return f"±{self.abs_tol:g}"
        return ""

    @property
    def network(self) -> str:
        """Our model with its options, as text: ``se_resnet50(reduction=8)``."""
        options = ", ".join(f"{k}={v!r}" for k, v in self.options)
        return f"{self.model}({options})" if options else self.model

    def passes(self, ours: float) -> bool | None:
        """Whether ``ours`` is within the tolerance; ``None`` when the row has no pass mark."""
        if self.rel_tol is not None:
            return abs(ours / self.paper - 1) <= self.rel_tol + 1e-12
        if self.abs_tol is not None:
            return abs(ours - self.paper) <= self.abs_tol + 1e-9
        return None


def _table2(
    label: str, model: str, base: float, se: float, rel_tol: float | None, size: int = 224
) -> list[PaperNumber]:
    note = "" if rel_tol is not None else "inception"
    shape = (3, size, size)
    return [
        PaperNumber(TABLE2, label, model, "GFLOPs", base, rel_tol, input_size=shape, note=note),
        PaperNumber(TABLE2, f"SE-{label}", f"se_{model}", "GFLOPs", se, rel_tol, input_size=shape, note=note),
    ]


def _table3(label: str, model: str, macs: float, params: float, rel_tol: float) -> list[PaperNumber]:
    return [
        PaperNumber(TABLE3, label, model, "MFLOPs", macs, rel_tol),
        PaperNumber(TABLE3, label, model, "params (M)", params, abs_tol=0.1, note="rounded"),
    ]


def _ablation(label: str, value: float, **options: Any) -> PaperNumber:
    return PaperNumber(
        ABLATIONS,
        label,
        "se_resnet50",
        "params (M)",
        value,
        abs_tol=0.1,
        options=tuple(options.items()),
        note="rounded",
    )


_REDUCTIONS = ((2, 45.7), (4, 35.7), (8, 30.7), (16, 28.1), (32, 26.9))  # r -> millions of parameters

PAPER: tuple[PaperNumber, ...] = (
    *_table2("ResNet-50", "resnet50", 3.86, 3.87, 0.003),
    *_table2("ResNet-101", "resnet101", 7.58, 7.60, 0.003),
    *_table2("ResNet-152", "resnet152", 11.30, 11.32, 0.003),
    *_table2("ResNeXt-50 (32x4d)", "resnext50_32x4d", 4.24, 4.25, 0.003),
    *_table2("ResNeXt-101 (32x4d)", "resnext101_32x4d", 7.99, 8.00, 0.003),
    *_table2("VGG-16 (BN)", "vgg16_bn", 15.47, 15.48, 0.003),
    *_table2("BN-Inception", "bn_inception", 2.03, 2.04, None),
    *_table2("Inception-ResNet-v2 (299)", "inception_resnet_v2", 11.75, 11.76, None, size=299),
    *_table3("MobileNet 1.0-224", "mobilenet_v1", 569, 4.2, 0.01),
    *_table3("SE-MobileNet 1.0-224", "se_mobilenet_v1", 572, 4.7, 0.01),
    *_table3("ShuffleNet 1x (g=3)", "shufflenet_v1_g3", 140, 1.8, 0.03),
    *_table3("SE-ShuffleNet 1x (g=3)", "se_shufflenet_v1_g3", 142, 2.4, 0.03),
    *(_ablation(f"reduction r = {r}", v, reduction=r) for r, v in _REDUCTIONS),
    _ablation("SE in conv2_x only", 25.6, se_stages=(2,)),
    _ablation("SE in conv3_x only", 25.7, se_stages=(3,)),
    _ablation("SE in conv4_x only", 26.4, se_stages=(4,)),
    _ablation("SE after the 3x3 convolution", 25.8, se_placement="after_3x3"),
    PaperNumber(
        ABLATIONS,
        "SE in all stages",
        "se_resnet50",
        "param increase (%)",
        10,
        abs_tol=0.5,
        baseline="resnet50",
        note="increase",
    ),
    PaperNumber(
        ABLATIONS,
        "SE without the last stage",
        "se_resnet50",
        "param increase (%)",
        4,
        abs_tol=0.5,
        options=(("se_stages", (2, 3, 4)),),
        baseline="resnet50",
        note="increase",
    ),
)


@dataclass(frozen=True)
class PaperComparison:
    """The paper's number beside ours.

    Attributes:
        reference: The paper's number and how it is measured.
        ours: Our number in the same unit, or ``None`` when it could not be measured.
        problem: Why ``ours`` is missing (e.g. the model is not registered), else ``None``.
    """

    reference: PaperNumber
    ours: float | None
    problem: str | None = None

    @property
    def ratio(self) -> float | None:
        """ours / paper, or ``None``."""
        return None if self.ours is None else self.ours / self.reference.paper

    @property
    def status(self) -> str:
        """'ok' or 'FAIL' against the tolerance, 'n/a' for rows without a pass mark, 'missing' without ours."""
        if self.ours is None:
            return "missing"
        passed = self.reference.passes(self.ours)
        return "n/a" if passed is None else ("ok" if passed else "FAIL")

    def to_dict(self) -> dict[str, Any]:
        """Returns the row as JSON-ready values."""
        r = self.reference
        return {
            "section": r.section,
            "label": r.label,
            "model": r.network,
            "input_size": list(r.input_size),
            "quantity": r.quantity,
            "paper": r.paper,
            "ours": self.ours,
            "ratio": self.ratio,
            "tolerance": r.tolerance,
            "status": self.status,
            "note": NOTES.get(r.note, ""),
            "problem": self.problem,
        }


@functools.cache
def _params(model: str, options: tuple[tuple[str, Any], ...]) -> int:
    return count_parameters(build_model(model, **dict(options)))


@functools.cache
def _macs(model: str, options: tuple[tuple[str, Any], ...], input_size: tuple[int, ...]) -> int:
    return profile_model(model, input_size, **dict(options)).macs


def measure(reference: PaperNumber) -> float:
    """Measures the paper's quantity on our model, in the paper's unit (cached per model and options).

    Raises:
        ValueError: If the model is not registered or rejects the options.
    """
    kind, scale, _, _ = _QUANTITIES[reference.quantity]
    if reference.quantity == "param increase (%)":
        base = _params(reference.baseline or reference.model, ())
        return 100.0 * (_params(reference.model, reference.options) - base) / base
    if kind == "params":
        return _params(reference.model, reference.options) / scale
    return _macs(reference.model, reference.options, reference.input_size) / scale


def compare_with_paper(
    references: Sequence[PaperNumber] = PAPER, *, progress: Callable[[str], None] | None = None
) -> list[PaperComparison]:
    """Measures every reference on our models (built on the meta device) and pairs it with the paper's.

    Args:
        references: The paper's numbers to check (default: all of ``PAPER``).
        progress: Called with one line of text before each measurement (the library prints nothing).

    Returns:
        One ``PaperComparison`` per reference, in order; unregistered models give ``ours=None``.
    """
    registered = set(list_models())
    results = []
    for i, ref in enumerate(references, 1):
        if progress is not None:
            progress(f"[{i}/{len(references)}] {ref.label}: {ref.network} {ref.quantity}")
        missing = [m for m in (ref.model, ref.baseline) if m is not None and m not in registered]
        if missing:
            results.append(PaperComparison(ref, None, f"{missing[0]} is not registered"))
            continue
        try:
            results.append(PaperComparison(ref, measure(ref)))
        except ValueError as e:
            results.append(PaperComparison(ref, None, str(e)))
    return results


def _cells(c: PaperComparison, notes: list[str]) -> list[str]:
    r = c.reference
    _, _, paper_digits, our_digits = _QUANTITIES[r.quantity]
    mark = ""
    if r.note:
        if r.note not in notes:
            notes.append(r.note)
        mark = f" [{notes.index(r.note) + 1}]"
    size = f"{r.input_size[-1]} px" if _QUANTITIES[r.quantity][0] == "macs" else ""
    return [
        r.label + mark,
        r.network,
        size,
        r.quantity,
        f"{r.paper:.{paper_digits}f}",
        "-" if c.ours is None else f"{c.ours:.{our_digits}f}",
        "-" if c.ratio is None else f"{c.ratio:.4f}",
        r.tolerance or "-",
        c.status + (f" ({c.problem})" if c.problem else ""),
    ]


_HEADERS = ("paper row", "our model", "input", "quantity", "paper", "ours", "ours/paper", "tolerance", "check")
_RIGHT = (False, False, True, False, True, True, True, True, False)


def format_comparison(comparisons: Sequence[PaperComparison], fmt: str = "table") -> str:
    """Renders the comparison: one table per section with footnotes, or flat JSON / CSV rows.

    Args:
        comparisons: The output of ``compare_with_paper``.
        fmt: 'table', 'markdown', 'json' or 'csv'.

    Returns:
        The text.

    Raises:
        ValueError: On an unknown format.
    """
    check_format(fmt)
    if fmt == "json":
        return to_json([c.to_dict() for c in comparisons])
    if fmt == "csv":
        dicts = [c.to_dict() for c in comparisons]
        for d in dicts:
            d["input_size"] = "x".join(map(str, d["input_size"]))
        return csv_table(list(dicts[0]), [list(d.values()) for d in dicts]) if dicts else ""
    notes: list[str] = []
    blocks = []
    sections = list(dict.fromkeys(c.reference.section for c in comparisons))
    for section in sections:
        rows = [_cells(c, notes) for c in comparisons if c.reference.section == section]
        if fmt == "markdown":
            blocks.append(f"**{section}**\n\n{markdown_table(_HEADERS, rows, _RIGHT)}")
        else:
            blocks.append(f"{section}\n{text_table(_HEADERS, rows, _RIGHT)}")
    counts = {s: sum(c.status == s for c in comparisons) for s in ("ok", "FAIL", "n/a", "missing")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    footnotes = [f"[{i}] {NOTES[key]}" for i, key in enumerate(notes, 1)]
    counted = (
        "Ours: multiply-adds of convolutions and FC layers plus the SE blocks' pooling and scaling, "
        "counted on the meta device at batch 1."
    )
    return "\n\n".join(blocks + ["\n".join([counted, *footnotes, f"Summary: {summary}."])])
