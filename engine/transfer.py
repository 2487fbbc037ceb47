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

``mode="replace"`` and ``mode="upsert"`` load a staging table the same way, then apply it
to the target in one transaction (:mod:`engine.staging`). Setting the ``cancel`` event
stops the workers at a batch boundary; the load resumes later like a failed one.

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
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.connection import Connection, ConnectionFactory, RetryPolicy
from engine.errors import AzsqlBulkError, ConfigurationError, DatabaseError, database_error
from engine.journal import Journal, batch_key, default_load_id
from engine.options import Target, TransferOptions
from engine.remote import storage_for
from engine.schema import (
    ExistingColumn,
    TablePlan,
    cast_batch,
    create_table_sql,
    insert_sql,
    longest_over,
    native_timestamp_columns,
    plan_table,
    quote_identifier,
    split_long_text,
    utf16_lengths,
    validate_against,
)
from engine.sources import Source, SourceBatch, open_source
from engine.staging import (
    FINISH_BATCH_ID,
    DuplicateKeyError,
    copy_rows_sql,
    duplicate_keys_sql,
    merge_sql,
    null_keys_sql,
    staging_table_name,
)
from engine.type_map import MAX, SqlType, binary_length_bucket, text_length_bucket

__all__ = ["LoadAlreadyJournaled", "Progress", "TransferCancelled", "TransferError",
           "TransferResult", "WorkerStats", "transfer"]

log = logging.getLogger(__name__)

_COLUMNS_SQL = ("SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, "
                "NUMERIC_SCALE, DATETIME_PRECISION, IS_NULLABLE, COLUMN_DEFAULT "
                "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? "
                "ORDER BY ORDINAL_POSITION")
_ALREADY_EXISTS = 2714  # "There is already an object named ... in the database."
_POLL = 0.2  # seconds a blocked queue operation waits before looking at the stop flag


class TransferError(AzsqlBulkError):
    """A load stopped: which table, batch and source rows, why, and what was kept.

    :param message: the full message.
    :param table: the target table.
    :param batch_id: the failed batch's id (None when no batch was at fault).
    :param location: where the batch's rows are in the source.
    :param error: the underlying error (a :class:`DatabaseError` for database refusals).
    :param load_id: the load's journal id (run again with it to resume).
    :param rows_committed: rows this run committed before it stopped.
    :param batches_committed: batches this run committed before it stopped.
    :param resumable: whether committed batches are journaled, so running the load again
        with the same ``load_id`` continues where it stopped (False when nothing was kept).
    """

    def __init__(self, message: str, *, table: str, batch_id: str | None,
                 location: str | None, error: BaseException | None, load_id: str = "",
                 rows_committed: int = 0, batches_committed: int = 0,
                 resumable: bool = False) -> None:
        super().__init__(message)
        self.table = table
        self.batch_id = batch_id
        self.location = location
        self.error = error
        self.load_id = load_id
        self.rows_committed = rows_committed
        self.batches_committed = batches_committed
        self.resumable = resumable

    @property
    def native_error(self) -> int | None:
        """The server's error number, when a database error stopped the load."""
        return self.error.native_error if isinstance(self.error, DatabaseError) else None


class LoadAlreadyJournaled(ConfigurationError):
    """The load id already has journal rows and ``resume`` is False; nothing was sent.

    :param message: the full message.
    :param load_id: the load's id.
    :param batches: how many batches it has journaled.
    """

    def __init__(self, message: str, *, load_id: str, batches: int) -> None:
        super().__init__(message)
        self.load_id = load_id
        self.batches = batches


