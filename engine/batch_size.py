"""Rows per batch: the caller's choice, else 50,000, or 102,400 into a clustered columnstore.

A bulk insert (the bulk-copy transport) of at least 102,400 rows into a clustered
columnstore index is compressed straight into a columnstore row group; a smaller one lands
in the delta store (a rowstore) and waits for the tuple mover, so the load is slower and
the row groups come out smaller and more fragmented. (Parameter arrays insert row by row,
which always goes to the delta store.) So when the table the batches are written to has a clustered
columnstore index (``sys.indexes`` type 5; a nonclustered columnstore, type 6, changes
nothing) and nobody chose ``rows_per_batch``, a load uses :data:`COLUMNSTORE_ROWS_PER_BATCH`;
a choice below it is honoured with a warning.

Batch ids depend on the batch size, so a load keeps the size it started with: every
journal row records it (the journal's ``rows_per_batch`` column), and a rerun of the same
load id uses that size whatever the target or the options say now. A load whose journal
cannot record it (an old journal this identity may not alter, or rows an older release
wrote) never gets the columnstore size by default, as that release did not either.

:func:`decide` is the rule, and the only place it lives; :func:`inspect_target` reads
what it needs from the database.

>>> decide(DEFAULT_ROWS_PER_BATCH, table="dbo.f", columnstore=True).rows
102400
>>> decide(50_000, table="dbo.f", columnstore=True).rows  # chosen: honoured, with a warning
50000
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.journal import JOURNAL_SCHEMA, JOURNAL_TABLE, Journal, batch_key
from engine.names import TableName
from engine.staging import FINISH_BATCH_ID

__all__ = ["COLUMNSTORE_ROWS_PER_BATCH", "DEFAULT_ROWS_PER_BATCH", "BatchSize", "TargetFacts",
           "Unchosen", "decide", "inspect_target", "is_chosen"]

log = logging.getLogger(__name__)


class Unchosen(int):
    """A ``rows_per_batch`` nobody chose (the default): the engine may pick another.

    An ``int`` in every other respect, so everything that reads the option reads a number;
    any value a caller passes (even 50,000) is a plain ``int``, so a choice.
    """


#: rows per INSERT transaction unless the caller says otherwise; chosen by benchmark
#: (benchmarks/README.md: batch_size_sweep.py and engine_overhead.py)
DEFAULT_ROWS_PER_BATCH: int = Unchosen(50_000)
#: the smallest bulk insert SQL Server compresses straight into a columnstore row group
COLUMNSTORE_ROWS_PER_BATCH = 102_400
#: sys.indexes.type of a clustered columnstore index
CLUSTERED_COLUMNSTORE = 5

_COLUMNSTORE_SQL = ("SELECT COUNT(*) FROM sys.indexes i "  # noqa: S608 (fixed text)
                    "JOIN sys.tables t ON t.object_id = i.object_id "
                    "JOIN sys.schemas s ON s.schema_id = t.schema_id "
                    f"WHERE s.name = ? AND t.name = ? AND i.type = {CLUSTERED_COLUMNSTORE}")
_JOURNALED_SQL = (f"SELECT COUNT(*), MAX([rows_per_batch]) FROM [{JOURNAL_SCHEMA}]."  # noqa: S608
                  f"[{JOURNAL_TABLE}] WHERE [load_id] = ? AND [batch_key] <> ?")


def is_chosen(rows_per_batch: int) -> bool:
    """Whether a caller chose ``rows_per_batch`` (it is not the untouched default).

    >>> is_chosen(DEFAULT_ROWS_PER_BATCH), is_chosen(50_000)
    (False, True)
    """
    return not isinstance(rows_per_batch, Unchosen)


@dataclass(frozen=True)
class TargetFacts:
    """What the database says about the batch size of one load.

    :param columnstore: the table the batches go to has a clustered columnstore index.
    :param journaled: the size this load id's journal rows record (None: none recorded).
    :param started: the load id already has batches journaled.
    :param records: the journal records batch sizes (it has the ``rows_per_batch`` column).
    """

    columnstore: bool = False
    journaled: int | None = None
    started: bool = False
    records: bool = True


@dataclass(frozen=True)
class BatchSize:
    """The load's rows per batch and why.

    :param rows: rows per batch.
    :param reason: why, in a few words for a plan or summary line (``default``,
        ``chosen``, ``clustered columnstore target``, ``kept from the journal``).
    """

    rows: int
    reason: str

    def describe(self) -> str:
        """``102,400 rows per batch (clustered columnstore target)``."""
        return f"{self.rows:,} rows per batch ({self.reason})"


def decide(requested: int, *, table: str, columnstore: bool = False,
           journaled: int | None = None, started: bool = False,
           records: bool = True, row_by_row: bool = False) -> BatchSize:
    """The load's rows per batch (see the module docstring); logs what it decided.

    :param requested: ``SourceOptions.rows_per_batch`` (:data:`DEFAULT_ROWS_PER_BATCH`
        when nobody chose one).
    :param table: the table the batches are written to, for the messages.
    :param columnstore: it has a clustered columnstore index.
    :param journaled: the size this load's journal rows record, if any.
    :param started: the load already has batches journaled.
    :param records: the journal records batch sizes.
    :param row_by_row: the transport is parameter arrays, one INSERT per row: SQL Server
        puts such rows in the delta store whatever the batch size (a warning says so
        when the table has a clustered columnstore index; the size rule stays the same,
        so a rerun with another transport cuts the same batches).

    >>> decide(20_000, table="t", journaled=102_400, started=True)
    BatchSize(rows=102400, reason='kept from the journal')
    """
    chosen = is_chosen(requested)
    if columnstore and row_by_row:
        log.warning("%s has a clustered columnstore index, and transport parameter-arrays "
                    "inserts row by row, which SQL Server puts in the delta store whatever the "
                    "batch size; use transport bulk-copy (or auto) so batches of %d rows or "
                    "more are compressed straight into row groups", table,
                    COLUMNSTORE_ROWS_PER_BATCH)
    if journaled is not None:
        if chosen and requested != journaled:
            log.warning("this load started with %d rows per batch (its journal rows say so) "
                        "and batch ids depend on the size: keeping %d, not the %d asked for. "
                        "To load with %d rows per batch, forget the load (azsql-bulk journal "
                        "forget LOAD_ID) or load under a new load id", journaled, journaled,
                        requested, requested)
        elif journaled != requested:
            log.info("%d rows per batch into %s: the size this load started with (its "
                     "journal rows say so)", journaled, table)
        return BatchSize(journaled, "kept from the journal" if journaled != requested
                         else ("chosen" if chosen else "default"))
    if chosen:
        if columnstore and requested < COLUMNSTORE_ROWS_PER_BATCH:
            log.warning("%s has a clustered columnstore index and batches of %d rows are "
                        "fewer than %d, so each lands in the delta store (rowstore) and waits "
                        "for the tuple mover instead of being compressed into a row group; "
                        "use rows_per_batch %d or more (--rows-per-batch %d) unless the small "
                        "batches are on purpose", table, requested, COLUMNSTORE_ROWS_PER_BATCH,
                        COLUMNSTORE_ROWS_PER_BATCH, COLUMNSTORE_ROWS_PER_BATCH)
        return BatchSize(int(requested), "chosen")
    if columnstore and (started or not records):
        log.info("%s has a clustered columnstore index, but this load %s, so it keeps %d rows "
                 "per batch (batch ids depend on the size)", table,
                 "started before the journal recorded batch sizes" if started else
                 "cannot record its batch size in the journal (an old journal this identity "
                 "may not alter)", requested)
        return BatchSize(int(requested), "default")
    if columnstore:
        log.info("%s has a clustered columnstore index: %d rows per batch, so each batch is "
                 "compressed straight into a row group instead of the delta store (choose "
                 "rows_per_batch to override)", table, COLUMNSTORE_ROWS_PER_BATCH)
        return BatchSize(COLUMNSTORE_ROWS_PER_BATCH, "clustered columnstore target")
    return BatchSize(int(requested), "default")


def inspect_target(conn: Any, table: TableName, journal: Journal) -> TargetFacts:
    """Read whether ``table`` has a clustered columnstore index and what this load's
    journal rows record; ensures the journal first (so it can record batch sizes).

    :param conn: an open connection (autocommit off); left with no open transaction.
    :param table: the table the batches are written to (it may not exist yet).
    :param journal: the load's journal.
    :raises Exception: the ODBC client's error (the caller classifies it).
    """
    journal.ensure(conn)
    cursor = conn.cursor()
    cursor.execute(_COLUMNSTORE_SQL, [table.schema, table.name])
    columnstore = bool(int(cursor.fetchall()[0][0]))
    finish = batch_key(FINISH_BATCH_ID)  # a staged load's apply marker, not a batch
    if journal.extended:
        cursor.execute(_JOURNALED_SQL, [journal.load_id, finish])
        count, size = cursor.fetchall()[0]
    else:  # the journal lacks the later columns: count the batches only
        cursor.execute(_JOURNALED_SQL.replace("MAX([rows_per_batch])", "NULL"),
                       [journal.load_id, finish])
        count, size = cursor.fetchall()[0]
    conn.commit()
    return TargetFacts(columnstore=columnstore,
                       journaled=int(size) if size is not None else None,
                       started=bool(int(count)), records=journal.extended)
