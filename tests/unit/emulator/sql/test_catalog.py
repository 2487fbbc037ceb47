"""Catalog views and built-in functions clients use for discovery."""

from __future__ import annotations

import datetime as dt

import pytest

from azsql_emulator.sql import SessionUser


@pytest.fixture
def tables(db):
    db.run("CREATE TABLE dbo.cat (id bigint IDENTITY(1,1) NOT NULL PRIMARY KEY, "
           "name nvarchar(50) NULL DEFAULT N'x', body varchar(max) NULL, price decimal(18,4), "
           "at datetime2(3) NULL, flag bit NOT NULL DEFAULT 0, raw varbinary(max))")
    return db


def test_information_schema(tables) -> None:
    assert tables.rows("SELECT TABLE_CATALOG, TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM "
                       "INFORMATION_SCHEMA.TABLES") == [("appdb", "dbo", "cat", "BASE TABLE")]
    rows = tables.rows(
        "SELECT COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, DATA_TYPE, "
        "CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION "
        "FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'dbo' AND TABLE_NAME = 'cat' "
        "ORDER BY ORDINAL_POSITION")
    assert rows == [
        ("id", 1, None, "NO", "bigint", None, 19, 0, None),
        ("name", 2, "(N'x')", "YES", "nvarchar", 50, None, None, None),
        ("body", 3, None, "YES", "varchar", -1, None, None, None),
        ("price", 4, None, "YES", "decimal", None, 18, 4, None),
        ("at", 5, None, "YES", "datetime2", None, None, None, 3),
        ("flag", 6, "((0))", "NO", "bit", None, None, None, None),
        ("raw", 7, None, "YES", "varbinary", -1, None, None, None),
    ]


def test_sys_views(tables) -> None:
    (oid, sid, kind, created), = tables.rows(
        "SELECT object_id, schema_id, type, create_date FROM sys.tables WHERE name = 'cat'")
    assert (sid, kind.strip()) == (1, "U") and isinstance(created, dt.datetime)
    assert tables.rows("SELECT OBJECT_ID('dbo.cat')") == [(oid,)]
    cols = tables.rows("SELECT name, column_id, system_type_id, user_type_id, max_length, "
                       "precision, scale, is_nullable, is_identity FROM sys.columns "
                       f"WHERE object_id = {oid} ORDER BY column_id")
    assert cols[0] == ("id", 1, 127, 127, 8, 19, 0, False, True)
    assert cols[1] == ("name", 2, 231, 231, 100, 0, 0, True, False)
    assert cols[2][4] == -1 and cols[3][4:7] == (9, 18, 4)
    assert ("nvarchar", 231, 231, 8000, 0, 0) in tables.rows(
        "SELECT name, system_type_id, user_type_id, max_length, precision, scale FROM sys.types")
    assert ("dbo", 1) in tables.rows("SELECT name, schema_id FROM sys.schemas")


def test_builtin_functions(engine) -> None:
    user = SessionUser("loader", "1111@tenant", frozenset({"db_datareader"}), 77)
    s = engine.open_session("appdb", user)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    r = s.execute("SELECT @@VERSION, @@SPID, DB_NAME(), SUSER_SNAME(), USER_NAME(), "
                  "SCHEMA_NAME(), SERVERPROPERTY('EngineEdition'), SERVERPROPERTY('Edition'), "
                  "GETDATE(), SYSUTCDATETIME(), @@TRANCOUNT")[0]
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert r.error is None
    version, spid, dbname, login, uname, schema, edition_id, edition, now, utc, tc = r.rows[0]
    assert version.startswith("Microsoft SQL Azure (RTM) - 12.0.2000.8")
    assert "azsql-bulk emulator" in version
    assert (spid, dbname, login, uname, schema) == (77, "appdb", "1111@tenant", "loader", "dbo")
    assert (edition_id, edition, tc) == (5, "SQL Azure", 0)
    # read during the query, however long it took (1 s either side for the clock's rounding)
    second = dt.timedelta(seconds=1)
    assert before - second <= utc <= after + second and isinstance(now, dt.datetime)
    s.close()
