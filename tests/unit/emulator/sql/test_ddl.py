"""DDL: CREATE/DROP/TRUNCATE/ALTER TABLE, schemas, indexes, sp_rename, persistence."""

from __future__ import annotations

from azsql_emulator.sql import SessionUser, SqlEngine

OWNER = SessionUser("dbo", "app@tenant", frozenset({"db_owner"}), 51)


def test_create_with_brackets_identity_keys_defaults(db) -> None:
    db.run("CREATE TABLE [dbo].[My Table] ([Id] int IDENTITY(10,5) NOT NULL, "
           "[Name] nvarchar(50) NOT NULL CONSTRAINT DF_name DEFAULT N'none', "
           "code varchar(10) NULL, CONSTRAINT PK_my PRIMARY KEY CLUSTERED (Id), "
           "CONSTRAINT UQ_code UNIQUE (code))")
    db.run("INSERT INTO [My Table] (code) VALUES ('a'), ('b')")
    assert db.rows("SELECT Id, Name, code FROM dbo.[My Table] ORDER BY Id") == [
        (10, "none", "a"), (15, "none", "b")]
    assert db.rows("SELECT SCOPE_IDENTITY(), @@IDENTITY")[0][0] == 15
    assert db.rows("SELECT CONSTRAINT_NAME, CONSTRAINT_TYPE FROM "
                   "INFORMATION_SCHEMA.TABLE_CONSTRAINTS ORDER BY 1") == [
        ("PK_my", "PRIMARY KEY"), ("UQ_code", "UNIQUE")]


def test_if_object_id_create_and_drop(db) -> None:
    sql = "IF OBJECT_ID('dbo.t') IS NULL CREATE TABLE dbo.t (id int)"
    db.run(sql)
    db.run(sql)  # second run sees the table and does nothing
    assert db.rows("SELECT OBJECT_ID('dbo.t') IS NOT NULL, OBJECT_ID(N'dbo.t', N'U') "
                   "IS NOT NULL, OBJECT_ID('dbo.nope')") == [(True, True, None)]
    db.run("IF OBJECT_ID(N'dbo.t', N'U') IS NOT NULL DROP TABLE dbo.t")
    assert db.rows("SELECT OBJECT_ID('dbo.t')") == [(None,)]


def test_drop_if_exists_and_errors(db) -> None:
    db.run("DROP TABLE IF EXISTS dbo.missing")
    assert db.error("DROP TABLE dbo.missing").number == 3701
    db.run("CREATE TABLE t (a int)")
    err = db.error("CREATE TABLE t (a int)")
    assert (err.number, err.message) == (2714, "There is already an object named 't' in the "
                                               "database.")


def test_schema_and_three_part_names(db) -> None:
    db.run("CREATE SCHEMA stage")
    db.run("CREATE TABLE appdb.stage.rows_in (n bigint NOT NULL)")
    db.run("INSERT INTO stage.rows_in VALUES (1)")
    assert db.rows("SELECT n FROM appdb.stage.rows_in") == [(1,)]
    assert ("stage", 5) in db.rows("SELECT name, schema_id FROM sys.schemas")
    db.run("USE master")
    assert db.session.database == "master"
    assert db.rows("SELECT n FROM appdb.stage.rows_in") == [(1,)]
    assert db.error("SELECT * FROM stage.rows_in").number == 208


def test_truncate_resets_identity(db) -> None:
    db.run("CREATE TABLE t (id int IDENTITY(1,1), v int); INSERT INTO t (v) VALUES (1), (2)")
    db.run("TRUNCATE TABLE t; INSERT INTO t (v) VALUES (3)")
    assert db.rows("SELECT id, v FROM t") == [(1, 3)]


def test_sp_rename_table_and_column(db) -> None:
    db.run("CREATE TABLE dbo.a (x int PRIMARY KEY, y int); INSERT INTO a VALUES (1, 2)")
    db.run("EXEC sp_rename 'dbo.a', 'b'")
    assert db.error("SELECT * FROM a").number == 208
    db.run("EXEC sp_rename 'dbo.b.y', 'z', 'COLUMN'")
    assert db.rows("SELECT x, z FROM b") == [(1, 2)]
    assert db.rows("SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = 'b' "
                   "ORDER BY ORDINAL_POSITION") == [("x",), ("z",)]


def test_unique_index_is_2601(db) -> None:
    db.run("CREATE TABLE t (a int, b int); CREATE UNIQUE INDEX IX_t_a ON dbo.t (a)")
    db.run("INSERT INTO t VALUES (1, 1)")
    err = db.error("INSERT INTO t VALUES (1, 2)")
    assert err.number == 2601 and err.severity == 14
    assert err.message == ("Cannot insert duplicate key row in object 'dbo.t' with unique index "
                           "'IX_t_a'. The duplicate key value is (1).")


def test_alter_table_add_and_drop_column(db) -> None:
    db.run("CREATE TABLE t (a int); INSERT INTO t VALUES (1)")
    db.run("ALTER TABLE t ADD b nvarchar(10) NULL")
    assert db.rows("SELECT a, b FROM t") == [(1, None)]
    db.run("ALTER TABLE t DROP COLUMN b")
    assert db.error("SELECT b FROM t").number == 207


def test_state_persists_across_restart(tmp_path) -> None:
    eng = SqlEngine(state_dir=tmp_path)
    s = eng.open_session("appdb", OWNER)
    s.execute("CREATE TABLE dbo.p (id int IDENTITY(1,1) PRIMARY KEY, v nvarchar(20), "
              "o datetimeoffset(7)); INSERT INTO p (v, o) VALUES (N'kept', "
              "'2024-01-01 00:00:00 +05:00')")
    eng.close()
    assert (tmp_path / "appdb.duckdb").exists() and (tmp_path / "master.duckdb").exists()
    eng = SqlEngine(state_dir=tmp_path)
    s = eng.open_session("appdb", OWNER)
    r = s.execute("SELECT id, v, o FROM p")[0]
    assert r.error is None
    assert r.rows[0][:2] == (1, "kept") and r.rows[0][2].utcoffset().total_seconds() == 18000
    assert r.columns[1].type.sql() == "nvarchar(20)"
    s.execute("INSERT INTO p (v) VALUES (N'next')")
    assert s.execute("SELECT MAX(id) FROM p")[0].rows == [(2,)]
    eng.close()
