"""The pipeline: one reader, a bounded queue, N workers, a memory budget, cancellation.

One reader thread walks the source's batches (skipping those the journal already
holds) into a queue of at most ``2 * workers`` batches, and waits while the Arrow bytes
read ahead and in flight would pass ``max_memory_bytes``; so memory stays bounded
whatever the input size. Each worker thread hands its batches to the load's batch
writer (:mod:`engine.batch_writer`) with the connection it holds. The first failure
stops every thread at a batch boundary; so does the caller's ``cancel`` event.

**Memory.** ``max_memory_bytes`` counts the source's Arrow bytes read ahead and in
flight. Arrow's allocator (mimalloc in the pyarrow wheels) keeps the pages of freed
batches for reuse: streaming a file with 2 workers, the peak was 35-45 MiB higher
without the give-back below (``benchmarks/engine_memory.py``). So the reader, after
queueing a batch, and each worker, after finishing one, hand their freed pages back
(:func:`give_back_freed_memory`, about a microsecond when nothing is free). What the
bound leaves outside the budget is listed in :mod:`engine.options`. mimalloc also lets
the kernel back its memory with 2 MiB transparent huge pages, which its give-back
cannot return piecemeal; :func:`disable_transparent_huge_pages` (the CLI calls it)
turns them off for the process.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from engine.errors import TransferCancelled, TransferError
from engine.journal import batch_key
from engine.results import Tally, WorkerStats
from engine.sources import SourceBatch

__all__ = ["Pipeline", "Stopped", "disable_transparent_huge_pages", "give_back_freed_memory"]

log = logging.getLogger(__name__)

_POLL = 0.2  # seconds a blocked queue operation waits before looking at the stop flag

#: writes one batch with the worker's connection (or None) and returns the connection
#: to keep; raises :class:`Stopped` when the pipeline is stopping
WriteBatch = Callable[[Any, SourceBatch, WorkerStats], Any]


def give_back_freed_memory() -> None:
    """Return the pages the Arrow memory pool keeps from freed buffers to the system.

    mimalloc keeps a thread's freed pages for its next allocations (``mi_collect`` gives
    them back), jemalloc purges after a delay, the system allocator keeps its arenas
    (``malloc_trim``): ``MemoryPool.release_unused`` does each. Called by the thread that
    allocated or freed a batch, once per batch.
    """
    pa.default_memory_pool().release_unused()


_PR_SET_THP_DISABLE = 41  # prctl(2), Linux 3.15+; applies to existing mappings since 4.13


def disable_transparent_huge_pages() -> bool:
    """Stop the kernel backing this process's memory with transparent huge pages (Linux).

    pyarrow's mimalloc asks for them on its arena (its ``MIMALLOC_ALLOW_THP`` option,
    read only when pyarrow is loaded): what :func:`give_back_freed_memory` frees inside a
    2 MiB huge page stayed resident, 26-46 MiB at the peak, past the documented bound
    (``benchmarks/engine_memory.py``). This makes the call ``MIMALLOC_ALLOW_THP=0``
    makes, for a process that has already loaded pyarrow; memory touched afterwards gets
    4 KiB pages. Process-wide: the ``azsql-bulk`` command calls it; a program that
    embeds the engine decides for itself.

    :returns: True when the kernel accepted it; False elsewhere (not Linux, no ``prctl``,
        refused), where nothing changes.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.restype = ctypes.c_int
    return int(prctl(_PR_SET_THP_DISABLE, ctypes.c_ulong(1), ctypes.c_ulong(0),
                     ctypes.c_ulong(0), ctypes.c_ulong(0))) == 0


class Stopped(Exception):
    """The pipeline is stopping (another worker failed, or cancel); the batch is left
    uncommitted."""


