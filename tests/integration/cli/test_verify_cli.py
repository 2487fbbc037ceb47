"""``azsql-bulk verify`` as a real subprocess against the emulator.

A table loaded by ``azsql-bulk load`` verifies; the same table with one row deleted and two
changed (through pyodbc, another client) is reported difference by difference; a table
that does not exist is a clear error. Every source row is in the sample here
(``--sample-rows`` covers the source), so which rows are compared is not left to chance.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from integration.cli.cli_env import last_json, run_cli, table_name

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

ROWS = 300
STATUSES = ("new", "paid", "shipped")
START = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)


def orders(start: int, n: int) -> pa.Table:
    ids = range(start, start + n)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "amount": pa.array([i * 0.25 for i in ids], pa.float64()),
        "price": pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(18, 2)),
        "status": pa.array([STATUSES[i % 3] for i in ids]),
        "paid": pa.array([i % 2 == 0 for i in ids]),
        "note": pa.array([None if i % 5 == 0 else f"note {i} é" for i in ids]),
        "ordered_at": pa.array([START + dt.timedelta(minutes=i, microseconds=i) for i in ids],
                               pa.timestamp("us", tz="UTC")),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 40) for i in ids],
                        pa.date32()),
        "ref": pa.array([uuid.UUID(int=i + 1).bytes for i in ids], pa.uuid()),
    })


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    pq.write_table(orders(0, ROWS // 2), root / "part-0.parquet", row_group_size=50)
    pq.write_table(orders(ROWS // 2, ROWS // 2), root / "part-1.parquet", row_group_size=50)
    return root


def load(source: Path, prefix: str, conn_args, env) -> str:
    table = table_name(prefix)
    done = run_cli(["load", str(source / "*.parquet"), "--table", table, "--workers", "2",
                    "--rows-per-batch", "40", "--json", *conn_args], env)
    assert done.returncode == 0, done.stderr
    assert last_json(done.stdout)["rows"] == ROWS
    return table


@pytest.fixture(scope="module")
def loaded(source, conn_args, sql_env) -> str:
    return load(source, "verify", conn_args, sql_env)


def verify(source: Path, table: str, conn_args, env, *extra: str):
    return run_cli(["verify", str(source / "*.parquet"), "--table", table,
                    "--sample-rows", str(ROWS), *extra, *conn_args], env)


def test_a_good_load_verifies(source, loaded, conn_args, sql_env):
    proc = verify(source, loaded, conn_args, sql_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{ROWS:,} source rows" in proc.stdout and "matches the source" in proc.stdout
    report = last_json(verify(source, loaded, conn_args, sql_env, "--json").stdout)
    assert report["ok"] and report["status"] == "ok" and report["differences"] == []
    assert report["rows"] == ROWS and report["sampled"] == ROWS
    # 1 row count + 9 non-null counts + 3 sums (id, amount, price) + 2 min/max (ordered_at,
    # day) + 2 columns counted per value (status, paid: id and note have too many distinct
    # values) + every row
    assert report["checks"] == 1 + 9 + 3 + 2 + 2 + ROWS


def test_a_deleted_and_two_changed_rows_are_reported_precisely(source, conn_args, sql_env,
                                                               reader):
    table = load(source, "verify_changed", conn_args, sql_env)
    reader.execute(f"DELETE FROM {table} WHERE id = 17")
    reader.execute(f"UPDATE {table} SET amount = 999.5 WHERE id = 42")
    reader.execute(f"UPDATE {table} SET status = 'lost' WHERE id = 99")

    def differences(*extra: str) -> dict:
        proc = verify(source, table, conn_args, sql_env, "--json", *extra)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        report = last_json(proc.stdout)
        assert report["status"] == "differs" and not report["ok"]
        return {(d["column"], d["what"]): (d["expected"], d["found"])
                for d in report["differences"]}

    columns = ("id", "amount", "price", "status", "paid", "note", "ordered_at", "day", "ref")
    ids = list(range(ROWS))
    expected = {
        (None, "rows"): (ROWS, ROWS - 1),
        **{(c, "non-null values"): (ROWS - (c == "note") * (ROWS // 5),
                                    ROWS - 1 - (c == "note") * (ROWS // 5)) for c in columns},
        ("id", "sum"): (sum(ids), sum(ids) - 17),
        ("amount", "sum"): (sum(ids) * 0.25, sum(ids) * 0.25 - 17 * 0.25 - 42 * 0.25 + 999.5),
        ("price", "sum"): (f"{Decimal(sum(ids)) / 100:.2f}", f"{Decimal(sum(ids) - 17) / 100:.2f}"),
        # 17 % 3 == 2: a 'shipped' row went; 99 % 3 == 0: a 'new' row became 'lost'
        ("status", "rows with value 'new'"): (100, 99),
        ("status", "rows with value 'shipped'"): (100, 99),
        ("status", "rows with value 'lost'"): (0, 1),
        ("paid", "rows with value False"): (150, 149),  # 17 is odd
        (None, "sample row (id=17)"): ("present", "missing"),
        ("amount", "sample row (id=42)"): (10.5, 999.5),
        ("status", "sample row (id=99)"): ("new", "lost"),
    }
    # sample rows looked up by all their integer and text values, or by a key (batched)
    assert differences() == expected
    assert differences("--key", "id") == expected

    text = verify(source, table, conn_args, sql_env)
    assert text.returncode == 1
    assert "amount: sample row (id=42): expected 10.5, found 999.5" in text.stdout
    assert "table: sample row (id=17): expected 'present', found 'missing'" in text.stdout
    assert "table: rows: expected 300, found 299" in text.stdout


def test_a_missing_table_is_a_clear_error(source, conn_args, sql_env):
    proc = verify(source, "dbo.no_such_table_here", conn_args, sql_env, "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "table dbo.no_such_table_here does not exist" in proc.stderr
    assert last_json(proc.stdout)["status"] == "configuration_error"


def test_other_values_and_a_later_instant_are_reported(source, conn_args,
                                                                     sql_env, reader):
    table = load(source, "verify_values", conn_args, sql_env)
    reader.execute(f"UPDATE {table} SET status = CONCAT('x', id) WHERE id < 10")
    reader.execute(f"UPDATE {table} SET ordered_at = '2030-01-01 00:00:00.000001 +01:00' "
                   "WHERE id = 5")
    proc = verify(source, table, conn_args, sql_env, "--json", "--sample-rows", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = {(d["column"], d["what"]): (d["expected"], d["found"])
             for d in last_json(proc.stdout)["differences"]}
    shown = {what: counts for (_, what), counts in found.items()
             if what.startswith("rows with value 'x")}
    assert len(shown) == 5 and set(shown.values()) == {(0, 1)}
    # ids 0-9 were new (0, 3, 6, 9), paid (1, 4, 7) and shipped (2, 5, 8)
    assert {k: v for k, v in found.items() if k[1] not in shown} == {
        ("status", "rows with value 'new'"): (100, 96),
        ("status", "rows with value 'paid'"): (100, 97),
        ("status", "rows with value 'shipped'"): (100, 97),
        ("status", "rows with 5 more values not in the source"): (0, 5),
        ("ordered_at", "min/max"): (["2024-03-01 12:00:00.000000000",
                                     f"2024-03-01 {12 + (ROWS - 1) // 60}:{(ROWS - 1) % 60:02d}"
                                     f":00.000{ROWS - 1:03d}000"],
                                    ["2024-03-01 12:00:00.000000000",
                                     "2029-12-31 23:00:00.000001000"]),
    }
