"""Rejected rows: up to ``max_errors`` rows the server refuses are set aside, the rest load.

When a batch fails with a terminal error that one row causes (a NULL into a NOT NULL
column, text longer than its column, a value its type cannot hold, a duplicate key, a
CHECK or FOREIGN KEY violation; :func:`row_caused`) and the load allows rejects
(``TransferOptions.max_errors > 0``), :class:`Splitter` finds the rows at fault:

1. **bisection**: the failing rows are split in halves, and each half is written in a
   *probe* transaction that is always rolled back (through the load's own transport, so a
   bulk batch is probed by bulk copy). A half that fails is split again, down to single
   rows; a single row that fails is a reject, with the server's error. Savepoints are not
   used: after an error, SQL Server may doom the transaction, and the emulator always does.
2. **the batch's transaction**: the good rows (the batch without its rejects) go through
   the transport again, the rejects go into :data:`REJECTS_TABLE` and the batch's journal
   row is inserted, and all three COMMIT TOGETHER. A resumed or replayed load therefore
   neither re-inserts nor re-rejects: the batch is journaled, or nothing of it is kept.
3. rows that fail only together (two rows with the same key in one batch, each fine
   alone) make step 2 fail again: the shortest failing prefix of the good rows is found
   by binary search (probes again), its last row is rejected, and step 2 runs again.

The whole load rejects at most ``max_errors`` rows (:class:`Budget`, shared by the
workers and starting from the rejects an earlier run of the same load committed); the
next one stops the load exactly as without rejects.

The rejects table lives next to the journal::

    CREATE TABLE [azsql_bulk].[rejected_rows] (
        [load_id]       nvarchar(128) NOT NULL,
        [batch_key]     char(64)      NOT NULL,  -- the batch's journal key
        [row_in_batch]  int           NOT NULL,  -- 0-based
        [batch_id]      nvarchar(max) NOT NULL,
        [target]        nvarchar(300) NOT NULL,  -- the table (or staging table) written
        [source_file]   nvarchar(max) NOT NULL,  -- or '<memory>' / 'mem'
        [unit]          int           NULL,      -- row group / record batch
        [source_row]    bigint        NULL,      -- 0-based row in the file
        [column_name]   nvarchar(128) NULL,      -- when the server or the data names it
        [error_number]  int           NULL,      -- the server's (or the driver's) number
        [sqlstate]      varchar(5)    NULL,
        [error_message] nvarchar(max) NULL,
        [row_values]    nvarchar(max) NULL,      -- JSON object: column -> value as text
        [rejected_at]   datetime2(3)  NOT NULL DEFAULT SYSUTCDATETIME(),
        CONSTRAINT [PK_azsql_bulk_rejected_rows]
            PRIMARY KEY ([load_id], [batch_key], [row_in_batch])
    )

With ``reject_file``, :func:`write_reject_file` writes a load's rows of that table to a
Parquet file at the end of the load (so it is exact after a resume).

>>> row_caused(DatabaseError("x", diagnostics=[Diagnostic("23000", 515, "NULL")]))
True
>>> row_caused(DatabaseError("x", diagnostics=[Diagnostic("08S01", 10054, "reset")]))
False
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from engine.binder import BoundBatch
from engine.connection import close_quietly, rollback_quietly
from engine.errors import (
    COLUMN_IN_MESSAGE,
    STRING_TRUNCATED_SQLSTATE,
    DatabaseError,
    Diagnostic,
    database_error,
)
from engine.journal import JOURNAL_SCHEMA, JOURNAL_TABLE, Journal, batch_key
from engine.remote import RemoteFiles
from engine.remote_uri import is_remote
from engine.sources import SourceBatch
from engine.text_length import utf16_lengths
from engine.transport import Transport

__all__ = [
    "REJECTS_TABLE",
    "ROW_ERRORS",
    "ROW_SQLSTATES",
    "Budget",
    "Reject",
    "RejectLimitReached",
    "Splitter",
    "count_rejects",
    "create_rejects_sql",
    "ensure_rejects_table",
    "finish_rejects",
    "read_rejects",
    "row_caused",
    "start_rejects",
    "write_reject_file",
]

log = logging.getLogger(__name__)

REJECTS_TABLE = "rejected_rows"
_QUALIFIED = f"[{JOURNAL_SCHEMA}].[{REJECTS_TABLE}]"
_ALREADY_EXISTS = frozenset({2714})

#: server errors one row causes: NULL into NOT NULL (515), truncation (2628, 8152),
#: conversion and overflow (8114, 8115, 245, 220, 232, 241, 242, 248, 293, 295, 517, 8023,
#: 8115, 9829), duplicate key (2627, 2601), CHECK / FOREIGN KEY (547)
ROW_ERRORS = frozenset({515, 2628, 8152, 8114, 8115, 245, 220, 232, 241, 242, 248, 293, 295,
                        517, 8023, 9829, 2627, 2601, 547})
#: SQLSTATEs the driver itself reports for one value (bulk copy checks before sending):
#: string right truncation, numeric out of range, datetime overflow, invalid cast
ROW_SQLSTATES = frozenset({STRING_TRUNCATED_SQLSTATE, "22003", "22007", "22008", "22018"})


def row_caused(error: BaseException) -> bool:
    """Whether ``error`` is a terminal error a row's value causes (see :data:`ROW_ERRORS`)."""
    if not isinstance(error, DatabaseError) or error.transient:
        return False
    return error.native_error in ROW_ERRORS or error.sqlstate in ROW_SQLSTATES


