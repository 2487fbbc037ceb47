"""`azsql-bulk journal` and re-running `azsql-bulk load`, as real subprocesses against the
emulator (issue 22, parts 2 and 3).

A load "in progress" is a real CLI process stopped with SIGSTOP after its first
committed batches (so nothing depends on how fast the machine is), then continued.
Tables and the journal are read back through pyodbc; nothing mocks the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from integration.cli.cli_env import SCRIPT, clean_env, last_json, run_cli, table_name, write_parquet
from loads import check_exact
from support import HANG_SECONDS, odbc_string, wait_until

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

JOURNAL = "[azsql_bulk].[load_journal]"


def journaled(reader, load_id: str) -> tuple[int, int]:
    """(batches, rows) journaled for ``load_id`` (0, 0 before the journal exists)."""
    (exists,) = reader.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE "
                               "TABLE_SCHEMA = 'azsql_bulk' AND TABLE_NAME = 'load_journal'"
                               ).fetchone()
    if not exists:
        return 0, 0
    batches, rows = reader.execute(f"SELECT COUNT(*), COALESCE(SUM([rows]), 0) FROM {JOURNAL} "
                                   "WHERE load_id = ?", load_id).fetchone()
    return int(batches), int(rows)


def journal_cli(args: list[str], conn_args: list[str], env: dict[str, str],
                stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, "journal", *args, *conn_args], env=env, capture_output=True,
                          text=True, timeout=300, check=False, input=stdin)


def listed(conn_args, env) -> dict[str, dict]:
    proc = journal_cli(["list", "--json"], conn_args, env)
    assert proc.returncode == 0, proc.stderr
    return {load["load_id"]: load for load in last_json(proc.stdout)["loads"]}


def start_load(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([SCRIPT, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


# -- list, show, forget, prune -------------------------------------------------------------------

def test_journal_list_show_forget_and_prune_with_a_load_in_progress(
        tmp_path, emu_proc, sql_env, conn_args, reader):
    total = write_parquet(tmp_path / "data", files=4, rows_per_file=1_000)
    table = table_name("jrnl")
    load_id = f"jrnl-{uuid.uuid4().hex[:8]}"
    proc = start_load(["load", str(tmp_path / "data"), "--table", table, "--workers", "1",
                       "--rows-per-batch", "100", "--load-id", load_id, "--progress", "off",
                       "--json", *conn_args], sql_env)
    try:
        assert wait_until(lambda: journaled(reader, load_id)[0] >= 2 or proc.poll() is not None)
        os.kill(proc.pid, signal.SIGSTOP)  # in progress, and it stays so while we look
        # (a commit sent just before the stop may still land: bounds, not equalities)
        low = journaled(reader, load_id)[0]
        assert proc.poll() is None and 2 <= low < 40, "the load ended too soon"
        partial = listed(conn_args, sql_env)[load_id]
        shown = journal_cli(["show", load_id, "--json"], conn_args, sql_env)
        high = journaled(reader, load_id)[0]
        assert high < 40
        assert (partial["table"], partial["mode"], partial["state"]) == (table, "append",
                                                                         "partial")
        assert low <= partial["batches"] <= high and partial["rows"] == 100 * partial["batches"]
        assert partial["logins"] == [emu_proc.credentials.sql_login]
        assert partial["source_rows"] == total and partial["first_commit"] is not None
        assert shown.returncode == 0, shown.stderr
        sources = last_json(shown.stdout)["sources"]
        assert low <= sum(s["batches"] for s in sources) <= high
        assert all(Path(s["source"]).name.startswith("part-") for s in sources)
        assert all(b["rows"] == 100 for s in sources for b in s["batch_list"])
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=HANG_SECONDS)
    assert proc.returncode == 0, err
    check_exact(reader, table, total)
    done = listed(conn_args, sql_env)[load_id]
    assert (done["state"], done["batches"], done["rows"]) == ("complete", 40, total)
    assert done["last_commit"] >= partial["last_commit"]

    text = journal_cli(["list"], conn_args, sql_env)
    line = next(ln for ln in text.stdout.splitlines() if ln.startswith(load_id))
    assert table in line and "complete" in line and "4,000" in line
    shown = journal_cli(["show", load_id], conn_args, sql_env)
    assert "part-0003.parquet: 10 batches, 1,000 rows" in shown.stdout

    # forget: an unknown id is refused; a declined question forgets nothing; --yes does
    unknown = journal_cli(["forget", "no-such-load", "--yes"], conn_args, sql_env)
    assert unknown.returncode == 2 and "no load 'no-such-load'" in unknown.stderr
    declined = journal_cli(["forget", load_id], conn_args, sql_env, stdin="n\n")
    assert declined.returncode == 1 and "not confirmed" in declined.stderr
    assert f"forget load {load_id} into {table}" in declined.stderr
    assert journaled(reader, load_id) == (40, total)
    confirmed = journal_cli(["forget", load_id, "--json"], conn_args, sql_env, stdin="y\n")
    assert confirmed.returncode == 0, confirmed.stderr
    assert last_json(confirmed.stdout)["forgotten"]["journal_rows"] == 40
    assert journaled(reader, load_id) == (0, 0)
    check_exact(reader, table, total)  # forgetting keeps the rows

    # prune: only the loads whose last commit is older than the age
    old, recent = (f"prune-old-{uuid.uuid4().hex[:6]}", f"prune-new-{uuid.uuid4().hex[:6]}")
    for lid in (old, recent):
        run = run_cli(["load", str(tmp_path / "data" / "part-0000.parquet"), "--table",
                       table_name("prune"), "--load-id", lid, "--rows-per-batch", "500",
                       *conn_args], sql_env)
        assert run.returncode == 0, run.stderr
    reader.execute(f"UPDATE {JOURNAL} SET committed_at = '2020-01-01 00:00:00' "
                   "WHERE load_id = ?", old)
    dry = journal_cli(["prune", "--older-than", "30d", "--dry-run", "--json"], conn_args,
                      sql_env)
    assert dry.returncode == 0, dry.stderr
    assert old in [w["load_id"] for w in last_json(dry.stdout)["would_forget"]]
    assert journaled(reader, old) == (2, 1_000)
    pruned = journal_cli(["prune", "--older-than", "30d", "--yes", "--json"], conn_args,
                         sql_env)
    assert pruned.returncode == 0, pruned.stderr
    gone = [f["load"]["load_id"] for f in last_json(pruned.stdout)["forgotten"]]
    assert old in gone and recent not in gone
    assert journaled(reader, old) == (0, 0) and journaled(reader, recent) == (2, 1_000)
    assert emu_proc.credentials.sql_password not in pruned.stdout + pruned.stderr


def test_forgetting_a_stopped_staged_load_drops_its_staging_table(tmp_path, sql_env,
                                                                 conn_args, reader):
    total = write_parquet(tmp_path / "data", files=2, rows_per_file=1_000)
    table = table_name("stage")
    load_id = f"stage-{uuid.uuid4().hex[:8]}"
    proc = start_load(["load", str(tmp_path / "data"), "--table", table, "--mode", "replace",
                       "--workers", "1", "--rows-per-batch", "100", "--load-id", load_id,
                       "--progress", "off", *conn_args], sql_env)
    assert wait_until(lambda: journaled(reader, load_id)[0] >= 2 or proc.poll() is not None)
    proc.kill()
    proc.communicate(timeout=HANG_SECONDS)
    summary = listed(conn_args, sql_env)[load_id]
    assert (summary["mode"], summary["state"]) == ("replace", "partial")
    stage = summary["target"]
    assert "__azsql_stage_" in stage
    schema, name = stage.split(".")
    count = "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND " \
            "TABLE_NAME = ?"
    assert reader.execute(count, schema, name).fetchone()[0] == 1
    forgot = journal_cli(["forget", load_id, "--yes", "--json"], conn_args, sql_env)
    assert forgot.returncode == 0, forgot.stderr
    assert last_json(forgot.stdout)["forgotten"]["dropped_stage"] == stage
    assert reader.execute(count, schema, name).fetchone()[0] == 0
    again = run_cli(["load", str(tmp_path / "data"), "--table", table, "--mode", "replace",
                     "--rows-per-batch", "100", "--load-id", load_id, *conn_args], sql_env)
    assert again.returncode == 0, again.stderr
    check_exact(reader, table, total)  # every batch once: nothing stale was staged
    applied = run_cli(["load", str(tmp_path / "data"), "--table", table, "--mode", "replace",
                       "--rows-per-batch", "100", "--load-id", load_id, *conn_args], sql_env)
    assert applied.returncode == 0, applied.stderr  # the finish row: nothing left to do
    assert f"already loaded: load id {load_id}, completed at " in applied.stdout
    assert listed(conn_args, sql_env)[load_id]["state"] == "complete"
    check_exact(reader, table, total)


# -- running the same command again -------------------------------------------------------------

def test_the_same_command_finishes_a_killed_load_and_then_changes_nothing(
        tmp_path, sql_env, conn_args, reader):
    total = write_parquet(tmp_path / "data", files=6, rows_per_file=1_000)
    table = table_name("rerun")
    command = ["load", str(tmp_path / "data"), "--table", table, "--workers", "2",
               "--rows-per-batch", "100", "--progress", "off", "--json", *conn_args]
    proc = start_load(command, sql_env)
    rows = "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = ?"
    short = table.split(".")[1]

    def some_rows_committed() -> bool:
        if proc.poll() is not None:
            return True
        if not reader.execute(rows, short).fetchone()[0]:
            return False
        return reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] >= 200

    assert wait_until(some_rows_committed)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=HANG_SECONDS)
    assert proc.returncode == -signal.SIGKILL, "the load ended before the kill"
    kept = reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    assert 0 < kept < total

    finished = run_cli(command, sql_env)  # the exact same command: no --resume, no --load-id
    assert finished.returncode == 0, finished.stderr
    result = last_json(finished.stdout)
    assert result["rows"] == total - kept and result["batches_skipped"] == kept // 100
    check_exact(reader, table, total)
    load_id = result["load_id"]
    before = journaled(reader, load_id)
    assert before == (60, total)

    again = run_cli(command, sql_env)
    assert again.returncode == 0, again.stderr
    noop = last_json(again.stdout)
    assert noop["already_loaded"] is True and noop["rows"] == 0
    assert f"already loaded: load id {load_id}, completed at " in again.stderr
    assert noop["completed_at"] is not None
    check_exact(reader, table, total)
    assert journaled(reader, load_id) == before

    fresh = run_cli([*command, "--fresh"], sql_env)  # on purpose: every row once more
    assert fresh.returncode == 0, fresh.stderr
    assert last_json(fresh.stdout)["load_id"] != load_id
    assert tuple(reader.execute(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {table}")
                 .fetchone()) == (2 * total, total)
    both = run_cli([*command, "--fresh", "--load-id", "x"], sql_env)
    assert both.returncode == 2 and "--fresh" in both.stderr


# -- an older journal ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_emulator():
    """An emulator of this module's own: its journal is created the old way here."""
    from azsql_emulator.process import EmulatorProcess

    with EmulatorProcess() as emu:
        yield emu



