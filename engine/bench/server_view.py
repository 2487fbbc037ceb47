"""What the server saw while a benchmark step ran, read from Azure SQL Database's own views.

- ``sys.dm_user_db_resource_governance`` (``WHERE database_id = DB_ID()``): the service
  objective and ``primary_max_log_rate``, the database's log-write cap in bytes per second;
- ``sys.dm_db_resource_stats``: one row per interval (15 s on Azure, about an hour kept):
  ``avg_log_write_percent`` (of the cap), ``avg_cpu_percent``, ``avg_data_io_percent``;
- ``sys.dm_db_wait_stats``: cumulative waits; two snapshots around a step give its waits
  of every ``*LOG_RATE_GOVERNOR`` type (the log-rate governance holding writers back).

A step's figures are the mean over the resource-stats rows whose whole interval lies in
the step's loading window (from its first committed batch to its last). The window is on
the server's clock: the offset between the client's and the server's (``SYSUTCDATETIME()``)
is measured when the view opens. A step shorter than two intervals may have no such row:
then the rows that overlap the window by at least half are used, and the figures say so.

All three views need ``VIEW DATABASE STATE``. Without it the server answers error 300
("VIEW DATABASE STATE permission denied...") and 297; on SQL Server outside Azure SQL
Database the Azure-only views do not exist (208). Either way :class:`ServerView` records
which figure it could not see, why, and the ``GRANT`` that would fix it
(:attr:`ServerView.unseen`), and the benchmark carries on with the client's figures.

>>> round(log_mib_per_second(50.0, 100 * 2**20), 1)
50.0
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.connection import ConnectionFactory, close_quietly, rollback_quietly
from engine.errors import AzsqlBulkError, SqlServerError, database_error

__all__ = ["NEEDS_STATE", "ServerFigures", "ServerView", "StatsRow", "Unseen",
           "log_mib_per_second", "window_rows"]

log = logging.getLogger(__name__)

#: server errors that mean "no VIEW DATABASE STATE": 300 names the permission, 297 follows
NEEDS_STATE = (SqlServerError.NO_PERMISSION, SqlServerError.STATE_DENIED)
_AZURE_INTERVAL = 15.0  # seconds between sys.dm_db_resource_stats rows on Azure

RESOURCE_STATS = "sys.dm_db_resource_stats"
GOVERNANCE = "sys.dm_user_db_resource_governance"
WAIT_STATS = "sys.dm_db_wait_stats"
_WHAT = {RESOURCE_STATS: "the server's log write, CPU and data IO percentages",
         GOVERNANCE: "the database's log-rate cap",
         WAIT_STATS: "the log-rate governor's waits"}


@dataclass(frozen=True)
class Unseen:
    """A figure the server would not show.

    :param view: the view that was asked.
    :param what: the figures it holds.
    :param why: the server's answer, in words.
    :param fix: what would show it (a GRANT), or None when nothing would.
    """

    view: str
    what: str
    why: str
    fix: str | None = None

    def text(self) -> str:
        """One sentence for people."""
        return (f"could not see {self.what} ({self.view}): {self.why}"
                + (f"; to see it: {self.fix}" if self.fix else ""))


@dataclass(frozen=True)
class StatsRow:
    """One ``sys.dm_db_resource_stats`` row (percentages; None where the server has none)."""

    end_time: float  # seconds since the epoch, server clock (UTC)
    cpu: float | None
    data_io: float | None
    log_write: float | None


@dataclass
class ServerFigures:
    """What the server saw during one step.

    :param log_write_percent: mean ``avg_log_write_percent`` over the step's rows.
    :param cpu_percent: mean ``avg_cpu_percent``.
    :param data_io_percent: mean ``avg_data_io_percent``.
    :param log_mib_per_second: ``log_write_percent`` of the cap, in MiB/s.
    :param intervals: how many resource-stats rows the means are over.
    :param partial_intervals: the rows only overlap the step (it was shorter than two
        intervals).
    :param log_rate_waits: wait type -> ``{"waits": n, "wait_ms": ms}`` during the step.
    :param log_rate_wait_ms: those waits' total milliseconds.
    :param missing: why the step has no resource-stats figures although the view could be
        read (no row in its window: "server figures missing"), else None.
    """

    log_write_percent: float | None = None
    cpu_percent: float | None = None
    data_io_percent: float | None = None
    log_mib_per_second: float | None = None
    intervals: int = 0
    partial_intervals: bool = False
    log_rate_waits: dict[str, dict[str, int]] | None = None
    log_rate_wait_ms: int | None = None
    missing: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_mib_per_second(percent: float | None, cap: int | None) -> float | None:
    """``percent`` of a ``cap`` in bytes per second, as MiB/s (None when either is unknown)."""
    if percent is None or not cap:
        return None
    return percent / 100.0 * cap / 2**20


def _mean(values: list[float | None]) -> float | None:
    seen = [v for v in values if v is not None]
    return statistics.fmean(seen) if seen else None


def window_rows(rows: list[StatsRow], start: float, end: float) -> tuple[list[StatsRow], bool]:
    """The rows whose interval lies inside ``[start, end]`` (server clock), and whether
    only overlapping rows could be found instead (``True``: a step shorter than the rows).

    A row's interval runs from the row before it to its own ``end_time`` (the first row's
    is the median gap, 15 s when there are fewer than two rows), so rows written at another
    interval earlier (the emulator's interval changed, or an older run) do not stretch the
    intervals of the rows in the window.

    >>> r = [StatsRow(float(t), 1.0, 2.0, 3.0) for t in range(0, 10)]
    >>> [x.end_time for x in window_rows(r, 2.0, 6.0)[0]]
    [3.0, 4.0, 5.0, 6.0]
    >>> found, partial = window_rows(r, 2.2, 2.8)
    >>> [x.end_time for x in found], partial
    ([3.0], True)
    """
    ordered = sorted(rows, key=lambda r: r.end_time)
    gaps = [b.end_time - a.end_time for a, b in itertools.pairwise(ordered)
            if b.end_time > a.end_time]
    first = statistics.median(gaps) if gaps else _AZURE_INTERVAL
    spans = [(row, (row.end_time - before.end_time) if before is not None
              and row.end_time > before.end_time else first)
             for before, row in zip([None, *ordered], ordered, strict=False)]
    inside = [r for r, interval in spans
              if r.end_time - interval >= start - interval * 0.1
              and r.end_time <= end + interval * 0.1]
    if inside:
        return inside, False
    middle = [r for r, interval in spans if start <= r.end_time - interval / 2 <= end]
    return middle, True


def _epoch(value: Any) -> float:
    """A server ``datetime`` (UTC, naive or not) as seconds since the epoch."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return float(value.timestamp())


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class WaitMark:
    """A ``sys.dm_db_wait_stats`` snapshot of the ``*LOG_RATE_GOVERNOR`` rows."""

    waits: dict[str, tuple[int, int]] | None = None


@dataclass
class ServerView:
    """Reads the server's views over one connection of its own.

    :param factory: opens the monitoring connection.
    :param user: the database user, for the GRANT in :class:`Unseen` fixes.
    :param clock: the client's wall clock (seconds since the epoch).
    """

    factory: ConnectionFactory
    user: str = "<user>"
    clock: Callable[[], float] = time.time
    slo_name: str | None = None
    log_rate_cap: int | None = None  # bytes per second
    unseen: dict[str, Unseen] = field(default_factory=dict)
    offset: float = 0.0  # server clock minus client clock, seconds
    _conn: Any = None

    def open(self) -> ServerView:
        """Log in, measure the clock offset, read the cap (recording what is unseen).

        :raises AzsqlBulkError: the login, or ``SELECT SYSUTCDATETIME()``, failed.
        """
        self._conn = self.factory.connect()
        before = self.clock()
        now = self._query("SELECT SYSUTCDATETIME()", "the server's clock")
        after = self.clock()
        if now:
            self.offset = _epoch(now[0][0]) - (before + after) / 2
        rows = self._query(f"SELECT slo_name, primary_max_log_rate FROM {GOVERNANCE} "  # noqa: S608
                           "WHERE database_id = DB_ID()", GOVERNANCE)
        if rows:
            self.slo_name = None if rows[0][0] is None else str(rows[0][0])
            self.log_rate_cap = int(rows[0][1]) if rows[0][1] else None
            if self.log_rate_cap is None:
                self.unseen[GOVERNANCE] = Unseen(GOVERNANCE, _WHAT[GOVERNANCE],
                                                 "primary_max_log_rate is NULL (no cap)")
        elif GOVERNANCE not in self.unseen:
            self.unseen[GOVERNANCE] = Unseen(GOVERNANCE, _WHAT[GOVERNANCE],
                                             "no row for this database")
        self.resource_rows()  # records whether the stats can be seen at all
        self.mark()
        return self

    def close(self) -> None:
        close_quietly(self._conn)
        self._conn = None

    def __enter__(self) -> ServerView:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_time(self, client_time: float) -> float:
        """``client_time`` (seconds since the epoch) on the server's clock."""
        return client_time + self.offset

    # -- reading ----------------------------------------------------------------------
    def _query(self, sql: str, view: str) -> list[Any]:
        """The rows, or [] with ``view`` recorded in :attr:`unseen` when the server refused."""
        if self._conn is None or view in self.unseen:
            return []
        error: AzsqlBulkError | None = None
        for attempt in (1, 2):
            try:
                cursor = self._conn.cursor()
                cursor.execute(sql)
                rows = list(cursor.fetchall())
                self._conn.commit()
                return rows
            except Exception as exc:  # the ODBC client's error, read as diagnostics
                rollback_quietly(self._conn)
                failed = database_error(exc, phase="read", where=view)
            error = failed
            if not failed.transient or attempt == 2:
                break
            try:  # a dropped link (failover, idle timeout): log in again, ask once more
                close_quietly(self._conn)
                self._conn = self.factory.connect()
            except AzsqlBulkError as exc:
                error = exc
                break
        number = getattr(error, "native_error", None)
        if number in NEEDS_STATE:
            why, fix = ("permission denied: reading it needs VIEW DATABASE STATE "
                        f"(server error {number})",
                        f"GRANT VIEW DATABASE STATE TO [{self.user}]")
        elif number == SqlServerError.INVALID_OBJECT:  # not Azure SQL Database (a VM, a box)
            why, fix = ("this server has no such view (SQL Server outside Azure SQL "
                        "Database?)", None)
        else:
            why, fix = str(error), None
        self.unseen[view] = Unseen(view, _WHAT.get(view, view), why, fix)
        log.info("bench: %s", self.unseen[view].text())
        return []

    def resource_rows(self) -> list[StatsRow]:
        """Every ``sys.dm_db_resource_stats`` row the server keeps ([] when unseen)."""
        rows = self._query("SELECT end_time, avg_cpu_percent, avg_data_io_percent, "  # noqa: S608
                           f"avg_log_write_percent FROM {RESOURCE_STATS} ORDER BY end_time",
                           RESOURCE_STATS)
        return [StatsRow(_epoch(r[0]), _number(r[1]), _number(r[2]), _number(r[3]))
                for r in rows if r[0] is not None]

    def mark(self) -> WaitMark:
        """A snapshot of the ``*LOG_RATE_GOVERNOR`` waits (empty mark when unseen)."""
        rows = self._query("SELECT wait_type, waiting_tasks_count, wait_time_ms "  # noqa: S608
                           f"FROM {WAIT_STATS}", WAIT_STATS)
        if WAIT_STATS in self.unseen:
            return WaitMark()
        return WaitMark({str(r[0]): (int(r[1] or 0), int(r[2] or 0)) for r in rows
                         if str(r[0]).upper().endswith("LOG_RATE_GOVERNOR")})

    def wait_for_rows(self, end: float, *, cancelled: Callable[[], bool],
                      poll: float = 0.25, limit: float = 35.0) -> None:
        """Wait (at most ``limit`` seconds, or until ``cancelled()``) for a resource-stats
        row that ends at or after ``end`` (server clock), so a step's last interval is in.

        :param end: the step's end on the server's clock.
        :param cancelled: stops the wait early.
        :param poll: seconds between looks.
        :param limit: the longest wait (Azure writes a row every 15 s).
        """
        if RESOURCE_STATS in self.unseen:
            return
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not cancelled():
            rows = self.resource_rows()
            if not rows or max(r.end_time for r in rows) >= end:
                return
            time.sleep(poll)

    def figures(self, mark: WaitMark, start: float, end: float) -> ServerFigures:
        """The server's figures for a step loading from ``start`` to ``end`` (client clock).

        :param mark: the wait snapshot taken before the step.
        :param start: the step's first commit, client clock.
        :param end: its last commit, client clock.
        """
        out = ServerFigures()
        rows, partial = window_rows(self.resource_rows(), self.server_time(start),
                                    self.server_time(end))
        if rows:
            out.log_write_percent = _mean([r.log_write for r in rows])
            out.cpu_percent = _mean([r.cpu for r in rows])
            out.data_io_percent = _mean([r.data_io for r in rows])
            out.log_mib_per_second = log_mib_per_second(out.log_write_percent,
                                                         self.log_rate_cap)
            out.intervals, out.partial_intervals = len(rows), partial
        elif RESOURCE_STATS not in self.unseen:
            out.missing = (f"no {RESOURCE_STATS} row in the step's window (the server writes "
                           "one per interval, 15 s on Azure): its log %, CPU % and data IO % "
                           "are unknown; give a longer --duration")
        after = self.mark()
        if mark.waits is not None and after.waits is not None:
            out.log_rate_waits = {}
            for kind, (count, ms) in after.waits.items():
                count0, ms0 = mark.waits.get(kind, (0, 0))
                if count > count0 or ms > ms0:
                    out.log_rate_waits[kind] = {"waits": count - count0, "wait_ms": ms - ms0}
            out.log_rate_wait_ms = sum(w["wait_ms"] for w in out.log_rate_waits.values())
        return out

    def describe(self) -> dict[str, Any]:
        """What the view knows, for the report: cap, objective, and what it could not see."""
        return {"slo_name": self.slo_name, "log_rate_cap_bytes_per_second": self.log_rate_cap,
                "log_rate_cap_mib_per_second": (self.log_rate_cap / 2**20
                                                if self.log_rate_cap else None),
                "unseen": [asdict(u) | {"text": u.text()} for u in self.unseen.values()]}


def open_view(factory: ConnectionFactory, user: str) -> ServerView | Unseen:
    """A :class:`ServerView`, or why none could be opened (the load can still be measured).

    :param factory: opens the monitoring connection.
    :param user: the database user, named in GRANT advice.
    """
    try:
        return ServerView(factory, user).open()
    except AzsqlBulkError as exc:
        return Unseen("(monitoring connection)", "any of the server's figures", str(exc))
