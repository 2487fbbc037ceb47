"""SQL Server error numbers, classes and wording; which errors end the batch."""

from __future__ import annotations

import pytest


@pytest.fixture
def t(db):
    db.run("CREATE TABLE dbo.t (id int NOT NULL CONSTRAINT PK_t PRIMARY KEY, c varchar(3) NULL, "
           "n int NULL, tiny tinyint NULL, s smallint NULL, b bigint NULL, d numeric(5,2) NULL, "
           "u uniqueidentifier NULL, dt datetime2 NULL, bin varbinary(2) NULL, "
           "nn nvarchar(5) NOT NULL DEFAULT N'x', UNIQUE (n))")
    db.run("INSERT INTO t (id, n) VALUES (1, 1)")
    return db


@pytest.mark.parametrize(("sql", "number", "severity", "message"), [
    ("SELECT * FROM dbo.x", 208, 16, "Invalid object name 'dbo.x'."),
    ("SELECT c2 FROM t", 207, 16, "Invalid column name 'c2'."),
    ("INSERT INTO t (id, zz) VALUES (2, 1)", 207, 16, "Invalid column name 'zz'."),
    ("INSERT INTO t (id) VALUES (1)", 2627, 14,
     "Violation of PRIMARY KEY constraint 'PK_t'. Cannot insert duplicate key in object "
     "'dbo.t'. The duplicate key value is (1)."),
    ("INSERT INTO t (id, c) VALUES (NULL, 'a')", 515, 16,
     "Cannot insert the value NULL into column 'id', table 'appdb.dbo.t'; column does not allow "
     "nulls. INSERT fails."),
    ("UPDATE t SET nn = NULL", 515, 16,
     "Cannot insert the value NULL into column 'nn', table 'appdb.dbo.t'; column does not allow "
     "nulls. UPDATE fails."),
    ("INSERT INTO t (id, c) VALUES (2, 'abcdef')", 2628, 16,
     "String or binary data would be truncated in table 'appdb.dbo.t', column 'c'. Truncated "
     "value: 'abc'."),
    ("INSERT INTO t (id, n) VALUES (2, 3000000000)", 8115, 16,
     "Arithmetic overflow error converting expression to data type int."),
    ("INSERT INTO t (id, d) VALUES (2, 1000.5)", 8115, 16,
     "Arithmetic overflow error converting numeric to data type numeric."),
    ("INSERT INTO t (id, tiny) VALUES (2, 256)", 220, 16,
     "Arithmetic overflow error for data type tinyint, value = 256."),
    ("INSERT INTO t (id, tiny) VALUES (2, -1)", 220, 16,
     "Arithmetic overflow error for data type tinyint, value = -1."),
    ("INSERT INTO t (id, s) VALUES (2, 40000)", 220, 16,
     "Arithmetic overflow error for data type smallint, value = 40000."),
    ("INSERT INTO t (id, b) VALUES (2, 9223372036854775808)", 8115, 16,
     "Arithmetic overflow error converting expression to data type bigint."),
    ("INSERT INTO t (id, n) VALUES (2, 'x')", 245, 16,
     "Conversion failed when converting the varchar value 'x' to data type int."),
    ("INSERT INTO t (id, d) VALUES (2, 'x')", 8114, 16,
     "Error converting data type varchar to numeric."),
    ("INSERT INTO t (id, dt) VALUES (2, 'not a date')", 241, 16,
     "Conversion failed when converting date and/or time from character string."),
    ("INSERT INTO t (id, u) VALUES (2, 'nope')", 8169, 16,
     "Conversion failed when converting from a character string to uniqueidentifier."),
    ("INSERT INTO t (id, bin) VALUES (2, 'ab')", 257, 16,
     "Implicit conversion from data type varchar to varbinary is not allowed. Use the CONVERT "
     "function to run this query."),
    ("SELECT FROM", 102, 16, "Incorrect syntax near 'FROM'."),
    ("CREATE TABLE t (a int)", 2714, 16, "There is already an object named 't' in the database."),
    ("DROP TABLE dbo.x", 3701, 11,
     "Cannot drop the table 'dbo.x', because it does not exist or you do not have permission."),
    ("INSERT INTO t (id, n) VALUES (5, 1)", 2627, 14, None),
    ("COMMIT", 3902, 16, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION."),
    ("SELECT CAST('x' AS int)", 245, 16,
     "Conversion failed when converting the varchar value 'x' to data type int."),
])
def test_error(t, sql: str, number: int, severity: int, message: str | None) -> None:
    err = t.error(sql)
    assert (err.number, err.severity) == (number, severity), err
    if message is not None:
        assert err.message == message


def test_statement_errors_let_the_batch_continue(t) -> None:
    results = t.session.execute("INSERT INTO t (id) VALUES (1); SELECT 'after'")
    assert results[0].error.number == 2627
    assert results[1].rows == [("after",)]


def test_compile_errors_abort_the_batch(t) -> None:
    results = t.session.execute("SELECT * FROM missing; SELECT 'after'")
    assert len(results) == 1 and results[0].error.number == 208


def test_unknown_duckdb_failure_is_prefixed(t) -> None:
    err = t.error("SELECT no_such_function(1)")
    assert err.number >= 50000 and err.message.startswith("emulator:")


def test_unsupported_is_custom_number(t) -> None:
    err = t.error("CREATE VIEW v AS SELECT 1 AS a")
    assert err.number >= 50000 and "CREATE" in err.message and err.severity == 16


def test_error_in_explicit_transaction_keeps_it_when_checked_first(t) -> None:
    results = t.session.execute("BEGIN TRAN; INSERT INTO t (id) VALUES (7); "
                                "INSERT INTO t (id) VALUES (1); SELECT @@TRANCOUNT; COMMIT")
    assert results[2].error.number == 2627
    assert results[3].rows == [(1,)]
    assert t.rows("SELECT COUNT(*) FROM t WHERE id = 7") == [(1,)]


def test_unique_constraint_wording(db) -> None:
    db.run("CREATE TABLE u (a int, b nvarchar(5), CONSTRAINT UQ_ab UNIQUE (a, b))")
    db.run("INSERT INTO u VALUES (1, N'x')")
    err = db.error("INSERT INTO u VALUES (1, N'x')")
    assert err.message == ("Violation of UNIQUE KEY constraint 'UQ_ab'. Cannot insert duplicate "
                           "key in object 'dbo.u'. The duplicate key value is (1, x).")


def test_identity_insert(db) -> None:
    db.run("CREATE TABLE i (id int IDENTITY(1,1) PRIMARY KEY, v int)")
    assert db.error("INSERT INTO i (id, v) VALUES (5, 0)").number == 544
    db.run("SET IDENTITY_INSERT dbo.i ON; INSERT INTO i (id, v) VALUES (5, 0); "
           "SET IDENTITY_INSERT dbo.i OFF; INSERT INTO i (v) VALUES (1)")
    assert db.rows("SELECT id FROM i ORDER BY id") == [(5,), (6,)]


def test_use_unknown_database_is_911(db) -> None:
    assert db.error("USE nowhere").number == 911
