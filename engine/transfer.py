"""The transfer: stream a source into a table over parallel connections, exactly once.

One reader thread walks the source's batches (skipping those the journal already
holds) into a bounded queue of ``2 * workers`` batches, so memory stays near
``workers * batch size * 3`` whatever the input size. Each worker thread owns one
connection from one shared :class:`~engine.connection.ConnectionFactory` and, per batch:

1. reconnects first when its login token expires within ``token_refresh_margin``
   (Azure SQL checks a token only at login, so a fresh connection is a renewal);
2. casts the batch (:func:`engine.schema.cast_batch`), sends it with turbodbc
   ``executemanycolumns``, inserts the batch's journal row, and commits both together;
3. on a transient error rolls back, reconnects and replays the batch (a replay first
   checks the journal, in case the failed attempt's commit did land), up to
   ``max_retries`` times with exponential backoff;
4. on a terminal error stops every worker: committed batches stay, nothing half-written
   is visible, and :class:`TransferError` names the table, the batch and its source rows.

Only ``mode="append"`` is implemented so far.

>>> from engine.connection import ConnectionOptions
>>> from engine.credentials import CredentialOptions
>>> target = Target(ConnectionOptions("myserver.database.windows.net", "sales",  # doctest: +SKIP
...                 credential=CredentialOptions(kind="managed-identity")), "dbo.orders")
>>> result = transfer("orders/*.parquet", target, TransferOptions(workers=4))  # doctest: +SKIP
>>> result.to_dict()["rows"]  # doctest: +SKIP
1000000
"""

from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

from engine.connection import Connection, ConnectionFactory
from engine.errors import AzsqlBulkError, ConfigurationError, DatabaseError, database_error
from engine.journal import Journal, batch_key, default_load_id
from engine.options import Target, TransferOptions
from engine.schema import (
    TablePlan,
    cast_batch,
    create_table_sql,
    insert_sql,
    plan_table,
    validate_against,
)
from engine.sources import Source, SourceBatch, open_source

__all__ = ["Progress", "TransferError", "TransferResult", "WorkerStats", "transfer"]

log = logging.getLogger(__name__)

_COLUMNS_SQL = ("SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
                "NUMERIC_SCALE, DATETIME_PRECISION, IS_NULLABLE, COLUMN_DEFAULT "
                "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? "
                "ORDER BY ORDINAL_POSITION")
_POLL = 0.2  # seconds a blocked queue operation waits before looking at the stop flag


