"""``--expire-sessions``: the server ends a session whose login token expired; by default not."""

from __future__ import annotations

import time
from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct, wait_until

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

LIFETIME = 3


def _connect(emu, driver, token):
    return closing(pyodbc.connect(odbc_string(emu, driver), autocommit=True, timeout=15,
                                  attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)}))


def test_expired_token_ends_session_only_with_expire_sessions(driver_path):
    from azsql_emulator.app import Emulator

    with Emulator(token_lifetime=LIFETIME, expire_sessions=True) as strict, \
            Emulator(token_lifetime=LIFETIME) as lenient:
        strict_token = strict.identity.issue_token()  # the configured 3 s lifetime
        lenient_token = lenient.identity.issue_token()
        with _connect(strict, driver_path, strict_token) as ending, \
                _connect(lenient, driver_path, lenient_token) as lasting:
            spid = ending.cursor().execute("SELECT @@SPID").fetchone()[0]
            assert lasting.cursor().execute("SELECT 1").fetchone()[0] == 1
            # the server ends the expired session on its own (after the expiry; how soon
            # depends on the machine's load, so wait for it with a bound for a hang only)
            assert wait_until(
                lambda: spid not in {s["spid"] for s in strict.tds.sessions_info()})
            # ... and the lenient server's token has expired by now as well
            expiry = max(s["token_expires"] for s in lenient.tds.sessions_info())
            time.sleep(max(0.0, expiry - time.time()) + 1.1)
            with pytest.raises(pyodbc.Error):
                ending.cursor().execute("SELECT 1").fetchone()
            # without --expire-sessions, Azure's behaviour: tokens are checked at login only
            assert lasting.cursor().execute("SELECT 2").fetchone()[0] == 2
        assert strict.metrics()["logins_ok"] == 1
        # the expiry ended one session, not the server: a fresh token logs in again
        with _connect(strict, driver_path, strict.identity.issue_token(lifetime=60)) as again:
            assert again.cursor().execute("SELECT 3").fetchone()[0] == 3
