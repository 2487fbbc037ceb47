"""Microsoft's ODBC Driver 18 (through pyodbc and turbodbc) logs in to the emulator.

Every test talks to a real emulator over real sockets with the real driver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def connect(emu, driver, token=None, **kw):
    """Open a pyodbc connection; use in `with closing(...)` (pyodbc's `with` only commits)."""
    attrs = {SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)} if token else None
    return closing(pyodbc.connect(odbc_string(emu, driver, **kw), attrs_before=attrs, timeout=15))


def wait_until(predicate, timeout=120.0):  # a bound for a hang; a busy machine never hits it
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def whoami(conn) -> tuple[str, str, int]:
    return tuple(conn.cursor().execute("SELECT SUSER_SNAME(), DB_NAME(), @@SPID").fetchone())


def test_token_login_strict_with_pinned_certificate(emu, driver_path):
    token = emu.identity.issue_token()
    with connect(emu, driver_path, token, encrypt="strict") as conn:
        login, db, spid = whoami(conn)
    sp = emu.identity.credentials.service_principal
    assert login == f"{sp.client_id}@{emu.tenant_id}"
    assert db == emu.database and spid >= 51
    assert wait_until(lambda: spid not in {s["spid"] for s in emu.tds.sessions_info()})


def test_token_login_encrypt_yes_trust_server_certificate(emu, driver_path):
    token = emu.identity.issue_token()
    with connect(emu, driver_path, token, encrypt="yes", TrustServerCertificate="yes") as conn:
        assert whoami(conn)[1] == emu.database
        enc = [s["encryption"] for s in emu.tds.sessions_info()
               if s["spid"] == whoami(conn)[2]]
    assert enc == ["tds7-full"]


def test_encrypt_yes_rejects_an_untrusted_certificate(emu, driver_path):
    token = emu.identity.issue_token()
    with pytest.raises(pyodbc.Error, match="certificate"):
        connect(emu, driver_path, token, encrypt="yes", Server=f"tcp:localhost,{emu.tds_port}")


def test_encrypt_yes_with_ca_trusted_through_ssl_cert_file(emu, driver_path, tmp_path):
    """Does the driver honour SSL_CERT_FILE? Run in a fresh process so OpenSSL reads it."""
    token_file = tmp_path / "token"
    token_file.write_text(emu.identity.issue_token())
    script = textwrap.dedent(f"""
        import pyodbc, struct, pathlib
        raw = pathlib.Path({str(token_file)!r}).read_text().encode("utf-16-le")
        conn = pyodbc.connect(
            "Driver={driver_path};Server=tcp:localhost,{emu.tds_port};Database={emu.database};"
            "Encrypt=yes;LoginTimeout=15",
            attrs_before={{1256: struct.pack("<I", len(raw)) + raw}})
        print(conn.cursor().execute("SELECT DB_NAME()").fetchone()[0])
    """)
    env = dict(os.environ, SSL_CERT_FILE=emu.ca_cert)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == emu.database


def test_encrypt_no_with_tls_off_logs_in(emu_tls_off, driver_path):
    token = emu_tls_off.identity.issue_token()
    with connect(emu_tls_off, driver_path, token, encrypt="no") as conn:
        spid = whoami(conn)[2]
        enc = [s["encryption"] for s in emu_tls_off.tds.sessions_info() if s["spid"] == spid]
    assert enc == ["login-only"]


def test_encrypt_no_is_refused_by_default_policy_only_if_client_cannot_encrypt(emu, driver_path):
    # Encrypt=no sends ENCRYPT_OFF; the default policy answers ENCRYPT_REQ, so the driver
    # encrypts the whole session and verifies the certificate (wire notes matrix).
    token = emu.identity.issue_token()
    with connect(emu, driver_path, token, encrypt="no", TrustServerCertificate="yes") as conn:
        spid = whoami(conn)[2]
        enc = [s["encryption"] for s in emu.tds.sessions_info() if s["spid"] == spid]
    assert enc == ["tds7-full"]


def test_sql_authentication(emu, driver_path):
    creds = emu.identity.credentials
    with connect(emu, driver_path, encrypt="strict", UID=creds.sql_login,
                 PWD=creds.sql_password) as conn:
        assert whoami(conn)[0] == creds.sql_login


def test_sql_authentication_wrong_password(emu, driver_path):
    creds = emu.identity.credentials
    with pytest.raises(pyodbc.Error, match="18456"):
        connect(emu, driver_path, encrypt="strict", UID=creds.sql_login, PWD="wrong;pw")


def test_strict_policy_refuses_tds7(driver_path):
    from azsql_emulator.app import Emulator

    with Emulator(tls="strict") as emu:
        token = emu.identity.issue_token()
        with pytest.raises(pyodbc.Error):
            connect(emu, driver_path, token, encrypt="yes", TrustServerCertificate="yes")
        with connect(emu, driver_path, token, encrypt="strict") as conn:
            assert whoami(conn)[1] == emu.database


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("expired", "expired"),
        ("audience", "audience"),
        ("unknown", "unknown_principal"),
    ],
)
def test_bad_tokens_are_refused_with_reason(emu, driver_path, kind, message):
    ident = emu.identity
    if kind == "expired":
        token = ident.issue_token(lifetime=-3600)
    elif kind == "audience":
        token = ident.issue_token(audience="https://storage.azure.com/")
    else:
        token = ident.issue_token(appid=ident.credentials.no_user_app.client_id)
    before = emu.metrics()["logins_failed"].get(message, 0)
    with pytest.raises(pyodbc.Error) as info:
        connect(emu, driver_path, token)
    text = str(info.value)
    assert "18456" in text
    assert token not in text
    assert emu.metrics()["logins_failed"].get(message, 0) == before + 1


def test_unknown_database_is_4060(emu, driver_path):
    with pytest.raises(pyodbc.Error, match="4060"):
        connect(emu, driver_path, emu.identity.issue_token(), database="nosuchdb")


def test_turbodbc_sql_auth_and_query(emu_proc, driver_path):
    turbodbc = pytest.importorskip("turbodbc")
    creds = emu_proc.credentials
    conn = turbodbc.connect(connection_string=odbc_string(
        emu_proc, driver_path, UID=creds.sql_login, PWD=creds.sql_password))
    try:
        cur = conn.cursor()
        cur.execute("SELECT 40 + 2 AS answer, N'snow ☃' AS s")
        assert cur.fetchall() == [[42, "snow ☃"]]
    finally:
        conn.close()
