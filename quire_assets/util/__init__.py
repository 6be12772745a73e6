"""Small helpers with no home of their own in the domain: batches of a sequence, SQLite
connections shared between processes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

# Keys per statement: well under SQLite's bound parameters and MongoDB's document size.
BATCH = 1000


def chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
