"""Every statement shape azsql-bulk sends stays on the emulator's column-wise path (issue 19).

The shapes are not picked by hand: the all-types dataset (``benchmarks/all_types_data.py``)
has one column per Arrow type the engine's type map takes (generated over a grid of
Arrow types and kept where ``engine.type_map.sql_type_for`` maps them), so one load
sends every ``CAST(@P AS ...)`` / ``CONVERT(varbinary(max), ...)`` marker
``engine.bind_casts`` chooses, bare markers for natively bound columns, timestamps bound
natively in one batch and as text in another (the first batch holds the year 1), and
(max) text and bytes long enough to travel in pieces. Each load runs through both
transports and every mode (append; replace and upsert, which write a staging table
first), and must leave ``row_path_calls`` and ``fallbacks`` in ``/metrics`` unchanged
and every value exactly as sent (read back through pyodbc).
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from loads import reader, sql_target  # fixtures (tests/loads.py)

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))
import all_types_data  # noqa: E402  (benchmarks/all_types_data.py)

from engine import type_map  # noqa: E402
from engine.binder import Binder  # noqa: E402
from engine.names import TableName  # noqa: E402
from engine.plan import plan_table  # noqa: E402

pytestmark = pytest.mark.integration
__all__ = ["reader", "sql_target"]  # the fixtures, imported for pytest
ROWS = 1_200
BATCH = 600


@pytest.fixture(scope="module")
def source() -> pa.Table:
    return all_types_data.all_types(ROWS)


def _doc_table() -> list[tuple[str, str]]:
    """(Arrow side, SQL side) rows of the mapping table in engine.type_map's docstring."""
    doc = type_map.__doc__ or ""
    body = doc.split("=====\n", 2)[-1].split("\n=====")[0]
    rows = []
    for line in body.splitlines():
        if line.startswith("="):
            continue
        rows.append((line[:39].strip(), line[39:].strip()))
    return [r for r in rows if r[0] or r[1]]


def test_the_dataset_covers_the_engine_type_table(source):
    """Every Arrow type named in engine.type_map's table has a column, and every SQL type
    it names is planned for one."""
    arrow_side = " ".join(a for a, _ in _doc_table())
    sql_side = " ".join(s for _, s in _doc_table())
    planned = {t.name for t in all_types_data.planned_types(source).values()}
    sql_names = set(re.findall(r"\b(tinyint|smallint|int|bigint|decimal|real|float|bit|"
                               r"nvarchar|varbinary|uniqueidentifier|date|time|datetime2|"
                               r"datetimeoffset)\b", sql_side))
    assert len(sql_names) >= 14 and sql_names <= planned, sql_names - planned
    types = [str(f.type) for f in source.schema]
    tokens = set(re.findall(r"[a-z_]+[0-9]*", arrow_side)) - {
        "p", "s", "n", "with", "a", "time", "zone", "without", "arrow", "uuid"}
    alias = {"float16": "halffloat", "float32": "float", "float64": "double",
             "fixed_size_binary": "fixed_size_binary[", "fixed_size_list": "fixed_size_list<",
             "large_list": "large_list<", "list": "list<", "struct": "struct<", "map": "map<"}
    for token in sorted(tokens - {"timestamp", "dictionary"}):
        name = alias.get(token, token)
        assert any(t == name or t.startswith(name) for t in types), token
    assert any(t.startswith("timestamp[") and "tz=" not in t for t in types)
    assert any(t.startswith("timestamp[") and "tz=" in t for t in types)
    assert any(t.startswith("dictionary<") for t in types)
    assert any(t == "extension<arrow.uuid>" for t in types)


def test_the_dataset_sends_every_marker_the_binder_chooses(source):
    """Both batches' INSERTs together carry each marker kind: bare, text casts of every
    length, hex, text in pieces, hex in pieces, timestamps bound natively."""
    plan = plan_table(source.schema, sample=source)
    binder = Binder(plan, TableName("dbo", "t"))
    statements = {binder.bind(source.slice(start, BATCH)).sql for start in range(0, ROWS, BATCH)}
    assert len(statements) == 2  # batch 1 holds the year 1 (text); batch 2 binds natively
    joined = " ".join(statements)
    for marker in ("CONVERT(varbinary(max), CAST(? AS varchar(max)), 2)",
                   "CAST((CAST(? AS nvarchar(max)) + CAST(? AS nvarchar(max))",
                   "CAST(? AS nvarchar(max))", "CAST(? AS nvarchar(36))",
                   "CAST(? AS nvarchar(10))", "CAST(? AS nvarchar(40))"):
        assert marker in joined, marker
    markers = re.findall(r"CAST\(\? AS nvarchar\(\w+\)\)|\?"
                         r"|CONVERT\(varbinary\(max\), CAST\(\? AS varchar\(max\)\), 2\)", joined)
    assert {c.bind.marker for c in plan.columns} <= set(markers)


