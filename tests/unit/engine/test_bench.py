"""`azsql-bulk bench`'s pure parts: the recommendation, the stats window, the batch stream,
the step plan, the report and the datasets (the command itself: tests/integration/cli)."""

from __future__ import annotations

import decimal
import threading

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.bench import datasets
from engine.bench.recommend import REACHED, recommend
from engine.bench.report import html_page, no_answer, rows_of, stopped_note, write_chart
from engine.bench.server_view import ServerFigures, StatsRow, log_mib_per_second, window_rows
from engine.bench.sweep import StepResult, plan_steps

CAP = 50 * 2**20


def step(number: int, workers: int, mb: float, log: float | None = None, *,
         batch: int = 102_400, transport: str = "bulk-copy", status: str = "ok",
         rows: int = 1000) -> StepResult:
    return StepResult(number, workers, batch, transport, f"s.t{number}", status=status,
                      rows=rows, mb_per_second=mb, rows_per_second=mb * 10_000,
                      transport_used=transport,
                      server=ServerFigures(log_write_percent=log,
                                           log_mib_per_second=log_mib_per_second(log, CAP)))


# -- the recommendation ------------------------------------------------------------------
def test_the_fewest_workers_that_reach_the_cap():
    steps = [step(1, 1, 20, 40), step(2, 2, 38, 78), step(3, 4, 48, 97), step(4, 8, 48.5, 99)]
    answer = recommend(steps, CAP)
    assert answer is not None
    assert (answer.workers, answer.basis, answer.step) == (4, "log-rate cap", 3)
    assert answer.reason.startswith("4 workers, 102,400 rows per batch, bulk copy: 48.5 MiB/s "
                                    "of log, 97% of the cap (50.0 MiB/s)")
    assert answer.reason.endswith("8 workers added nothing (+1%)")
    assert answer.more_workers == [{"workers": 8, "mb_per_second": 48.5,
                                    "gain_percent": pytest.approx(1.0416, abs=1e-3),
                                    "log_write_percent": 99}]


def test_ties_go_to_the_smaller_batch_then_bulk_copy():
    steps = [step(1, 2, 40, 95, batch=102_400), step(2, 2, 41, 96, batch=50_000,
                                                     transport="parameter-arrays"),
             step(3, 2, 39, 92, batch=50_000), step(4, 1, 30, 70, batch=10_000)]
    answer = recommend(steps, CAP)
    assert answer is not None and (answer.rows_per_batch, answer.transport) == (50_000,
                                                                                  "bulk-copy")


def test_without_the_cap_it_judges_by_throughput_and_says_why():
    steps = [step(1, 1, 5.0), step(2, 2, 9.3), step(3, 4, 10.0), step(4, 8, 9.8)]
    answer = recommend(steps, None, ["could not see the database's log-rate cap"])
    assert answer is not None
    assert (answer.workers, answer.basis) == (2, "throughput")  # 9.3 >= 90 % of 10.0
    assert "93% of the best step's (10.00 MB/s with 4 workers" in answer.reason
    assert "judged on throughput alone: could not see the database's log-rate cap" \
        in answer.reason
    assert "4 workers added 8% (10.00 MB/s)" in answer.reason
    assert "8 workers added 5% (9.80 MB/s)" in answer.reason


def test_no_step_at_the_cap_means_the_ceiling_is_elsewhere():
    answer = recommend([step(1, 1, 5, 30), step(2, 2, 9, 55), step(3, 4, 8, 52)], CAP)
    assert answer is not None and (answer.workers, answer.basis) == (2, "throughput")
    assert "no step reached 90% of the log-rate cap" in answer.reason
    assert "4 workers were slower (-11%)" in answer.reason


def test_a_step_the_server_stats_missed_is_judged_by_throughput_against_the_cap():
    # the review's run: 1 worker already throttled, but its window held no stats row
    steps = [step(1, 1, 1.75, None), step(2, 2, 1.71, 94.0), step(3, 4, 1.69, 94.5)]
    answer = recommend(steps, CAP)
    assert answer is not None
    assert (answer.workers, answer.step, answer.basis) == (1, 1, "log-rate cap (by throughput)")
    assert answer.no_server_figures == [1]
    assert "102% of the 1.71 MB/s of step 2, which reached 94% of the cap" in answer.reason
    assert "the server showed no resource-stats row for step 1 (log % unknown)" in answer.reason
    assert "2 workers added nothing (-2%)" in answer.reason


