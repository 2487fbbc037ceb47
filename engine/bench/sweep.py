"""The benchmark's steps: every workers x rows-per-batch x transport combination, each a real
load through :func:`engine.transfer.transfer` into its own scratch table.

A step streams batches dealt from one pool of rows (:func:`engine.bench.datasets.stream`,
so the generator's cost is paid once, not per step) for ``rows`` rows or for ``duration``
seconds from its first committed batch (the set-up before it, logins, DDL and the
bulk-copy probe, is not counted, so a slow set-up never shortens the measurement), with
a fresh load id; then it reads what the server saw
(:mod:`engine.bench.server_view`) and, unless ``keep``, drops its table and forgets its
journal rows (:mod:`engine.bench.scratch`).

A step's figures:

- ``rows``, ``bytes`` (Arrow) and ``seconds``: the whole step, set-up included;
- ``rows_per_second`` and ``mb_per_second`` (Arrow bytes, as the load reports them) over
  the *loading window*, from the first committed batch to the last: the set-up (table
  DDL, the bulk-copy probe, logins) is the same for every step and would hide the rate
  of short steps (``rates_over``). A step with fewer than two commits per worker after
  its first cannot be measured so; then every step of the sweep is given its rates over the
  whole step, set-up included (``step_rows_per_second``), so steps compare like with like,
  and :attr:`Sweep.notes` says so;
- ``cpu_seconds``: this process's user + system CPU (``getrusage``, all threads) over the
  whole step, and ``cpu_us_per_row``;
- ``retries`` and ``reconnects`` (:class:`~engine.results.TransferResult`), the transport
  actually used and why not bulk copy when it was not;
- ``server``: :class:`~engine.bench.server_view.ServerFigures` over the loading window.

One step, one figure, each labelled: the progress display's last line says its averages
are over the whole step; the "step N ok" line gives the loading-window rate *and* the
whole-step rate, each named (:func:`rates_words`); the table's caption says which of the
two its rows/s and MB/s are (``rates_over``).

Setting ``cancel`` stops the running step at a batch boundary (``status`` ``stopped``,
with what it measured so far) and no further step starts.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from engine.bench.datasets import stream
from engine.bench.scratch import ScratchSpace
from engine.bench.server_view import ServerFigures, ServerView
from engine.connection import ConnectionFactory, ConnectionOptions
from engine.errors import AzsqlBulkError, TransferCancelled, TransferError
from engine.options import Target, TransferOptions, TransportKind
from engine.results import Progress
from engine.sources import SourceOptions
from engine.transfer import transfer

__all__ = ["WHOLE_STEP_AVERAGES", "Display", "StepPlan", "StepResult", "Sweep", "plan_steps",
           "rates_words"]

#: what a step's progress display's last line says of its averages
WHOLE_STEP_AVERAGES = "averages over the whole step, set-up included"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepPlan:
    """One combination to measure."""

    workers: int
    rows_per_batch: int
    transport: str


def plan_steps(workers: Iterable[int], rows_per_batch: Iterable[int],
               transports: Iterable[str]) -> list[StepPlan]:
    """Every combination, workers varying fastest (each transport and batch size is swept
    from the fewest workers up).

    >>> [(s.workers, s.rows_per_batch) for s in plan_steps([1, 2], [10, 20], ["auto"])]
    [(1, 10), (2, 10), (1, 20), (2, 20)]
    """
    return [StepPlan(w, b, t) for t in dict.fromkeys(transports)
            for b in dict.fromkeys(rows_per_batch) for w in dict.fromkeys(workers)]


@dataclass
class StepResult:
    """What one step measured (see the module for what each figure means)."""

    number: int
    workers: int
    rows_per_batch: int
    transport: str
    table: str
    status: str = "ok"  # ok | stopped | failed
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rows_per_second: float = 0.0
    mb_per_second: float = 0.0
    cpu_seconds: float = 0.0
    cpu_us_per_row: float | None = None
    retries: int = 0
    reconnects: int = 0
    transport_used: str | None = None
    transport_reason: str | None = None
    error: str | None = None
    server: ServerFigures = field(default_factory=ServerFigures)
    rates_over: str = "whole step"  # or "loading window" (see the module)
    step_rows_per_second: float = 0.0  # over the whole step, set-up included
    step_mb_per_second: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["server"] = self.server.to_dict()
        return out


def rates_words(step: StepResult) -> str:
    """A step's rates, each labelled with what it is over.

    >>> s = StepResult(1, 1, 10, "auto", "t", rows=20_000, seconds=0.12,
    ...                rows_per_second=200_387, mb_per_second=8.0, rates_over="loading window",
    ...                step_rows_per_second=163_990, step_mb_per_second=6.55)
    >>> rates_words(s).split("; ")
    ['200,387 rows/s, 8.00 MB/s over the loading window (first to last commit)', \
'163,990 rows/s, 6.55 MB/s over the whole step, set-up included']
    """
    whole = (f"{step.step_rows_per_second:,.0f} rows/s, {step.step_mb_per_second:,.2f} MB/s "
             "over the whole step, set-up included")
    if step.rates_over != "loading window":
        return whole
    return (f"{step.rows_per_second:,.0f} rows/s, {step.mb_per_second:,.2f} MB/s over the "
            f"loading window (first to last commit); {whole}")


class Display(Protocol):
    """What a step shows progress on (:class:`engine.progress_display.ProgressDisplay`)."""

    def start(self) -> Any: ...
    def update(self, progress: Progress) -> None: ...
    def stop(self, phase: str | None = None, *, final: str | None = None) -> None: ...


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


class _Window:
    """The first and the last commit of a step (client wall clock, rows, bytes, batches)."""

    def __init__(self, display: Display, clock: Callable[[], float]) -> None:
        self.display, self.clock = display, clock
        self.lock = threading.Lock()
        self.first: tuple[float, int, int, int] | None = None
        self.last: tuple[float, int, int, int] | None = None

    def progress(self, snapshot: Progress) -> None:
        if snapshot.batches:
            now = (self.clock(), snapshot.rows, snapshot.bytes, snapshot.batches)
            with self.lock:
                if self.first is None:
                    self.first = now
                if self.last is None or snapshot.rows >= self.last[1]:
                    self.last = now
        self.display.update(snapshot)

    def rates(self, workers: int) -> tuple[float, float] | None:
        """(rows/s, MB/s) between the first and the last commit, when at least two commits
        per worker followed the first (the first commits of parallel workers come nearly
        at once, so fewer would measure the gap between them, not the rate)."""
        with self.lock:
            first, last = self.first, self.last
        if first is None or last is None or last[0] <= first[0] \
                or last[3] - first[3] < 2 * workers:
            return None
        span = last[0] - first[0]
        return (last[1] - first[1]) / span, (last[2] - first[2]) / 1e6 / span


@dataclass
class Sweep:
    """Runs the steps of one benchmark.

    :param connection: the database (its options as ``load`` takes them).
    :param data: the rows every step deals its batches from.
    :param scratch: the scratch schema and this run's tables.
    :param rows: rows per step (or None with ``duration``).
    :param duration: seconds per step (or None with ``rows``).
    :param keep: keep each step's table and journal rows.
    :param view: the server's figures, or None when none can be seen.
    :param display: makes a step's progress display: (step, plan, table) -> Display.
    :param cancel: stops the sweep (a running step at its next batch boundary).
    :param factory: the connections (one factory for every step; bulk copy enabled).
    """

    connection: ConnectionOptions
    data: pa.RecordBatch
    scratch: ScratchSpace
    rows: int | None = None
    duration: float | None = None
    keep: bool = False
    view: ServerView | None = None
    display: Callable[[int, StepPlan, str], Display] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    factory: ConnectionFactory | None = None
    clock: Callable[[], float] = time.time
    on_step: Callable[[StepResult], None] | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.duration is None):
            raise ValueError("a sweep needs exactly one of rows and duration per step")
        if self.factory is None:
            self.factory = ConnectionFactory(
                dataclasses.replace(self.connection, bulk_copy=True))

    def run(self, plans: list[StepPlan]) -> list[StepResult]:
        """Run ``plans`` in order; stops early when ``cancel`` is set."""
        results = []
        for number, plan in enumerate(plans, start=1):
            if self.cancel.is_set():
                break
            result = self.step(number, plan)
            results.append(result)
            if self.on_step is not None:
                self.on_step(result)
        measured = [r for r in results if r.rows]
        if len({r.rates_over for r in measured}) > 1:  # compare like with like
            for r in measured:
                r.rows_per_second, r.mb_per_second = r.step_rows_per_second, r.step_mb_per_second
                r.rates_over = "whole step"
            self.notes.append(
                "some steps were too short to be measured between their first and last "
                "commit (two commits per worker are needed), so every step's rates are over "
                "the whole step, set-up included; give more --rows or a longer --duration")
        return results

    def step(self, number: int, plan: StepPlan) -> StepResult:
        """Run one step and clean up after it (unless ``keep``)."""
        assert self.factory is not None
        table = self.scratch.table(number)
        load_id = f"bench-{self.scratch.run}-{number:02d}-{uuid.uuid4().hex[:8]}"
        self.scratch.tables.append(table)
        self.scratch.load_ids.append(load_id)
        result = StepResult(number, plan.workers, plan.rows_per_batch, plan.transport,
                            str(table))
        display = self.display(number, plan, str(table)) if self.display else _Silent()
        window = _Window(display, self.clock)
        mark = self.view.mark() if self.view is not None else None
        duration = self.duration

        def until() -> float | None:  # a step's clock starts at its first commit
            first = window.first
            return None if first is None or duration is None else first[0] + duration

        batches = stream(self.data, plan.rows_per_batch, rows=self.rows,
                         until=until if duration is not None else None, cancel=self.cancel,
                         clock=self.clock)
        options = TransferOptions(workers=plan.workers, transport=TransportKind(plan.transport),
                                  load_id=load_id, progress=window.progress)
        cpu = _cpu()
        started = time.monotonic()
        display.start()
        phase = "done"
        try:
            loaded = transfer(pa.RecordBatchReader.from_batches(self.data.schema, batches),
                              Target(self.connection, table), options,
                              source_options=SourceOptions(rows_per_batch=plan.rows_per_batch),
                              factory=self.factory, cancel=self.cancel)
            result.rows, result.bytes, result.seconds = loaded.rows, loaded.bytes, loaded.seconds
            result.retries, result.reconnects = loaded.retries, loaded.reconnects
            result.transport_used = loaded.transport
            result.transport_reason = loaded.transport_reason
            if self.cancel.is_set():  # the stream ended on cancel before a worker saw it
                result.status, result.error, phase = "stopped", "stopped by the user", "stopped"
        except TransferCancelled as exc:
            result.status, result.error, phase = "stopped", "stopped by the user", "stopped"
            result.rows = exc.rows_committed
        except TransferError as exc:
            result.status, result.error, phase = "failed", str(exc), "failed"
            result.rows = exc.rows_committed
        except AzsqlBulkError as exc:
            result.status, result.error, phase = "failed", str(exc), "failed"
        finally:  # its averages are over the whole step: say so (see the module)
            display.stop(phase, final=WHOLE_STEP_AVERAGES)
        if result.status != "ok":
            result.seconds = time.monotonic() - started
        result.cpu_seconds = _cpu() - cpu
        if result.rows:
            result.cpu_us_per_row = result.cpu_seconds / result.rows * 1e6
        if result.status != "ok" and window.last is not None:
            result.bytes = window.last[2]
        if result.seconds > 0:
            result.step_rows_per_second = result.rows / result.seconds
            result.step_mb_per_second = result.bytes / 1e6 / result.seconds
        result.rows_per_second, result.mb_per_second = (result.step_rows_per_second,
                                                        result.step_mb_per_second)
        rates = window.rates(plan.workers)
        if rates is not None:
            result.rows_per_second, result.mb_per_second = rates
            result.rates_over = "loading window"
        if self.view is not None and mark is not None and window.first and window.last:
            first, last = window.first[0], window.last[0]
            self.view.wait_for_rows(self.view.server_time(last), cancelled=self.cancel.is_set)
            result.server = self.view.figures(mark, first, last)
        if not self.keep:
            self._clean(table, load_id)
        return result

    def _clean(self, table: Any, load_id: str) -> None:
        """Drop the step's table and forget its journal rows (failures are kept for the
        end, which tries again)."""
        assert self.factory is not None
        try:
            self.scratch.drop(self.factory, table)
            self.scratch.tables.remove(table)
        except AzsqlBulkError as exc:
            log.warning("bench: could not drop %s now (tried again at the end): %s", table, exc)
        try:
            self.scratch.forget(self.factory, load_id)
            self.scratch.load_ids.remove(load_id)
        except AzsqlBulkError as exc:
            log.warning("bench: could not forget load %s now (tried again at the end): %s",
                        load_id, exc)


class _Silent:
    """No progress display."""

    def start(self) -> _Silent:
        return self

    def update(self, progress: Progress) -> None:
        pass

    def stop(self, phase: str | None = None, *, final: str | None = None) -> None:
        pass