class TransferCancelled(TransferError):
    """The ``cancel`` event stopped the load at a batch boundary; it can be resumed."""


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
             factory: ConnectionFactory | None = None,
             cancel: threading.Event | None = None) -> TransferResult:
    """Load ``source`` into ``target`` exactly once.

    :param source: a :class:`~engine.sources.Source` from
        :func:`~engine.sources.open_source`, or anything it opens (pyarrow Table or
        RecordBatchReader, polars frames, paths and globs), opened with the options'
        ``rows_per_batch``, ``columns`` and ``rename``.
    :param target: the database and ``schema.table``.
    :param options: how to load (default :class:`TransferOptions`).
    :param factory: a connection factory to share (default: one built from
        ``target.connection``, closed afterwards).
    :param cancel: when set (from any thread), workers stop at the next batch boundary
        and :class:`TransferCancelled` is raised; committed batches stay journaled.
    :raises ConfigurationError: a bad option, an incompatible existing table
        (:class:`~engine.schema.SchemaMismatchError`, before any row is sent), a
        missing table with ``create="never"``.
    :raises TransferError: a batch failed terminally (or kept failing transiently), or
        the source could not be read.
    :raises TransferCancelled: ``cancel`` was set.
    :raises DatabaseError: the set-up (table check, DDL, journal) failed.

    >>> import pyarrow as pa  # doctest: +SKIP
    >>> transfer(pa.table({"id": [1, 2]}), target).rows  # doctest: +SKIP
    2
    """
    options = options or TransferOptions()
    if isinstance(source, Source):
        if options.columns is not None or options.rename:
            raise ConfigurationError(
                "columns and rename are applied when the source is opened: pass them to "
                "open_source() for an opened Source, or pass the table/path to transfer()")
        src = source
    else:  # abfss:// sources are read with the identity that logs in to the database
        src = open_source(source, columns=options.columns, rename=options.rename,
                          rows_per_batch=options.rows_per_batch,
                          storage=storage_for(target.connection.credential))
    own = factory is None
    shared = factory if factory is not None else ConnectionFactory(target.connection)
    try:
        return _Load(src, target, options, shared, cancel).run()
    finally:
        if own:
            shared.close()


