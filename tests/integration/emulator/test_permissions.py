"""Database roles enforced for token logins: 229 for writes, 262 for DDL, reads allowed."""

from __future__ import annotations

from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def connect_as(emu, driver, app):
    token = emu.identity.issue_token(appid=app.client_id)
    return closing(pyodbc.connect(
        odbc_string(emu, driver), autocommit=True, timeout=15,
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)}))


@pytest.fixture(scope="module")
def owned_table(emu, driver_path):
    with connect_as(emu, driver_path, emu.identity.credentials.service_principal) as conn:
        conn.cursor().execute("CREATE TABLE dbo.perm_items (id int NOT NULL PRIMARY KEY, "
                              "name nvarchar(30) NULL); "
                              "INSERT INTO dbo.perm_items VALUES (1, N'first');")
    return "dbo.perm_items"


def test_reader_can_select(emu, driver_path, owned_table):
    with connect_as(emu, driver_path, emu.identity.credentials.reader_app) as conn:
        rows = conn.cursor().execute(f"SELECT id, name FROM {owned_table}").fetchall()
    assert [tuple(r) for r in rows] == [(1, "first")]


@pytest.mark.parametrize("statement", [
    "INSERT INTO dbo.perm_items VALUES (2, N'second')",
    "UPDATE dbo.perm_items SET name = N'x'",
    "DELETE FROM dbo.perm_items",
])
def test_reader_write_is_229(emu, driver_path, owned_table, statement):
    with connect_as(emu, driver_path, emu.identity.credentials.reader_app) as conn:
        cur = conn.cursor()
        with pytest.raises(pyodbc.Error) as info:
            cur.execute(statement)
        text = str(info.value)
        assert "(229)" in text and "perm_items" in text
        assert info.value.args[0] == "42000"
        # the connection survives the error
        assert cur.execute(f"SELECT COUNT(*) FROM {owned_table}").fetchone()[0] == 1


def test_writer_can_write_but_ddl_is_262(emu, driver_path, owned_table):
    with connect_as(emu, driver_path, emu.identity.credentials.writer_app) as conn:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {owned_table} VALUES (10, N'by writer')")
        assert cur.rowcount == 1
        cur.execute(f"DELETE FROM {owned_table} WHERE id = 10")
        with pytest.raises(pyodbc.Error) as info:
            cur.execute("CREATE TABLE dbo.writer_made (id int)")
        assert "(262)" in str(info.value) and "CREATE TABLE" in str(info.value)
        with pytest.raises(pyodbc.Error, match=r"\(262\)|\(3701\)"):
            cur.execute(f"DROP TABLE {owned_table}")
        assert cur.execute(f"SELECT COUNT(*) FROM {owned_table}").fetchone()[0] == 1


def test_reader_ddl_is_refused(emu, driver_path):
    with connect_as(emu, driver_path, emu.identity.credentials.reader_app) as conn:
        with pytest.raises(pyodbc.Error, match=r"\(262\)"):
            conn.cursor().execute("CREATE TABLE dbo.reader_made (id int)")


def test_no_user_app_is_refused_at_login(emu, driver_path):
    with pytest.raises(pyodbc.Error, match="18456"):
        connect_as(emu, driver_path, emu.identity.credentials.no_user_app)
