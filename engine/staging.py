"""Staged modes: ``replace`` and ``upsert`` load a staging table, then apply it in ONE transaction.

The workers load batches into a staging table next to the target, exactly like an
``append`` load (each batch and its journal row commit together, so a crashed load
resumes where it stopped and the staging table never holds a batch twice). When every
batch is in, one connection applies the staging table to the target in a single
transaction, together with a *finish* row in the journal:

``replace`` (the target keeps its definition: indexes, constraints, permissions)::

    TRUNCATE TABLE target
    INSERT INTO target WITH (TABLOCK) (cols) SELECT cols FROM stage
    DROP TABLE stage

``replace`` with ``create="replace_schema"``, or a target that does not exist yet (the
staging table, created from the source's schema, becomes the target)::

    DROP TABLE target                -- when it exists
    EXEC sp_rename 'schema.stage', 'target'

``upsert`` (after checking the staging table for duplicate and NULL keys)::

    MERGE target WITH (HOLDLOCK) AS t USING stage AS s ON t.k = s.k ...
      WHEN MATCHED THEN UPDATE SET ... WHEN NOT MATCHED BY TARGET THEN INSERT ...;
    DROP TABLE stage

Concurrent readers see the old rows or the new ones, never a mix: the change is one
transaction. Under Azure SQL's default READ COMMITTED SNAPSHOT, readers are not even
blocked; they read the last committed version until the commit.

The journal's finish row (batch id :data:`FINISH_BATCH_ID`) commits in the same
transaction, so re-running a finished load is a no-op and re-running an interrupted one
skips the loaded batches and applies the staging table once.

Costs and limits: ``replace`` writes the data twice (stage, then target) and needs log
space for the whole table in its final transaction; ``replace_schema`` swaps by rename
(metadata only). Permissions: CREATE TABLE and ALTER on the schema (the staging table),
plus ALTER on the target for ``replace`` (TRUNCATE, or DROP with ``replace_schema``).

>>> str(TableName("dbo", "sales").staging("load-1"))
'dbo.sales__azsql_stage_fa8e4b9176064230'
>>> print(merge_sql(TableName("dbo", "t"), TableName("dbo", "s"), ["id", "v"], ["id"]))
MERGE INTO [dbo].[t] WITH (HOLDLOCK) AS [t]
USING [dbo].[s] AS [s]
ON [t].[id] = [s].[id]
WHEN MATCHED THEN UPDATE SET [t].[v] = [s].[v]
WHEN NOT MATCHED BY TARGET THEN INSERT ([id], [v]) VALUES ([s].[id], [s].[v]);
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from engine.connection import ConnectionFactory, RetryPolicy, close_quietly, rollback_quietly
from engine.errors import (
    AzsqlBulkError,
    DatabaseError,
    DuplicateKeyError,
    TransferError,
    database_error,
)
from engine.journal import Journal, batch_key
from engine.names import TableName, quote_identifier

__all__ = [
    "FINISH_BATCH_ID",
    "StagedApply",
    "copy_rows_sql",
    "duplicate_keys_sql",
    "merge_sql",
    "null_keys_sql",
]

log = logging.getLogger(__name__)

FINISH_BATCH_ID = "<finish>"
_MAX_SHOWN = 5


def copy_rows_sql(target: TableName, stage: TableName, columns: Sequence[str]) -> str:
    """``INSERT ... SELECT`` of every staged row into the (just truncated) target."""
    cols = ", ".join(quote_identifier(c) for c in columns)
    return (f"INSERT INTO {target.quoted} WITH (TABLOCK) ({cols}) "  # noqa: S608
            f"SELECT {cols} FROM {stage.quoted}")


def merge_sql(target: TableName, stage: TableName, columns: Sequence[str],
              keys: Sequence[str]) -> str:
    """The upsert's ``MERGE`` of the staging table into the target on ``keys``."""
    folded = {k.casefold() for k in keys}
    on = " AND ".join(f"[t].{quote_identifier(k)} = [s].{quote_identifier(k)}" for k in keys)
    updates = ", ".join(f"[t].{quote_identifier(c)} = [s].{quote_identifier(c)}"
                        for c in columns if c.casefold() not in folded)
    cols = ", ".join(quote_identifier(c) for c in columns)
    values = ", ".join(f"[s].{quote_identifier(c)}" for c in columns)
    lines = [f"MERGE INTO {target.quoted} WITH (HOLDLOCK) AS [t]", f"USING {stage.quoted} AS [s]",
             f"ON {on}"]
    if updates:
        lines.append(f"WHEN MATCHED THEN UPDATE SET {updates}")
    lines.append(f"WHEN NOT MATCHED BY TARGET THEN INSERT ({cols}) VALUES ({values});")  # noqa: S608
    return "\n".join(lines)


def duplicate_keys_sql(stage: TableName, keys: Sequence[str]) -> str:
    """The first keys that occur more than once in the staging table, with their counts."""
    cols = ", ".join(quote_identifier(k) for k in keys)
    return (f"SELECT TOP ({_MAX_SHOWN}) {cols}, COUNT_BIG(*) FROM {stage.quoted} "  # noqa: S608
            f"GROUP BY {cols} HAVING COUNT_BIG(*) > 1 ORDER BY {cols}")


