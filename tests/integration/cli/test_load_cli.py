"""`azsql-bulk load` as a real subprocess against the emulator (in its own process).

Rows are read back through pyodbc (a different client than the loader's turbodbc) and
compared exactly. Nothing here mocks the database.
"""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from integration.cli.cli_env import (
    SCRIPT,
    clean_env,
    last_json,
    managed_identity_env,
    run_cli,
    table_exists,
    table_name,
    write_parquet,
)
from loads import check_exact

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- success ------------------------------------------------------------------------------------

def test_load_with_json_is_exact_and_shows_no_secret(tmp_path, emu_proc, sql_env, conn_args,
                                                     reader):
    total = write_parquet(tmp_path / "data", files=3, rows_per_file=20_000,
                          row_group_size=10_000)
    table = table_name("json")
    proc = run_cli(["load", str(tmp_path / "data"), "--table", table, "--workers", "2",
                    "--rows-per-batch", "5000", "--json", *conn_args], sql_env)
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc.stdout)
    assert result["status"] == "ok" and result["exit_code"] == 0
    assert (result["rows"], result["batches"], result["batches_skipped"]) == (total, 12, 0)
    assert result["table"] == table and result["created_table"] is True
    assert len(result["load_id"]) == 32 and result["source_rows"] == total
    for key in ("bytes", "seconds", "rows_per_second", "mb_per_second"):
        assert result[key] > 0, key
    for key in ("retries", "reconnects", "token_renewals"):
        assert result[key] == 0, key
    check_exact(reader, table, total)
    password = emu_proc.credentials.sql_password
    assert password not in proc.stdout + proc.stderr
    # non-TTY stdout: progress is log lines on stderr, and stdout ends with the JSON
    assert f"{total:,} / {total:,} rows (100.0%)" in proc.stderr

    again = run_cli(["load", str(tmp_path / "data"), "--table", table, "--workers", "2",
                     "--rows-per-batch", "5000", "--json", *conn_args], sql_env)
    # the same command again: the journal says it is loaded; nothing changes (exit 0)
    assert again.returncode == 0, again.stderr
    assert f"already loaded: load id {result['load_id']}" in again.stderr
    assert last_json(again.stdout)["already_loaded"] is True
    check_exact(reader, table, total)
    resumed = run_cli(["load", str(tmp_path / "data"), "--table", table, "--workers", "2",
                       "--rows-per-batch", "5000", "--json", "--resume", *conn_args], sql_env)
    assert resumed.returncode == 0, resumed.stderr
    assert (last_json(resumed.stdout)["rows"], last_json(resumed.stdout)["batches_skipped"]) \
        == (0, 12)
    check_exact(reader, table, total)


def test_column_and_rename_options_shape_the_table(tmp_path, sql_env, conn_args, reader):
    total = write_parquet(tmp_path / "data", files=1, rows_per_file=2_000)
    table = table_name("cols")
    proc = run_cli(["load", str(tmp_path / "data"), "--table", table, "--column", "id",
                    "--column", "name", "--rename", "name=label", "--json", *conn_args],
                   sql_env)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc.stdout)["rows"] == total
    names = [r[0] for r in reader.execute(
        "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = ? "
        "ORDER BY ORDINAL_POSITION", table.split(".")[1]).fetchall()]
    assert names == ["id", "label"]
    got = reader.execute(f"SELECT COUNT(*), SUM(id), MAX(label) FROM {table}").fetchone()
    assert tuple(got) == (total, sum(range(total)), f"row-{total - 1:06d}")
    bad = run_cli(["load", str(tmp_path / "data"), "--table", table, "--rename", "name",
                   *conn_args], sql_env)
    assert bad.returncode == 2 and "--rename" in bad.stderr and "SOURCE=TARGET" in bad.stderr


def test_load_with_managed_identity_from_the_environment(tmp_path, emu_proc, reader):
    total = write_parquet(tmp_path / "data", files=1, rows_per_file=8_000)
    table = table_name("mi")
    env = clean_env(**managed_identity_env(emu_proc),  # no secret, no SSL_CERT_FILE
                    AZSQL_BULK_SERVER=f"{emu_proc.tds_host},{emu_proc.tds_port}",
                    AZSQL_BULK_DATABASE=emu_proc.database, AZSQL_BULK_AUTH="managed-identity",
                    AZSQL_BULK_ENCRYPT="strict", AZSQL_BULK_SERVER_CERTIFICATE=emu_proc.server_cert,
                    AZSQL_BULK_HOST_NAME_IN_CERTIFICATE="localhost", AZSQL_BULK_WORKERS="2",
                    AZSQL_BULK_ROWS_PER_BATCH="1000", AZSQL_BULK_JSON="1")
    proc = run_cli(["load", str(tmp_path / "data" / "part-0000.parquet"), "--table", table], env)
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc.stdout)
    assert (result["rows"], result["batches"]) == (total, 8)
    check_exact(reader, table, total)
    assert emu_proc.env["IDENTITY_HEADER"] not in proc.stdout + proc.stderr
    assert emu_proc.env["AZURE_CLIENT_SECRET"] not in proc.stdout + proc.stderr
    assert "eyJ" not in proc.stdout + proc.stderr  # no token anywhere


