"""Rows per batch and clustered columnstore targets, against the emulator (real turbodbc,
Microsoft's driver, real sockets; read back through pyodbc).

A table with a clustered columnstore index gets 102,400-row batches unless the caller
chose a size; a chosen smaller size is honoured with a warning; a heap (and a heap with a
nonclustered columnstore index) keeps 50,000; a rerun of a load keeps the size its
journal rows record, whatever the index says now.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from loads import check_exact, rows_table

from engine.errors import TransferCancelled
from engine.options import TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

_LOG = "engine.batch_size"


def make_table(reader, table: str, index: str = "") -> None:
    """The rows_table() columns, with ``index`` (an inline index clause) if given."""
    reader.execute(f"CREATE TABLE {table} (id bigint NOT NULL, amount float NULL, "
                   f"name nvarchar(100) NULL{', ' + index if index else ''})")


def journal(reader, load_id: str) -> list[tuple]:
    """(rows, rows_per_batch) of each of the load's journal rows, in batch order."""
    rows = reader.execute("SELECT batch_id, [rows], rows_per_batch FROM "
                          "[azsql_bulk].[load_journal] WHERE load_id = ?", load_id).fetchall()
    return [(r[1], r[2]) for r in sorted(rows, key=lambda r: int(str(r[0]).split(":")[-1]))]


@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_a_clustered_columnstore_target_gets_102400_row_batches(sql_target, reader, caplog,
                                                                transport):
    target = sql_target("cci")
    make_table(reader, target.table, "INDEX cci CLUSTERED COLUMNSTORE")
    told = []
    with caplog.at_level(logging.INFO, logger=_LOG):
        result = transfer(rows_table(150_000), target,
                          TransferOptions(workers=2, transport=transport),
                          on_batch_size=told.append)
    assert (result.rows, result.batches, result.transport) == (150_000, 2, transport)
    assert journal(reader, result.load_id) == [(102_400, 102_400), (47_600, 102_400)]
    assert [(t.rows, t.reason) for t in told] == [(102_400, "clustered columnstore target")]
    said = [r for r in caplog.records if r.name == _LOG]
    # parameter arrays insert row by row: the delta store whatever the batch size
    row_by_row = [logging.WARNING] if transport == "parameter-arrays" else []
    assert [r.levelno for r in said] == [*row_by_row, logging.INFO]
    assert all(str(target.table) in r.getMessage() and "clustered columnstore" in
               r.getMessage() for r in said)
    check_exact(reader, target.table, 150_000)


