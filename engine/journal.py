"""The load journal: one row per committed batch, so every batch is loaded exactly once.

The engine keeps the journal in the target database, in ``[azsql_bulk].[load_journal]``,
and creates the schema and the table when they are missing::

    CREATE TABLE [azsql_bulk].[load_journal] (
        [load_id]      nvarchar(128) NOT NULL,  -- TransferOptions.load_id
        [batch_key]    char(64)      NOT NULL,  -- sha256 of batch_id, hex
        [batch_id]     nvarchar(max) NOT NULL,  -- e.g. 'data/part-0.parquet#3:20000'
        [target]       nvarchar(300) NOT NULL,  -- the table the rows went to
        [rows]         bigint        NOT NULL,
        [committed_at] datetime2(3)  NOT NULL DEFAULT SYSUTCDATETIME(),
        [mode]         varchar(16)   NULL,      -- append, replace or upsert
        [table_name]   nvarchar(300) NULL,      -- the load's table (target is its stage)
        [login]        nvarchar(128) NULL,      -- SUSER_SNAME() of the writer
        [source_rows]  bigint        NULL,      -- rows in the whole source, when known
        [rows_per_batch] int         NULL,      -- the load's batch size (ids depend on it)
        CONSTRAINT [PK_azsql_bulk_load_journal] PRIMARY KEY ([load_id], [batch_key])
    )

A worker inserts a batch's rows and its journal row in ONE transaction, so after a
crash either both are there or neither is. A resumed load reads the keys journaled for
its ``load_id`` first and skips those batches; a replayed batch (after a transient
error whose commit may or may not have landed) checks its own key before inserting.
The primary key makes a second commit of the same batch fail instead of duplicating it.

The last five columns came later (``azsql-bulk journal`` reads them). A journal created
before them is altered when a load finds it (``ALTER TABLE ... ADD``, nullable columns,
so the rows already there keep working); an identity that may not alter it writes the
original six columns, and ``journal list`` shows what those rows hold.

The identity needs ``db_ddladmin`` (or CREATE SCHEMA/CREATE TABLE) the first time, then
SELECT/INSERT/DELETE on the journal. **Clean-up**: journal rows are small (one per batch,
about 200 bytes) and are not removed by the engine, because a finished load's rows are
what makes re-running it a no-op. Forget a load once it will not be resumed or re-run
(``azsql-bulk journal forget LOAD_ID``), or old ones in bulk (``azsql-bulk journal prune
--older-than 30d``); see :mod:`engine.journal_admin`.

>>> batch_key("data.parquet#0:0")[:16]
'c3081ad2fc882d08'
>>> len(default_load_id("fingerprint", "srv/db/dbo.sales"))
32
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from engine.errors import ConfigurationError, database_error

__all__ = [
    "ADDED_COLUMNS",
    "JOURNAL_SCHEMA",
    "JOURNAL_TABLE",
    "Journal",
    "batch_key",
    "create_journal_sql",
    "default_load_id",
    "forget_load_sql",
    "journal_columns",
]

log = logging.getLogger(__name__)

JOURNAL_SCHEMA = "azsql_bulk"
JOURNAL_TABLE = "load_journal"
MAX_LOAD_ID = 128
_QUALIFIED = f"[{JOURNAL_SCHEMA}].[{JOURNAL_TABLE}]"
# SQL Server: 2714 "There is already an object named ..." (a concurrent loader created
# it first; CREATE SCHEMA reports the same number), 2759 "CREATE SCHEMA failed due to
# previous errors".
_ALREADY_EXISTS = frozenset({2714, 2759})
# 2705 "Column names in each table must be unique": a concurrent loader added it first
_COLUMN_EXISTS = 2705
#: the columns added after the first release, in order, with their types (all nullable)
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("mode", "varchar(16)"), ("table_name", "nvarchar(300)"), ("login", "nvarchar(128)"),
    ("source_rows", "bigint"), ("rows_per_batch", "int"))


def batch_key(batch_id: str) -> str:
    """The journal key of a batch: sha256 of its id, 64 hex digits (ids can be long).

    :param batch_id: the source's deterministic batch id.
    """
    return hashlib.sha256(batch_id.encode("utf-8")).hexdigest()


def default_load_id(identity: str, target: Any, *, options: Any = None,
                    source_options: Any = None) -> str:
    """The default ``load_id``: 32 hex digits of sha256 over the source, the target and
    everything that changes what the load writes.

    The same files (paths, sizes, modification times) into the same table with the same
    mode, keys, columns, renames and SQL type overrides give the same id, so re-running a
    load resumes it; changing any of these starts a new load (an append and a later
    upsert of the same file are two loads, each with its own journal rows).

    :param identity: what identifies the source: :attr:`engine.sources.Source.fingerprint`,
        or an Airflow task instance's identity.
    :param target: the :class:`~engine.options.Target` (or its ``describe()`` text).
    :param options: the load's :class:`~engine.options.TransferOptions` (mode, keys, types).
    :param source_options: the :class:`~engine.sources.SourceOptions` (columns, renames).

    >>> from engine.options import TransferOptions
    >>> default_load_id("f", "srv,1433/db/dbo.t") != default_load_id(
    ...     "f", "srv,1433/db/dbo.t", options=TransferOptions(mode="upsert", keys=("id",)))
    True
    """
    where = target if isinstance(target, str) else target.describe()
    parts = [identity, where]
    if options is not None and (str(options.mode) != "append" or options.keys
                                or options.sql_types):
        types = sorted((k.casefold(), str(v)) for k, v in options.sql_types.items())
        parts.append(f"mode={options.mode}\nkeys={list(options.keys)}\ntypes={types}")
    if source_options is not None and (source_options.columns is not None
                                       or source_options.rename):
        parts.append(f"columns={list(source_options.columns or ())}\n"
                     f"rename={sorted(source_options.rename.items())}")
    # an append of every column with no overrides keeps the id it always had
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def create_journal_sql() -> str:
    """The journal's ``CREATE TABLE`` (see the module docstring)."""
    return (f"CREATE TABLE {_QUALIFIED} (\n"
            "    [load_id] nvarchar(128) NOT NULL,\n"
            "    [batch_key] char(64) NOT NULL,\n"
            "    [batch_id] nvarchar(max) NOT NULL,\n"
            "    [target] nvarchar(300) NOT NULL,\n"
            "    [rows] bigint NOT NULL,\n"
            "    [committed_at] datetime2(3) NOT NULL\n"
            "        CONSTRAINT [DF_azsql_bulk_load_journal_committed_at]\n"
            "        DEFAULT SYSUTCDATETIME(),\n"
            + "".join(f"    [{name}] {kind} NULL,\n" for name, kind in ADDED_COLUMNS) +
            "    CONSTRAINT [PK_azsql_bulk_load_journal] PRIMARY KEY ([load_id], [batch_key])\n"
            ")")


