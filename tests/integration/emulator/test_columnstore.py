"""Columnstore DDL and sys.indexes through a real client (pyodbc over Microsoft's driver).

The emulator accepts ``CREATE [NON]CLUSTERED COLUMNSTORE INDEX`` and the inline ``INDEX
name CLUSTERED COLUMNSTORE`` of ``CREATE TABLE``, keeps them in its catalog, and shows
them in ``sys.indexes`` as SQL Server does (type 5 / 6); rows are stored as before.
"""

from __future__ import annotations

import uuid
from contextlib import closing

import pytest
from support import odbc_string

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

_INDEXES = ("SELECT i.name, i.index_id, i.type, i.type_desc, i.is_primary_key, i.is_unique "
            "FROM sys.indexes i JOIN sys.tables t ON t.object_id = i.object_id "
            "JOIN sys.schemas s ON s.schema_id = t.schema_id "
            "WHERE s.name = ? AND t.name = ? ORDER BY i.index_id")


@pytest.fixture
def conn(emu_proc, driver_path):
    creds = emu_proc.credentials
    text = odbc_string(emu_proc, driver_path, UID=creds.sql_login, PWD=creds.sql_password)
    with closing(pyodbc.connect(text, autocommit=True)) as c:
        yield c


def indexes(conn, name: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute(_INDEXES, "dbo", name).fetchall()]


def test_create_clustered_columnstore_index_shows_type_5(conn) -> None:
    name = f"cs_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE TABLE dbo.{name} (id int NOT NULL, v nvarchar(20) NULL)")
    assert indexes(conn, name) == [(None, 0, 0, "HEAP", False, False)]
    conn.execute(f"CREATE CLUSTERED COLUMNSTORE INDEX [cci {name}] ON dbo.{name}")
    assert indexes(conn, name) == [(f"cci {name}", 1, 5, "CLUSTERED COLUMNSTORE", False, False)]
    conn.execute(f"INSERT INTO dbo.{name} VALUES (?, ?)", 1, "one")
    conn.cursor().executemany(f"INSERT INTO dbo.{name} VALUES (?, ?)", [(2, None), (3, "three")])
    rows = conn.execute(f"SELECT id, v FROM dbo.{name} ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(1, "one"), (2, None), (3, "three")]
    with pytest.raises(pyodbc.Error, match="1902"):
        conn.execute(f"CREATE CLUSTERED COLUMNSTORE INDEX second ON dbo.{name}")


def test_inline_indexes_in_create_table(conn) -> None:
    name = f"csi_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE TABLE dbo.{name} (id int NOT NULL, amount float NULL, "
                 "INDEX cci CLUSTERED COLUMNSTORE)")
    other = f"ncs_{uuid.uuid4().hex[:8]}"  # the same index name on another table is fine
    conn.execute(f"CREATE TABLE dbo.{other} (id int NOT NULL, amount float NULL, "
                 "INDEX cci NONCLUSTERED COLUMNSTORE (id, amount))")
    assert indexes(conn, name) == [("cci", 1, 5, "CLUSTERED COLUMNSTORE", False, False)]
    assert indexes(conn, other) == [(None, 0, 0, "HEAP", False, False),
                                    ("cci", 2, 6, "NONCLUSTERED COLUMNSTORE", False, False)]
    conn.execute(f"DROP INDEX cci ON dbo.{name}")
    assert indexes(conn, name) == [(None, 0, 0, "HEAP", False, False)]
