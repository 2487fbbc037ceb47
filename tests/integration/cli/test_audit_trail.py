"""The audit trail names the load (issue 22, part 3): the login's application name, as the
emulator's ``GET /sessions`` shows it, and ``SESSION_CONTEXT`` read back on the same
connection. Real clients against the emulator; nothing mocks the database."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import uuid

import pytest
from integration.cli.cli_env import SCRIPT, last_json, table_name, write_parquet
from loads import check_exact, connection_options
from support import HANG_SECONDS, wait_until

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def sessions_naming(emu, needle: str) -> list[dict]:
    return [s for s in emu.sessions() if needle in (s.get("app_name") or "")]


def test_a_cli_load_names_itself_in_its_sessions(tmp_path, emu_proc, sql_env, conn_args,
                                                 reader):
    total = write_parquet(tmp_path / "data", files=4, rows_per_file=1_000)
    table = table_name("audit")
    load_id = f"audit-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([SCRIPT, "load", str(tmp_path / "data"), "--table", table,
                             "--workers", "2", "--rows-per-batch", "100", "--load-id", load_id,
                             "--progress", "off", "--json", *conn_args], env=sql_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # its sessions are open from the set-up to the end of the load: stop it once one shows
        assert wait_until(lambda: sessions_naming(emu_proc, f"load={load_id}")
                          or proc.poll() is not None)
        os.kill(proc.pid, signal.SIGSTOP)
        assert proc.poll() is None, "the load ended before its sessions could be seen"
        named = sessions_naming(emu_proc, f"load={load_id}")
        assert named
        for session in named:
            assert session["app_name"].startswith("azsql-bulk/")
            assert session["app_name"].endswith(f" load={load_id}")
            assert len(session["app_name"]) <= 128
            assert emu_proc.credentials.sql_password not in session["app_name"]
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=HANG_SECONDS)
    assert proc.returncode == 0, err
    assert last_json(out)["load_id"] == load_id
    check_exact(reader, table, total)


def test_session_context_is_read_back_on_the_same_connection(emu_proc, monkeypatch):
    from engine.connection import ConnectionFactory
    from engine.credentials import CredentialOptions

    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", emu_proc.credentials.sql_password)
    options = connection_options(emu_proc, CredentialOptions(
        kind="sql", sql_user=emu_proc.credentials.sql_login))
    options = dataclasses.replace(options, audit={"dag": "nightly_orders", "task": "load[3]"})
    load_id = f"ctx-{uuid.uuid4().hex[:8]}"
    with ConnectionFactory(options) as factory:
        factory.name_load(load_id)  # what engine.prepare does once the load id is known
        with factory.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(
                "SELECT CAST(SESSION_CONTEXT(N'azsql_bulk.load_id') AS nvarchar(128)), "
                "CAST(SESSION_CONTEXT(N'airflow.dag_id') AS nvarchar(128)), "
                "CAST(SESSION_CONTEXT(N'airflow.task_id') AS nvarchar(128)), "
                "CAST(SESSION_CONTEXT(N'azsql_bulk.application') AS nvarchar(128))")
            got = list(cursor.fetchall()[0])
            assert got[:3] == [load_id, "nightly_orders", "load[3]"]
            assert got[3].startswith("azsql-bulk/")
            # read-only: a trigger or a later statement cannot rewrite who this session is
            with pytest.raises(Exception, match="15664"):
                cursor.execute("EXEC sys.sp_set_session_context @key = N'azsql_bulk.load_id', "
                               "@value = N'forged'")
            conn.rollback()
            (session,) = sessions_naming(emu_proc, f"load={load_id}")
            assert session["app_name"] == (f"{got[3]} load={load_id} dag=nightly_orders "
                                           "task=load[3]")