# -- dry run ------------------------------------------------------------------------------------

def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, emu_proc, sql_env, conn_args,
                                                    reader):
    write_parquet(tmp_path / "data", files=2, rows_per_file=25_000, row_group_size=10_000)
    table = table_name("dry")
    proc = run_cli(["load", str(tmp_path / "data"), "--table", table, "--rows-per-batch",
                    "4000", "--dry-run", "--json", *conn_args], sql_env)
    assert proc.returncode == 0, proc.stderr
    assert "nothing is written" in proc.stdout
    assert "CREATE TABLE [dbo]" in proc.stdout and "50,000 rows" in proc.stdout
    plan = last_json(proc.stdout)
    assert plan["status"] == "dry_run" and plan["rows"] == 50_000
    # each file: row groups of 10,000, 10,000 and 5,000 rows -> 3 + 3 + 2 batches of <= 4,000
    assert [f["batches"] for f in plan["files"]] == [8, 8] and plan["batches"] == 16
    assert {c["name"]: c["sql_type"] for c in plan["columns"]} == {
        "id": "bigint", "amount": "float", "name": "nvarchar(16)"}
    assert not table_exists(reader, table)
    if table_exists(reader, "azsql_bulk.load_journal"):
        assert reader.execute("SELECT COUNT(*) FROM [azsql_bulk].[load_journal] WHERE "
                              "load_id = ?", plan["load_id"]).fetchone()[0] == 0


def test_dry_run_connects_to_nothing(tmp_path, sql_env):
    write_parquet(tmp_path / "data", files=1, rows_per_file=100)
    proc = run_cli(["load", str(tmp_path / "data"), "--table", "dbo.x", "--server",
                    f"127.0.0.1,{closed_port()}", "--database", "db", "--dry-run"], sql_env)
    assert proc.returncode == 0, proc.stderr
    assert "1 file(s), 100 rows" in proc.stdout


def test_dry_run_counts_csv_files_by_reading_them(tmp_path, sql_env):
    import pyarrow.csv as pacsv

    (tmp_path / "csv").mkdir()
    for f, n in enumerate((2_500, 700)):
        pacsv.write_csv(pa.table({"id": list(range(n)), "v": [f"x{i}" for i in range(n)]}),
                        tmp_path / "csv" / f"part-{f}.csv")
    proc = run_cli(["load", str(tmp_path / "csv"), "--table", "dbo.x", "--rows-per-batch",
                    "1000", "--dry-run", "--json"], sql_env)
    assert proc.returncode == 0, proc.stderr
    plan = last_json(proc.stdout)
    assert [(f["format"], f["rows"], f["batches"]) for f in plan["files"]] == [
        ("csv", 2_500, 3), ("csv", 700, 1)]
    assert (plan["rows"], plan["batches"]) == (3_200, 4)



