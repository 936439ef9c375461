"""The one table every benchmark prints: a measure, its same-run baseline, the ratio, the goal."""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    metric: str
    value: float
    unit: str
    baseline: str
    baseline_value: float
    goal: str
    ok: bool

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("inf")


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Seconds taken by the fastest of ``repeats`` runs (the least disturbed by a noisy machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def print_table(title: str, rows: list[Row]) -> None:
    print(f"\n## {title}\n")
    print("| measure | value | baseline (same run) | ratio | goal | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = (
            r.metric,
            f"{r.value:,.2f} {r.unit}",
            f"{r.baseline}: {r.baseline_value:,.2f} {r.unit}",
            f"{r.ratio:.2f}x",
            r.goal,
            "yes" if r.ok else "NO",
        )
        print("| " + " | ".join(cells) + " |")


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0.5, 0.95, ...) of ``values``, inclusive method."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon under measurement as systemd would: SIGTERM, then a kill after 10 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