def test_a_slower_step_without_stats_is_named_but_not_picked():
    steps = [step(1, 1, 1.0, None), step(2, 2, 1.9, 95.0), step(3, 4, 1.95, 96.0)]
    answer = recommend(steps, CAP)
    assert answer is not None and (answer.workers, answer.basis) == (2, "log-rate cap")
    assert answer.no_server_figures == [1]
    assert "no resource-stats row for step 1 (log % unknown)" in answer.reason


def test_a_step_without_stats_is_judged_even_when_the_capped_step_shows_0_mb_per_second():
    answer = recommend([step(1, 1, 0.0, None), step(2, 2, 0.0, 95.0)], CAP)
    assert answer is not None and answer.basis == "log-rate cap (by throughput)"
    assert "100% of the 0.00 MB/s of step 2" in answer.reason


def test_no_step_at_the_cap_names_the_steps_without_stats():
    answer = recommend([step(1, 1, 5, None), step(2, 2, 9, 55), step(3, 4, 9.5, None)], CAP)
    assert answer is not None and (answer.workers, answer.basis) == (2, "throughput")
    assert "no step with server figures reached 90% of the log-rate cap" in answer.reason
    assert "no resource-stats row for steps 1, 3 (log % unknown): judged on throughput like " \
        "every step" in answer.reason
    assert answer.no_server_figures == [1, 3]


def test_a_known_cap_with_no_stats_row_is_not_called_missing():
    answer = recommend([step(1, 1, 5.0, None)], 2 * 2**20, [])
    assert answer is not None and answer.basis == "throughput"
    assert "no log-rate cap" not in answer.reason
    assert "the log-rate cap is 2.0 MiB/s, but the server showed no resource-stats row in " \
        "any step's window" in answer.reason and "give a longer --duration" in answer.reason


def test_failed_and_stopped_steps_are_not_recommended():
    steps = [step(1, 1, 50, 99, status="failed"), step(2, 2, 50, 99, status="stopped"),
             step(3, 4, 0, None, rows=0)]
    assert recommend(steps, CAP) is None


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from([1, 2, 4, 8, 16]),
                          st.floats(0.1, 100), st.one_of(st.none(), st.floats(0, 100))),
                min_size=1, max_size=8))
def test_the_pick_is_the_fewest_workers_among_the_steps_that_reached(specs):
    steps = [step(i, w, mb, log) for i, (w, mb, log) in enumerate(specs, start=1)]
    answer = recommend(steps, CAP)
    assert answer is not None
    reached = [s for s in steps if s.server.log_write_percent is not None
               and s.server.log_write_percent >= REACHED]
    assert answer.no_server_figures == [s.number for s in steps
                                        if s.server.log_write_percent is None]
    if reached:  # steps without stats count when as fast as the fastest step at the cap
        fastest = max(s.mb_per_second for s in reached)
        alike = [s for s in steps if s.server.log_write_percent is None
                 and s.mb_per_second >= fastest * REACHED / 100]
        assert answer.basis.startswith("log-rate cap")
        assert answer.workers == min(s.workers for s in reached + alike)
    else:
        best = max(s.mb_per_second for s in steps)
        near = [s.workers for s in steps if s.mb_per_second >= best * REACHED / 100]
        assert answer.basis == "throughput" and answer.workers == min(near)


# -- the resource-stats window -----------------------------------------------------------
def test_window_rows_are_those_whose_interval_lies_inside():
    rows = [StatsRow(float(t) / 2, None, None, 50.0) for t in range(20, 0, -1)]  # any order
    found, partial = window_rows(rows, 2.0, 4.0)
    assert [r.end_time for r in found] == [2.5, 3.0, 3.5, 4.0] and not partial


def test_a_step_shorter_than_an_interval_uses_the_rows_that_overlap_it():
    rows = [StatsRow(t, None, None, 80.0) for t in (15.0, 30.0, 45.0)]
    found, partial = window_rows(rows, 20.0, 28.0)
    assert [r.end_time for r in found] == [30.0] and partial
    assert window_rows([], 0, 1) == ([], True)


