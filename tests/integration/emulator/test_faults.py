"""Fault injection through the control API, seen by Microsoft's driver."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def post(emu, path, body):
    req = urllib.request.Request(emu.control_url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def connect(emu, driver):
    return closing(pyodbc.connect(
        odbc_string(emu, driver),
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(emu.identity.issue_token())},
        timeout=15))


def test_injected_login_error_reaches_the_client_once(emu, driver_path):
    assert post(emu, "/faults", {"login_error": 40613, "count": 1}) == {"login_errors": [40613]}
    with pytest.raises(pyodbc.Error) as info:
        connect(emu, driver_path)
    assert "40613" in str(info.value) and "not currently available" in str(info.value)
    assert emu.metrics()["logins_failed"].get("error_40613", 0) >= 1
    with connect(emu, driver_path) as conn:  # consumed: the next login works
        assert conn.cursor().execute("SELECT 1").fetchone()[0] == 1


def test_unknown_fault_is_a_400_naming_the_allowed_fields(emu):
    with pytest.raises(urllib.error.HTTPError) as info:
        post(emu, "/faults", {"login_eror": 40613})
    assert info.value.code == 400
    assert "login_error" in info.value.read().decode()


def test_kill_sessions_drops_open_connections(emu, driver_path):
    with connect(emu, driver_path) as conn:
        cur = conn.cursor()
        assert cur.execute("SELECT 1").fetchone()[0] == 1
        assert post(emu, "/faults/kill_sessions", {})["killed"] >= 1
        with pytest.raises(pyodbc.Error):
            cur.execute("SELECT 1").fetchone()