class Pipeline:
    """The threads of one load.

    :param table: the target, for messages.
    :param load_id: the load's id, for messages.
    :param tally: the run's counters (one worker per entry of ``tally.stats``).
    :param max_memory_bytes: the byte ceiling of batches read ahead and in flight.
    :param cancel: the caller's cancel event.
    :param close: closes a connection a worker leaves behind, quietly.
    """

    def __init__(self, table: str, load_id: str, tally: Tally, *, max_memory_bytes: int | None,
                 cancel: threading.Event | None, close: Callable[[Any], None]) -> None:
        self.table, self.load_id, self.tally = table, load_id, tally
        self.budget, self.cancel, self.close = max_memory_bytes, cancel, close
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.cancelled = False
        self.inflight = 0  # Arrow bytes read ahead or being sent
        self.room = threading.Condition(tally.lock)
        self.spare: Any = None  # a connection for the first worker (one login fewer)

    def run(self, batches: Iterator[SourceBatch], done: set[str], write: WriteBatch,
            spare: Any = None) -> None:
        """Stream ``batches`` through the workers until all are committed or one fails.

        :param batches: the source's batches.
        :param done: journal keys of batches already committed (skipped).
        :param write: the batch writer.
        :param spare: an open connection the first worker starts with.
        :raises TransferError: a batch or the source failed (what was kept is named).
        :raises TransferCancelled: the cancel event was set.
        """
        self.spare = spare
        work: queue.Queue[SourceBatch | None] = queue.Queue(maxsize=2 * len(self.tally.stats))
        reader = threading.Thread(target=self._read, args=(batches, done, work),
                                  name="azsql-bulk-reader", daemon=True)
        workers = [threading.Thread(target=self._work, args=(s, work, write),
                                    name=f"azsql-bulk-worker-{s.worker}", daemon=True)
                   for s in self.tally.stats]
        reader.start()
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            for w in workers:
                w.join(timeout=0.5)
                if w.is_alive():
                    break
            self._check_cancel()
            self.tally.report()  # at least once a second while the load runs
        self.stop.set()  # the reader may still wait on a full queue after a failure
        with self.room:
            self.room.notify_all()
        reader.join()
        if self.spare is not None:  # no worker took it
            self.close(self.spare)
            self.spare = None
        if self.failure is not None:
            raise self._wrap(self.failure)
        if self.cancelled:
            raise self._cancelled()

    def _check_cancel(self) -> bool:
        """Turn a set ``cancel`` event into a stop (once); True when stopping."""
        if self.cancel is not None and self.cancel.is_set():
            with self.tally.lock:
                first = not self.cancelled and self.failure is None
                self.cancelled = self.cancelled or first
            if first:
                log.warning("load of %s cancelled: stopping the workers at a batch boundary",
                            self.table)
            self.stop.set()
        return self.stop.is_set()

    def _read(self, batches: Iterator[SourceBatch], done: set[str],
              work: queue.Queue[SourceBatch | None]) -> None:
        try:
            for batch in batches:
                if self.stop.is_set():
                    return
                if batch_key(batch.batch_id) in done:
                    self.tally.skip()
                    continue
                if not self._reserve(batch.data.nbytes):
                    return
                if not self._put(work, batch):
                    return
                del batch  # the queue holds it now; decoding buffers freed meanwhile go back
                give_back_freed_memory()
        except BaseException as exc:  # a source error stops the load like a terminal one
            self.fail(exc)
            return
        for _ in self.tally.stats:
            if not self._put(work, None):
                return

    def _reserve(self, nbytes: int) -> bool:
        """Wait until ``nbytes`` more fit under the budget (or nothing is in flight)."""
        with self.room:
            while (self.budget is not None and self.inflight
                   and self.inflight + nbytes > self.budget and not self.stop.is_set()):
                self.room.wait(timeout=_POLL)
            if self.stop.is_set():
                return False
            self.inflight += nbytes
            return True

    def _release(self, nbytes: int) -> None:
        with self.room:
            self.inflight -= nbytes
            self.room.notify_all()

    def _put(self, work: queue.Queue[SourceBatch | None], item: SourceBatch | None) -> bool:
        while not self.stop.is_set():
            try:
                work.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, stats: WorkerStats, work: queue.Queue[SourceBatch | None],
              write: WriteBatch) -> None:
        with self.tally.lock:
            conn, self.spare = self.spare, None
        try:
            while not self._check_cancel():
                try:
                    item = work.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is None:
                    return
                self.tally.working(+1)
                try:
                    conn = write(conn, item, stats)
                finally:
                    self.tally.working(-1)
                    self._release(item.data.nbytes)
                del item  # the batch and its cast copy are garbage now: give their pages back
                give_back_freed_memory()
        except Stopped:
            pass
        except BaseException as exc:
            self.fail(exc)
        finally:
            if conn is not None:
                self.close(conn)

    def fail(self, exc: BaseException) -> None:
        """Record the first failure and stop every thread."""
        with self.tally.lock:
            if self.failure is None:
                self.failure = exc
        self.stop.set()

    def _wrap(self, failure: BaseException) -> BaseException:
        """A reader failure (the source) becomes a TransferError that says what was kept."""
        if isinstance(failure, TransferError) or not isinstance(failure, Exception):
            return failure
        rows, batches = self.tally.kept()
        message = (f"loading {self.table} stopped: {failure}. Batches committed before the "
                   f"stop stay, journaled under load_id {self.load_id} (this run: {batches} "
                   f"batch(es), {rows} row(s)). Fix the source and run the load again with "
                   "the same load_id to resume.")
        error = TransferError(message, table=self.table, batch_id=None, location=None,
                              error=failure, load_id=self.load_id, rows_committed=rows,
                              batches_committed=batches, resumable=True)
        error.__cause__ = failure
        return error

    def _cancelled(self) -> TransferCancelled:
        rows, batches = self.tally.kept()
        return TransferCancelled(
            f"loading {self.table} was cancelled after this run committed {batches} "
            f"batch(es), {rows} row(s); they stay, journaled under load_id {self.load_id}. "
            "Run the load again with the same load_id to resume.",
            table=self.table, batch_id=None, location=None, error=None, load_id=self.load_id,
            rows_committed=rows, batches_committed=batches, resumable=True)
