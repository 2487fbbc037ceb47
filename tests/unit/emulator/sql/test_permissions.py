"""Database roles: reader, writer, ddladmin, owner."""

from __future__ import annotations

import pytest

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import SessionUser


def _session(engine, *roles: str):
    return engine.open_session("appdb", SessionUser("u", "u@t", frozenset(roles), 60))


@pytest.fixture
def table(db):
    db.run("CREATE TABLE dbo.T (id int PRIMARY KEY); INSERT INTO T VALUES (1)")
    return db


def _error(session, sql: str) -> SqlError | None:
    return next((r.error for r in session.execute(sql) if r.error), None)


def test_reader_can_select_only(engine, table) -> None:
    s = _session(engine, "db_datareader")
    assert _error(s, "SELECT * FROM T") is None
    err = _error(s, "INSERT INTO T VALUES (2)")
    assert (err.number, err.severity, err.message) == (
        229, 14, "The INSERT permission was denied on the object 'T', database 'appdb', "
                 "schema 'dbo'.")
    assert _error(s, "DELETE FROM T").message.startswith("The DELETE permission")
    assert _error(s, "UPDATE T SET id = 3").message.startswith("The UPDATE permission")
    err = _error(s, "CREATE TABLE x (a int)")
    assert (err.number, err.severity, err.message) == (
        262, 14, "CREATE TABLE permission denied in database 'appdb'.")


def test_writer_cannot_select_or_ddl(engine, table) -> None:
    s = _session(engine, "db_datawriter")
    assert _error(s, "INSERT INTO T VALUES (2)") is None
    err = _error(s, "SELECT * FROM T")
    assert (err.number, err.message) == (
        229, "The SELECT permission was denied on the object 'T', database 'appdb', "
             "schema 'dbo'.")
    assert _error(s, "MERGE T AS t USING (VALUES (5)) AS s (id) ON t.id = s.id WHEN NOT "
                     "MATCHED THEN INSERT (id) VALUES (s.id);") is None
    assert _error(s, "TRUNCATE TABLE T").number == 262
    assert _error(s, "SELECT 1") is None  # no table, no permission needed


def test_ddladmin_can_create_drop_rename(engine, table) -> None:
    s = _session(engine, "db_ddladmin")
    assert _error(s, "CREATE TABLE x (a int)") is None
    assert _error(s, "EXEC sp_rename 'dbo.x', 'y'") is None
    assert _error(s, "DROP TABLE y") is None
    assert _error(s, "INSERT INTO T VALUES (3)").number == 229


def test_unknown_database_is_4060(engine) -> None:
    with pytest.raises(SqlError) as info:
        engine.open_session("nope", SessionUser("u", "u", frozenset(), 1))
    assert (info.value.number, info.value.severity) == (4060, 11)
    assert info.value.message == ('Cannot open database "nope" requested by the login. '
                                  "The login failed.")
