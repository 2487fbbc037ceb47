"""The rows-per-batch rule (engine.batch_size.decide): every branch, no database."""

from __future__ import annotations

import logging

import pytest

from engine.batch_size import DEFAULT_ROWS_PER_BATCH, decide, is_chosen
from engine.sources import SourceOptions


@pytest.mark.parametrize(("requested", "facts", "rows", "reason", "level"), [
    (DEFAULT_ROWS_PER_BATCH, {}, 50_000, "default", None),
    (DEFAULT_ROWS_PER_BATCH, {"columnstore": True}, 102_400, "clustered columnstore target",
     logging.INFO),
    (50_000, {"columnstore": True}, 50_000, "chosen", logging.WARNING),
    (200_000, {"columnstore": True}, 200_000, "chosen", None),
    (10_000, {}, 10_000, "chosen", None),
    # a rerun keeps what the journal records, chosen or not, index or not
    (DEFAULT_ROWS_PER_BATCH, {"journaled": 102_400, "started": True}, 102_400,
     "kept from the journal", logging.INFO),
    (DEFAULT_ROWS_PER_BATCH, {"journaled": 50_000, "started": True, "columnstore": True},
     50_000, "default", None),
    (20_000, {"journaled": 102_400, "started": True}, 102_400, "kept from the journal",
     logging.WARNING),
    (102_400, {"journaled": 102_400, "started": True}, 102_400, "chosen", None),
    # a load the journal cannot tell about keeps the plain default
    (DEFAULT_ROWS_PER_BATCH, {"columnstore": True, "started": True}, 50_000, "default",
     logging.INFO),
    (DEFAULT_ROWS_PER_BATCH, {"columnstore": True, "records": False}, 50_000, "default",
     logging.INFO),
])
def test_decide(caplog, requested, facts, rows, reason, level):
    with caplog.at_level(logging.INFO, logger="engine.batch_size"):
        size = decide(requested, table="dbo.f", **facts)
    assert (size.rows, size.reason) == (rows, reason)
    assert [r.levelno for r in caplog.records] == ([level] if level else [])
    if level == logging.WARNING and facts.get("columnstore"):
        assert all(w in caplog.text for w in ("dbo.f", "delta store", "102400"))


def test_only_the_untouched_default_is_unchosen():
    assert not is_chosen(SourceOptions().rows_per_batch)
    assert is_chosen(SourceOptions(rows_per_batch=50_000).rows_per_batch)
    default = SourceOptions().rows_per_batch
    assert default == 50_000 and str(default) == "50000"


def test_row_by_row_into_a_columnstore_warns_and_keeps_the_rule(caplog):
    with caplog.at_level(logging.INFO, logger="engine.batch_size"):
        size = decide(DEFAULT_ROWS_PER_BATCH, table="dbo.f", columnstore=True, row_by_row=True)
    assert size.rows == 102_400  # the same cut as with bulk copy: a rerun may switch transport
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert "bulk-copy" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="engine.batch_size"):
        decide(DEFAULT_ROWS_PER_BATCH, table="dbo.h", row_by_row=True)
    assert not caplog.records
