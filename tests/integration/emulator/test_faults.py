"""Fault injection through the control API, as Microsoft's driver reports it."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, inject_fault, odbc_string, token_struct, wait_until

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


@pytest.fixture
def emu(emu):
    yield emu
    inject_fault(emu, **{"kind": "clear"})


def connect(emu, driver, token=None, autocommit=True, **extra):
    token = token or emu.identity.issue_token()
    return closing(pyodbc.connect(odbc_string(emu, driver, **extra),
                                  attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)},
                                  timeout=15, autocommit=autocommit))


def test_injected_login_error_reaches_the_client_once(emu, driver_path):
    pending = inject_fault(emu, **{"kind": "error", "number": 40613, "at": "login", "count": 1})
    assert pending["login_errors"] == [40613]
    with pytest.raises(pyodbc.Error) as info:
        connect(emu, driver_path)
    assert "40613" in str(info.value) and "not currently available" in str(info.value)
    assert emu.metrics()["logins_failed"].get("error_40613", 0) >= 1
    with connect(emu, driver_path) as conn:  # consumed: the next login works
        assert conn.cursor().execute("SELECT 1").fetchone()[0] == 1


def test_unknown_fault_is_a_400_naming_the_allowed_kinds(emu):
    with pytest.raises(urllib.error.HTTPError) as info:
        inject_fault(emu, **{"kind": "explode"})
    assert info.value.code == 400
    assert "kill_sessions" in info.value.read().decode()


def test_kill_sessions_drops_open_connections(emu, driver_path):
    # ConnectRetryCount=0: otherwise Driver 18 silently reconnects an idle connection it
    # finds dead before it sends, and whether it does depends on which comes first, the
    # reset or the next request (that recovery is tested in test_shim_login.py)
    with connect(emu, driver_path, ConnectRetryCount=0) as conn:
        cur = conn.cursor()
        assert cur.execute("SELECT 1").fetchone()[0] == 1
        assert inject_fault(emu, **{"kind": "kill_sessions"})["killed"] >= 1
        with pytest.raises(pyodbc.Error) as info:
            cur.execute("SELECT 1").fetchone()
    assert "08S01" in str(info.value) or "IMC06" in str(info.value)


def test_expire_tokens_refuses_earlier_tokens_at_login(emu, driver_path):
    old = emu.identity.issue_token()
    time.sleep(1.1)  # token times have one-second resolution
    inject_fault(emu, **{"kind": "expire_tokens"})
    with pytest.raises(pyodbc.Error) as info:
        connect(emu, driver_path, token=old)
    assert "18456" in str(info.value)
    time.sleep(1.1)
    with connect(emu, driver_path) as conn:  # a token issued afterwards is fine
        assert conn.cursor().execute("SELECT 1").fetchone()[0] == 1


def test_revoked_principal_cannot_log_in(emu, driver_path):
    reader = emu.identity.credentials.reader_app
    inject_fault(emu, **{"kind": "revoke", "principal": reader.client_id})
    with pytest.raises(pyodbc.Error, match="18456"):
        connect(emu, driver_path, token=emu.identity.issue_token(appid=reader.client_id))
    with connect(emu, driver_path) as conn:  # others are unaffected
        assert conn.cursor().execute("SELECT 1").fetchone()[0] == 1


def test_fatal_rpc_error_drops_the_link_and_rolls_back(emu, driver_path):
    with connect(emu, driver_path, autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.fault_tx (i int)")
        conn.commit()
        cur.execute("INSERT INTO dbo.fault_tx VALUES (1)")  # uncommitted
        inject_fault(emu, **{"kind": "error", "number": 40613, "count": 1})
        with pytest.raises(pyodbc.Error) as info:
            cur.execute("INSERT INTO dbo.fault_tx VALUES (?)", 2)
        assert "40613" in str(info.value)
    with connect(emu, driver_path) as conn:
        assert conn.cursor().execute("SELECT COUNT(*) FROM dbo.fault_tx").fetchone()[0] == 0


def test_class_16_rpc_error_keeps_the_session(emu, driver_path):
    with connect(emu, driver_path) as conn:
        cur = conn.cursor()
        inject_fault(emu, **{"kind": "error", "number": 49918, "count": 1})
        with pytest.raises(pyodbc.Error) as info:
            cur.execute("SELECT ?", 1).fetchone()
        assert "49918" in str(info.value)
        assert cur.execute("SELECT ?", 7).fetchone()[0] == 7


def test_dropped_link_mid_transaction_surfaces_with_connect_retry_off(emu, driver_path):
    """With ConnectRetryCount=0 (what the engine sets) the driver does not reconnect behind
    the caller's back, so a transaction lost with its link is reported, not committed empty."""
    token = emu.identity.issue_token()
    conn = pyodbc.connect(odbc_string(emu, driver_path, ConnectRetryCount=0),
                          attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)},
                          timeout=15, autocommit=False)
    with closing(conn):
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.fault_retry_off (i int)")
        conn.commit()
        cur.execute("INSERT INTO dbo.fault_retry_off VALUES (1)")
        inject_fault(emu, **{"kind": "kill_sessions"})
        with pytest.raises(pyodbc.Error) as info:
            cur.execute("INSERT INTO dbo.fault_retry_off VALUES (2)")
            conn.commit()
        assert "08S01" in str(info.value) or "08S02" in str(info.value) or \
            "IMC06" in str(info.value)
    with connect(emu, driver_path) as check:
        assert check.cursor().execute(
            "SELECT COUNT(*) FROM dbo.fault_retry_off").fetchone()[0] == 0


