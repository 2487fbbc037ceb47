"""One batch, exactly once: bind, write and journal in one transaction; replay on
transient errors; name the source row at fault on terminal ones.

Per batch, a worker:

1. reconnects first when its login token expires within ``token_refresh_margin``
   (Azure SQL checks a token only at login, so a fresh connection is a renewal);
2. writes the bound batch through the transport, inserts the batch's journal row and
   commits both together;
3. on a transient error rolls back, reconnects and replays the batch (a replay first
   checks the journal, in case the failed attempt's commit did land), up to
   ``max_retries`` times with exponential backoff;
4. on a text value too long for a column this load created, widens the column
   (:mod:`engine.widening`) and sends the batch again;
5. on a terminal error a row's value causes, when the load allows rejects
   (``max_errors``), sets the bad rows aside and commits the others with the rejects'
   record and the journal row (:mod:`engine.rejects`);
6. on any other terminal error (or one reject too many) raises
   :class:`~engine.errors.TransferError` naming the table, the batch, its source rows
   and, where the server names a column, the first offending value's source row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.connection import ConnectionFactory, RetryPolicy, close_quietly, rollback_quietly
from engine.errors import (
    COLUMN_IN_MESSAGE,
    STRING_TRUNCATED_SQLSTATE,
    AzsqlBulkError,
    DatabaseError,
    SqlServerError,
    TransferError,
    database_error,
)
from engine.journal import Journal, batch_key
from engine.pipeline import Stopped
from engine.rejects import RejectLimitReached, Splitter, row_caused
from engine.results import Tally, WorkerStats
from engine.sources import SourceBatch
from engine.text_length import utf16_lengths
from engine.transport import Transport
from engine.widening import Widening

__all__ = ["BatchWriter"]

log = logging.getLogger(__name__)


class BatchWriter:
    """Writes the batches of one load; called by every worker with its own connection.

    :param table: the target, for messages.
    :param load_id: the load's id, for messages.
    :param factory: opens (and re-opens) connections with a fresh token.
    :param journal: the load's journal.
    :param transport: how rows travel.
    :param widening: the created table's growable columns.
    :param tally: the run's counters.
    :param stop: set when the pipeline stops (another worker failed, or cancel).
    :param max_retries: replays of one batch after transient errors.
    :param retry: the backoff between replays.
    :param token_refresh_margin: seconds before token expiry to reconnect at.
    :param splitter: sets a batch's bad rows aside (None: the load allows no rejects).
    """

    def __init__(self, table: str, load_id: str, *, factory: ConnectionFactory,
                 journal: Journal, transport: Transport, widening: Widening, tally: Tally,
                 stop: threading.Event, max_retries: int, retry: RetryPolicy,
                 token_refresh_margin: float, splitter: Splitter | None = None) -> None:
        self.table, self.load_id = table, load_id
        self.factory, self.journal, self.transport = factory, journal, transport
        self.widening, self.tally, self.stop = widening, tally, stop
        self.max_retries, self.retry = max_retries, retry
        self.margin = token_refresh_margin
        self.splitter = splitter

    def __call__(self, conn: Any, item: SourceBatch, stats: WorkerStats) -> Any:
        """Insert one batch and its journal row in one transaction; returns the connection."""
        where = f"table {self.table}, batch {item.batch_id}, {item.location.describe()}"
        try:
            bound = self.transport.bind(item.data, row_offset=item.location.first_row or 0)
        except AzsqlBulkError as exc:
            raise self.stopped_at(item, exc) from exc
        key = batch_key(item.batch_id)
        attempt = 0
        widened: set[str] = set()  # columns this batch already widened
        while True:
            if self.stop.is_set():
                raise Stopped
            error: DatabaseError | None = None
            try:
                if conn is None:
                    conn = self.factory.connect()
                    if attempt:
                        stats.reconnects += 1
                elif conn.should_recycle(self.margin):
                    log.info("worker %d: login token expires within %.0f s; reconnecting with "
                             "a fresh token", stats.worker, self.margin)
                    close_quietly(conn)
                    conn = None
                    conn = self.factory.connect()
                    stats.token_renewals += 1
                cursor = conn.cursor()
                if attempt and self._journaled(cursor, key):
                    # the failed attempt's commit landed after all
                    conn.commit()
                    self.tally.skip()
                    return conn
                self.transport.write(conn, cursor, bound)
                self.journal.record(cursor, item.batch_id, bound.rows)
                conn.commit()
                self.tally.committed(stats, bound.rows, item.data.nbytes)
                return conn
            except DatabaseError as exc:  # ConnectError from the factory
                error = exc
            except AzsqlBulkError:
                raise
            except Exception as exc:  # the ODBC client's error
                error = database_error(exc, phase="insert", where=where)
            needed = self.widening.needed(error, item.data, widened) if conn is not None else {}
            if needed and conn is not None:  # a column this load created is too short
                rollback_quietly(conn)  # nothing of the batch stays; replay it once widened
                try:
                    self.widening.widen(conn, needed, item)
                    widened.update(needed)
                    continue
                except Exception as exc:  # the ODBC client's error
                    error = database_error(exc, phase="widen a column", where=where)
            if self.splitter is not None and conn is not None and row_caused(error):
                rollback_quietly(conn)
                try:  # set the bad rows aside, commit the others
                    kept, rejected = self.splitter.commit(conn, item, bound, error, where)
                    self.tally.committed(stats, kept, item.data.nbytes, rejected=rejected)
                    return conn
                except RejectLimitReached:
                    pass  # one too many: stop as without rejects, on the batch's error
                except DatabaseError as exc:
                    error = exc
                except AzsqlBulkError:
                    raise
                except Exception as exc:  # the ODBC client's error
                    error = database_error(exc, phase="insert", where=where)
            if conn is not None:
                rollback_quietly(conn)
                close_quietly(conn)
                conn = None
            if attempt and not error.transient:
                # a replay refused outright (a duplicate journal key, a commit conflict):
                # the attempt whose link dropped may have committed meanwhile. Then the
                # batch is in, exactly once; check before calling it a failure.
                landed = self._landed_after_all(key)
                if landed is not None:
                    log.info("worker %d: batch %s was committed by an earlier attempt after "
                             "all (its replay failed with: %s); skipped", stats.worker,
                             item.batch_id, error)
                    self.tally.skip()
                    return landed
            if not error.transient or attempt >= self.max_retries:
                raise self.stopped_at(item, error, attempts=attempt + 1)
            attempt += 1
            stats.retries += 1
            delay = self.retry.backoff(attempt)
            log.warning("worker %d: batch %s failed transiently (attempt %d of %d), replaying "
                        "in %.1f s: %s", stats.worker, item.batch_id, attempt,
                        self.max_retries + 1, delay, error)
            if self.stop.wait(delay):
                raise Stopped

    def _journaled(self, cursor: Any, key: str) -> bool:
        """Whether the batch with journal key ``key`` is committed; if so its rejects,
        given back when its commit seemed to fail, count again."""
        if not self.journal.contains(cursor, key):
            return False
        if self.splitter is not None:
            self.splitter.landed(cursor, key)
        return True

    def _landed_after_all(self, key: str) -> Any:
        """A new connection when the batch with journal key ``key`` is committed (its
        rejects counted again), else None (the check's own failure included)."""
        conn = None
        try:
            conn = self.factory.connect()
            if not self._journaled(conn.cursor(), key):
                close_quietly(conn)
                return None
            conn.commit()
            return conn
        except Exception:  # best effort: the batch's own error stands
            if conn is not None:
                close_quietly(conn)
            return None

    def stopped_at(self, item: SourceBatch, error: BaseException,
                   attempts: int = 1) -> TransferError:
        """The error that stops the load at ``item``: where, why, what was kept."""
        rows, batches = self.tally.kept()
        retried = (f" (still failing after {attempts} attempts; raise max_retries if the "
                   "database is expected back)") if attempts > 1 else ""
        culprit = self._culprit(item, error)
        message = (f"loading {self.table} stopped at batch {item.batch_id} "
                   f"({item.location.describe()}): {error}{culprit}{retried}. Batches committed "
                   f"before the stop stay, journaled under load_id {self.load_id} (this run: "
                   f"{batches} batch(es), {rows} row(s)); nothing of the failed batch was "
                   "kept. Fix the cause and run the load again with the same load_id to "
                   "resume.")
        return TransferError(message, table=self.table, batch_id=item.batch_id,
                             location=item.location.describe(), error=error,
                             load_id=self.load_id, rows_committed=rows,
                             batches_committed=batches, resumable=True)

    def _culprit(self, item: SourceBatch, error: BaseException) -> str:
        """For a NULL refused by a NOT NULL column (515) or text too long for its column
        (the server's 2628, or the driver's own SQLSTATE 22001 when bulk copy finds it
        before sending): where the first such value is in the source, else empty. The
        server names only the column; the driver names none, so every text column with a
        known length is searched and the earliest row wins."""
        if not isinstance(error, DatabaseError):
            return ""
        number = error.native_error
        named = COLUMN_IN_MESSAGE.search(str(error))
        names = item.data.schema.names
        if named is not None:
            wanted = named.group(1).replace("''", "'").casefold()
            names = [n for n in names if n.casefold() == wanted]
        data = item.data
        if number == SqlServerError.NOT_NULL and named is not None:
            found = _first(names, lambda name: pc.is_null(data.column(name)))
            what = "the first NULL"
        elif ((number == SqlServerError.TRUNCATED and named is not None)
              or error.sqlstate == STRING_TRUNCATED_SQLSTATE):
            found = _first(names, lambda name: self._too_long(data, name))
            what = "the first value longer than {limit} characters"
        else:
            return ""
        if found is None:
            return ""
        index, name = found
        what = what.format(limit=self.widening.text_limit(name))
        return f"; {what} in column {name!r} is at {item.location.describe(index)}"

    def _too_long(self, data: pa.Table | pa.RecordBatch, name: str) -> Any:
        """Which values of text column ``name`` exceed the column's length (None: the
        column is not text of a known length)."""
        limit = self.widening.text_limit(name)
        values = data.column(name)
        if limit is None or not (pa.types.is_string(values.type)
                                 or pa.types.is_large_string(values.type)):
            return None
        return pc.greater(utf16_lengths(values), limit)


def _first(names: list[str], flag: Callable[[str], Any]) -> tuple[int, str] | None:
    """The earliest (row, column) among ``names`` where ``flag(name)`` (an Arrow boolean
    array, or None to skip the column) is true."""
    best: tuple[int, str] | None = None
    for name in names:
        flags = flag(name)
        if flags is None:
            continue
        index = pc.index(pc.fill_null(flags, False), True).as_py()
        if index is not None and index >= 0 and (best is None or index < best[0]):
            best = (index, name)
    return best
