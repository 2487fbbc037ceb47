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


def status_length(ids) -> int:
    return sum(len(STATUSES[i % 3]) for i in ids)


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
    # 1 row count + 9 non-null counts + 3 sums (id, amount, price) + 2 total lengths (status,
    # note) + 2 min/max (ordered_at, day) + 2 columns counted per value (status, paid: id
    # and note have too many distinct values) + every row
    assert report["checks"] == 1 + 9 + 3 + 2 + 2 + 2 + ROWS


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
        ("status", "total length (UTF-16 code units)"): (
            status_length(ids), status_length(ids) - len("shipped") + len("lost") - len("new")),
        ("note", "total length (UTF-16 code units)"): (
            sum(len(f"note {i} é") for i in ids if i % 5), sum(len(f"note {i} é") for i in ids
                                                              if i % 5) - len("note 17 é")),
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
        ("status", "total length (UTF-16 code units)"): (
            status_length(range(ROWS)), status_length(range(ROWS)) - status_length(range(10))
            + sum(len(f"x{i}") for i in range(10))),
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


# -- review findings: what verify must not claim, and types it must compare right ----------

def write(root: Path, name: str, data: pa.Table) -> Path:
    """``data`` as ``root/name/part-0.parquet``; the directory, a source like ``source``."""
    (root / name).mkdir(parents=True, exist_ok=True)
    pq.write_table(data, root / name / "part-0.parquet", row_group_size=100)
    return root / name


def report_of(proc) -> dict:
    return last_json(proc.stdout)


def test_swapped_float_values_are_found_without_a_key_and_nothing_is_claimed_unchecked(
        tmp_path, conn_args, sql_env, reader):
    # no integer or text column: the sample rows used to be "compared" by nothing at all
    n = 200
    floats = write(tmp_path, "floats", pa.table({
        "x": pa.array([i / 10 for i in range(n)], pa.float64()),
        "amt": pa.array([Decimal(i) / 100 for i in range(n)], pa.decimal128(12, 2)),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 9) for i in range(n)],
                        pa.date32())}))
    table = load_rows(floats, "verify_floats", n, conn_args, sql_env)
    good = verify(floats, table, conn_args, sql_env, "--json", "--sample-rows", str(n))
    assert good.returncode == 0, good.stdout + good.stderr
    assert report_of(good)["sampled"] == n and report_of(good)["not_sampled"] == 0
    reader.execute(f"UPDATE {table} SET x = 19.9 WHERE amt = 0.01")  # x of 0.01 was 0.1
    reader.execute(f"UPDATE {table} SET x = 0.1 WHERE amt = 1.99")  # x of 1.99 was 19.9
    bad = verify(floats, table, conn_args, sql_env, "--json", "--sample-rows", str(n))
    assert bad.returncode == 1, bad.stdout + bad.stderr  # counts and sums are unchanged
    differing = {(d["column"], d["what"]) for d in report_of(bad)["differences"]}
    assert differing and all(what.startswith("sample row") for _, what in differing)
    assert {c for c, _ in differing} <= {"x", "amt", "day"}

    # a table with no column to look rows up by: the rows are drawn, not compared, and said so
    times = write(tmp_path, "times", pa.table({"at": pa.array(
        [START + dt.timedelta(seconds=i) for i in range(50)], pa.timestamp("us", tz="UTC"))}))
    table = load_rows(times, "verify_times", 50, conn_args, sql_env)
    proc = verify(times, table, conn_args, sql_env, "--sample-rows", "50")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matches the source" not in proc.stdout
    assert "0 of 50 rows compared whole" in proc.stdout
    assert "50 sample rows not compared: no integer, text, decimal" in proc.stdout
    report = report_of(verify(times, table, conn_args, sql_env, "--json", "--sample-rows", "50"))
    assert (report["sampled"], report["not_sampled"]) == (0, 50)


