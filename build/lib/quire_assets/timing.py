"""Wall time spent in Quire's own code inside Dagster runs, to tell Dagster's overhead apart.

``quire ingest --timings`` prints it; ``benchmarks/ingest.py`` reports the difference between a
run's wall time and the time spent here as the Dagster overhead.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)
spent: Counter = Counter()


def timed(fn: F) -> F:
    """Add the wall time of each call to ``spent[fn.__name__]`` (the signature is kept for Dagster)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[fn.__name__] += time.perf_counter() - start

    return wrapper  # type: ignore[return-value]
