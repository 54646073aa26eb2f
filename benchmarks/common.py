"""What every benchmark section shares: a figure (value, floor, baseline, ratio) and interleaved medians.

A section is a module with ``run(ctx: Context) -> list[Figure]``. Times are medians over repeats in which the
compared variants take turns (A, B, A, B, ...), so a machine that slows down mid-run slows both alike; counts
(requests, capacity units, bytes, calls) do not depend on the machine and are exact.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Figure:
    """One measured figure, beside what it is compared with.

    ``floor`` is the least it could cost (what the job needs and nothing more); ``baseline`` is the design it
    replaces or the naive one (``baseline_name`` says which). ``target`` is the bar it must meet, in words
    ("<= 1.30x floor"), and ``met`` whether it does (None when there is no target).
    """

    section: str
    name: str
    value: float
    unit: str
    floor: float | None = None
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def to_floor(self) -> float | None:
        return self.value / self.floor if self.floor else None

    @property
    def to_baseline(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


@dataclass
class Context:
    """What a section gets: the DynamoDB Local endpoint (one JVM for the whole run), how many repeats to make,
    and the figures of the sections that ran before it (the cost section prices them)."""

    dynamodb_local: str
    repeats: int = 7
    quick: bool = False  # smaller sizes, for a smoke run of the benchmark itself
    figures: list[Figure] = field(default_factory=list)
    # What a section says beside its table (the mix it measured, what it assumed), by section.
    notes: dict[str, list[str]] = field(default_factory=dict)

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)

    def find(self, section: str, name: str) -> Figure:
        for figure in self.figures:
            if figure.section == section and figure.name == name:
                return figure
        raise KeyError(f"{section}: {name}")


def interleaved(variants: Mapping[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Wall-clock seconds of each variant, ``repeats`` times, the variants taking turns."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def at_most(value: float, bound: float) -> bool:
    """``value <= bound``, forgiving the last bits of float arithmetic (1.15 x 2.0 is not exactly 2.3)."""
    return value <= bound or math.isclose(value, bound, rel_tol=1e-9, abs_tol=1e-12)


@contextmanager
def quiet() -> Iterator[None]:
    """dlrwatch's info logs and metric lines off while a section drives the code in this process: they would
    bury the tables on stdout. Restored afterwards, for a section that measures them."""
    from dlrwatch import observability

    level, disabled = observability.logger.log_level, observability.DISABLED
    observability.logger.setLevel("WARNING")
    observability.DISABLED = True
    try:
        yield
    finally:
        observability.logger.setLevel(level)
        observability.DISABLED = disabled