class TransferError(AzsqlBulkError):
    """A load stopped: which table, batch and source rows, why, and what was kept.

    :param message: the full message.
    :param table: the target table.
    :param batch_id: the failed batch's id (None when no batch was at fault).
    :param location: where the batch's rows are in the source.
    :param error: the underlying error (a :class:`DatabaseError` for database refusals).
    """

    def __init__(self, message: str, *, table: str, batch_id: str | None,
                 location: str | None, error: BaseException) -> None:
        super().__init__(message)
        self.table = table
        self.batch_id = batch_id
        self.location = location
        self.error = error

    @property
    def native_error(self) -> int | None:
        """The server's error number, when a database error stopped the load."""
        return self.error.native_error if isinstance(self.error, DatabaseError) else None


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
    """

    rows: int
    batches: int
    batches_skipped: int
    bytes: int
    seconds: float
    total_rows: int | None


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


class _Stopped(Exception):
    """Another worker failed; this one leaves its batch uncommitted."""


def transfer(source: Any, target: Target, options: TransferOptions | None = None, *,
             factory: ConnectionFactory | None = None) -> TransferResult:
    """Load ``source`` into ``target`` exactly once (append mode).

    :param source: a :class:`~engine.sources.Source` from
        :func:`~engine.sources.open_source`, or anything it opens (pyarrow Table or
        RecordBatchReader, polars frames, paths and globs), opened with the options'
        ``rows_per_batch``.
    :param target: the database and ``schema.table``.
    :param options: how to load (default :class:`TransferOptions`).
    :param factory: a connection factory to share (default: one built from
        ``target.connection``, closed afterwards).
    :raises ConfigurationError: a bad option, an incompatible existing table
        (:class:`~engine.schema.SchemaMismatchError`, before any row is sent), a
        missing table with ``create="never"``.
    :raises TransferError: a batch failed terminally (or kept failing transiently).
    :raises DatabaseError: the set-up (table check, DDL, journal) failed.

    >>> import pyarrow as pa  # doctest: +SKIP
    >>> transfer(pa.table({"id": [1, 2]}), target).rows  # doctest: +SKIP
    2
    """
    options = options or TransferOptions()
    src = source if isinstance(source, Source) else open_source(
        source, rows_per_batch=options.rows_per_batch)
    own = factory is None
    shared = factory if factory is not None else ConnectionFactory(target.connection)
    try:
        return _Load(src, target, options, shared).run()
    finally:
        if own:
            shared.close()


class _Load:
    """One run of :func:`transfer`: set-up, the reader, the workers, the result."""

    def __init__(self, source: Source, target: Target, options: TransferOptions,
                 factory: ConnectionFactory) -> None:
        self.source, self.target, self.options, self.factory = source, target, options, factory
        self.table = target.qualified
        self.load_id = options.load_id or default_load_id(source.fingerprint, target.describe())
        self.journal = Journal(self.load_id, self.table)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failure: BaseException | None = None
        self.stats = [WorkerStats(i) for i in range(options.workers)]
        self.rows = self.bytes = self.batches = self.skipped = 0
        self.started = time.monotonic()
        self.plan: TablePlan | None = None
        self.sql = ""

    # -- set-up -----------------------------------------------------------------------
    def run(self) -> TransferResult:
        stream = self.source.batches()
        first = next(stream, None)
        self.plan = plan_table(self.source.schema, overrides=self.options.sql_types,
                               sample=first.data if first is not None else None)
        self.sql = insert_sql(self.plan, self.target.table)
        created, done = self._prepare(self.plan)
        if done and not self.options.resume:
            raise ConfigurationError(
                f"load_id {self.load_id} already has {len(done)} batch(es) journaled for "
                f"{self.table}; pass resume=True to skip them, another load_id to load the "
                "source again, or delete the load's journal rows (engine.journal.forget_load_sql)")
        log.info("loading %s into %s: load_id %s, %d worker(s), %d row(s) per batch, "
                 "%d batch(es) already journaled", self.source.files or "<memory>", self.table,
                 self.load_id, self.options.workers, self.source.rows_per_batch, len(done))
        batches = itertools.chain([first] if first is not None else [], stream)
        self._run_threads(batches, done)
        if self.failure is not None:
            raise self.failure
        result = TransferResult(
            self.table, self.load_id, self.rows, self.bytes, time.monotonic() - self.started,
            self.batches, self.skipped, sum(s.retries for s in self.stats),
            sum(s.reconnects for s in self.stats), sum(s.token_renewals for s in self.stats),
            created, tuple(self.stats))
        log.info("loaded %s: %d row(s) in %d batch(es), %d skipped, %.1f s, %d retries, "
                 "%d token renewal(s)", self.table, result.rows, result.batches,
                 result.batches_skipped, result.seconds, result.retries, result.token_renewals)
        return result

    def _prepare(self, plan: TablePlan) -> tuple[bool, set[str]]:
        """Check or create the table, make sure the journal exists, read its keys."""
        conn = self.factory.connect()
        try:
            phase = "check the target table"
            try:
                cursor = conn.cursor()
                cursor.execute(_COLUMNS_SQL, [self.target.schema_name, self.target.table_name])
                existing = cursor.fetchall()
                created = False
                if existing:
                    validate_against(plan, existing, table=self.table)
                elif self.options.create == "never":
                    raise ConfigurationError(
                        f"table {self.table} does not exist and create='never'; create it "
                        "first or use create='if_missing'")
                else:
                    phase = "create the target table"
                    cursor.execute(create_table_sql(plan, self.target.table))
                    conn.commit()
                    created = True
                    log.info("created table %s", self.table)
                phase = "prepare the load journal"
                self.journal.ensure(conn)
                phase = "read the load journal"
                done = self.journal.keys(conn.cursor())
                conn.commit()
                return created, done
            except AzsqlBulkError:
                raise
            except Exception as exc:  # the ODBC client's error
                error = database_error(exc, phase=phase, where=f"table {self.table}")
            raise error
        finally:
            _close_quietly(conn)

    # -- threads ----------------------------------------------------------------------
    def _run_threads(self, batches: Iterator[SourceBatch], done: set[str]) -> None:
        work: queue.Queue[SourceBatch | None] = queue.Queue(maxsize=2 * self.options.workers)
        reader = threading.Thread(target=self._read, args=(batches, done, work),
                                  name="azsql-bulk-reader", daemon=True)
        workers = [threading.Thread(target=self._work, args=(s, work),
                                    name=f"azsql-bulk-worker-{s.worker}", daemon=True)
                   for s in self.stats]
        reader.start()
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            for w in workers:
                w.join(timeout=1.0)
                if w.is_alive():
                    break
            self._report()  # at least once a second while the load runs
        self.stop.set()  # the reader may still wait on a full queue after a failure
        reader.join()

    def _read(self, batches: Iterator[SourceBatch], done: set[str],
              work: queue.Queue[SourceBatch | None]) -> None:
        try:
            for batch in batches:
                if self.stop.is_set():
                    return
                if batch_key(batch.batch_id) in done:
                    with self.lock:
                        self.skipped += 1
                    continue
                if not self._put(work, batch):
                    return
        except BaseException as exc:  # a source error stops the load like a terminal one
            self._fail(exc)
            return
        for _ in self.stats:
            if not self._put(work, None):
                return

    def _put(self, work: queue.Queue[SourceBatch | None], item: SourceBatch | None) -> bool:
        while not self.stop.is_set():
            try:
                work.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, stats: WorkerStats, work: queue.Queue[SourceBatch | None]) -> None:
        conn: Connection | None = None
        try:
            while not self.stop.is_set():
                try:
                    item = work.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is None:
                    return
                conn = self._load_batch(conn, item, stats)
        except _Stopped:
            pass
        except BaseException as exc:
            self._fail(exc)
        finally:
            if conn is not None:
                _close_quietly(conn)

    def _fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.failure is None:
                self.failure = exc
        self.stop.set()

    # -- one batch --------------------------------------------------------------------
    def _load_batch(self, conn: Connection | None, item: SourceBatch,
                    stats: WorkerStats) -> Connection | None:
        """Insert one batch and its journal row in one transaction; returns the connection."""
        assert self.plan is not None
        where = f"table {self.table}, batch {item.batch_id}, {item.location.describe()}"
        try:
            bound = cast_batch(self.plan, item.data, nan_as_null=self.options.nan_as_null,
                               row_offset=item.location.first_row or 0)
        except AzsqlBulkError as exc:
            raise self._stopped_at(item, exc) from exc
        key = batch_key(item.batch_id)
        attempt = 0
        while True:
            if self.stop.is_set():
                raise _Stopped
            error: DatabaseError | None = None
            try:
                if conn is None:
                    conn = self.factory.connect()
                    if attempt:
                        stats.reconnects += 1
                elif conn.should_recycle(self.options.token_refresh_margin):
                    log.info("worker %d: login token expires within %.0f s; reconnecting with "
                             "a fresh token", stats.worker, self.options.token_refresh_margin)
                    _close_quietly(conn)
                    conn = None
                    conn = self.factory.connect()
                    stats.token_renewals += 1
                cursor = conn.cursor()
                if attempt and self.journal.contains(cursor, key):
                    # the failed attempt's commit landed after all
                    conn.commit()
                    with self.lock:
                        self.skipped += 1
                    return conn
                cursor.executemanycolumns(self.sql, bound)
                self.journal.record(cursor, item.batch_id, bound.num_rows)
                conn.commit()
                self._committed(item, bound, stats)
                return conn
            except DatabaseError as exc:  # ConnectError from the factory
                error = exc
            except AzsqlBulkError:
                raise
            except Exception as exc:  # the ODBC client's error
                error = database_error(exc, phase="insert", where=where)
            if conn is not None:
                _rollback_quietly(conn)
                _close_quietly(conn)
                conn = None
            if not error.transient or attempt >= self.options.max_retries:
                raise self._stopped_at(item, error, attempts=attempt + 1)
            attempt += 1
            stats.retries += 1
            delay = min(self.options.retry_max_delay,
                        self.options.retry_base_delay * 2.0 ** (attempt - 1)) * random.random()  # noqa: S311 (jitter)
            log.warning("worker %d: batch %s failed transiently (attempt %d of %d), replaying "
                        "in %.1f s: %s", stats.worker, item.batch_id, attempt,
                        self.options.max_retries + 1, delay, error)
            if self.stop.wait(delay):
                raise _Stopped

    def _committed(self, item: SourceBatch, bound: pa.Table, stats: WorkerStats) -> None:
        stats.rows += bound.num_rows
        stats.batches += 1
        with self.lock:
            self.rows += bound.num_rows
            self.bytes += item.data.nbytes
            self.batches += 1
        self._report()

    def _report(self) -> None:
        if self.options.progress is None:
            return
        with self.lock:
            snapshot = Progress(self.rows, self.batches, self.skipped, self.bytes,
                                time.monotonic() - self.started, self.source.total_rows)
        self.options.progress(snapshot)

    def _stopped_at(self, item: SourceBatch, error: BaseException,
                    attempts: int = 1) -> TransferError:
        with self.lock:
            rows, batches = self.rows, self.batches
        retried = (f" (still failing after {attempts} attempts; raise max_retries if the "
                   "database is expected back)") if attempts > 1 else ""
        message = (f"loading {self.table} stopped at batch {item.batch_id} "
                   f"({item.location.describe()}): {error}{retried}. Batches committed "
                   f"before the stop stay, journaled under load_id {self.load_id} (this run: "
                   f"{batches} batch(es), {rows} row(s)); nothing of the failed batch was "
                   "kept. Fix the cause and run the load again with the same load_id to "
                   "resume.")
        return TransferError(message, table=self.table, batch_id=item.batch_id,
                             location=item.location.describe(), error=error)


def _rollback_quietly(conn: Connection) -> None:
    try:
        conn.rollback()
    except Exception:  # a broken link: the server rolls back the open transaction itself
        log.debug("rollback failed on a broken connection", exc_info=False)


def _close_quietly(conn: Connection) -> None:
    try:
        conn.close()
    except Exception:  # closing a dead connection may fail; nothing is left to release
        log.debug("close failed on a broken connection", exc_info=False)