class RejectLimitReached(Exception):
    """One more reject than ``max_errors`` allows: the load stops as without rejects."""


class Budget:
    """The load's rejects: at most ``limit``, over all workers and runs.

    :param limit: ``max_errors``.
    :param used: rejects an earlier run of the load committed.

    >>> budget = Budget(2, used=1)
    >>> budget.take(1), budget.take(1)
    (True, False)
    """

    def __init__(self, limit: int, used: int = 0) -> None:
        self.limit, self.used = limit, used
        self.earlier = used
        self.lock = threading.Lock()

    def take(self, n: int) -> bool:
        """Reserve ``n`` rejects; False (nothing reserved) when over the limit."""
        with self.lock:
            if self.used + n > self.limit:
                return False
            self.used += n
            return True

    def add(self, n: int) -> None:
        """Count ``n`` rejects that committed although their batch's commit seemed to fail."""
        with self.lock:
            self.used += n

    def release(self, n: int) -> None:
        """Give back ``n`` reserved rejects (their batch did not commit)."""
        with self.lock:
            self.used -= n

    @property
    def this_run(self) -> int:
        """Rejects committed (or reserved) by this run."""
        with self.lock:
            return self.used - self.earlier


@dataclass(frozen=True)
class Reject:
    """One rejected row of a batch.

    :param row: 0-based row in the batch.
    :param error: why the server (or the driver) refused it.
    """

    row: int
    error: DatabaseError


def create_rejects_sql() -> str:
    """The rejects table's ``CREATE TABLE`` (see the module docstring)."""
    return (f"CREATE TABLE {_QUALIFIED} (\n"
            "    [load_id] nvarchar(128) NOT NULL,\n"
            "    [batch_key] char(64) NOT NULL,\n"
            "    [row_in_batch] int NOT NULL,\n"
            "    [batch_id] nvarchar(max) NOT NULL,\n"
            "    [target] nvarchar(300) NOT NULL,\n"
            "    [source_file] nvarchar(max) NOT NULL,\n"
            "    [unit] int NULL,\n"
            "    [source_row] bigint NULL,\n"
            "    [column_name] nvarchar(128) NULL,\n"
            "    [error_number] int NULL,\n"
            "    [sqlstate] varchar(5) NULL,\n"
            "    [error_message] nvarchar(max) NULL,\n"
            "    [row_values] nvarchar(max) NULL,\n"
            "    [rejected_at] datetime2(3) NOT NULL\n"
            "        CONSTRAINT [DF_azsql_bulk_rejected_rows_rejected_at]\n"
            "        DEFAULT SYSUTCDATETIME(),\n"
            "    CONSTRAINT [PK_azsql_bulk_rejected_rows]\n"
            "        PRIMARY KEY ([load_id], [batch_key], [row_in_batch])\n"
            ")")