class _Load:
    """One run of :func:`transfer`: set-up, the reader, the workers, the staged apply."""

    def __init__(self, source: Source, target: Target, options: TransferOptions,
                 factory: ConnectionFactory, cancel: threading.Event | None = None) -> None:
        self.source, self.target, self.options, self.factory = source, target, options, factory
        self.cancel = cancel
        self.table = target.qualified
        self.load_id = options.load_id or default_load_id(source.fingerprint, target.describe())
        self.staged = options.mode != "append"
        self.stage = (f"{target.schema_name}."
                      f"{staging_table_name(target.schema_name, target.table_name, self.load_id)}"
                      if self.staged else "")
        # bracket-quoted, so a schema or name holding '.' stays one part
        self.stage_sql_name = (
            f"{quote_identifier(target.schema_name)}."
            f"{quote_identifier(self.stage.split('.', 1)[1])}" if self.staged else "")
        self.journal = Journal(self.load_id, self.stage if self.staged else self.table)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failure: BaseException | None = None
        self.cancelled = False
        self.stats = [WorkerStats(i) for i in range(options.workers)]
        self.rows = self.bytes = self.batches = self.skipped = self.busy = 0
        self.inflight = 0  # Arrow bytes read ahead or being sent (max_memory_bytes)
        self.room = threading.Condition(self.lock)
        self.phase = "load"
        self.started = time.monotonic()
        self.plan: TablePlan | None = None
        self.sql = ""
        self.existing: list[ExistingColumn] = []
        self.spare: Connection | None = None  # the set-up connection, handed to a worker
        # backoff between replays of a batch (or of the staged apply): full jitter
        self.retry = RetryPolicy(attempts=options.max_retries + 1,
                                 base_delay=options.retry_base_delay,
                                 max_delay=options.retry_max_delay)
        self._statements: dict[tuple[tuple[tuple[str, int], ...], frozenset[str]], str] = {}
        # sized text/binary columns of a table this load created (the target, or a staging
        # table that becomes it): name -> (current type, nullable). A batch holding a longer
        # value widens the column first (the table was sized from the first batch only).
        self.widths: dict[str, tuple[SqlType, bool]] = {}
        self.widen_lock = threading.Lock()
        self.widened: dict[str, str] = {}  # column -> its type after widening

    # -- set-up -----------------------------------------------------------------------
    def run(self) -> TransferResult:
        stream = self.source.batches()
        try:
            first = next(stream, None)
            self.plan = plan_table(self.source.schema, overrides=self.options.sql_types,
                                   sample=first.data if first is not None else None)
            self._check_keys(self.plan)
            self.sql = insert_sql(self.plan, self.stage_sql_name if self.staged
                                  else self.target.table)
            created, done = self._prepare(self.plan)
            return self._load(created, done, first, stream)
        finally:
            if self.spare is not None:  # no worker took it (finished, refused, failed)
                _close_quietly(self.spare)
                self.spare = None
            # a load that stopped early leaves the source half read: close its readers now
            # (the reader thread has been joined). Left to the interpreter's exit, a remote
            # Parquet reader's I/O threads calling back into Python can abort the process
            # ("terminate called without an active exception", seen once in a CLI dry run).
            stream.close()

    def _load(self, created: bool, done: set[str], first: SourceBatch | None,
              stream: Iterator[SourceBatch]) -> TransferResult:
        finish_key = batch_key(FINISH_BATCH_ID)
        if self.staged and finish_key in done:
            log.info("load %s into %s finished in an earlier run; nothing to do",
                     self.load_id, self.table)
            return self._result(created, skipped=len(done) - 1, applied=False)
        if done and not self.options.resume:
            raise LoadAlreadyJournaled(
                f"load_id {self.load_id} already has {len(done)} batch(es) journaled for "
                f"{self.table}; pass resume=True to skip them, another load_id to load the "
                "source again, or delete the load's journal rows (engine.journal.forget_load_sql)",
                load_id=self.load_id, batches=len(done))
        log.info("loading %s into %s (mode %s%s): load_id %s, %d worker(s), %d row(s) per "
                 "batch, %d batch(es) already journaled", self.source.files or "<memory>",
                 self.table, self.options.mode,
                 f", staging table {self.stage}" if self.staged else "", self.load_id,
                 self.options.workers, self.source.rows_per_batch, len(done))
        batches = itertools.chain([first] if first is not None else [], stream)
        self._run_threads(batches, done)
        if self.spare is not None:  # no worker took it: free it before the apply step
            _close_quietly(self.spare)
            self.spare = None
        if self.failure is not None:
            raise self._wrap(self.failure)
        if self.cancelled:
            raise self._cancelled()
        applied = False
        if self.staged:
            created = self._apply() or created
            applied = True
        result = self._result(created, skipped=self.skipped, applied=applied)
        log.info("loaded %s: %d row(s) in %d batch(es), %d skipped, %.1f s, %d retries, "
                 "%d token renewal(s)", self.table, result.rows, result.batches,
                 result.batches_skipped, result.seconds, result.retries, result.token_renewals)
        return result

    def _result(self, created: bool, *, skipped: int, applied: bool) -> TransferResult:
        return TransferResult(
            self.table, self.load_id, self.rows, self.bytes, time.monotonic() - self.started,
            self.batches, skipped, sum(s.retries for s in self.stats),
            sum(s.reconnects for s in self.stats), sum(s.token_renewals for s in self.stats),
            created, tuple(self.stats), self.options.mode, applied, dict(self.widened))

    def _check_keys(self, plan: TablePlan) -> None:
        # keys must be source columns; validate_against then makes every source column
        # (so every key) a column of an existing target
        names = {c.name.casefold() for c in plan.columns}
        missing = [k for k in self.options.keys if k.casefold() not in names]
        if missing:
            raise ConfigurationError(
                f"upsert keys {missing} are not columns of the source (columns: "
                f"{', '.join(plan.names)}); pass keys that name source columns")
        if self.options.keys and len(self.options.keys) == len(plan.columns):
            log.info("every column is a key: the upsert only inserts missing rows")

    def _columns(self, cursor: Any, table: tuple[str, str]) -> list[ExistingColumn]:
        cursor.execute(_COLUMNS_SQL, list(table))
        return [ExistingColumn.from_row(r) for r in cursor.fetchall()]

    def _prepare(self, plan: TablePlan) -> tuple[bool, set[str]]:
        """Check or create the table (and the stage), ensure the journal, read its keys."""
        conn: Connection | None = self.factory.connect()
        assert conn is not None
        try:
            phase = "check the target table"
            try:
                cursor = conn.cursor()
                self.existing = self._columns(cursor, (self.target.schema_name,
                                                       self.target.table_name))
                created = False
                if self.existing and self.options.create != "replace_schema":
                    validate_against(plan, self.existing, table=self.table)
                elif not self.existing and self.options.create == "never":
                    raise ConfigurationError(
                        f"table {self.table} does not exist and create='never'; create it "
                        "first or use create='if_missing'")
                elif not self.existing and self.options.mode != "replace":
                    # append and upsert need the target now; replace renames its stage in
                    phase = "create the target table"
                    created = self._create_target(conn, plan)
                    if created and not self.staged:
                        self._may_widen(plan, None)
                phase = "prepare the load journal"
                self.journal.ensure(conn)
                phase = "read the load journal"
                done = self.journal.keys(conn.cursor())
                conn.commit()
                if self.staged and batch_key(FINISH_BATCH_ID) not in done:
                    phase = "create the staging table"
                    self._ensure_stage(conn, plan, resumed=bool(done))
                self.spare = conn  # worker 0 starts with it: one login fewer
                conn = None
                return created, done
            except AzsqlBulkError:
                raise
            except Exception as exc:  # the ODBC client's error
                error = database_error(exc, phase=phase, where=f"table {self.table}")
            raise error
        finally:
            if conn is not None:
                _close_quietly(conn)

    def _create_target(self, conn: Connection, plan: TablePlan) -> bool:
        """CREATE TABLE; a loader that loses the race to a parallel one (2714) validates
        the table the other one created instead. True when this run created it."""
        try:
            conn.cursor().execute(create_table_sql(plan, self.target.table))
            conn.commit()
            log.info("created table %s", self.table)
            return True
        except Exception as exc:  # the ODBC client's error
            error = database_error(exc, phase="create the target table",
                                   where=f"table {self.table}")
        _rollback_quietly(conn)
        if error.native_error != _ALREADY_EXISTS:
            raise error
        log.info("table %s was created by a parallel load; validating it", self.table)
        self.existing = self._columns(conn.cursor(), (self.target.schema_name,
                                                      self.target.table_name))
        validate_against(plan, self.existing, table=self.table)
        return False

    def _ensure_stage(self, conn: Connection, plan: TablePlan, *, resumed: bool) -> None:
        cursor = conn.cursor()
        schema, name = self.stage.split(".", 1)
        stage_columns = self._columns(cursor, (schema, name))
        # into an existing target: its column types, not the sampled ones (a later
        # batch may hold longer text than the first; the target takes it)
        like = self.existing if self.options.create != "replace_schema" else None
        if stage_columns:
            validate_against(plan, stage_columns, table=self.stage)
            log.info("resuming into staging table %s", self.stage)
            if not like:  # the stage becomes the target: it may grow (from where it is)
                self._may_widen(plan, stage_columns)
        else:
            if resumed:
                raise ConfigurationError(
                    f"load_id {self.load_id} has batches journaled for staging table "
                    f"{self.stage}, which no longer exists, so they cannot be applied; "
                    "delete the load's journal rows (engine.journal.forget_load_sql) and "
                    "load again")
            cursor.execute(create_table_sql(plan, self.stage_sql_name, like=like))
            log.info("created staging table %s", self.stage)
            if not like:
                self._may_widen(plan, None)
        conn.commit()

    # -- the staged modes' final transaction -------------------------------------------
    def _apply(self) -> bool:
        """Apply the staging table to the target in one transaction; True if it created it.

        Retried like a batch on transient errors: the server rolls back an interrupted
        transaction, and the journal's finish row tells whether a commit landed.
        """
        self.phase = "apply"
        self._report()
        finish = batch_key(FINISH_BATCH_ID)
        attempt = 0
        while True:
            conn: Connection | None = None
            try:
                conn = self.factory.connect()
                cursor = conn.cursor()
                if attempt and self.journal.contains(cursor, finish):
                    conn.commit()
                    return False
                created = self._apply_in(conn)
                return created
            except AzsqlBulkError as exc:
                if not isinstance(exc, DatabaseError):
                    if conn is not None:
                        _rollback_quietly(conn)
                    raise
                error: DatabaseError = exc
            except Exception as exc:  # the ODBC client's error
                error = database_error(exc, phase=f"apply the staging table ({self.options.mode})",
                                       where=f"table {self.table}, staging table {self.stage}")
            finally:
                if conn is not None:
                    _close_quietly(conn)
            if not error.transient or attempt >= self.options.max_retries:
                raise TransferError(
                    f"loading {self.table} ({self.options.mode}) stopped while applying the "
                    f"staging table {self.stage}: {error}. The target is unchanged; every batch "
                    f"is staged and journaled under load_id {self.load_id}, so running the load "
                    "again with the same load_id applies it without reloading.",
                    table=self.table, batch_id=None, location=None, error=error,
                    load_id=self.load_id, rows_committed=self.rows,
                    batches_committed=self.batches, resumable=True) from error
            attempt += 1
            self.stats[0].retries += 1
            delay = self.retry.backoff(attempt)
            log.warning("applying staging table %s failed transiently (attempt %d), retrying "
                        "in %.1f s: %s", self.stage, attempt, delay, error)
            time.sleep(delay)

    def _apply_in(self, conn: Connection) -> bool:
        assert self.plan is not None
        cursor = conn.cursor()
        target_sql = self.target.table
        columns = self.plan.names
        total = self.journal.rows(cursor)
        created = False
        if self.options.mode == "upsert":
            self._check_stage_keys(conn)
            cursor.execute(merge_sql(target_sql, self.stage_sql_name, columns,
                                     self.options.keys))
            cursor.execute(f"DROP TABLE {self.stage_sql_name}")
        elif self.existing and self.options.create != "replace_schema":
            cursor.execute(f"TRUNCATE TABLE {_quoted(self.target)}")
            cursor.execute(copy_rows_sql(target_sql, self.stage_sql_name, columns))
            cursor.execute(f"DROP TABLE {self.stage_sql_name}")
        else:
            cursor.execute("SELECT OBJECT_ID(?)", [_quoted(self.target)])
            if cursor.fetchall()[0][0] is not None:
                cursor.execute(f"DROP TABLE {_quoted(self.target)}")
            else:
                created = True
            cursor.execute("EXEC sp_rename ?, ?", [self.stage_sql_name, self.target.table_name])
        self.journal.record(cursor, FINISH_BATCH_ID, total)
        conn.commit()
        log.info("applied staging table %s to %s (%s, %d row(s) staged)", self.stage,
                 self.table, self.options.mode, total)
        return created

    def _check_stage_keys(self, conn: Connection) -> None:
        keys = self.options.keys
        cursor = conn.cursor()
        cursor.execute(duplicate_keys_sql(self.stage_sql_name, keys))
        dups = [tuple(r) for r in cursor.fetchall()]
        cursor.execute(null_keys_sql(self.stage_sql_name, keys))
        nulls = int(cursor.fetchall()[0][0])
        if not dups and not nulls:
            return
        if dups:
            shown = "; ".join(
                ", ".join(f"{k}={v!r}" for k, v in zip(keys, r[:-1], strict=True))
                + f" ({r[-1]} rows)" for r in dups)
            problem = (f"the source holds duplicate keys ({', '.join(keys)}); the first "
                       f"{len(dups)}: {shown}")
        else:
            problem = f"{nulls} source row(s) have a NULL in a key column ({', '.join(keys)})"
        # nothing reached the target: drop the stage and forget the load, so a fixed
        # source (a new load id) or a re-run starts clean instead of finding stale rows
        conn.rollback()
        cursor.execute(f"DROP TABLE {self.stage_sql_name}")
        self.journal.forget(cursor)
        conn.commit()
        raise DuplicateKeyError(
            f"upsert into {self.table} refused: {problem}. A MERGE needs each key at most "
            "once and never NULL. Nothing in the target was changed; the staging table and "
            f"the journal rows of load_id {self.load_id} were removed. De-duplicate the "
            "source (or choose keys that identify a row) and load again.",
            [r[:-1] for r in dups])

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
                w.join(timeout=0.5)
                if w.is_alive():
                    break
            self._check_cancel()
            self._report()  # at least once a second while the load runs
        self.stop.set()  # the reader may still wait on a full queue after a failure
        with self.room:
            self.room.notify_all()
        reader.join()

    def _check_cancel(self) -> bool:
        """Turn a set ``cancel`` event into a stop (once); True when stopping."""
        if self.cancel is not None and self.cancel.is_set():
            with self.lock:
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
                    with self.lock:
                        self.skipped += 1
                    continue
                if not self._reserve(batch.data.nbytes):
                    return
                if not self._put(work, batch):
                    return
        except BaseException as exc:  # a source error stops the load like a terminal one
            self._fail(exc)
            return
        for _ in self.stats:
            if not self._put(work, None):
                return

    def _reserve(self, nbytes: int) -> bool:
        """Wait until ``nbytes`` more fit under ``max_memory_bytes`` (or nothing is in flight)."""
        budget = self.options.max_memory_bytes
        with self.room:
            while (budget is not None and self.inflight and self.inflight + nbytes > budget
                   and not self.stop.is_set()):
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

    def _work(self, stats: WorkerStats, work: queue.Queue[SourceBatch | None]) -> None:
        with self.lock:
            conn, self.spare = self.spare, None
        try:
            while not self._check_cancel():
                try:
                    item = work.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if item is None:
                    return
                with self.lock:
                    self.busy += 1
                try:
                    conn = self._load_batch(conn, item, stats)
                finally:
                    with self.lock:
                        self.busy -= 1
                    self._release(item.data.nbytes)
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

    def _wrap(self, failure: BaseException) -> BaseException:
        """A reader failure (the source) becomes a TransferError that says what was kept."""
        if isinstance(failure, TransferError) or not isinstance(failure, Exception):
            return failure
        with self.lock:
            rows, batches = self.rows, self.batches
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
        with self.lock:
            rows, batches = self.rows, self.batches
        return TransferCancelled(
            f"loading {self.table} was cancelled after this run committed {batches} "
            f"batch(es), {rows} row(s); they stay, journaled under load_id {self.load_id}. "
            "Run the load again with the same load_id to resume.",
            table=self.table, batch_id=None, location=None, error=None, load_id=self.load_id,
            rows_committed=rows, batches_committed=batches, resumable=True)

    # -- widening columns of a table this load created ---------------------------------
    def _may_widen(self, plan: TablePlan, existing: list[ExistingColumn] | None) -> None:
        """Let the sized nvarchar/varbinary columns grow (not the ones given in sql_types)."""
        by_name = {c.name.lower(): c for c in existing or ()}
        for c in plan.columns:
            twin = by_name.get(c.name.lower())
            sql_type, nullable = (twin.sql_type, twin.nullable) if twin else (c.sql_type,
                                                                              c.nullable)
            if (not c.overridden and sql_type.name in ("nvarchar", "varbinary")
                    and sql_type.length not in (None, MAX)):
                self.widths[c.name] = (sql_type, nullable)

    def _needs_widening(self, error: DatabaseError, item: SourceBatch,
                        done: set[str]) -> dict[str, int]:
        """After a failed batch: the widenable columns holding a value longer than the
        column, measured on this error path only, so a load that never needs it pays nothing.
        The server says 2628 naming the column (8152 on older compatibility levels, naming
        none); turbodbc cannot always read the diagnostic (a long truncated value in it gives
        HY000 "Obtaining diagnostic record ... failed"), so any terminal failure is checked."""
        if not self.widths or error.transient:
            return {}
        names = list(self.widths)
        found = _COLUMN_IN_MESSAGE.search(str(error))
        if error.native_error == _TRUNCATED and found is not None:
            wanted = found.group(1).replace("''", "'").casefold()
            names = [n for n in names if n.casefold() == wanted]
        return self._too_long(item.data, [n for n in names if n not in done])

    def _too_long(self, data: pa.Table | pa.RecordBatch, names: list[str]) -> dict[str, int]:
        """Columns of this batch holding a value longer than the column: name -> length."""
        assert self.plan is not None
        found = {}
        for name in names:
            sql_type, _ = self.widths[name]
            if sql_type.length in (None, MAX):
                continue
            length = longest_over(data.column(name), self.plan.column(name).arrow_type,
                                  sql_type.length)
            if length is not None:
                found[name] = length
        return found

    def _widen(self, conn: Connection, needed: dict[str, int], item: SourceBatch) -> None:
        """ALTER the columns to the next size that holds the batch's values (committed on
        their own, before the batch's transaction). Idempotent: a column another worker
        already widened enough is left alone."""
        table = (self.stage_sql_name if self.staged else
                 f"{quote_identifier(self.target.schema_name)}."
                 f"{quote_identifier(self.target.table_name)}")
        with self.widen_lock:
            for name, length in needed.items():
                sql_type, nullable = self.widths[name]
                if sql_type.length in (None, MAX) or length <= (sql_type.length or 0):
                    continue
                bucket = (text_length_bucket(length) if sql_type.name == "nvarchar"
                          else binary_length_bucket(length))
                wider = SqlType(sql_type.name, length=bucket)
                conn.cursor().execute(
                    f"ALTER TABLE {table} ALTER COLUMN {quote_identifier(name)} "
                    f"{wider.sql()} {'NULL' if nullable else 'NOT NULL'}")
                conn.commit()
                self.widths[name] = (wider, nullable)
                self.widened[name] = wider.sql()
                log.warning("widened column %s of %s from %s to %s: batch %s (%s) holds a "
                            "value of %d %s, and the table was sized from the first batch",
                            name, self.stage if self.staged else self.table, sql_type.sql(),
                            wider.sql(), item.batch_id, item.location.describe(), length,
                            "characters" if sql_type.name == "nvarchar" else "bytes")

    # -- one batch --------------------------------------------------------------------
    def _load_batch(self, conn: Connection | None, item: SourceBatch,
                    stats: WorkerStats) -> Connection | None:
        """Insert one batch and its journal row in one transaction; returns the connection."""
        assert self.plan is not None
        where = f"table {self.table}, batch {item.batch_id}, {item.location.describe()}"
        try:
            native = native_timestamp_columns(self.plan, item.data)
            bound = cast_batch(self.plan, item.data, nan_as_null=self.options.nan_as_null,
                               row_offset=item.location.first_row or 0, native=native)
            rows = bound.num_rows
            bound, pieces = split_long_text(self.plan, bound)
            sql = self._insert_for(pieces, native) if pieces or native else self.sql
        except AzsqlBulkError as exc:
            raise self._stopped_at(item, exc) from exc
        key = batch_key(item.batch_id)
        attempt = 0
        widened: set[str] = set()  # columns this batch already widened
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
                cursor.executemanycolumns(sql, bound)
                self.journal.record(cursor, item.batch_id, rows)
                conn.commit()
                self._committed(item, rows, stats)
                return conn
            except DatabaseError as exc:  # ConnectError from the factory
                error = exc
            except AzsqlBulkError:
                raise
            except Exception as exc:  # the ODBC client's error
                error = database_error(exc, phase="insert", where=where)
            needed = self._needs_widening(error, item, widened) if conn is not None else {}
            if needed and conn is not None:  # a column this load created is too short
                _rollback_quietly(conn)  # nothing of the batch stays; replay it once widened
                try:
                    self._widen(conn, needed, item)
                    widened.update(needed)
                    continue
                except Exception as exc:  # the ODBC client's error
                    error = database_error(exc, phase="widen a column", where=where)
            if conn is not None:
                _rollback_quietly(conn)
                _close_quietly(conn)
                conn = None
            if not error.transient or attempt >= self.options.max_retries:
                raise self._stopped_at(item, error, attempts=attempt + 1)
            attempt += 1
            stats.retries += 1
            delay = self.retry.backoff(attempt)
            log.warning("worker %d: batch %s failed transiently (attempt %d of %d), replaying "
                        "in %.1f s: %s", stats.worker, item.batch_id, attempt,
                        self.options.max_retries + 1, delay, error)
            if self.stop.wait(delay):
                raise _Stopped

    def _insert_for(self, pieces: dict[str, int], native: frozenset[str]) -> str:
        """The INSERT for a batch's shape (text pieces, native columns), built once per shape."""
        assert self.plan is not None
        key = (tuple(sorted(pieces.items())), native)
        sql = self._statements.get(key)
        if sql is None:
            sql = insert_sql(self.plan, self.stage_sql_name if self.staged
                             else self.target.table, pieces, native)
            self._statements[key] = sql
        return sql

    def _committed(self, item: SourceBatch, rows: int, stats: WorkerStats) -> None:
        stats.rows += rows
        stats.batches += 1
        with self.lock:
            self.rows += rows
            self.bytes += item.data.nbytes
            self.batches += 1
        self._report()

    def _report(self) -> None:
        if self.options.progress is None:
            return
        with self.lock:
            snapshot = Progress(self.rows, self.batches, self.skipped, self.bytes,
                                time.monotonic() - self.started, self.source.total_rows,
                                self.busy, sum(s.retries for s in self.stats),
                                sum(s.reconnects for s in self.stats),
                                sum(s.token_renewals for s in self.stats), self.phase)
        self.options.progress(snapshot)

    def _culprit(self, item: SourceBatch, error: BaseException) -> str:
        """For a NULL refused by a NOT NULL column (515) or text too long for its column
        (2628): where the first such value is in the source (the server names only the
        column), else empty."""
        number = error.native_error if isinstance(error, DatabaseError) else None
        found = _COLUMN_IN_MESSAGE.search(str(error)) if number in (_NOT_NULL,
                                                                   _TRUNCATED) else None
        if found is None:
            return ""
        name = found.group(1).replace("''", "'")
        match = next((n for n in item.data.schema.names if n.casefold() == name.casefold()),
                     None)
        if match is None:
            return ""
        values = item.data.column(match)
        if number == _NOT_NULL:
            flags, what = pc.is_null(values), "the first NULL"
        else:
            limit = self._text_length(match)
            if limit is None or not (pa.types.is_string(values.type)
                                     or pa.types.is_large_string(values.type)):
                return ""
            flags = pc.fill_null(pc.greater(utf16_lengths(values), limit), False)
            what = f"the first value longer than {limit} characters"
        index = pc.index(flags, True).as_py()
        if index is None or index < 0:
            return ""
        return f"; {what} in column {match!r} is at {item.location.describe(index)}"

    def _text_length(self, name: str) -> int | None:
        """The nvarchar length of the column a batch went into (None for max or unknown)."""
        folded = name.casefold()
        if folded in {k.casefold() for k in self.widths}:
            sql_type = next(t for k, (t, _) in self.widths.items() if k.casefold() == folded)
        else:
            existing = [c.sql_type for c in self.existing if c.name.casefold() == folded]
            planned = [c.sql_type for c in (self.plan.columns if self.plan else ())
                       if c.name.casefold() == folded]
            candidates = existing or planned
            if not candidates:
                return None
            sql_type = candidates[0]
        if sql_type.name not in ("nvarchar", "nchar") or sql_type.length in (None, MAX):
            return None
        return sql_type.length

    def _stopped_at(self, item: SourceBatch, error: BaseException,
                    attempts: int = 1) -> TransferError:
        with self.lock:
            rows, batches = self.rows, self.batches
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


_NOT_NULL, _TRUNCATED = 515, 2628
_COLUMN_IN_MESSAGE = re.compile(r"column '((?:[^']|'')+)'")


def _quoted(target: Target) -> str:
    return f"{quote_identifier(target.schema_name)}.{quote_identifier(target.table_name)}"


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