def test_session_recovery_relogin_with_an_expired_token_is_refused(emu, driver_path):
    """Driver 18 silently re-logs in an idle session the server dropped, with the SAME
    token; once that token counts as expired, the emulator refuses it as Azure does."""
    token = emu.identity.issue_token()
    conn = pyodbc.connect(odbc_string(emu, driver_path),
                          attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)},
                          timeout=15, autocommit=True)
    with closing(conn):
        cur = conn.cursor()
        spid = cur.execute("SELECT @@SPID").fetchone()[0]
        ok_before = emu.metrics()["logins_ok"]
        time.sleep(1.1)  # token times have one-second resolution
        inject_fault(emu, **{"kind": "expire_tokens"})
        inject_fault(emu, **{"kind": "kill_sessions"})
        failed_before = emu.metrics()["logins_failed"].get("expired", 0)
        # the driver recovers only a connection it finds dead before it sends: the socket
        # is closed before the session leaves the list
        assert wait_until(lambda: spid not in {s["spid"] for s in emu.tds.sessions_info()})
        with pytest.raises(pyodbc.Error):
            cur.execute("SELECT 1").fetchone()
    metrics = emu.metrics()
    assert metrics["logins_failed"].get("expired", 0) > failed_before  # a re-login came, refused
    assert metrics["logins_ok"] == ok_before


def test_throttle_slows_ingest_without_failing_it(emu_proc, driver_path):
    """Azure's log-rate governance delays writes; it does not fail them. The emulator's own
    accounting (bytes admitted, seconds waited) shows the throttle held."""
    token = emu_proc.issue_token()
    conn = pyodbc.connect(odbc_string(emu_proc, driver_path),
                          attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)},
                          timeout=15, autocommit=True)
    rows = [(i, "x" * 200) for i in range(3000)]  # ~1.3 MB of parameter data
    try:
        inject_fault(emu_proc, **{"kind": "throttle", "bytes_per_second": 200_000})
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.throttled (i int, s nvarchar(300))")
        cur.fast_executemany = True
        before = emu_proc.metrics()["bytes_received"]
        cur.executemany("INSERT INTO dbo.throttled VALUES (?, ?)", rows)
        received = emu_proc.metrics()["bytes_received"] - before
        assert cur.execute("SELECT COUNT(*) FROM dbo.throttled").fetchone()[0] == len(rows)
    finally:
        pending = inject_fault(emu_proc, **{"kind": "throttle", "bytes_per_second": 0})
        conn.close()
    # A token bucket with one second of burst: over 1.2 MB at 200 kB/s must have waited
    # several seconds in total; >= 1 s leaves room for a slow machine's processing time,
    # which drains the bucket too.
    assert received > 1_200_000
    assert pending["throttled_seconds"] >= 1.0