def null_keys_sql(stage: TableName, keys: Sequence[str]) -> str:
    """How many staged rows have a NULL in any key column."""
    where = " OR ".join(f"{quote_identifier(k)} IS NULL" for k in keys)
    return f"SELECT COUNT_BIG(*) FROM {stage.quoted} WHERE {where}"  # noqa: S608


class StagedApply:
    """The staged modes' final transaction: the staging table into the target.

    :param target: the target table.
    :param stage: its staging table for this load.
    :param mode: ``replace`` or ``upsert``.
    :param keys: the upsert's key columns.
    :param columns: the loaded columns, in order.
    :param swap: True when the stage becomes the target by rename (``replace_schema``,
        or a target that did not exist); False to copy into the existing target.
    :param journal: the load's journal (its finish row commits with the apply).
    """

    def __init__(self, target: TableName, stage: TableName, *, mode: str, keys: Sequence[str],
                 columns: Sequence[str], swap: bool, journal: Journal) -> None:
        self.target, self.stage, self.mode, self.keys = target, stage, mode, tuple(keys)
        self.columns, self.swap, self.journal = list(columns), swap, journal

    def run(self, factory: ConnectionFactory, *, max_retries: int, retry: RetryPolicy,
            on_retry: Any = None) -> bool:
        """Apply in one transaction; True if it created the target.

        Retried like a batch on transient errors: the server rolls back an interrupted
        transaction, and the journal's finish row tells whether a commit landed.

        :param factory: opens the connection.
        :param max_retries: replays after transient errors.
        :param retry: the backoff.
        :param on_retry: called once per replay (counts it).
        :raises TransferError: the apply failed terminally; the target is unchanged.
        :raises DuplicateKeyError: an upsert's source repeats a key or has a NULL key.
        """
        finish = batch_key(FINISH_BATCH_ID)
        attempt = 0
        while True:
            conn = None
            try:
                conn = factory.connect()
                cursor = conn.cursor()
                if attempt and self.journal.contains(cursor, finish):
                    conn.commit()
                    return False
                return self._apply(conn)
            except AzsqlBulkError as exc:
                if not isinstance(exc, DatabaseError):
                    if conn is not None:
                        rollback_quietly(conn)
                    raise
                error: DatabaseError = exc
            except Exception as exc:  # the ODBC client's error
                error = database_error(exc, phase=f"apply the staging table ({self.mode})",
                                       where=f"table {self.target}, staging table {self.stage}")
            finally:
                if conn is not None:
                    close_quietly(conn)
            if not error.transient or attempt >= max_retries:
                raise TransferError(
                    f"loading {self.target} ({self.mode}) stopped while applying the "
                    f"staging table {self.stage}: {error}. The target is unchanged; every batch "
                    f"is staged and journaled under load_id {self.journal.load_id}, so running "
                    "the load again with the same load_id applies it without reloading.",
                    table=str(self.target), batch_id=None, location=None, error=error,
                    load_id=self.journal.load_id, resumable=True) from error
            attempt += 1
            if on_retry is not None:
                on_retry()
            delay = retry.backoff(attempt)
            log.warning("applying staging table %s failed transiently (attempt %d), retrying "
                        "in %.1f s: %s", self.stage, attempt, delay, error)
            time.sleep(delay)

    def _apply(self, conn: Any) -> bool:
        cursor = conn.cursor()
        total = self.journal.rows(cursor)
        created = False
        if self.mode == "upsert":
            self._check_keys(conn)
            cursor.execute(merge_sql(self.target, self.stage, self.columns, self.keys))
            cursor.execute(f"DROP TABLE {self.stage.quoted}")
        elif not self.swap:
            cursor.execute(f"TRUNCATE TABLE {self.target.quoted}")
            cursor.execute(copy_rows_sql(self.target, self.stage, self.columns))
            cursor.execute(f"DROP TABLE {self.stage.quoted}")
        else:
            cursor.execute("SELECT OBJECT_ID(?)", [self.target.quoted])
            if cursor.fetchall()[0][0] is not None:
                cursor.execute(f"DROP TABLE {self.target.quoted}")
            else:
                created = True
            cursor.execute("EXEC sp_rename ?, ?", [self.stage.quoted, self.target.name])
        self.journal.record(cursor, FINISH_BATCH_ID, total)
        conn.commit()
        log.info("applied staging table %s to %s (%s, %d row(s) staged)", self.stage,
                 self.target, self.mode, total)
        return created

    def _check_keys(self, conn: Any) -> None:
        keys = self.keys
        cursor = conn.cursor()
        cursor.execute(duplicate_keys_sql(self.stage, keys))
        dups = [tuple(r) for r in cursor.fetchall()]
        cursor.execute(null_keys_sql(self.stage, keys))
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
        cursor.execute(f"DROP TABLE {self.stage.quoted}")
        self.journal.forget(cursor)
        conn.commit()
        raise DuplicateKeyError(
            f"upsert into {self.target} refused: {problem}. A MERGE needs each key at most "
            "once and never NULL. Nothing in the target was changed; the staging table and "
            f"the journal rows of load_id {self.journal.load_id} were removed. De-duplicate "
            "the source (or choose keys that identify a row) and load again.",
            [r[:-1] for r in dups])

