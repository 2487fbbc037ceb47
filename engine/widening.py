"""Widening: a table this load created grows a text/binary column a later batch outgrows.

A created table's nvarchar/varbinary columns are sized from the first batch. When the
server refuses a later batch, the batch is measured on that error path only (a load that
never needs it pays nothing), the column is altered to the next size that holds it, and
the batch is sent again. Columns typed by the user's overrides never grow.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pyarrow as pa

from engine.errors import COLUMN_IN_MESSAGE, DatabaseError, SqlServerError
from engine.names import TableName, quote_identifier
from engine.plan import ExistingColumn, TablePlan
from engine.sources import SourceBatch
from engine.text_length import longest_over
from engine.type_map import MAX, SqlType, binary_length_bucket, text_length_bucket

__all__ = ["Widening", "widenable"]

log = logging.getLogger(__name__)


def widenable(plan: TablePlan,
              existing: list[ExistingColumn] | None) -> dict[str, tuple[SqlType, bool]]:
    """The sized nvarchar/varbinary columns of a created table that may grow (not the ones
    given in sql_types): name -> (current type, nullable).

    :param plan: the load's plan.
    :param existing: the table's columns when it exists already (a resumed stage), else
        None (it was created from the plan).
    """
    by_name = {c.name.lower(): c for c in existing or ()}
    widths = {}
    for c in plan.columns:
        twin = by_name.get(c.name.lower())
        sql_type, nullable = (twin.sql_type, twin.nullable) if twin else (c.sql_type,
                                                                          c.nullable)
        if (not c.overridden and sql_type.name in ("nvarchar", "varbinary")
                and sql_type.length not in (None, MAX)):
            widths[c.name] = (sql_type, nullable)
    return widths


class Widening:
    """The growable columns of the table a load writes, shared by its workers.

    :param table: the table the batches go into.
    :param widths: from :func:`widenable` (empty: nothing may grow).
    :param plan: the load's plan.
    :param existing: the existing target's columns (for :meth:`text_limit`).
    """

    def __init__(self, table: TableName, widths: dict[str, tuple[SqlType, bool]],
                 plan: TablePlan, existing: list[ExistingColumn]) -> None:
        self.table, self.widths, self.plan, self.existing = table, widths, plan, existing
        self.lock = threading.Lock()
        self.widened: dict[str, str] = {}  # column -> its type after widening

    def needed(self, error: DatabaseError, data: pa.Table | pa.RecordBatch,
               done: set[str]) -> dict[str, int]:
        """After a failed batch: the widenable columns holding a value longer than the
        column. The server says 2628 naming the column (8152 on older compatibility levels,
        naming none); turbodbc cannot always read the diagnostic (a long truncated value in
        it gives HY000 "Obtaining diagnostic record ... failed"), so any terminal failure
        is checked.

        :param error: the batch's error.
        :param data: the batch's source rows.
        :param done: columns this batch already widened.
        """
        if not self.widths or error.transient:
            return {}
        names = list(self.widths)
        found = COLUMN_IN_MESSAGE.search(str(error))
        if error.native_error == SqlServerError.TRUNCATED and found is not None:
            wanted = found.group(1).replace("''", "'").casefold()
            names = [n for n in names if n.casefold() == wanted]
        out = {}
        for name in (n for n in names if n not in done):
            sql_type, _ = self.widths[name]
            if sql_type.length in (None, MAX):
                continue
            length = longest_over(data.column(name), self.plan.column(name).arrow_type,
                                  sql_type.length)
            if length is not None:
                out[name] = length
        return out

    def widen(self, conn: Any, needed: dict[str, int], item: SourceBatch) -> None:
        """ALTER the columns to the next size that holds the batch's values (committed on
        their own, before the batch's transaction). Idempotent: a column another worker
        already widened enough is left alone."""
        with self.lock:
            for name, length in needed.items():
                sql_type, nullable = self.widths[name]
                if sql_type.length in (None, MAX) or length <= (sql_type.length or 0):
                    continue
                bucket = (text_length_bucket(length) if sql_type.name == "nvarchar"
                          else binary_length_bucket(length))
                wider = SqlType(sql_type.name, length=bucket)
                conn.cursor().execute(
                    f"ALTER TABLE {self.table.quoted} ALTER COLUMN {quote_identifier(name)} "
                    f"{wider.sql()} {'NULL' if nullable else 'NOT NULL'}")
                conn.commit()
                self.widths[name] = (wider, nullable)
                self.widened[name] = wider.sql()
                log.warning("widened column %s of %s from %s to %s: batch %s (%s) holds a "
                            "value of %d %s, and the table was sized from the first batch",
                            name, self.table, sql_type.sql(), wider.sql(), item.batch_id,
                            item.location.describe(), length,
                            "characters" if sql_type.name == "nvarchar" else "bytes")

    def text_limit(self, name: str) -> int | None:
        """The nvarchar length of the column a batch went into (None for max or unknown)."""
        folded = name.casefold()
        current = [t for k, (t, _) in self.widths.items() if k.casefold() == folded]
        existing = [c.sql_type for c in self.existing if c.name.casefold() == folded]
        planned = [c.sql_type for c in self.plan.columns if c.name.casefold() == folded]
        candidates = current or existing or planned
        if not candidates:
            return None
        sql_type = candidates[0]
        if sql_type.name not in ("nvarchar", "nchar") or sql_type.length in (None, MAX):
            return None
        return sql_type.length
