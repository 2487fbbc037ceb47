"""Connection.odbc_handle: the driver manager's SQLHDBC of a token-authenticated turbodbc session.

turbodbc is built with scripts/turbodbc-handle.patch, which exposes the handle. The
bulk-copy writer must give Microsoft's ``bcp_*`` functions the driver manager's handle,
not the driver's (issue 18), so these tests call unixODBC (``libodbc.so.2``) through
ctypes on it: unixODBC answers only for handles it allocated itself, the handle differs
from the driver's own (``SQL_DRIVER_HDBC``), and a statement opened on it runs in
turbodbc's session (same ``@@SPID``, and it sees turbodbc's uncommitted rows).
"""

from __future__ import annotations

import ctypes
import dataclasses
import uuid
from collections.abc import Iterator

import pytest
from loads import connection_options

from engine.connection import ConnectionFactory, ConnectionOptions
from engine.credentials import ENV_ACCESS_TOKEN, CredentialOptions
from engine.odbc_connection import Connection

pytest.importorskip("turbodbc", reason="turbodbc is built by `make setup`")
pytestmark = pytest.mark.integration

# sql.h / sqlext.h / msodbcsql.h
SQL_SUCCESS, SQL_SUCCESS_WITH_INFO, SQL_NO_DATA, SQL_INVALID_HANDLE = 0, 1, 100, -2
SQL_HANDLE_STMT = 3
SQL_NTS = -3
SQL_C_SLONG = -16
SQL_DRIVER_HDBC, SQL_DBMS_NAME, SQL_DATABASE_NAME = 3, 17, 16
SQL_COPT_SS_BCP = 1219


def _ok(rc: int) -> bool:
    return rc in (SQL_SUCCESS, SQL_SUCCESS_WITH_INFO)


class DriverManager:
    """The few unixODBC calls the tests make, on raw handles (SQLWCHAR is UTF-16 here)."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libodbc.so.2")
        except OSError:
            pytest.skip("unixODBC's libodbc.so.2 is not installed")
        vp, sh, ip = ctypes.c_void_p, ctypes.c_short, ctypes.c_int
        self.lib.SQLGetInfoW.argtypes = [vp, ctypes.c_ushort, vp, sh, ctypes.POINTER(sh)]
        self.lib.SQLGetConnectAttrW.argtypes = [vp, ip, vp, ip, ctypes.POINTER(ip)]
        self.lib.SQLAllocHandle.argtypes = [sh, vp, ctypes.POINTER(vp)]
        self.lib.SQLFreeHandle.argtypes = [sh, vp]
        self.lib.SQLExecDirectW.argtypes = [vp, ctypes.c_char_p, ip]
        self.lib.SQLFetch.argtypes = [vp]
        self.lib.SQLGetData.argtypes = [vp, ctypes.c_ushort, sh, vp, ctypes.c_ssize_t,
                                        ctypes.POINTER(ctypes.c_ssize_t)]
        for name in ("SQLGetInfoW", "SQLGetConnectAttrW", "SQLAllocHandle", "SQLFreeHandle",
                     "SQLExecDirectW", "SQLFetch", "SQLGetData"):
            getattr(self.lib, name).restype = sh

    def info_text(self, hdbc: int, info: int) -> str:
        buf = ctypes.create_string_buffer(512)
        size = ctypes.c_short()
        rc = self.lib.SQLGetInfoW(hdbc, info, buf, len(buf), ctypes.byref(size))
        assert _ok(rc), f"SQLGetInfoW({info}) returned {rc}"
        return buf.raw[:size.value].decode("utf-16-le")

    def info_handle(self, hdbc: int, info: int) -> tuple[int, int]:
        """(return code, pointer-sized answer) of SQLGetInfoW."""
        value = ctypes.c_void_p()
        rc = self.lib.SQLGetInfoW(hdbc, info, ctypes.byref(value), ctypes.sizeof(value), None)
        return rc, value.value or 0

    def connect_attr(self, hdbc: int, attribute: int) -> int:
        value = ctypes.c_uint64(0)  # zeroed: the driver writes a 32-bit SQLUINTEGER
        rc = self.lib.SQLGetConnectAttrW(hdbc, attribute, ctypes.byref(value),
                                         ctypes.sizeof(value), None)
        assert _ok(rc), f"SQLGetConnectAttrW({attribute}) returned {rc}"
        return value.value & 0xFFFFFFFF

    def scalar_int(self, hdbc: int, sql: str) -> int:
        """Run ``sql`` on a new statement of ``hdbc`` and read the first row's int."""
        stmt = ctypes.c_void_p()
        assert _ok(self.lib.SQLAllocHandle(SQL_HANDLE_STMT, hdbc, ctypes.byref(stmt)))
        try:
            text = (sql + "\0").encode("utf-16-le")
            rc = self.lib.SQLExecDirectW(stmt, text, SQL_NTS)
            assert _ok(rc), f"SQLExecDirectW returned {rc}"
            assert _ok(self.lib.SQLFetch(stmt))
            value, indicator = ctypes.c_int32(), ctypes.c_ssize_t()
            assert _ok(self.lib.SQLGetData(stmt, 1, SQL_C_SLONG, ctypes.byref(value),
                                           ctypes.sizeof(value), ctypes.byref(indicator)))
            return value.value
        finally:
            self.lib.SQLFreeHandle(SQL_HANDLE_STMT, stmt)


