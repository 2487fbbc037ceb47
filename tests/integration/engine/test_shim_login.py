"""Token logins through the native ODBC token shim, with real clients and the real driver.

turbodbc, pyodbc (without attrs_before) and unixODBC's isql put ``AccessToken=<jwt>`` in
the connection string; the shim hands it to Microsoft's driver as
SQL_COPT_SS_ACCESS_TOKEN. The emulator runs in a child process (turbodbc holds the GIL
in some calls) and checks every token's RS256 signature, so a login proves that the
exact token arrived.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing

import pytest
from support import inject_fault, odbc_string, wait_until

from engine.native_shim import ENV_SHIM_TARGET, prepare_environment, shim_path

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _shim_target(driver_path):
    # The shim reads the variable when unixODBC first loads it in this process.
    prepare_environment(driver_path)


@pytest.fixture(scope="module")
def shim() -> str:
    return str(shim_path())


def expected_login(emu) -> str:
    return f"{emu.credentials.service_principal.client_id}@{emu.tenant_id}"


def long_token(emu, size: int) -> str:
    """A valid token of about `size` characters: a normal one re-signed with a padding claim.

    The emulator's ``POST /token`` takes no extra claims, so this signs with the emulator's
    key from its state directory.
    """
    import jwt

    from azsql_emulator.identity import pki
    from azsql_emulator.identity.jwt_tokens import SigningKey, TokenIssuer

    key = SigningKey(pki.load_private_key(emu.state_dir / "signing-key.pem"),
                     pki.load_certificate(emu.state_dir / "signing-cert.pem"))
    issuer = TokenIssuer(key, emu.tenant_id)
    claims = jwt.decode(emu.issue_token(), options={"verify_signature": False})
    claims["pad"] = ""
    claims["pad"] = "x" * ((size - len(issuer.issue(claims))) * 3 // 4)
    return issuer.issue(claims)


def pyodbc_whoami(conn_str: str) -> str:
    with closing(pyodbc.connect(conn_str, timeout=15)) as conn:
        return conn.cursor().execute("SELECT SUSER_SNAME()").fetchone()[0]


def turbodbc_whoami(conn_str: str) -> str:
    turbodbc = pytest.importorskip("turbodbc", reason="turbodbc is built by `make setup`")
    conn = turbodbc.connect(connection_string=conn_str)
    try:
        cur = conn.cursor()
        cur.execute("SELECT SUSER_SNAME()")
        return cur.fetchall()[0][0]
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("encrypt", "extra"),
    [("strict", {}), ("yes", {"TrustServerCertificate": "yes"})],
    ids=["strict", "yes"],
)
def test_turbodbc_logs_in_with_access_token_keyword(emu_proc, shim, encrypt, extra):
    token = emu_proc.issue_token()
    conn_str = odbc_string(emu_proc, shim, encrypt=encrypt, **extra, AccessToken=token)
    assert turbodbc_whoami(conn_str) == expected_login(emu_proc)


def test_pyodbc_logs_in_without_attrs_before(emu_proc, shim):
    conn_str = odbc_string(emu_proc, shim, AccessToken=emu_proc.issue_token())
    assert pyodbc_whoami(conn_str) == expected_login(emu_proc)


def test_driver_recovers_an_idle_connection_with_the_kept_token(emu_proc, shim):
    """The driver re-reads the ACCESSTOKEN buffer when it reconnects a dropped idle session,
    so the shim must keep it until SQLFreeHandle (wiping it after connect breaks this)."""
    conn_str = odbc_string(emu_proc, shim, ConnectRetryCount=2, ConnectRetryInterval=1,
                           AccessToken=emu_proc.issue_token())
    with closing(pyodbc.connect(conn_str, timeout=15)) as conn:
        cur = conn.cursor()
        spid = cur.execute("SELECT @@SPID").fetchone()[0]
        logins = emu_proc.metrics()["logins_ok"]
        _kill_session(emu_proc, spid)
        # The driver recovers only a connection it finds dead before it sends: let the
        # reset arrive first.
        assert wait_until(lambda: spid not in {s["spid"] for s in emu_proc.sessions()})
        time.sleep(0.5)  # the server closed the socket before unregistering: margin only
        again, login = cur.execute("SELECT @@SPID, SUSER_SNAME()").fetchone()
    assert again != spid and login == expected_login(emu_proc)
    assert emu_proc.metrics()["logins_ok"] == logins + 1


def _kill_session(emu, spid: int) -> None:
    """Drop one session's socket through the control API's fault injection."""
    assert inject_fault(emu, kind="kill_sessions", session_ids=[spid])["killed"] == 1


def test_shim_driver_keyword_naming_the_loaded_driver_is_accepted(emu_proc, shim, driver_path):
    conn_str = odbc_string(emu_proc, shim, ShimDriver=driver_path,
                           AccessToken=emu_proc.issue_token())
    assert pyodbc_whoami(conn_str) == expected_login(emu_proc)


def test_shim_driver_keyword_naming_another_driver_is_refused(emu_proc, shim, tmp_path):
    token = emu_proc.issue_token()
    other = tmp_path / "libother.so"
    with pytest.raises(pyodbc.Error) as info:
        pyodbc_whoami(odbc_string(emu_proc, shim, ShimDriver=other, AccessToken=token))
    text = str(info.value)
    assert "HY000" in text and f"ShimDriver={other}" in text and ENV_SHIM_TARGET in text
    assert token not in text


@pytest.mark.parametrize("client", ["pyodbc", "turbodbc"])
def test_bulk_copy_keyword_still_logs_in_with_the_token(emu_proc, shim, client):
    """BulkCopy=yes makes the shim set SQL_COPT_SS_BCP before login (that the attribute
    reads 1 on the session is checked in test_odbc_handle.py); the token login is unchanged."""
    conn_str = odbc_string(emu_proc, shim, BulkCopy="yes", AccessToken=emu_proc.issue_token())
    whoami = pyodbc_whoami if client == "pyodbc" else turbodbc_whoami
    assert whoami(conn_str) == expected_login(emu_proc)


def test_bad_bulk_copy_value_is_refused_without_the_token(emu_proc, shim):
    token = emu_proc.issue_token()
    with pytest.raises(pyodbc.Error) as info:
        pyodbc_whoami(odbc_string(emu_proc, shim, BulkCopy="maybe", AccessToken=token))
    text = str(info.value)
    assert "HY000" in text and "BulkCopy" in text and "yes or no" in text
    assert token not in text and token[:20] not in text


def test_isql_logs_in(emu_proc, shim):
    isql = shutil.which("isql")
    if isql is None:
        pytest.skip("unixODBC's isql is not installed")
    conn_str = odbc_string(emu_proc, shim, AccessToken=emu_proc.issue_token())
    proc = subprocess.run([isql, "-k", "-b", conn_str], input="SELECT SUSER_SNAME()\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert expected_login(emu_proc) in proc.stdout


@pytest.mark.parametrize("client", ["pyodbc", "turbodbc"])
def test_30_kb_token(emu_proc, shim, client):
    token = long_token(emu_proc, 30 * 1024)
    assert len(token) >= 30 * 1024 - 4
    conn_str = odbc_string(emu_proc, shim, AccessToken=token)
    whoami = pyodbc_whoami if client == "pyodbc" else turbodbc_whoami
    assert whoami(conn_str) == expected_login(emu_proc)


def test_60_kb_token_with_pyodbc(emu_proc, shim):
    # pyodbc passes SQL_NTS; turbodbc passes a SQLSMALLINT length, so its whole connection
    # string must stay under 32,767 characters (unixODBC answers HY090 beyond that).
    token = long_token(emu_proc, 60 * 1024)
    assert pyodbc_whoami(odbc_string(emu_proc, shim, AccessToken=token)) == expected_login(
        emu_proc)


@pytest.mark.parametrize("client", ["pyodbc", "turbodbc"])
def test_expired_token_is_login_failure_18456_without_the_token(emu_proc, shim, client):
    token = emu_proc.issue_token(lifetime=-3600)
    conn_str = odbc_string(emu_proc, shim, AccessToken=token)
    if client == "pyodbc":
        with pytest.raises(pyodbc.Error) as info:
            pyodbc_whoami(conn_str)
    else:
        turbodbc = pytest.importorskip("turbodbc")
        with pytest.raises(turbodbc.Error) as info:
            turbodbc_whoami(conn_str)
    text = str(info.value)
    assert "18456" in text and "expired" in text
    assert token not in text and token[:40] not in text


def test_malformed_token_value_is_reported_without_the_token(emu_proc, shim):
    token = emu_proc.issue_token()
    with pytest.raises(pyodbc.Error) as info:
        pyodbc_whoami(odbc_string(emu_proc, shim) + ";AccessToken={" + token)
    text = str(info.value)
    assert "HY000" in text and "AccessToken" in text and "closing '}'" in text
    assert token[:20] not in text


def test_concurrent_connections_keep_their_own_tokens(emu_proc, shim):
    before = emu_proc.metrics()["logins_ok"]
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(4):
                conn_str = odbc_string(emu_proc, shim, AccessToken=emu_proc.issue_token())
                assert pyodbc_whoami(conn_str) == expected_login(emu_proc)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert emu_proc.metrics()["logins_ok"] >= before + 24


_CONNECT_SCRIPT = textwrap.dedent("""
    import sys, pyodbc
    try:
        pyodbc.connect(sys.argv[1], timeout=5)
    except pyodbc.Error as exc:
        print(exc)
        sys.exit(3)
""")


def _connect_in_fresh_process(conn_str: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CONNECT_SCRIPT, conn_str], env=env,
                          capture_output=True, text=True, timeout=60)


def test_missing_target_variable_is_im002_not_a_crash(shim):
    token = "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJub2JvZHkifQ.c2VjcmV0LXNpZ25hdHVyZQ"
    env = {k: v for k, v in os.environ.items() if k != ENV_SHIM_TARGET}
    proc = _connect_in_fresh_process(
        f"Driver={shim};Server=tcp:127.0.0.1,9;AccessToken={token}", env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "IM002" in proc.stdout and ENV_SHIM_TARGET in proc.stdout
    assert "prepare_environment" in proc.stdout
    assert token not in proc.stdout + proc.stderr


def test_unloadable_target_is_im003_naming_the_path(shim, tmp_path):
    not_a_library = tmp_path / "libmsodbcsql-18.6.so.2.1"
    not_a_library.write_text("not an ELF file")
    env = dict(os.environ, **{ENV_SHIM_TARGET: str(not_a_library)})
    proc = _connect_in_fresh_process(f"Driver={shim};Server=tcp:127.0.0.1,9;AccessToken=x", env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "IM003" in proc.stdout and str(not_a_library) in proc.stdout