def load_rows(source: Path, prefix: str, rows: int, conn_args, env, *extra: str) -> str:
    table = table_name(prefix)
    done = run_cli(["load", str(source / "*.parquet"), "--table", table, "--json", *extra,
                    *conn_args], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert last_json(done.stdout)["rows"] == rows
    return table


def test_a_partial_sample_is_not_called_a_match(source, loaded, conn_args, sql_env):
    proc = verify(source, loaded, conn_args, sql_env, "--sample-rows", "10")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matches the source" not in proc.stdout
    assert f"no difference found; 10 of {ROWS:,} rows compared whole" in proc.stdout


def test_uint64_and_nanosecond_sources_verify_equal(tmp_path, conn_args, sql_env):
    n = 150
    data = write(tmp_path, "typed", pa.table({
        "u8": pa.array([2**64 - 1 - i for i in range(n)], pa.uint64()),  # decimal(20, 0)
        "small": pa.array([2**64 - 1 - i % 3 for i in range(n)], pa.uint64()),  # per value
        "at": pa.array([10**18 + i * 1_001 for i in range(n)], pa.timestamp("ns", tz="UTC")),
        "clock": pa.array([i * 1_049 for i in range(n)], pa.time64("ns")),
    }))
    table = load_rows(data, "verify_typed", n, conn_args, sql_env)
    proc = verify(data, table, conn_args, sql_env, "--json", "--sample-rows", str(n))
    report = report_of(proc)
    assert proc.returncode == 0, report["differences"][:5]
    assert report["sampled"] == n
    notes = " ".join(report["notes"])
    assert "at: the source holds nanoseconds and the table 100 ns" in notes
    assert "clock: the source holds nanoseconds" in notes
    keyed = verify(data, table, conn_args, sql_env, "--json", "--key", "u8")
    assert keyed.returncode == 0, report_of(keyed)["differences"][:5]


def test_decimal_keys_bind_exactly_and_time_keys_are_refused(source, conn_args, sql_env, reader):
    table = load(source, "verify_deckey", conn_args, sql_env)
    ok = verify(source, table, conn_args, sql_env, "--json", "--key", "price")
    assert ok.returncode == 0, report_of(ok)["differences"][:5]
    reader.execute(f"UPDATE {table} SET status = 'lose' WHERE price = 0.99")  # id 99, 'new'
    bad = verify(source, table, conn_args, sql_env, "--json", "--key", "price")
    assert bad.returncode == 1
    assert {(d["column"], d["found"]) for d in report_of(bad)["differences"]
            if d["what"].startswith("sample row")} == {("status", "lose")}
    shared = report_of(verify(source, table, conn_args, sql_env, "--json",
                              "--key", "status"))
    assert shared["sampled"] == ROWS
    assert any("key ['status'] is not unique in the table" in n for n in shared["notes"])
    refused = verify(source, table, conn_args, sql_env, "--key", "ordered_at")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "ordered_at (timestamp[us, tz=UTC]) cannot be" in refused.stderr
    assert "a key must be an integer, text or decimal column" in refused.stderr


def test_a_missing_column_is_one_difference_and_floods_are_grouped(source, loaded, conn_args,
                                                                   sql_env, reader):
    # the table has no column "ident": its rows are still looked up by all their other values
    renamed = verify(source, loaded, conn_args, sql_env, "--json", "--rename", "id=ident")
    assert renamed.returncode == 1
    assert [(d["column"], d["what"]) for d in report_of(renamed)["differences"]] == [
        ("ident", "column")]
    table = load(source, "verify_flood", conn_args, sql_env)
    reader.execute(f"UPDATE {table} SET amount = amount + 1 WHERE id >= 100")
    text = verify(source, table, conn_args, sql_env)
    assert text.returncode == 1
    shown = [line for line in text.stdout.splitlines() if "amount: sample row (id=" in line]
    assert len(shown) == 3
    assert "amount: sample row: and 197 more (--json lists them all)" in text.stdout
    assert len(report_of(verify(source, table, conn_args, sql_env, "--json"))["differences"]) \
        > 200


def test_max_values_stays_under_the_parameter_limit(source, loaded, conn_args, sql_env):
    proc = verify(source, loaded, conn_args, sql_env, "--max-values", "2001")
    assert proc.returncode == 2
    assert "--max-values 2,001 is too large" in proc.stderr and "at most 2,000" in proc.stderr


def test_a_changed_text_value_outside_the_sample_is_found_by_its_length(source, conn_args,
                                                                        sql_env, reader):
    table = load(source, "verify_length", conn_args, sql_env)
    reader.execute(f"UPDATE {table} SET note = N'note X' WHERE id = 251")  # was 'note 251 é'
    proc = verify(source, table, conn_args, sql_env, "--json", "--sample-rows", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = sum(len(f"note {i} é") for i in range(ROWS) if i % 5)
    assert [(d["column"], d["what"], d["expected"], d["found"])
            for d in report_of(proc)["differences"]] == [
        ("note", "total length (UTF-16 code units)", expected, expected - 4)]
