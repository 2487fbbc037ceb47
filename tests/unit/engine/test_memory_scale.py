"""benchmarks/scale.py's verdicts: tenths from journal rows and RSS samples, and the goals.

Synthetic figures only (no load runs): each goal must pass on flat figures and fail on
the kind of growth it exists to catch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import scale  # benchmarks/ is not a package


def _journal(rates: list[int], batch_rows: int = 1_000) -> list[tuple[float, int]]:
    """Journal rows for one second per tenth at the given rows/s (a row at t=0 opens it)."""
    rows: list[tuple[float, int]] = [(0.0, batch_rows)]
    for i, rate in enumerate(rates):
        n = rate // batch_rows
        rows += [(i + (k + 0.5) / n, batch_rows) for k in range(n)]
    return rows


def _idle(insert: float, lookup: float = 2.0, catalog: float = 3.0) -> dict:
    return {"repeats": 20, "journal_batches": 0, "journal_insert_ms": insert,
            "journal_lookup_ms": lookup, "catalog_columns_ms": catalog,
            "journal_count_ms": 1.0}


def _verdicts(rates: list[int], rss_by_tenth: list[float], before: dict, after: dict) -> list:
    journal = _journal(rates)
    rss = [(i + 0.5, mib) for i, mib in enumerate(rss_by_tenth)]
    per = scale.tenths(journal, rss, [])
    ends = scale.start_end([])
    return [g["pass"] for g in scale.goals(per, ends, {"before": before, "after": after})]


def test_flat_run_passes_every_goal():
    assert _verdicts([100_000] * 10, [300.0] * 10, _idle(5.0), _idle(5.5)) == [True] * 3


def test_tenths_count_rows_per_second_and_peak_rss():
    per = scale.tenths(_journal([50_000, 100_000] * 5),
                       [(0.2, 250.0), (0.7, 260.0), (9.5, 280.0)], [])
    assert [t["rows_per_second"] for t in per["tenths"][:2]] == [
        pytest.approx(50_000, rel=0.01), pytest.approx(100_000, rel=0.01)]
    assert per["tenths"][0]["peak_rss_mib"] == 260.0
    assert per["tenths"][9]["peak_rss_mib"] == 280.0


@pytest.mark.parametrize(("rates", "rss", "after", "failed"), [
    ([100_000] * 10, [300.0] * 9 + [340.0], _idle(5.0), 0),  # memory grew 13%
    ([100_000] * 9 + [80_000], [300.0] * 10, _idle(5.0), 1),  # last tenth 20% slower
    ([100_000] * 10, [300.0] * 10, _idle(8.0), 2),  # INSERT 5 -> 8 ms: > 1.25x + 1 ms
])
def test_each_goal_fails_on_what_it_guards(rates, rss, after, failed):
    verdicts = _verdicts(rates, rss, _idle(5.0), after)
    assert verdicts[failed] is False
    assert sum(verdicts) == 2