def forget_load_sql() -> str:
    """``DELETE`` of one load's journal rows (one parameter: the load id).

    ``azsql-bulk journal forget LOAD_ID`` runs it (see :mod:`engine.journal_admin`): for
    a load that will never be resumed or re-run; re-running it afterwards loads every
    batch again.
    """
    return f"DELETE FROM {_QUALIFIED} WHERE [load_id] = ?"  # noqa: S608 (fixed names)


class Journal:
    """The journal rows of one load into one table.

    Methods take a turbodbc-style cursor (``execute``/``fetchall``); committing is the
    caller's job, so a batch and its journal row share a transaction.

    :param load_id: the load's id (at most 128 characters).
    :param target: the target table as written in the journal (``schema.table``).
    :param table: the load's table when ``target`` is its staging table (default: target).
    :param mode: the load's mode, as the journal lists it.
    :param source_rows: rows in the whole source, when known: tells ``journal list`` a
        complete load from a partial one.
    :param rows_per_batch: the load's batch size: a rerun of the load keeps it (see
        :mod:`engine.batch_size`).

    >>> Journal("a" * 32, "dbo.sales").record_sql.startswith("INSERT INTO [azsql_bulk]")
    True
    """

    legacy_record_sql = (f"INSERT INTO {_QUALIFIED} ([load_id], [batch_key], [batch_id], "  # noqa: S608
                         "[target], [rows]) VALUES (?, ?, ?, ?, ?)")
    extended_record_sql = (
        f"INSERT INTO {_QUALIFIED} ([load_id], [batch_key], [batch_id], [target], [rows], "  # noqa: S608
        + ", ".join(f"[{name}]" for name, _ in ADDED_COLUMNS)
        + ") VALUES (?, ?, ?, ?, ?" + ", ?" * len(ADDED_COLUMNS) + ")")
    keys_sql = f"SELECT [batch_key] FROM {_QUALIFIED} WHERE [load_id] = ?"  # noqa: S608
    rows_sql = (f"SELECT COALESCE(SUM([rows]), 0) FROM {_QUALIFIED} "  # noqa: S608
                "WHERE [load_id] = ?")
    contains_sql = (f"SELECT COUNT(*) FROM {_QUALIFIED} "  # noqa: S608
                    "WHERE [load_id] = ? AND [batch_key] = ?")

    def __init__(self, load_id: str, target: str, *, table: str | None = None,
                 mode: str | None = None, source_rows: int | None = None,
                 rows_per_batch: int | None = None) -> None:
        if not load_id or len(load_id) > MAX_LOAD_ID:
            raise ConfigurationError(f"load_id must be 1-{MAX_LOAD_ID} characters, "
                                     f"not {len(load_id)}")
        self.load_id = load_id
        self.target = target
        self.table = table or target
        self.mode = mode
        self.source_rows = source_rows
        self.rows_per_batch = int(rows_per_batch) if rows_per_batch is not None else None
        self.login: str | None = None
        # until ensure() finds the journal's columns: the original ones, which every
        # journal has
        self.extended = False

    @property
    def record_sql(self) -> str:
        """The INSERT of one journal row (with the later columns when the journal has them)."""
        return self.extended_record_sql if self.extended else self.legacy_record_sql

    def ensure(self, conn: Any) -> bool:
        """Create ``[azsql_bulk]`` and the journal table when missing; True when created.

        Plain statements after a catalog check (no ``EXEC``), each committed; a loader
        that loses a creation race to another one carries on. A journal that lacks the
        later columns (:data:`ADDED_COLUMNS`) gets them (``ALTER TABLE ... ADD``); an
        identity that may not alter it writes the original columns only.

        :param conn: an :class:`engine.connection.Connection` (autocommit off).
        """
        created = False
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM sys.schemas WHERE name = ?", [JOURNAL_SCHEMA])
        if not int(cursor.fetchall()[0][0]):
            created |= _create(conn, f"CREATE SCHEMA [{JOURNAL_SCHEMA}]")
        have = journal_columns(cursor)
        if not have:
            created |= _create(conn, create_journal_sql())
            have = journal_columns(cursor)
        missing = [(n, k) for n, k in ADDED_COLUMNS if n not in have]
        if missing:
            _add_columns(conn, missing)
            have = journal_columns(conn.cursor())
        self.extended = all(n in have for n, _ in ADDED_COLUMNS)
        cursor = conn.cursor()
        cursor.execute("SELECT SUSER_SNAME()")
        login = cursor.fetchall()[0][0]
        self.login = str(login)[:128] if login is not None else None
        conn.commit()
        return created

    def keys(self, cursor: Any) -> set[str]:
        """The batch keys journaled for this load.

        :param cursor: a cursor.
        """
        cursor.execute(self.keys_sql, [self.load_id])
        return {str(row[0]).strip() for row in cursor.fetchall()}

    def contains(self, cursor: Any, key: str) -> bool:
        """Whether the batch with journal key ``key`` is committed.

        :param cursor: a cursor.
        :param key: from :func:`batch_key`.
        """
        cursor.execute(self.contains_sql, [self.load_id, key])
        return bool(int(cursor.fetchall()[0][0]))

    def record(self, cursor: Any, batch_id: str, rows: int) -> None:
        """Insert the batch's journal row (in the caller's open transaction).

        :param cursor: the cursor that inserted the batch's rows.
        :param batch_id: the batch's id.
        :param rows: how many rows it holds.
        """
        values: list[Any] = [self.load_id, batch_key(batch_id), batch_id, self.target, rows]
        if self.extended:
            values += [self.mode, self.table, self.login, self.source_rows,
                       self.rows_per_batch]
        cursor.execute(self.record_sql, values)

    def rows(self, cursor: Any) -> int:
        """Rows journaled for this load, over all its batches.

        :param cursor: a cursor.
        """
        cursor.execute(self.rows_sql, [self.load_id])
        return int(cursor.fetchall()[0][0])

    def forget(self, cursor: Any) -> None:
        """Delete this load's journal rows (in the caller's open transaction), so running
        it again loads every batch again (see :func:`forget_load_sql`).

        :param cursor: a cursor.
        """
        cursor.execute(forget_load_sql(), [self.load_id])

    def __repr__(self) -> str:
        return f"<Journal load_id={self.load_id} target={self.target}>"