def test_a_chosen_smaller_size_is_honoured_with_a_warning(sql_target, reader, caplog):
    target = sql_target("cci_small")
    make_table(reader, target.table)
    reader.execute(f"CREATE CLUSTERED COLUMNSTORE INDEX cci ON {target.table}")
    with caplog.at_level(logging.INFO, logger=_LOG):
        result = transfer(rows_table(120_000), target, TransferOptions(workers=2),
                          source_options=SourceOptions(rows_per_batch=50_000))
    assert journal(reader, result.load_id) == [(50_000, 50_000)] * 2 + [(20_000, 50_000)]
    warned = [r.getMessage() for r in caplog.records
              if r.name == _LOG and r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert all(w in warned[0] for w in (str(target.table), "delta store", "102400"))
    check_exact(reader, target.table, 120_000)


@pytest.mark.parametrize("index", ["", "INDEX ncci NONCLUSTERED COLUMNSTORE (id, amount)"])
def test_a_heap_keeps_the_50000_default(sql_target, reader, caplog, index):
    target = sql_target("heap")
    make_table(reader, target.table, index)
    with caplog.at_level(logging.INFO, logger=_LOG):
        result = transfer(rows_table(120_000), target, TransferOptions(workers=2))
    assert journal(reader, result.load_id) == [(50_000, 50_000)] * 2 + [(20_000, 50_000)]
    assert not [r for r in caplog.records if r.name == _LOG]
    check_exact(reader, target.table, 120_000)


def test_a_table_the_load_creates_keeps_the_default(sql_target, reader):
    target = sql_target("new")
    result = transfer(rows_table(60_000), target, TransferOptions(workers=1))
    assert result.created_table
    assert journal(reader, result.load_id) == [(50_000, 50_000), (10_000, 50_000)]


def test_a_rerun_keeps_102400_after_the_index_is_dropped(sql_target, reader, caplog):
    """The first run commits one 102,400-row batch; without the index, a new load would
    cut 50,000-row batches, and mem:50000 / mem:100000 would load rows twice."""
    target = sql_target("cci_rerun")
    make_table(reader, target.table, "INDEX cci CLUSTERED COLUMNSTORE")
    load_id = f"cci-{uuid.uuid4().hex[:8]}"
    options = TransferOptions(workers=1, load_id=load_id)
    first = transfer(rows_table(102_400), target, options)  # the load as far as it got
    assert journal(reader, load_id) == [(102_400, 102_400)]
    reader.execute(f"DROP INDEX cci ON {target.table}")
    with caplog.at_level(logging.INFO, logger=_LOG):
        second = transfer(rows_table(150_000), target, options)
    assert (first.rows, second.rows, second.batches_skipped) == (102_400, 47_600, 1)
    assert journal(reader, load_id) == [(102_400, 102_400), (47_600, 102_400)]
    assert any("started with" in r.getMessage() for r in caplog.records if r.name == _LOG)
    check_exact(reader, target.table, 150_000)


def test_a_rerun_keeps_50000_after_an_index_is_created_and_a_size_is_asked(
        sql_target, reader, caplog):
    target = sql_target("heap_rerun")
    make_table(reader, target.table)
    load_id = f"heap-{uuid.uuid4().hex[:8]}"
    transfer(rows_table(100_000), target, TransferOptions(workers=1, load_id=load_id))
    reader.execute(f"CREATE CLUSTERED COLUMNSTORE INDEX cci ON {target.table}")
    told = []
    with caplog.at_level(logging.INFO, logger=_LOG):  # a different size asked: the journal wins
        second = transfer(rows_table(150_000), target,
                          TransferOptions(workers=1, load_id=load_id),
                          source_options=SourceOptions(rows_per_batch=102_400),
                          on_batch_size=told.append)
    assert (second.rows, second.batches_skipped) == (50_000, 2)
    assert [(t.rows, t.reason) for t in told] == [(50_000, "kept from the journal")]
    assert journal(reader, load_id) == [(50_000, 50_000)] * 3
    warned = [r.getMessage() for r in caplog.records
              if r.name == _LOG and r.levelno == logging.WARNING]
    assert len(warned) == 1 and "keeping 50000" in warned[0]
    check_exact(reader, target.table, 150_000)


def test_a_cancelled_load_resumes_with_its_size(sql_target, reader):
    """Stopped from the progress callback after its first batch, then run again: the
    same 102,400-row cut, nothing twice."""
    import threading

    target = sql_target("cci_cancel")
    make_table(reader, target.table, "INDEX cci CLUSTERED COLUMNSTORE")
    load_id = f"cancel-{uuid.uuid4().hex[:8]}"
    cancel = threading.Event()

    def stop_after_first(snapshot) -> None:
        if snapshot.batches >= 1:
            cancel.set()
    with pytest.raises(TransferCancelled):
        transfer(rows_table(250_000), target,
                 TransferOptions(workers=1, load_id=load_id, progress=stop_after_first),
                 cancel=cancel)
    done = journal(reader, load_id)
    assert 1 <= len(done) < 3 and all(r == (102_400, 102_400) for r in done)
    result = transfer(rows_table(250_000), target, TransferOptions(workers=1, load_id=load_id))
    assert result.batches_skipped == len(done)
    assert journal(reader, load_id) == [(102_400, 102_400)] * 2 + [(45_200, 102_400)]
    check_exact(reader, target.table, 250_000)
