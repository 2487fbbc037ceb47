"""ALTER TABLE ... ALTER COLUMN (lengths, nullability), and LEN/DATALENGTH over the results,
through pyodbc and Microsoft's driver."""

from __future__ import annotations

from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


@pytest.fixture
def conn(emu, driver_path):
    token = emu.identity.issue_token()
    with closing(pyodbc.connect(odbc_string(emu, driver_path), autocommit=True, timeout=15,
                                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})) as c:
        yield c


@pytest.fixture
def table(conn, request):
    name = f"dbo.alt_{request.node.name.replace('[', '_').replace(']', '')}"
    conn.execute(f"CREATE TABLE {name} (id int NOT NULL PRIMARY KEY, s nvarchar(10) NOT NULL, "
                 "b varbinary(4) NULL)")
    conn.execute(f"INSERT INTO {name} VALUES (1, N'ten chars!', 0x01020304)")
    yield name
    conn.execute(f"DROP TABLE {name}")


def facets(conn, table, column):
    schema, name = table.split(".")
    return tuple(conn.execute(
        "SELECT DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE FROM INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
        schema, name, column).fetchone())


def test_widening_lets_longer_values_in_and_keeps_the_rows(conn, table):
    with pytest.raises(pyodbc.Error, match="2628"):
        conn.execute(f"INSERT INTO {table} VALUES (2, ?, NULL)", "é" * 40)
    conn.execute(f"ALTER TABLE {table} ALTER COLUMN s nvarchar(64) NOT NULL")
    assert facets(conn, table, "s") == ("nvarchar", 64, "NO")
    conn.execute(f"INSERT INTO {table} VALUES (2, ?, NULL)", "é" * 40)
    rows = conn.execute(f"SELECT id, s FROM {table} ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(1, "ten chars!"), (2, "é" * 40)]
    conn.execute(f"ALTER TABLE {table} ALTER COLUMN b varbinary(max)")  # no NULL/NOT NULL: NULL
    assert facets(conn, table, "b") == ("varbinary", -1, "YES")
    conn.execute(f"INSERT INTO {table} VALUES (3, N'x', ?)", b"\x07" * 5000)
    (value,) = conn.execute(f"SELECT b FROM {table} WHERE id = 3").fetchone()
    assert value == b"\x07" * 5000


def test_shrinking_below_a_stored_value_is_refused_with_2628(conn, table):
    with pytest.raises(pyodbc.Error, match=r"2628.*column 's'. Truncated value: 'ten c'"):
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN s nvarchar(5) NOT NULL")
    assert facets(conn, table, "s") == ("nvarchar", 10, "NO")


def test_not_null_over_stored_nulls_is_refused_with_515(conn, table):
    conn.execute(f"INSERT INTO {table} VALUES (2, N'y', NULL)")
    with pytest.raises(pyodbc.Error, match="515"):
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN b varbinary(4) NOT NULL")
    assert facets(conn, table, "b") == ("varbinary", 4, "YES")


def test_key_columns_and_unknown_columns_are_refused(conn, table):
    with pytest.raises(pyodbc.Error, match="5074"):
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN id bigint NOT NULL")
    with pytest.raises(pyodbc.Error, match="4924"):
        conn.execute(f"ALTER TABLE {table} ALTER COLUMN nope int")


def test_len_and_datalength_count_as_sql_server_does(conn, table):
    conn.execute(f"ALTER TABLE {table} ALTER COLUMN s nvarchar(500) NOT NULL")
    conn.execute(f"ALTER TABLE {table} ALTER COLUMN b varbinary(max) NULL")
    conn.execute(f"INSERT INTO {table} VALUES (2, ?, ?), (3, ?, NULL)",
                 "é" * 300, b"\x07" * 5000, "a😀b  ")
    rows = conn.execute(f"SELECT id, LEN(s), DATALENGTH(s), DATALENGTH(b), LEN(b) FROM {table} "
                        "ORDER BY id").fetchall()
    # UTF-16 units; trailing blanks not counted by LEN; 2 bytes per unit; bytes of varbinary
    assert [tuple(r) for r in rows] == [(1, 10, 20, 4, 4), (2, 300, 600, 5000, 5000),
                                        (3, 4, 12, None, None)]
    assert tuple(conn.execute("SELECT LEN(N'x  '), DATALENGTH(N'ab'), LEN(12345), "
                              "DATALENGTH('abc')").fetchone()) == (1, 4, 5, 3)