_INSERT_SQL = (f"INSERT INTO {_QUALIFIED} ([load_id], [batch_key], [row_in_batch], "  # noqa: S608
               "[batch_id], [target], [source_file], [unit], [source_row], [column_name], "
               "[error_number], [sqlstate], [error_message], [row_values]) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
# a load's rejects are those of its journaled batches: rows a forgotten run of the same
# load id left behind (``journal forget`` deletes journal rows only) do not count
_JOURNALED = ("[r].[load_id] = ? AND EXISTS (SELECT 1 FROM "  # noqa: S608
              f"[{JOURNAL_SCHEMA}].[{JOURNAL_TABLE}] AS [j] WHERE [j].[load_id] = [r].[load_id] "
              "AND [j].[batch_key] = [r].[batch_key])")
_COUNT_SQL = f"SELECT COUNT(*) FROM {_QUALIFIED} AS [r] WHERE {_JOURNALED}"  # noqa: S608
_READ_COLUMNS = ("batch_id", "source_file", "unit", "source_row", "row_in_batch",
                 "column_name", "error_number", "sqlstate", "error_message", "row_values")
_READ_SQL = (f"SELECT {', '.join(f'[r].[{c}]' for c in _READ_COLUMNS)} "  # noqa: S608
             f"FROM {_QUALIFIED} AS [r] WHERE {_JOURNALED} ORDER BY [r].[source_file], "
             "[r].[source_row], [r].[batch_id], [r].[row_in_batch]")
_BATCH_COUNT_SQL = (f"SELECT COUNT(*) FROM {_QUALIFIED} "  # noqa: S608
                    "WHERE [load_id] = ? AND [batch_key] = ?")
#: a forgotten run's rejects of a batch about to commit (it is not journaled, so they are
#: stale)
_STALE_SQL = f"DELETE FROM {_QUALIFIED} WHERE [load_id] = ? AND [batch_key] = ?"  # noqa: S608


def ensure_rejects_table(conn: Any) -> None:
    """Create the rejects table when missing (the journal's schema exists by then);
    commits. A loader that loses the creation race carries on.

    :param conn: a connection (autocommit off).
    """
    cursor = conn.cursor()
    cursor.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES "
                   "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", [JOURNAL_SCHEMA, REJECTS_TABLE])
    if int(cursor.fetchall()[0][0]):
        conn.commit()
        return
    try:
        conn.cursor().execute(create_rejects_sql())
        conn.commit()
        log.info("created the rejects table %s", _QUALIFIED)
        return
    except Exception as exc:  # the ODBC client's error, classified below
        error = database_error(exc, phase="create the rejects table", where=_QUALIFIED)
    conn.rollback()
    if error.native_error not in _ALREADY_EXISTS:
        raise error


def count_rejects(cursor: Any, load_id: str) -> int:
    """Rejects committed for ``load_id`` (by every run of it; those of journaled batches)."""
    cursor.execute(_COUNT_SQL, [load_id])
    return int(cursor.fetchall()[0][0])


def read_rejects(cursor: Any, load_id: str) -> list[dict[str, Any]]:
    """The load's rejects, in source order, one dict per row (``row_values`` decoded)."""
    cursor.execute(_READ_SQL, [load_id])
    out = []
    for row in cursor.fetchall():
        record = dict(zip(_READ_COLUMNS, row, strict=True))
        text = record.pop("row_values")
        record["values"] = json.loads(text) if text else {}
        out.append(record)
    return out


def write_reject_file(path: str, load_id: str, records: list[dict[str, Any]],
                      columns: list[str], *, storage: Any = None) -> int:
    """Write ``records`` (from :func:`read_rejects`) to a Parquet file; returns the rows.

    Columns: ``load_id``, ``batch_id``, ``source_file``, ``unit``, ``source_row``,
    ``row_in_batch``, ``column_name``, ``error_number``, ``sqlstate``, ``error_message``,
    then every loaded column as text (named as loaded; ``value_`` before a name that
    clashes with the columns before).

    :param path: a local path, or an ``abfss://`` (``abfs://``, ``az://``) object, written
        with the load's storage identity.
    :param load_id: the load's id.
    :param records: the rejects.
    :param columns: the loaded columns, in order.
    :param storage: :class:`engine.remote.StorageOptions` for a remote ``path`` (None: from
        the environment).
    """
    import pyarrow.parquet as pq
    meta: dict[str, pa.Array] = {
        "load_id": pa.array([load_id] * len(records), pa.string()),
        "batch_id": pa.array([r["batch_id"] for r in records], pa.string()),
        "source_file": pa.array([r["source_file"] for r in records], pa.string()),
        "unit": pa.array([r["unit"] for r in records], pa.int32()),
        "source_row": pa.array([r["source_row"] for r in records], pa.int64()),
        "row_in_batch": pa.array([r["row_in_batch"] for r in records], pa.int32()),
        "column_name": pa.array([r["column_name"] for r in records], pa.string()),
        "error_number": pa.array([r["error_number"] for r in records], pa.int32()),
        "sqlstate": pa.array([r["sqlstate"] for r in records], pa.string()),
        "error_message": pa.array([r["error_message"] for r in records], pa.string()),
    }
    for name in columns:
        label = f"value_{name}" if name in meta else name
        meta[label] = pa.array([r["values"].get(name) for r in records], pa.string())
    if not is_remote(path):
        pq.write_table(pa.table(meta), path)
        return len(records)
    buffer = io.BytesIO()
    pq.write_table(pa.table(meta), buffer)
    files = RemoteFiles(storage)
    try:
        files.upload(path, buffer.getvalue())
    finally:
        files.close()
    return len(records)