def journal_columns(cursor: Any) -> set[str]:
    """The journal table's column names, lower case (empty: there is no journal).

    :param cursor: a cursor.
    """
    cursor.execute("SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS "
                   "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", [JOURNAL_SCHEMA, JOURNAL_TABLE])
    return {str(row[0]).lower() for row in cursor.fetchall()}


def _add_columns(conn: Any, missing: list[tuple[str, str]]) -> None:
    """ALTER an older journal: add the later columns (nullable: old rows keep working)."""
    for name, kind in missing:
        try:
            conn.cursor().execute(f"ALTER TABLE {_QUALIFIED} ADD [{name}] {kind} NULL")
            conn.commit()
            log.info("added column %s to the load journal %s", name, _QUALIFIED)
            continue
        except Exception as exc:  # the ODBC client's error, classified below
            error = database_error(exc, phase="add a column to the load journal",
                                   where=_QUALIFIED)
        conn.rollback()
        if error.native_error == _COLUMN_EXISTS:
            continue  # a concurrent loader added it
        log.warning("the load journal %s lacks column %s and this identity cannot add it "
                    "(%s); journal rows are written without the later columns, so "
                    "`azsql-bulk journal list` shows less about them. Run a load once as an "
                    "identity with ALTER on the journal to upgrade it", _QUALIFIED, name, error)
        return


def _create(conn: Any, sql: str) -> bool:
    try:
        conn.cursor().execute(sql)
        conn.commit()
        return True
    except Exception as exc:  # the ODBC client's error, classified below
        error = database_error(exc, phase="create the load journal", where=_QUALIFIED)
    conn.rollback()
    if error.native_error in _ALREADY_EXISTS:
        return False
    raise error