@pytest.fixture(scope="module")
def dm() -> DriverManager:
    return DriverManager()


@pytest.fixture
def token_options(emu_proc, monkeypatch) -> ConnectionOptions:
    """Options that log in with an emulator-issued token (credential kind access-token)."""
    monkeypatch.setenv(ENV_ACCESS_TOKEN, emu_proc.issue_token())
    return connection_options(emu_proc, CredentialOptions(kind="access-token"))


def _open(options: ConnectionOptions, **changes: object) -> Iterator[Connection]:
    with ConnectionFactory(dataclasses.replace(options, **changes)) as factory:
        conn = factory.connect()
        try:
            yield conn
        finally:
            conn.close()


@pytest.fixture
def bulk_conn(token_options) -> Iterator[Connection]:
    yield from _open(token_options, bulk_copy=True)


@pytest.fixture
def plain_conn(token_options) -> Iterator[Connection]:
    yield from _open(token_options)


def _spid_and_login(conn: Connection) -> tuple[int, str]:
    cursor = conn.cursor()
    cursor.execute("SELECT @@SPID, SUSER_SNAME()")
    spid, login = cursor.fetchall()[0]
    cursor.close()
    return spid, login


def test_the_patched_turbodbc_exposes_the_handle():
    import turbodbc_intern

    assert isinstance(turbodbc_intern.Connection.__dict__["odbc_handle"], property), (
        "turbodbc was built without scripts/turbodbc-handle.patch: run "
        "`bash scripts/build-turbodbc.sh .venv/bin/python`")


def test_handle_answers_for_the_emulators_session(emu_proc, dm, bulk_conn):
    handle = bulk_conn.odbc_handle
    assert isinstance(handle, int) and handle > 0
    # The driver reports the server's LOGINACK program name; the emulator sends SQL Server's.
    assert dm.info_text(handle, SQL_DBMS_NAME) == "Microsoft SQL Server"
    assert dm.info_text(handle, SQL_DATABASE_NAME) == emu_proc.database


def test_handle_is_the_driver_managers_not_the_drivers(dm, bulk_conn):
    handle = bulk_conn.odbc_handle
    assert handle is not None
    rc, driver_hdbc = dm.info_handle(handle, SQL_DRIVER_HDBC)
    # SQL_DRIVER_HDBC is answered by the driver manager, for a handle it allocated, with
    # the driver's own handle behind it: a different pointer.
    assert _ok(rc) and driver_hdbc not in (0, handle)
    # unixODBC checks every handle against the ones it allocated: the driver's is refused.
    rc_driver, _ = dm.info_handle(driver_hdbc, SQL_DRIVER_HDBC)
    assert rc_driver == SQL_INVALID_HANDLE


def test_bulk_copy_option_sets_sql_copt_ss_bcp(dm, bulk_conn, plain_conn):
    assert bulk_conn.odbc_handle is not None and plain_conn.odbc_handle is not None
    assert dm.connect_attr(bulk_conn.odbc_handle, SQL_COPT_SS_BCP) == 1
    assert dm.connect_attr(plain_conn.odbc_handle, SQL_COPT_SS_BCP) == 0


def test_statement_on_the_handle_runs_in_turbodbcs_session_and_transaction(emu_proc, dm,
                                                                          bulk_conn):
    spid, login = _spid_and_login(bulk_conn)
    # the token's identity: emu_proc.issue_token() issues for the service principal
    assert login == f"{emu_proc.credentials.service_principal.client_id}@{emu_proc.tenant_id}"
    handle = bulk_conn.odbc_handle
    assert handle is not None
    assert dm.scalar_int(handle, "SELECT @@SPID") == spid
    # turbodbc runs in manual-commit mode: a row it inserted and has not committed is seen
    # through the handle (same transaction), and is gone after turbodbc rolls back.
    table = f"dbo.odbc_handle_{uuid.uuid4().hex[:8]}"
    cursor = bulk_conn.cursor()
    cursor.execute(f"CREATE TABLE {table} (id INT NOT NULL)")
    bulk_conn.commit()
    cursor.execute(f"INSERT INTO {table} (id) VALUES (7)")
    assert dm.scalar_int(handle, f"SELECT COUNT(*) FROM {table}") == 1
    bulk_conn.rollback()
    assert dm.scalar_int(handle, f"SELECT COUNT(*) FROM {table}") == 0
    cursor.execute(f"DROP TABLE {table}")
    bulk_conn.commit()
    cursor.close()


def test_handle_is_none_after_close(token_options):
    with ConnectionFactory(token_options) as factory:
        conn = factory.connect()
        assert conn.odbc_handle is not None
        conn.close()
        assert conn.odbc_handle is None