def create_old_journal(db) -> None:
    """The journal as releases before the mode/table_name/login/source_rows columns made it."""
    db.execute(f"CREATE TABLE {JOURNAL} ([load_id] nvarchar(128) NOT NULL, "
               "[batch_key] char(64) NOT NULL, [batch_id] nvarchar(max) NOT NULL, "
               "[target] nvarchar(300) NOT NULL, [rows] bigint NOT NULL, "
               "[committed_at] datetime2(3) NOT NULL DEFAULT SYSUTCDATETIME(), "
               "CONSTRAINT [PK_azsql_bulk_load_journal] PRIMARY KEY ([load_id], [batch_key]))")


def test_a_journal_from_before_the_new_columns_is_altered_and_keeps_working(
        tmp_path, own_emulator, driver_path):
    emu = own_emulator
    creds = emu.credentials
    env = clean_env(AZSQL_BULK_SQL_PASSWORD=creds.sql_password)
    args = ["--server", f"{emu.tds_host},{emu.tds_port}", "--database", emu.database,
            "--auth", "sql", "--sql-user", creds.sql_login, "--encrypt", "strict",
            "--server-certificate", emu.server_cert, "--host-name-in-certificate", "localhost"]
    db = pyodbc.connect(odbc_string(emu, driver_path, UID=creds.sql_login,
                                    PWD=creds.sql_password), autocommit=True)
    try:
        db.execute("CREATE SCHEMA [azsql_bulk]")
        create_old_journal(db)
        db.execute(f"INSERT INTO {JOURNAL} (load_id, batch_key, batch_id, target, rows) "
                   "VALUES ('old-load', ?, 'old/part-0.parquet#0:0', 'dbo.old_table', 7)",
                   "a" * 64)
        pq.write_table(pa.table({"id": pa.array(range(500), pa.int64())}),
                       tmp_path / "new.parquet")
        load = run_cli(["load", str(tmp_path / "new.parquet"), "--table", "dbo.after_upgrade",
                        "--load-id", "new-load", "--rows-per-batch", "100", *args], env)
        assert load.returncode == 0, load.stderr
        columns = {r[0] for r in db.execute(
            "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = "
            "'azsql_bulk' AND TABLE_NAME = 'load_journal'").fetchall()}
        assert {"mode", "table_name", "login", "source_rows"} <= columns
        loads = listed(args, env)
        assert (loads["old-load"]["table"], loads["old-load"]["rows"]) == ("dbo.old_table", 7)
        assert loads["old-load"]["mode"] is None and loads["old-load"]["state"] == "unknown"
        assert loads["old-load"]["logins"] == []
        new = loads["new-load"]
        assert (new["mode"], new["state"], new["rows"], new["logins"]) == (
            "append", "complete", 500, [creds.sql_login])
        shown = journal_cli(["show", "old-load", "--json"], args, env)
        assert last_json(shown.stdout)["sources"][0]["source"] == "old/part-0.parquet"
        rerun = run_cli(["load", str(tmp_path / "new.parquet"), "--table", "dbo.after_upgrade",
                         "--load-id", "new-load", "--rows-per-batch", "100", *args], env)
        assert rerun.returncode == 0 and "already loaded" in rerun.stdout
        assert db.execute("SELECT COUNT(*) FROM dbo.after_upgrade").fetchone()[0] == 500
    finally:
        db.close()


