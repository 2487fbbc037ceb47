"""Clients other than pyodbc log in and query: python-tds (pytds) and mssql-python.

Each writes its own TDS (pytds) or ships its own copy of the driver (mssql-python), so
they send packet shapes the pyodbc tests do not: different PRELOGIN options, LOGIN7
flags, RPC parameter encodings and transaction requests.
"""

from __future__ import annotations

import datetime as dt
import struct
from contextlib import closing
from decimal import Decimal

import pytest

pytestmark = pytest.mark.integration


def _table_name(request):
    return "dbo.oc_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")


# -- python-tds ---------------------------------------------------------------------------

pytds = pytest.importorskip("pytds")


def _pytds_tls_kwargs(emu):
    """pytds encrypts only through pyOpenSSL; without it, use the --tls off emulator."""
    pytest.importorskip("OpenSSL", reason="pytds needs pyOpenSSL for TLS")
    # pytds' own host-name check calls X509.get_extension, which pyOpenSSL >= 24.3 removed;
    # the chain is still verified against the emulator's CA.
    return {"cafile": emu.ca_cert, "validate_host": False}


def _pytds_connect(emu, *, tls, token=None, autocommit=True):
    creds = emu.identity.credentials
    kwargs = _pytds_tls_kwargs(emu) if tls else {}
    if token is not None:
        kwargs["access_token_callable"] = lambda: token
    else:
        kwargs.update(user=creds.sql_login, password=creds.sql_password)
    return closing(pytds.connect(dsn=emu.tds_host, port=emu.tds_port, database=emu.database,
                                 login_timeout=15, timeout=30, autocommit=autocommit, **kwargs))


def _session(emu, spid):
    return next(s for s in emu.tds.sessions_info() if s["spid"] == spid)


def test_pytds_sql_auth_unencrypted(emu_tls_off):
    with _pytds_connect(emu_tls_off, tls=False) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 40 + 2, N'snow ☃', SUSER_SNAME(), DB_NAME(), @@SPID")
        answer, text, login, db, spid = cur.fetchone()
        assert (answer, text, login, db) == (42, "snow ☃", emu_tls_off.identity.credentials
                                             .sql_login, emu_tls_off.database)
        assert _session(emu_tls_off, spid)["encryption"] == "none"


def test_pytds_sql_auth_encrypted(emu):
    with _pytds_connect(emu, tls=True) as conn:
        cur = conn.cursor()
        cur.execute("SELECT SUSER_SNAME(), @@SPID")
        login, spid = cur.fetchone()
        assert login == emu.identity.credentials.sql_login
        assert _session(emu, spid)["encryption"] == "tds7-full"


def test_pytds_wrong_password_is_18456(emu_tls_off):
    creds = emu_tls_off.identity.credentials
    with pytest.raises(pytds.Error) as info:
        pytds.connect(dsn=emu_tls_off.tds_host, port=emu_tls_off.tds_port,
                      database=emu_tls_off.database, user=creds.sql_login, password="nope",
                      login_timeout=15, disable_connect_retry=True)
    assert getattr(info.value, "number", None) == 18456 or "18456" in str(info.value)


def test_pytds_access_token(emu):
    token = emu.identity.issue_token()
    with _pytds_connect(emu, tls=True, token=token) as conn:
        cur = conn.cursor()
        cur.execute("SELECT SUSER_SNAME()")
        sp = emu.identity.credentials.service_principal
        assert cur.fetchone()[0] == f"{sp.client_id}@{emu.tenant_id}"


def test_pytds_expired_token_refused(emu):
    token = emu.identity.issue_token(lifetime=-3600)
    with pytest.raises(pytds.Error, match="expired"):
        pytds.connect(dsn=emu.tds_host, port=emu.tds_port, database=emu.database,
                      access_token_callable=lambda: token, login_timeout=15,
                      disable_connect_retry=True, **_pytds_tls_kwargs(emu))


def test_pytds_parameters_types_and_transactions(emu_tls_off, request):
    table = _table_name(request)
    with _pytds_connect(emu_tls_off, tls=False, autocommit=False) as conn, \
            _pytds_connect(emu_tls_off, tls=False) as other:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE {table} (id int NOT NULL PRIMARY KEY, name nvarchar(30), "
                    "amount decimal(12,2), at datetime2(6), raw varbinary(10), flag bit, "
                    "big bigint, ratio float)")
        conn.commit()
        rows = [
            (1, "één ☃", Decimal("12.50"), dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
             pytds.Binary(b"\x00\xff"), True, 2**40, 0.125),
            (2, None, None, None, None, None, None, None),
        ]
        insert = f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        for row in rows:  # pytds' executemany types every row's parameters like the first's
            cur.execute(insert, row)
        check = other.cursor()
        check.execute(f"SELECT COUNT(*) FROM {table}")
        assert check.fetchone()[0] == 0  # not committed yet
        conn.rollback()
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        assert cur.fetchone()[0] == 0
        cur.executemany(insert, rows[:1])
        cur.execute(insert, rows[1])
        conn.commit()
        check.execute(f"SELECT * FROM {table} WHERE id >= %s ORDER BY id", (1,))
        got = [tuple(r) for r in check.fetchall()]
        assert got == rows
        with pytest.raises(pytds.IntegrityError):
            cur.execute(f"INSERT INTO {table} (id) VALUES (%s)", (1,))
        conn.rollback()
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1