def _message(error: DatabaseError) -> tuple[int | None, str | None, str]:
    """(number, sqlstate, message) of the record that names the row's fault."""
    first: Diagnostic | None = None
    for d in error.diagnostics:
        if d.native_error in ROW_ERRORS or d.sqlstate in ROW_SQLSTATES:
            first = d
            break
    if first is None and error.diagnostics:
        first = error.diagnostics[0]
    if first is None:
        return error.native_error, error.sqlstate, str(error)
    return first.native_error, first.sqlstate, first.message


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class Splitter:
    """Finds a failed batch's bad rows and commits the rest with their record.

    :param journal: the load's journal.
    :param transport: the load's transport (probes and the final write use it).
    :param budget: the load's reject budget.
    :param text_limit: a text column's length in characters, or None (names the column
        of a driver truncation, which names none).
    """

    def __init__(self, journal: Journal, transport: Transport, budget: Budget,
                 text_limit: Callable[[str], int | None]) -> None:
        self.journal, self.transport, self.budget = journal, transport, budget
        self.text_limit = text_limit

    def commit(self, conn: Any, item: SourceBatch, bound: BoundBatch,
               error: DatabaseError, where: str) -> tuple[int, int]:
        """Set aside the rows of ``bound`` that fail, commit the others with the rejects'
        record and the journal row; returns (rows committed, rows rejected).

        :param conn: the worker's connection, its failed transaction rolled back.
        :param item: the batch.
        :param bound: the batch as the transport sends it.
        :param error: the batch's row-caused error.
        :param where: names the batch in messages.
        :raises RejectLimitReached: the load's budget is spent (nothing kept, nothing held).
        :raises DatabaseError: a non-row error (transient ones are the caller's to replay).
        """
        rejects: dict[int, DatabaseError] = {}
        try:
            self._bisect(conn, bound, list(range(bound.rows)), error, rejects, where)
            while True:
                good = [i for i in range(bound.rows) if i not in rejects]
                failed = self._try(conn, bound, good, where, commit_with=(item, rejects))
                if failed is None:
                    return len(good), len(rejects)
                # rows that fail only together: the last row of the shortest failing prefix
                row, why = self._first_failing(conn, bound, good, failed, where)
                self._reject(rejects, row, why)
        except BaseException:
            self.budget.release(len(rejects))
            raise

    def landed(self, cursor: Any, key: str) -> None:
        """A replay found its batch (journal key ``key``) committed after all: its rejects,
        given back when the commit seemed to fail, count again."""
        cursor.execute(_BATCH_COUNT_SQL, [self.journal.load_id, key])
        self.budget.add(int(cursor.fetchall()[0][0]))

    def _reject(self, rejects: dict[int, DatabaseError], row: int,
                error: DatabaseError) -> None:
        if not self.budget.take(1):
            raise RejectLimitReached(error)
        rejects[row] = error

    def _bisect(self, conn: Any, bound: BoundBatch, rows: list[int], error: DatabaseError,
                rejects: dict[int, DatabaseError], where: str) -> None:
        """``rows`` fail together with ``error``: reject the single rows that fail."""
        if len(rows) == 1:
            self._reject(rejects, rows[0], error)
            return
        mid = len(rows) // 2
        for half in (rows[:mid], rows[mid:]):
            failed = self._try(conn, bound, half, where)
            if failed is not None:
                self._bisect(conn, bound, half, failed, rejects, where)

    def _first_failing(self, conn: Any, bound: BoundBatch, good: list[int],
                       error: DatabaseError, where: str) -> tuple[int, DatabaseError]:
        """The row of ``good`` that ends its shortest failing prefix, with its error."""
        lo, hi, found = 0, len(good) - 1, error
        while lo < hi:
            mid = (lo + hi) // 2
            failed = self._try(conn, bound, good[:mid + 1], where)
            if failed is None:
                lo = mid + 1
            else:
                hi, found = mid, failed
        return good[lo], found

    def _try(self, conn: Any, bound: BoundBatch, rows: list[int], where: str,
             commit_with: tuple[SourceBatch, dict[int, DatabaseError]] | None = None
             ) -> DatabaseError | None:
        """Write ``rows`` of ``bound``; roll back (a probe) or, with ``commit_with``,
        record the rejects and the journal row and commit. The row-caused error of the
        write, else None; other errors are raised."""
        cursor = conn.cursor()
        try:
            if rows:
                self.transport.write(conn, cursor, _subset(bound, rows))
        except DatabaseError as exc:
            rollback_quietly(conn)
            if not row_caused(exc):
                raise
            return exc
        except Exception as exc:  # the ODBC client's error
            rollback_quietly(conn)
            error = database_error(exc, phase="insert", where=where)
            if not row_caused(error):
                raise error from exc
            return error
        if commit_with is None:
            conn.rollback()
            return None
        item, rejects = commit_with
        self._record(cursor, item, rejects)
        self.journal.record(cursor, item.batch_id, len(rows))
        conn.commit()
        return None

    def _record(self, cursor: Any, item: SourceBatch, rejects: dict[int, DatabaseError]) -> None:
        """Insert the batch's rejects into the rejects table (in the open transaction)."""
        key, loc = batch_key(item.batch_id), item.location
        if rejects:
            cursor.execute(_STALE_SQL, [self.journal.load_id, key])
        for row in sorted(rejects):
            error = rejects[row]
            number, state, message = _message(error)
            values = {name: _text(v) for name, v in
                      zip(item.data.schema.names, item.data.slice(row, 1).to_pylist()[0].values(),
                          strict=True)}
            cursor.execute(_INSERT_SQL, [
                self.journal.load_id, key, row, item.batch_id, self.journal.target,
                loc.source, loc.unit, None if loc.first_row is None else loc.first_row + row,
                self._column(item, row, error), number, state, message[:4000],
                json.dumps(values, ensure_ascii=False)])
        if rejects:
            log.warning("batch %s: %d row(s) rejected (%s), the others committed",
                        item.batch_id, len(rejects),
                        ", ".join(item.location.describe(r) for r in sorted(rejects)[:5]))

    def _column(self, item: SourceBatch, row: int, error: DatabaseError) -> str | None:
        """The column at fault: the one the server names, else (a driver truncation) the
        first text column whose value in ``row`` is longer than the column."""
        named = COLUMN_IN_MESSAGE.search(str(error))
        if named is not None:
            return named.group(1).replace("''", "'")
        if error.sqlstate != STRING_TRUNCATED_SQLSTATE:
            return None
        for name in item.data.schema.names:
            limit = self.text_limit(name)
            values = item.data.column(name).slice(row, 1)
            if limit is None or not (pa.types.is_string(values.type)
                                     or pa.types.is_large_string(values.type)):
                continue
            length = utf16_lengths(values)[0].as_py()
            if length is not None and length > limit:
                return str(name)
        return None


