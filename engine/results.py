"""What a load reports: per-worker figures, progress snapshots, the final result.

:class:`Tally` is the one thread-safe owner of a run's counters; workers record into it,
the progress callback reads snapshots of it, and it writes the :class:`TransferResult`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Progress", "Tally", "TransferResult", "WorkerStats"]


@dataclass
class WorkerStats:
    """One worker's figures.

    :param worker: its index.
    :param rows: rows it committed.
    :param batches: batches it committed.
    :param retries: batch replays after transient errors.
    :param reconnects: connections reopened after a failure.
    :param token_renewals: connections recycled because the login token neared expiry.
    """

    worker: int
    rows: int = 0
    batches: int = 0
    retries: int = 0
    reconnects: int = 0
    token_renewals: int = 0


@dataclass(frozen=True)
class Progress:
    """A snapshot for the progress callback.

    :param rows: rows committed so far in this run.
    :param batches: batches committed so far in this run.
    :param batches_skipped: batches skipped as already journaled.
    :param bytes: Arrow bytes of the committed batches.
    :param seconds: since the load started.
    :param total_rows: rows in the source when known.
    :param workers_busy: workers sending a batch right now.
    :param retries: batch replays so far.
    :param reconnects: connections reopened after failures so far.
    :param token_renewals: connections recycled for a fresh token so far.
    :param phase: ``load`` while batches stream, ``apply`` while a staged mode applies
        its staging table to the target.
    :param load_id: the load's journal id (known from the first snapshot on).
    :param rows_rejected: rows this run set aside so far (``max_errors``).
    """

    rows: int
    batches: int
    batches_skipped: int
    bytes: int
    seconds: float
    total_rows: int | None
    workers_busy: int = 0
    retries: int = 0
    reconnects: int = 0
    token_renewals: int = 0
    phase: str = "load"
    load_id: str = ""
    rows_rejected: int = 0


@dataclass(frozen=True)
class TransferResult:
    """What a load did.

    :param table: the target table.
    :param load_id: the journal id (pass it again to resume).
    :param rows: rows committed by this run (skipped batches not included).
    :param bytes: Arrow (in-memory) bytes of those rows, the basis of ``mb_per_second``.
    :param seconds: wall time of the whole run, set-up included.
    :param batches: batches committed by this run.
    :param batches_skipped: batches already journaled, or found committed on replay.
    :param retries: batch replays after transient errors.
    :param reconnects: connections reopened after failures.
    :param token_renewals: connections recycled before their token expired.
    :param created_table: whether this run created the target table.
    :param workers: per-worker figures.
    :param mode: the load's mode.
    :param applied: for ``replace`` and ``upsert``: whether this run applied the staging
        table to the target (False when an earlier run had already finished the load).
    :param widened_columns: columns of a table this load created that a later batch's
        longer values widened: name -> the type they have now (e.g. ``nvarchar(256)``).
    :param transport: how the rows travelled (``parameter-arrays`` or ``bulk-copy``).
    :param source_files: how many files the source had (0 for in-memory data).
    :param source_rows: rows in the source when known without reading it.
    :param transport_reason: why the rows did not travel by bulk copy (None when they did).
    :param rows_rejected: rows this run set aside as refused by the server (``max_errors``;
        recorded in ``[azsql_bulk].[rejected_rows]``, see :mod:`engine.rejects`).
    """

    table: str
    load_id: str
    rows: int
    bytes: int
    seconds: float
    batches: int
    batches_skipped: int
    retries: int
    reconnects: int
    token_renewals: int
    created_table: bool
    workers: tuple[WorkerStats, ...] = field(default=())
    mode: str = "append"
    applied: bool = False
    widened_columns: dict[str, str] = field(default_factory=dict)
    transport: str = "parameter-arrays"
    source_files: int = 0
    source_rows: int | None = None
    transport_reason: str | None = None
    rows_rejected: int = 0

    @property
    def rows_per_second(self) -> float:
        """Committed rows per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_second(self) -> float:
        """Committed Arrow megabytes (10**6 bytes) per second of wall time."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for XCom, the CLI and logs).

        >>> result = TransferResult("dbo.t", "x", 10, 80, 2.0, 1, 0, 0, 0, 0, False)
        >>> result.to_dict()["rows_per_second"]
        5.0
        """
        out = asdict(self)
        out["workers"] = [asdict(w) for w in self.workers]
        out["rows_per_second"] = self.rows_per_second
        out["mb_per_second"] = self.mb_per_second
        return out


class Tally:
    """The counters of one run, shared by its threads.

    :param workers: how many workers (one :class:`WorkerStats` each).
    :param total_rows: rows in the source when known.
    :param progress: the caller's callback, given a :class:`Progress` after every
        committed batch and at least once a second.
    :param load_id: the load's journal id.
    :param files: how many files the source has.
    :param table: the target, as the result names it.
    :param mode: the load's mode.
    """

    def __init__(self, workers: int, total_rows: int | None,
                 progress: Callable[[Progress], Any] | None, *, load_id: str = "",
                 files: int = 0, table: str = "", mode: str = "append") -> None:
        self.lock = threading.Lock()
        self.stats = [WorkerStats(i) for i in range(workers)]
        self.total_rows, self.progress = total_rows, progress
        self.load_id, self.files, self.table, self.mode = load_id, files, table, mode
        self.rows = self.bytes = self.batches = self.skipped = self.busy = self.rejected = 0
        self.phase = "load"
        self.started = time.monotonic()

    def committed(self, stats: WorkerStats, rows: int, nbytes: int, *,
                  rejected: int = 0) -> None:
        """A worker committed a batch of ``rows`` rows (``nbytes`` Arrow bytes), having set
        ``rejected`` rows of it aside."""
        stats.rows += rows
        stats.batches += 1
        with self.lock:
            self.rows += rows
            self.bytes += nbytes
            self.batches += 1
            self.rejected += rejected
        self.report()

    def skip(self) -> None:
        """A batch was found already committed (journaled)."""
        with self.lock:
            self.skipped += 1

    def working(self, delta: int) -> None:
        """A worker started (+1) or finished (-1) sending a batch."""
        with self.lock:
            self.busy += delta

    def kept(self) -> tuple[int, int]:
        """(rows, batches) committed by this run so far."""
        with self.lock:
            return self.rows, self.batches

    def report(self) -> None:
        """Call the progress callback with a snapshot (no-op without one)."""
        if self.progress is None:
            return
        with self.lock:
            snapshot = Progress(self.rows, self.batches, self.skipped, self.bytes,
                                time.monotonic() - self.started, self.total_rows, self.busy,
                                sum(s.retries for s in self.stats),
                                sum(s.reconnects for s in self.stats),
                                sum(s.token_renewals for s in self.stats), self.phase,
                                self.load_id, self.rejected)
        self.progress(snapshot)

    def result(self, *, created: bool, skipped: int, applied: bool,
               widened: dict[str, str] | None = None, transport: str = "parameter-arrays",
               transport_reason: str | None = None) -> TransferResult:
        """The run's :class:`TransferResult`."""
        with self.lock:
            return TransferResult(
                self.table, self.load_id, self.rows, self.bytes,
                time.monotonic() - self.started, self.batches, skipped,
                sum(s.retries for s in self.stats), sum(s.reconnects for s in self.stats),
                sum(s.token_renewals for s in self.stats), created, tuple(self.stats),
                self.mode, applied, dict(widened or {}), transport, self.files,
                self.total_rows, transport_reason)