def test_rows_at_an_earlier_interval_do_not_hide_the_rows_in_the_window():
    # many rows 15 s apart, then the interval became 0.5 s just before the step (the review's
    # run: the median gap was 15 s, so a 3-second step found no row at all)
    rows = [StatsRow(float(t), None, None, 40.0) for t in range(0, 151, 15)]
    rows += [StatsRow(150.0 + t / 2, None, None, 95.0) for t in range(1, 9)]
    found, partial = window_rows(rows, 151.0, 154.0)
    assert [r.end_time for r in found] == [151.5, 152.0, 152.5, 153.0, 153.5, 154.0]
    assert not partial


# -- the stream and the plan -------------------------------------------------------------
def test_stream_deals_exact_batches_wrapping_around_the_pool():
    pool = pa.record_batch({"id": pa.array(range(5))})
    batches = list(datasets.stream(pool, 3, rows=8))
    assert [b.num_rows for b in batches] == [3, 3, 2]
    assert [v for b in batches for v in b.column(0).to_pylist()] == [0, 1, 2, 3, 4, 0, 1, 2]


def test_stream_runs_until_the_deadline_known_from_the_first_commit():
    now = [0.0]
    deadline: list[float | None] = [None]
    dealt = 0
    for _ in datasets.stream(pa.record_batch({"x": [1]}), 1, until=lambda: deadline[0],
                             clock=lambda: now[0]):
        dealt += 1
        now[0] += 1.0
        if dealt == 3:
            deadline[0] = 5.0  # the step's first commit set its deadline
    assert dealt == 5


def test_stream_stops_on_cancel_and_needs_an_end():
    cancel = threading.Event()
    pool = pa.record_batch({"x": [1, 2]})
    seen = 0
    for _ in datasets.stream(pool, 1, until=lambda: None, cancel=cancel):
        seen += 1
        if seen == 4:
            cancel.set()
    assert seen == 4
    with pytest.raises(ValueError, match="needs rows or until"):
        next(datasets.stream(pool, 1))
    with pytest.raises(ValueError, match="at least one row"):
        next(datasets.stream(pool.slice(0, 0), 1, rows=1))


def test_plan_sweeps_workers_fastest_and_drops_repeats():
    plans = plan_steps([1, 2, 2], [100, 200], ["bulk-copy", "parameter-arrays"])
    assert [(p.transport, p.rows_per_batch, p.workers) for p in plans][:4] == [
        ("bulk-copy", 100, 1), ("bulk-copy", 100, 2), ("bulk-copy", 200, 1),
        ("bulk-copy", 200, 2)]
    assert len(plans) == 8


# -- the report --------------------------------------------------------------------------
def test_the_table_says_what_was_not_seen_and_the_page_is_self_contained(tmp_path):
    steps = [step(1, 1, 20, None), step(2, 2, 38, 97.4)]
    cells = rows_of(steps)
    assert cells[0][10] == "-" and cells[1][10] == "97.4"
    answer = recommend(steps, CAP)
    pytest.importorskip("matplotlib")
    assert write_chart(steps, tmp_path / "c.png", "t") is None
    png = (tmp_path / "c.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    page = html_page(steps=steps, recommendation=answer, title="a <b> title", facts=["f"],
                     notes=["n & m"], png=png)
    assert "data:image/png;base64,iVBOR" in page and "a &lt;b&gt; title" in page
    assert '<tr class="pick"><td>2</td>' in page and "n &amp; m" in page


# -- the datasets ------------------------------------------------------------------------
def test_orders_are_deterministic_and_their_totals_add_up():
    first, again = datasets.table("orders", 500, 1000), datasets.table("orders", 500, 1000)
    assert first.equals(again) and first.num_columns == 13
    assert first.column("order_line_id").to_pylist()[0] == 1000
    for row in first.slice(0, 50).to_pylist():
        exact = row["quantity"] * row["unit_price"] * (1 - row["discount_pct"] / 100)
        assert abs(row["line_total"] - exact) < decimal.Decimal("0.01")
    with pytest.raises(ValueError, match="dataset must be one of"):
        datasets.table("nope", 1)


