"""Which copy of a data set a result used, said in every result that used it.

The CIFAR-10 embedded in the package is a lossy copy: its JPEGs use the quality-75 quantisation tables.
The most used public ResNet-20 (akamaster's) scores 91.78% on the original test set and 81.03% on this
copy's, so errors measured on it are not comparable with published CIFAR-10 numbers; a comparison made
on the same copy (SE against plain, one setting against another) still is. The official archive
(``cifar-10-python.tar.gz``) is used whenever it is in the cache or ``--data-dir``.
"""

from __future__ import annotations

from typing import Any

EMBEDDED_SOURCE = "embedded CIFAR-10 JPEG copy (lossy)"
EMBEDDED_NOTE = (
    "the embedded CIFAR-10 is a lossy JPEG copy (quality-75 tables): a published ResNet-20 scores 81.03% on its "
    "test split against 91.78% on the original, so absolute errors are not comparable with published CIFAR-10 "
    "numbers (comparisons on the same copy are); put cifar-10-python.tar.gz in the cache or --data-dir to use "
    "the original"
)


def data_record(source: str | None) -> dict[str, Any]:
    """What a result's JSON records about its data.

    Args:
        source: ``DataSplits.source`` of the data the runs used (``None``: not recorded, older runs).

    Returns:
        ``{"source": ..., "lossy_copy": bool, "note": str or None}``.
    """
    lossy = bool(source) and source.startswith(EMBEDDED_SOURCE)
    return {"source": source, "lossy_copy": lossy, "note": EMBEDDED_NOTE if lossy else None}


def data_line(record: dict[str, Any] | None) -> str:
    """One line for a printed report: the data's source and, for the embedded copy, what it costs."""
    record = record or data_record(None)
    line = f"Data: {record.get('source') or 'not recorded'}."
    if record.get("lossy_copy"):
        line += f" Note: {record['note']}."
    return line