def test_an_identity_that_may_not_alter_an_old_journal_writes_it_as_before(
        tmp_path, own_emulator, driver_path):
    emu = own_emulator
    creds = emu.credentials
    db = pyodbc.connect(odbc_string(emu, driver_path, UID=creds.sql_login,
                                    PWD=creds.sql_password), autocommit=True)
    try:  # an old journal again (this module's emulator: nobody else uses it)
        db.execute(f"IF OBJECT_ID('azsql_bulk.load_journal') IS NOT NULL DROP TABLE {JOURNAL}")
        if not db.execute("SELECT COUNT(*) FROM sys.schemas WHERE name = 'azsql_bulk'"
                          ).fetchone()[0]:
            db.execute("CREATE SCHEMA [azsql_bulk]")
        create_old_journal(db)
        db.execute("CREATE TABLE dbo.writer_target (id bigint NOT NULL)")
        pq.write_table(pa.table({"id": pa.array(range(300), pa.int64())}),
                       tmp_path / "w.parquet")
        token = emu.issue_token(appid=creds.writer_app.client_id)  # no ALTER, no DDL
        env = clean_env(AZSQL_BULK_ACCESS_TOKEN=token, SSL_CERT_FILE=emu.ca_cert)
        args = ["--server", f"{emu.tds_host},{emu.tds_port}", "--database", emu.database,
                "--auth", "access-token", "--encrypt", "strict", "--server-certificate",
                emu.server_cert, "--host-name-in-certificate", "localhost"]
        command = ["load", str(tmp_path / "w.parquet"), "--table", "dbo.writer_target",
                   "--load-id", "by-writer", "--rows-per-batch", "100", *args]
        load = run_cli(command, env)
        assert load.returncode == 0, load.stderr
        assert "cannot add it" in load.stderr and token not in load.stdout + load.stderr
        columns = {r[0] for r in db.execute(
            "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = "
            "'azsql_bulk' AND TABLE_NAME = 'load_journal'").fetchall()}
        assert "login" not in columns  # the journal is as it was
        mine = listed(args, env)["by-writer"]
        assert (mine["rows"], mine["batches"], mine["mode"]) == (300, 3, None)
        again = run_cli(command, env)
        assert again.returncode == 0 and "already loaded" in again.stdout, again.stderr
        assert db.execute("SELECT COUNT(*) FROM dbo.writer_target").fetchone()[0] == 300
    finally:
        db.close()


def test_journal_usage_errors_exit_2_before_connecting(sql_env):
    missing = subprocess.run([SCRIPT, "journal", "prune", "--server", "127.0.0.1,1",
                              "--database", "db", "--auth", "sql", "--sql-user", "u"],
                             env=sql_env, capture_output=True, text=True, timeout=60,
                             check=False)
    assert missing.returncode == 2 and "--older-than" in missing.stderr
    bad_age = subprocess.run([SCRIPT, "journal", "prune", "--older-than", "soon"],
                             env=sql_env, capture_output=True, text=True, timeout=60,
                             check=False)
    assert bad_age.returncode == 2 and "30d" in bad_age.stderr
