"""``azsql-bulk load`` into a clustered columnstore table: 102,400-row batches unless
``--rows-per-batch`` says otherwise, said in the summary; the dry run names the rule."""

from __future__ import annotations

import pytest
from integration.cli.cli_env import last_json, run_cli, table_name, write_parquet

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def _cci_table(reader, prefix: str) -> str:
    table = table_name(prefix)
    reader.execute(f"CREATE TABLE {table} (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(100) NULL, INDEX cci CLUSTERED COLUMNSTORE)")
    return table


def _journal(reader, load_id: str) -> list[tuple]:
    rows = reader.execute("SELECT [rows], rows_per_batch FROM [azsql_bulk].[load_journal] "
                          "WHERE load_id = ? ORDER BY [rows] DESC", load_id).fetchall()
    return [tuple(r) for r in rows]


def test_load_into_a_columnstore_table_says_102400(tmp_path, sql_env, conn_args, reader):
    write_parquet(tmp_path / "data", files=1, rows_per_file=150_000)
    table = _cci_table(reader, "cci")
    proc = run_cli(["load", str(tmp_path / "data"), "--table", table, "--json", *conn_args],
                   sql_env)
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc.stdout)
    assert (result["rows"], result["rows_per_batch"], result["rows_per_batch_reason"]) == (
        150_000, 102_400, "clustered columnstore target")
    assert "102,400 rows per batch (clustered columnstore target)" in proc.stderr
    assert _journal(reader, result["load_id"]) == [(102_400, 102_400), (47_600, 102_400)]


def test_a_smaller_rows_per_batch_is_honoured_with_a_warning(tmp_path, sql_env, conn_args,
                                                             reader):
    write_parquet(tmp_path / "data", files=1, rows_per_file=60_000)
    table = _cci_table(reader, "cci_small")
    proc = run_cli(["load", str(tmp_path / "data"), "--table", table, "--rows-per-batch",
                    "40000", "--json", *conn_args], sql_env)
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc.stdout)
    assert result["rows_per_batch"] == 40_000 and result["rows_per_batch_reason"] == "chosen"
    assert "delta store" in proc.stderr and table.split(".")[1] in proc.stderr
    assert _journal(reader, result["load_id"]) == [(40_000, 40_000), (20_000, 40_000)]


def test_dry_run_says_a_columnstore_table_would_raise_the_default(tmp_path, sql_env):
    write_parquet(tmp_path / "data", files=1, rows_per_file=100)
    proc = run_cli(["load", str(tmp_path / "data"), "--table", "dbo.x", "--dry-run",
                    "--json"], sql_env)
    assert proc.returncode == 0, proc.stderr
    assert "50,000 rows per batch (the default; a table with a clustered columnstore index " \
           "would raise it to 102,400" in proc.stdout
    plan = last_json(proc.stdout)
    assert (plan["rows_per_batch"], plan["rows_per_batch_chosen"]) == (50_000, False)
    chosen = run_cli(["load", str(tmp_path / "data"), "--table", "dbo.x", "--dry-run",
                      "--rows-per-batch", "50000", "--json"], sql_env)
    assert chosen.returncode == 0, chosen.stderr
    assert "would raise" not in chosen.stdout and last_json(chosen.stdout)[
        "rows_per_batch_chosen"] is True
