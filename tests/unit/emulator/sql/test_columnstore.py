"""Columnstore indexes in the emulator: the DDL is accepted, sys.indexes shows them, the
rows behave as in any table."""

from __future__ import annotations

import pytest

from azsql_emulator.sql.batch import DIALECT
from azsql_emulator.sql.columnstore import take_columnstore

_INDEXES = ("SELECT i.name, i.index_id, i.type, i.type_desc, i.is_primary_key, i.is_unique "
            "FROM sys.indexes i JOIN sys.tables t ON t.object_id = i.object_id "
            "WHERE t.name = '{}' ORDER BY i.index_id")


def indexes(db, table: str) -> list[tuple]:
    return [tuple(r) for r in db.rows(_INDEXES.format(table))]


def test_a_heap_shows_index_0(db) -> None:
    db.run("CREATE TABLE dbo.h (a int, b nvarchar(10))")
    assert indexes(db, "h") == [(None, 0, 0, "HEAP", False, False)]


def test_create_clustered_columnstore_index(db) -> None:
    db.run("CREATE TABLE dbo.f (a int, b nvarchar(10))")
    db.run("CREATE CLUSTERED COLUMNSTORE INDEX cci_f ON dbo.f")
    assert indexes(db, "f") == [("cci_f", 1, 5, "CLUSTERED COLUMNSTORE", False, False)]
    db.run("INSERT INTO dbo.f VALUES (1, N'x'), (2, NULL)")  # data behaves as before
    assert db.rows("SELECT a, b FROM dbo.f ORDER BY a") == [(1, "x"), (2, None)]
    assert db.error("CREATE CLUSTERED COLUMNSTORE INDEX again ON dbo.f").number == 1902


def test_inline_clustered_columnstore_with_a_primary_key(db) -> None:
    db.run("CREATE TABLE dbo.g (id int NOT NULL PRIMARY KEY NONCLUSTERED, v float, "
           "INDEX [cci g] CLUSTERED COLUMNSTORE)")
    # the clustered columnstore is the clustered index; the primary key is nonclustered
    assert indexes(db, "g") == [("cci g", 1, 5, "CLUSTERED COLUMNSTORE", False, False),
                                (indexes(db, "g")[1][0], 2, 2, "NONCLUSTERED", True, True)]
    db.run("INSERT INTO dbo.g VALUES (1, 0.5)")
    assert db.error("INSERT INTO dbo.g VALUES (1, 0.25)").number == 2627  # the key holds


def test_nonclustered_columnstore_is_type_6_on_a_heap(db) -> None:
    db.run("CREATE TABLE dbo.n (a int, b int, INDEX ncci NONCLUSTERED COLUMNSTORE (a, b))")
    db.run("CREATE NONCLUSTERED COLUMNSTORE INDEX ncci2 ON dbo.n (b)")
    assert indexes(db, "n") == [(None, 0, 0, "HEAP", False, False),
                                ("ncci", 2, 6, "NONCLUSTERED COLUMNSTORE", False, False),
                                ("ncci2", 3, 6, "NONCLUSTERED COLUMNSTORE", False, False)]
    db.run("DROP INDEX ncci ON dbo.n")
    assert [r[0] for r in indexes(db, "n")] == [None, "ncci2"]


def test_a_clustered_primary_key_is_index_1(db) -> None:
    db.run("CREATE TABLE dbo.k (id int PRIMARY KEY, v int)")
    db.run("CREATE UNIQUE INDEX ux ON dbo.k (v)")
    got = indexes(db, "k")
    assert [r[1:] for r in got] == [(1, 1, "CLUSTERED", True, True),
                                    (2, 2, "NONCLUSTERED", False, True)]


@pytest.mark.parametrize(("sql", "left", "found"), [
    ("CREATE CLUSTERED COLUMNSTORE INDEX c ON t", "CREATE CLUSTERED INDEX c ON t",
     [("CS", None, [])]),
    ("CREATE TABLE t (a int, INDEX x NONCLUSTERED COLUMNSTORE (a), b int)",
     "CREATE TABLE t ( a int , b int )", [("NCS", "x", ["a"])]),
    ("CREATE TABLE t (a int)", "CREATE TABLE t ( a int )", []),
    ("SELECT 1 AS columnstore", "SELECT 1 AS columnstore", []),
])
def test_take_columnstore(sql: str, left: str, found: list) -> None:
    tokens, got = take_columnstore(DIALECT.tokenize(sql))
    assert (" ".join(t.text for t in tokens), got) == (left, found)