def _subset(bound: BoundBatch, rows: list[int]) -> BoundBatch:
    """The bound batch's ``rows`` (in order), one chunk per column."""
    if len(rows) == bound.rows:
        return bound
    if rows == list(range(rows[0], rows[0] + len(rows))):
        data = bound.data.slice(rows[0], len(rows))
    else:
        data = bound.data.take(pa.array(rows, pa.int64()))
    return BoundBatch(data.combine_chunks(), bound.sql, len(rows))


def start_rejects(conn: Any, load_id: str) -> int:
    """Create the rejects table when missing; the rejects earlier runs of ``load_id``
    committed (they count against ``max_errors``). Commits.

    :param conn: a connection (autocommit off).
    :param load_id: the load's id.
    """
    ensure_rejects_table(conn)
    cursor = conn.cursor()
    earlier = count_rejects(cursor, load_id)
    conn.commit()
    return earlier


def finish_rejects(factory: Any, load_id: str, *, earlier: int, reject_file: str | None,
                   columns: list[str], storage: Any = None) -> int:
    """At the end of a load: write ``reject_file`` from the rejects table (every reject of
    the load, earlier runs' too, so it is exact after a resume) and warn where the
    rejects are; returns the rejects this run committed.

    :param factory: opens a connection.
    :param load_id: the load's id.
    :param earlier: what :func:`start_rejects` returned.
    :param reject_file: the Parquet file to write, or None.
    :param columns: the loaded columns, in order.
    :param storage: for an ``abfss://`` reject file: :class:`engine.remote.StorageOptions`.
    """
    conn = factory.connect()
    try:
        cursor = conn.cursor()
        total = count_rejects(cursor, load_id)
        records = read_rejects(cursor, load_id) if reject_file else []
        conn.commit()
    finally:
        close_quietly(conn)
    if reject_file:
        write_reject_file(reject_file, load_id, records, columns, storage=storage)
    if total:
        where = f"{reject_file} and " if reject_file else ""
        log.warning("%d row(s) of load %s were rejected (%d by this run); they are in %s%s "
                    "(load_id = '%s')", total, load_id, total - earlier, where, _QUALIFIED,
                    load_id)
    return total - earlier