@pytest.mark.parametrize("mode", ["append", "replace", "upsert"])
@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_every_type_and_shape_stays_column_wise(emu_proc, sql_target, reader, source,
                                                transport, mode):
    from engine.options import TransferOptions
    from engine.sources import SourceOptions
    from engine.transfer import transfer

    target = sql_target(f"paths_{mode}")
    options = TransferOptions(workers=1, transport=transport, mode=mode,
                              keys=("id",) if mode == "upsert" else ())
    if mode != "append":  # replace and upsert find the table there (a staging table first)
        transfer(source.slice(0, 10), target, TransferOptions(workers=1, transport=transport),
                 source_options=SourceOptions(rows_per_batch=BATCH))
    before = emu_proc.metrics()
    result = transfer(source, target, options, source_options=SourceOptions(rows_per_batch=BATCH))
    after = emu_proc.metrics()
    assert result.rows == ROWS and result.transport == transport
    assert after["row_path_calls"] == before["row_path_calls"], after["fallbacks"]
    assert after["fallbacks"] == before["fallbacks"]
    moved = (after["bulk_columnar_rows"] - before["bulk_columnar_rows"]
             if transport == "bulk-copy" else after["columnar_rows"] - before["columnar_rows"])
    assert moved >= ROWS
    assert all_types_data.verify(reader, target.table.quoted, source) == []


def test_a_fallback_is_counted_and_logged_once_per_shape(caplog):
    """The row path stays possible (shapes the column-wise path does not decide), but it
    is reported: one WARNING line per statement and reason, the traceback at DEBUG."""
    from azsql_emulator.ingest import report_fallback
    from azsql_emulator.metrics import Metrics

    metrics = Metrics()
    stmt = f"INSERT INTO dbo.t{uuid.uuid4().hex[:6]} (a) VALUES (@P1)"
    with caplog.at_level(logging.DEBUG, logger="azsql_emulator.ingest"):
        try:
            raise LookupError("a planner gap")
        except LookupError as exc:
            for _ in range(5):
                report_fallback(metrics, stmt, "column a: why", 100, exc)
        report_fallback(metrics, stmt, "column b: another reason", 7)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(r.exc_info is None for r in warnings)
    assert "column a: why" in warnings[0].getMessage()
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 1 and debug[0].exc_info is not None
    snap = metrics.snapshot()
    assert snap["row_path_calls"] == 507
    assert snap["fallbacks"] == {"column a: why": 5, "column b: another reason": 1}


def test_pyodbc_fast_executemany_stays_column_wise(emu_proc, reader):
    """The benchmarks' pyodbc peer (fast_executemany, bare ? markers, pyodbc's own
    bindings: decimals, datetimes, text, bytes, uuids, bits) takes no row path either."""
    import datetime as dt
    from decimal import Decimal

    import pyodbc
    from support import odbc_string

    from engine.driver import find_driver

    creds = emu_proc.credentials
    conn = pyodbc.connect(odbc_string(emu_proc, str(find_driver().path), UID=creds.sql_login,
                                      PWD=creds.sql_password), autocommit=False)
    table = f"dbo.peer_{uuid.uuid4().hex[:8]}"
    cur = conn.cursor()
    cur.execute(f"CREATE TABLE {table} (id bigint NOT NULL, f float, d decimal(18,4), "
                "s nvarchar(64), b bit, day date, ts datetime2(6), bin varbinary(64), "
                "g uniqueidentifier)")
    conn.commit()
    rows = [(i, i / 4, Decimal(i) / 100, f"row {i} ✓" if i % 7 else None, i % 2 == 0,
             dt.date(2024, 1, 1) + dt.timedelta(days=i),
             dt.datetime(2024, 1, 1) + dt.timedelta(microseconds=i * 1001),
             bytes([i % 256]) * (i % 5), uuid.UUID(int=i * 7919))
            for i in range(500)]
    cur.fast_executemany = True
    before = emu_proc.metrics()
    cur.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    after = emu_proc.metrics()
    conn.close()
    assert after["row_path_calls"] == before["row_path_calls"], after["fallbacks"]
    got = reader.execute(f"SELECT id, f, d, s, b, day, ts, bin, g FROM {table} "
                         "ORDER BY id").fetchall()
    assert [tuple(r) for r in got] == [(*r[:8], str(r[8]).upper()) for r in rows]
