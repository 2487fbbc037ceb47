"""The live display's averages and final line (issue 22), and the journal's load states."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from engine.journal_admin import LoadSummary, _stage_suffix, _with_state, parse_age, source_of
from engine.progress_display import ProgressDisplay
from engine.results import Progress


def display() -> tuple[ProgressDisplay, io.StringIO]:
    err = io.StringIO()
    return ProgressDisplay(table="dbo.t", workers=2, mode="log", interval=3600, err=err), err


def test_log_lines_show_the_average_beside_the_current_rate():
    d, _ = display()
    d.update(Progress(10_000, 1, 0, 1_000_000, 1.0, 100_000))
    text = d.describe()
    assert "rows/s (avg 10,000)" in text and "MB/s (avg 1.00)" in text


def test_the_final_line_shows_only_the_average_and_the_transport():
    d, err = display()
    d.update(Progress(40_000, 4, 0, 4_000_000, 2.0, 40_000))
    d.stop("done", final="via parameter arrays (batches of 100 rows)")
    last = err.getvalue().strip().splitlines()[-1]
    assert "20,000 rows/s average" in last and "2.00 MB/s average" in last
    assert "(avg" not in last and "ETA" not in last
    assert last.endswith("via parameter arrays (batches of 100 rows)")


def test_the_rich_view_renders_live_and_final():
    pytest.importorskip("rich")
    from rich.console import Console

    d = ProgressDisplay(table="dbo.t", workers=2, mode="rich", out=io.StringIO())
    d.update(Progress(10_000, 1, 0, 1_000_000, 1.0, 100_000))
    console = Console(file=io.StringIO(), width=120)
    console.print(d._render())
    assert "(avg 10,000)" in console.file.getvalue()  # type: ignore[attr-defined]
    d._final = "via bulk copy"
    console = Console(file=io.StringIO(), width=120)
    console.print(d._render())
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "10,000 avg" in shown and "(avg" not in shown and "via bulk copy" in shown


def test_rejected_rows_are_counted_live_and_in_the_final_view():
    d, err = display()
    d.update(Progress(9_993, 10, 0, 1_000_000, 1.0, 10_000, rows_rejected=7))
    assert "7 rows rejected" in d.describe()
    d.stop("done", final="via bulk copy")
    assert "7 rows rejected" in err.getvalue().strip().splitlines()[-1]
    d.update(Progress(10_000, 10, 0, 1_000_000, 1.0, 10_000))
    assert "rejected" not in d.describe()  # nothing said when nothing was set aside
    pytest.importorskip("rich")
    from rich.console import Console

    rich = ProgressDisplay(table="dbo.t", workers=2, mode="rich", out=io.StringIO())
    rich.update(Progress(9_993, 10, 0, 1_000_000, 1.0, 10_000, rows_rejected=7))
    console = Console(file=io.StringIO(), width=120)
    console.print(rich._render())
    assert "rejected" in console.file.getvalue()  # type: ignore[attr-defined]


def summary(load_id: str = "L", target: str = "dbo.t", rows: int = 10,
            source_rows: int | None = None) -> LoadSummary:
    now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    return LoadSummary(load_id, "dbo.t", target, "append", "", 1, rows, now, now, (),
                       source_rows)


@pytest.mark.parametrize(("rows", "source_rows", "finished", "staged", "state"), [
    (10, 10, False, False, "complete"),
    (5, 10, False, False, "partial"),
    (5, None, False, False, "unknown"),
    (10, 10, False, True, "applying"),
    (5, 10, False, True, "partial"),
    (10, 10, True, True, "complete"),
])
def test_load_states(rows, source_rows, finished, staged, state):
    target = f"dbo.t{_stage_suffix('L')}" if staged else "dbo.t"
    s = _with_state(summary(target=target, rows=rows, source_rows=source_rows),
                    finished=finished)
    assert s.state == state and s.staged is staged


def test_only_the_loads_own_staging_table_counts_as_its_stage():
    other = f"dbo.t{_stage_suffix('another load')}"
    assert not summary(target=other).staged


def test_ages_and_sources():
    assert parse_age("2w") == dt.timedelta(days=14)
    with pytest.raises(ValueError, match="30d"):
        parse_age("soon")
    assert source_of("abfss://c@a.dfs.core.windows.net/p/x.parquet#2:0") == \
        "abfss://c@a.dfs.core.windows.net/p/x.parquet"
    assert source_of("data/x.csv:5000") == "data/x.csv"
