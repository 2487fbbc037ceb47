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

>>> staging_table_name("dbo", "sales", "load-1")
'sales__azsql_stage_fa8e4b9176064230'
>>> print(merge_sql("dbo.t", "dbo.s", ["id", "v"], ["id"]))
MERGE INTO [dbo].[t] WITH (HOLDLOCK) AS [t]
USING [dbo].[s] AS [s]
ON [t].[id] = [s].[id]
WHEN MATCHED THEN UPDATE SET [t].[v] = [s].[v]
WHEN NOT MATCHED BY TARGET THEN INSERT ([id], [v]) VALUES ([s].[id], [s].[v]);
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from engine.errors import ConfigurationError
from engine.schema import quote_identifier, split_table_name

__all__ = [
    "FINISH_BATCH_ID",
    "DuplicateKeyError",
    "copy_rows_sql",
    "duplicate_keys_sql",
    "merge_sql",
    "null_keys_sql",
    "staging_table_name",
]

FINISH_BATCH_ID = "<finish>"
_NAME_LIMIT = 128  # sysname
_MAX_SHOWN = 5


class DuplicateKeyError(ConfigurationError):
    """An upsert source holds a key more than once, or a NULL key.

    :param message: the full message.
    :param keys: the first offending key values (at most five).
    """

    def __init__(self, message: str, keys: list[tuple[object, ...]]) -> None:
        super().__init__(message)
        self.keys = keys


def staging_table_name(schema: str, table: str, load_id: str) -> str:
    """The staging table's name (in the target's schema) for one load.

    Deterministic, so a resumed load finds the rows it staged before.

    :param schema: the target's schema (unused in the name; the stage lives beside it).
    :param table: the target's name.
    :param load_id: the load's id.
    """
    suffix = "__azsql_stage_" + hashlib.sha256(load_id.encode()).hexdigest()[:16]
    return table[: _NAME_LIMIT - len(suffix)] + suffix


def _q(table: str) -> str:
    schema, name = split_table_name(table)
    return f"{quote_identifier(schema)}.{quote_identifier(name)}"


def copy_rows_sql(target: str, stage: str, columns: Sequence[str]) -> str:
    """``INSERT ... SELECT`` of every staged row into the (just truncated) target."""
    cols = ", ".join(quote_identifier(c) for c in columns)
    return f"INSERT INTO {_q(target)} WITH (TABLOCK) ({cols}) SELECT {cols} FROM {_q(stage)}"  # noqa: S608


def merge_sql(target: str, stage: str, columns: Sequence[str], keys: Sequence[str]) -> str:
    """The upsert's ``MERGE`` of the staging table into the target on ``keys``."""
    folded = {k.casefold() for k in keys}
    on = " AND ".join(f"[t].{quote_identifier(k)} = [s].{quote_identifier(k)}" for k in keys)
    updates = ", ".join(f"[t].{quote_identifier(c)} = [s].{quote_identifier(c)}"
                        for c in columns if c.casefold() not in folded)
    cols = ", ".join(quote_identifier(c) for c in columns)
    values = ", ".join(f"[s].{quote_identifier(c)}" for c in columns)
    lines = [f"MERGE INTO {_q(target)} WITH (HOLDLOCK) AS [t]", f"USING {_q(stage)} AS [s]",
             f"ON {on}"]
    if updates:
        lines.append(f"WHEN MATCHED THEN UPDATE SET {updates}")
    lines.append(f"WHEN NOT MATCHED BY TARGET THEN INSERT ({cols}) VALUES ({values});")  # noqa: S608
    return "\n".join(lines)


def duplicate_keys_sql(stage: str, keys: Sequence[str]) -> str:
    """The first keys that occur more than once in the staging table, with their counts."""
    cols = ", ".join(quote_identifier(k) for k in keys)
    return (f"SELECT TOP ({_MAX_SHOWN}) {cols}, COUNT_BIG(*) FROM {_q(stage)} "  # noqa: S608
            f"GROUP BY {cols} HAVING COUNT_BIG(*) > 1 ORDER BY {cols}")


def null_keys_sql(stage: str, keys: Sequence[str]) -> str:
    """How many staged rows have a NULL in any key column."""
    where = " OR ".join(f"{quote_identifier(k)} IS NULL" for k in keys)
    return f"SELECT COUNT_BIG(*) FROM {_q(stage)} WHERE {where}"  # noqa: S608