def test_dry_run_of_a_shard_counts_only_its_row_groups(tmp_path, sql_env):
    pq.write_table(pa.table({"id": pa.array(range(1_000), pa.int64())}), tmp_path / "f.parquet",
                   row_group_size=100)
    split = run_cli(["split", str(tmp_path / "f.parquet"), "--shards", "4", "--out",
                     str(tmp_path / "shards")], sql_env)
    assert split.returncode == 0, split.stderr
    planned = []
    for shard in sorted((tmp_path / "shards").glob("*.json")):
        proc = run_cli(["load", str(shard), "--table", "dbo.x", "--rows-per-batch", "60",
                        "--dry-run", "--json"], sql_env)
        assert proc.returncode == 0, proc.stderr
        plan = last_json(proc.stdout)
        (part,) = plan["files"]
        assert part["units"].startswith("row groups ") and part["units"].endswith(" of 10")
        assert part["bytes"] < (tmp_path / "f.parquet").stat().st_size
        assert (plan["rows"], plan["batches"]) == (part["rows"], part["rows"] // 100 * 2)
        planned.append(plan["rows"])
    assert len(planned) == 4 and sum(planned) == 1_000 and min(planned) >= 100

# -- refusals and errors --------------------------------------------------------------------------

@pytest.mark.parametrize(("secret_args", "home"), [
    (["--password", "Hunter2-not-echoed"], "AZSQL_BULK_SQL_PASSWORD"),
    (["--client-secret=Hunter2-not-echoed"], "AZURE_CLIENT_SECRET"),
    (["--access-token-file", "eyJhbGciOiJSUzI1NiJ9.eyJIunter2-not-echoed.sig"],
     "AZSQL_BULK_ACCESS_TOKEN"),
    (["--sql-user", "sa;PWD=Hunter2-not-echoed"], "AZSQL_BULK_SQL_PASSWORD"),
])
def test_secret_arguments_are_refused(tmp_path, sql_env, conn_args, secret_args, home, reader):
    table = table_name("secret")
    proc = run_cli(["load", str(tmp_path), "--table", table, *conn_args, *secret_args], sql_env)
    assert proc.returncode == 2
    assert "never taken from the command line" in proc.stderr and home in proc.stderr
    assert "unter2-not-echoed" not in proc.stdout + proc.stderr
    assert not table_exists(reader, table)


def test_bad_table_name_is_a_usage_error(tmp_path, sql_env, conn_args):
    write_parquet(tmp_path / "data", files=1, rows_per_file=10)
    proc = run_cli(["load", str(tmp_path / "data"), "--table", "a.b.c", *conn_args], sql_env)
    assert proc.returncode == 2
    assert "bad --table" in proc.stderr and "'a.b.c'" in proc.stderr
    assert "schema.table" in proc.stderr


def test_a_refused_load_that_sent_nothing_prints_no_resume_command(tmp_path, sql_env,
                                                                   conn_args, reader):
    # regression: a load refused before any batch (exit 2) printed "to skip the batches
    # already loaded, run: ... --resume" although nothing was loaded
    write_parquet(tmp_path / "data", files=1, rows_per_file=100)
    table = table_name("refused")
    reader.execute(f"CREATE TABLE {table} (id bigint NOT NULL, other_column int NOT NULL)")
    proc = run_cli(["load", str(tmp_path / "data"), "--table", table, "--json", *conn_args],
                   sql_env)
    assert proc.returncode == 2, proc.stderr
    assert "incompatible with the source; nothing was sent" in proc.stderr
    assert "other_column" in proc.stderr
    assert "--resume" not in proc.stderr and "batches already loaded" not in proc.stderr
    failure = last_json(proc.stdout)
    assert failure["status"] == "configuration_error" and "resume_command" not in failure
    assert reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


def test_missing_source_file_names_the_file(tmp_path, sql_env, conn_args):
    missing = tmp_path / "nope" / "orders.parquet"
    proc = run_cli(["load", str(missing), "--table", "dbo.t", "--json", *conn_args], sql_env)
    assert proc.returncode == 2
    assert str(missing) in proc.stderr and "does not exist" in proc.stderr
    assert last_json(proc.stdout)["exit_code"] == 2


def test_unreachable_server_names_the_address(tmp_path, sql_env):
    write_parquet(tmp_path / "data", files=1, rows_per_file=10)
    port = closed_port()
    proc = run_cli(["load", str(tmp_path / "data"), "--table", "dbo.t", "--server",
                    f"127.0.0.1,{port}", "--database", "appdb", "--auth", "sql", "--sql-user",
                    "someone", "--connect-attempts", "1", "--json"], sql_env)
    assert proc.returncode == 1
    assert f"cannot reach server 127.0.0.1,{port}" in proc.stderr
    assert "refused" in proc.stderr.lower() and "firewall" in proc.stderr
    failure = last_json(proc.stdout)
    assert failure["exit_code"] == 1 and failure["status"] == "unreachable"


# -- interrupted and resumed ------------------------------------------------------------------

def test_sigterm_stops_at_a_batch_boundary_and_the_resume_command_completes(
        tmp_path, emu_proc, sql_env, conn_args, reader):
    total = write_parquet(tmp_path / "data", files=120, rows_per_file=500)
    table = table_name("sigterm")
    args = ["load", str(tmp_path / "data"), "--table", table, "--workers", "2",
            "--rows-per-batch", "100", "--progress", "log", "--progress-interval", "0.2",
            "--json", *conn_args]
    proc = subprocess.Popen([SCRIPT, *args], env=sql_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    stderr_lines: list[str] = []
    started = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line)
            if "azsql-bulk: " in line and " / " in line and not line.split(": ")[-1] \
                    .startswith("0 / "):
                started.set()
        started.set()

    reader_thread = threading.Thread(target=pump, daemon=True)
    reader_thread.start()
    assert started.wait(120), "no progress reported"
    assert proc.poll() is None, "the load finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)  # stdout holds only the final JSON line: no pipe can fill up
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    proc.stdout.close()
    reader_thread.join(120)
    stderr = "".join(stderr_lines)
    assert proc.returncode == 3, stderr
    assert "stopping at the next batch boundary" in stderr
    failure = last_json(stdout)
    assert failure["status"] == "cancelled" and failure["exit_code"] == 3
    assert failure["resumable"] is True
    committed = reader.execute(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {table}").fetchone()
    assert 0 < committed[0] < total and committed[0] == committed[1]
    assert committed[0] == failure["rows_committed"]
    assert committed[0] % 100 == 0  # whole batches only
    command = stderr.split("resume with:\n", 1)[1].splitlines()[0].strip()
    assert command == failure["resume_command"]
    words = shlex.split(command)
    assert words[0] == SCRIPT and words[1:3] == ["load", str(tmp_path / "data")]
    assert words[-3:] == ["--load-id", failure["load_id"], "--resume"]
    assert emu_proc.credentials.sql_password not in command

    resumed = subprocess.run(words, env=sql_env, capture_output=True, text=True, timeout=300,
                             check=False)
    assert resumed.returncode == 0, resumed.stderr
    result = last_json(resumed.stdout)
    assert result["rows"] == total - committed[0]
    assert result["batches_skipped"] == committed[0] // 100
    check_exact(reader, table, total)