def test_auto_says_what_it_chose():
    chose = step(1, 1, 10, 95, transport="auto")
    chose.transport_used = "bulk-copy"
    answer = recommend([chose], CAP)
    assert answer is not None
    assert (answer.transport, answer.transport_used) == ("auto", "bulk-copy")
    assert answer.reason.startswith("1 worker, 102,400 rows per batch, auto (it chose bulk "
                                    "copy): ")


# -- what the server would not show --------------------------------------------------------
def odbc_error(number: int, state: str = "42000", text: str = "x") -> RuntimeError:
    return RuntimeError(f"ODBC error\nstate: {state}\nnative error code: {number}\n"
                        f"message: {text}")


class FakeConnection:
    """Answers the views' queries from ``answers`` (SQL fragment -> rows or an error)."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers, self.rows, self.closed = answers, [], False

    def cursor(self) -> FakeConnection:
        return self

    def execute(self, sql: str, params: object = None) -> None:
        answer = next(v for k, v in self.answers.items() if k in sql)
        if isinstance(answer, Exception):
            raise answer
        self.rows = answer

    def fetchall(self) -> list:
        return list(self.rows)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class FakeFactory:
    def __init__(self, *connections: FakeConnection) -> None:
        self.connections = list(connections)

    def connect(self) -> FakeConnection:
        return self.connections.pop(0)


def test_each_view_the_server_refuses_is_named_with_the_grant_that_shows_it():
    import datetime as dt

    from engine.bench.server_view import ServerView

    now = dt.datetime(2026, 12, 6, 12, 0, 0)
    conn = FakeConnection({
        "SYSUTCDATETIME": [(now,)],
        "dm_user_db_resource_governance": odbc_error(300, text="VIEW DATABASE STATE "
                                                     "permission denied"),
        "dm_db_resource_stats": odbc_error(208, "42S02", "Invalid object name"),
        "dm_db_wait_stats": [("LOG_RATE_GOVERNOR", 3, 120), ("PAGEIOLATCH_SH", 9, 9)]})
    view = ServerView(FakeFactory(conn), "loader", clock=lambda: now.replace(
        tzinfo=dt.UTC).timestamp() - 2.0).open()  # type: ignore[arg-type]
    assert view.offset == 2.0 and view.log_rate_cap is None
    governance = view.unseen["sys.dm_user_db_resource_governance"]
    assert "needs VIEW DATABASE STATE (server error 300)" in governance.why
    assert governance.fix == "GRANT VIEW DATABASE STATE TO [loader]"
    stats = view.unseen["sys.dm_db_resource_stats"]
    assert "no such view" in stats.why and stats.fix is None
    assert "sys.dm_db_wait_stats" not in view.unseen
    mark = view.mark()
    conn.answers["dm_db_wait_stats"] = [("LOG_RATE_GOVERNOR", 5, 400),
                                        ("POOL_LOG_RATE_GOVERNOR", 1, 30)]
    figures = view.figures(mark, 0.0, 1.0)
    assert figures.log_rate_waits == {"LOG_RATE_GOVERNOR": {"waits": 2, "wait_ms": 280},
                                      "POOL_LOG_RATE_GOVERNOR": {"waits": 1, "wait_ms": 30}}
    assert figures.log_rate_wait_ms == 310 and figures.log_write_percent is None


def test_a_dropped_monitoring_link_logs_in_again_once():
    import datetime as dt

    from engine.bench.server_view import ServerView

    now = dt.datetime(2026, 12, 6, 12, 0, 0)
    broken = FakeConnection({"SYSUTCDATETIME": [(now,)],
                             "dm_user_db_resource_governance": [("GP_Gen5_8", 50 * 2**20)],
                             "dm_db_resource_stats": odbc_error(40613, "HY000", "failover"),
                             "dm_db_wait_stats": []})
    fresh = FakeConnection({"dm_db_resource_stats": [(now, 1.5, 2.5, 99.0)],
                            "dm_db_wait_stats": []})
    view = ServerView(FakeFactory(broken, fresh)).open()  # type: ignore[arg-type]
    assert broken.closed and view.unseen == {}
    assert (view.slo_name, view.log_rate_cap) == ("GP_Gen5_8", 50 * 2**20)
    assert view.resource_rows()[0].log_write == 99.0


def test_steps_too_short_for_the_loading_window_make_every_step_compare_over_the_whole():
    from engine.bench.scratch import ScratchSpace
    from engine.bench.sweep import StepPlan, Sweep
    from engine.connection import ConnectionOptions

    measured = {1: ("loading window", 90.0, 40.0), 2: ("whole step", 30.0, 30.0)}

    class Scripted(Sweep):
        def step(self, number: int, plan: StepPlan) -> StepResult:
            over, windowed, whole = measured[number]
            result = step(number, plan.workers, windowed)
            result.rates_over, result.step_mb_per_second = over, whole
            return result

    sweep = Scripted(ConnectionOptions("srv", "db"), pa.record_batch({"x": [1]}),
                     ScratchSpace(), rows=10, factory=object())  # type: ignore[arg-type]
    results = sweep.run(plan_steps([1, 2], [10], ["auto"]))
    assert [(r.rates_over, r.mb_per_second) for r in results] == [("whole step", 40.0),
                                                                  ("whole step", 30.0)]
    assert "set-up included" in sweep.notes[0]
    measured[2] = ("loading window", 95.0, 30.0)  # all windowed: the windows stand
    again = Scripted(ConnectionOptions("srv", "db"), pa.record_batch({"x": [1]}),
                     ScratchSpace(), rows=10, factory=object())  # type: ignore[arg-type]
    assert [r.mb_per_second for r in again.run(plan_steps([1, 2], [10], ["auto"]))] == [
        90.0, 95.0]
    assert again.notes == []


def test_a_window_without_a_stats_row_is_marked_server_figures_missing():
    import datetime as dt

    from engine.bench.server_view import ServerView

    now = dt.datetime(2026, 12, 6, 12, 0, 0)
    epoch = now.replace(tzinfo=dt.UTC).timestamp()
    conn = FakeConnection({"SYSUTCDATETIME": [(now,)],
                           "dm_user_db_resource_governance": [("Emulator", CAP)],
                           "dm_db_resource_stats": [(now - dt.timedelta(seconds=60), 1, 2, 50),
                                                    (now - dt.timedelta(seconds=45), 1, 2, 50)],
                           "dm_db_wait_stats": []})
    view = ServerView(FakeFactory(conn), clock=lambda: epoch).open()  # type: ignore[arg-type]
    figures = view.figures(view.mark(), epoch + 1.0, epoch + 4.0)  # after the last row
    assert figures.log_write_percent is None and figures.intervals == 0
    assert figures.missing is not None and "no sys.dm_db_resource_stats row" in figures.missing
    missed = step(1, 1, 1.75, None)
    missed.server = figures
    assert rows_of([missed])[0][10] == "no row"
    assert rows_of([step(2, 1, 1.75, None)])[0][10] == "-"  # not seen at all: '-'


def test_a_stopped_step_that_loaded_rows_is_reported_not_called_empty():
    stopped = step(1, 1, 2.0, None, status="stopped", rows=410_000)
    assert recommend([stopped], CAP) is None
    words = no_answer([stopped])
    assert "No step loaded a row" not in words
    assert words.startswith("No recommendation: the run was stopped during step 1 (stopped "
                            "after 410,000 rows")
    failed = step(2, 2, 1.0, None, status="failed", rows=5_000)
    assert no_answer([failed]) == "No recommendation: no step finished; step 2 failed after " \
        "5,000 rows"
    assert no_answer([step(3, 1, 0, None, status="failed", rows=0)]) == \
        "No step loaded a row: no recommendation."
    page = html_page(steps=[stopped], recommendation=None, title="t", facts=[],
                     notes=[words], png=None)
    assert page.count("stopped after 410,000 rows") == 1 and "No step loaded a row" not in page
    # a recommendation from the steps that finished still says a step was stopped
    assert stopped_note([step(4, 1, 2.0, 95), stopped]) is not None
    assert stopped_note([step(4, 1, 2.0, 95)]) is None


def test_a_worker_list_with_a_word_in_it_says_which_part_is_wrong():
    from engine.cli.bench import _ints

    assert _ints("1,2,4") == (1, 2, 4)
    with pytest.raises(ValueError, match=r"^'x' is not a whole number of at least 1 \(give a "
                       r"comma-separated list such as 1,2,4,8\)$"):
        _ints("1,x")
    with pytest.raises(ValueError, match=r"^'0' is not a whole number of at least 1"):
        _ints("0,2")
