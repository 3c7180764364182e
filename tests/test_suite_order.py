"""The suite's own bookkeeping: conftest's LONG_FIRST (the tests started first, so the longest do not end
the run on one worker alone) names tests that exist; a renamed or moved test would silently drop out."""

from pathlib import Path

from conftest import LONG_FIRST

TESTS = Path(__file__).parent


def test_every_long_first_entry_names_an_existing_test():
    for entry in LONG_FIRST:
        file, _, prefix = entry.partition("::")
        source = (TESTS / file).read_text() if (TESTS / file).is_file() else None
        assert source is not None, f"LONG_FIRST names {file}, which is not in tests/"
        assert not prefix or f"def {prefix}" in source, f"LONG_FIRST names {entry}: no test of {file} starts so"