# -- mssql-python -------------------------------------------------------------------------

mssql_python = pytest.importorskip("mssql_python")


def _mssql_python_string(emu, mode, **extra):
    parts = {"Server": f"tcp:{emu.tds_host},{emu.tds_port}", "Database": emu.database}
    if mode == "strict":
        parts.update(Encrypt="strict", ServerCertificate=emu.server_cert,
                     HostNameInCertificate="localhost")
    else:
        parts.update(Encrypt="yes", TrustServerCertificate="yes")
    parts.update(extra)
    return ";".join(f"{k}={v}" for k, v in parts.items())


@pytest.mark.parametrize("mode", ["strict", "yes"])
def test_mssql_python_sql_auth_and_query(emu, mode):
    creds = emu.identity.credentials
    conn = mssql_python.connect(_mssql_python_string(emu, mode, UID=creds.sql_login,
                                                     PWD=creds.sql_password), autocommit=True)
    with closing(conn):
        cur = conn.cursor()
        cur.execute("SELECT 40 + 2, N'snow ☃', SUSER_SNAME(), @@SPID")
        answer, text, login, spid = cur.fetchone()
        assert (answer, text, login) == (42, "snow ☃", creds.sql_login)
        assert _session(emu, spid)["encryption"] == ("strict" if mode == "strict" else "tds7-full")
        cur.execute("SELECT ? + 1, ?", (41, "x"))
        assert tuple(cur.fetchone()) == (42, "x")


def test_mssql_python_token_login_and_transactions(emu, request):
    token = emu.identity.issue_token()
    raw = token.encode("utf-16-le")
    conn = mssql_python.connect(_mssql_python_string(emu, "strict"), autocommit=False,
                                attrs_before={1256: struct.pack("<I", len(raw)) + raw})
    table = _table_name(request)
    with closing(conn):
        cur = conn.cursor()
        cur.execute("SELECT SUSER_SNAME()")
        sp = emu.identity.credentials.service_principal
        assert cur.fetchone()[0] == f"{sp.client_id}@{emu.tenant_id}"
        cur.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name nvarchar(20), "
                    "amount decimal(10,2), at datetime2)")
        conn.commit()
        rows = [(1, "a", Decimal("1.25"), dt.datetime(2024, 1, 1, 1, 2, 3, 456789)),
                (2, "b☃", None, None)]
        cur.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", rows)
        conn.rollback()
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        assert cur.fetchone()[0] == 0
        cur.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", rows)
        conn.commit()
        cur.execute(f"SELECT * FROM {table} ORDER BY id")
        assert [tuple(r) for r in cur.fetchall()] == rows


def test_mssql_python_bad_token_refused(emu):
    token = emu.identity.issue_token(audience="https://storage.azure.com/")
    raw = token.encode("utf-16-le")
    with pytest.raises(mssql_python.Error) as info:
        mssql_python.connect(_mssql_python_string(emu, "strict"),
                             attrs_before={1256: struct.pack("<I", len(raw)) + raw})
    assert "18456" in str(info.value) or "Login failed" in str(info.value)


# -- turbodbc (Microsoft's driver; emulator in a child process) ------------------------------

def test_turbodbc_parameters_and_executemany(emu_proc, driver_path, request):
    turbodbc = pytest.importorskip("turbodbc")
    from support import odbc_string

    creds = emu_proc.credentials
    table = _table_name(request)
    conn = turbodbc.connect(
        connection_string=odbc_string(emu_proc, driver_path, UID=creds.sql_login,
                                      PWD=creds.sql_password),
        turbodbc_options=turbodbc.make_options(prefer_unicode=True))
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE {table} (id int NOT NULL, name nvarchar(20), "
                    "at datetime2(6), ratio float)")
        rows = [[1, "a☃", dt.datetime(2024, 1, 1, 2, 3, 4, 5), 0.5],
                [2, None, None, None], [3, "ccc", dt.datetime(1999, 12, 31), -1.25]]
        cur.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)", rows)
        conn.commit()
        cur.execute(f"SELECT * FROM {table} ORDER BY id")
        assert cur.fetchall() == rows
        cur.execute(f"SELECT COUNT(*), CAST(? AS nvarchar(10)) FROM {table} WHERE id > ?",
                    ["x☃", 1])
        assert cur.fetchall() == [[2, "x☃"]]
        assert emu_proc.metrics()["rows_inserted"].get(f"appdb.{table}", 0) == 3
    finally:
        conn.close()
