"""Batch splitting and parsing: statements without ';', IF/ELSE, BEGIN/END, syntax errors."""

from __future__ import annotations

import pytest
from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql.batch import Block, IfStatement, Statement, split_batch


def test_statements_separated_by_newlines_semicolons_and_comments() -> None:
    nodes = split_batch("SELECT 1\nSELECT 2 UNION ALL SELECT 3; -- c\n/* x */ INSERT INTO t (a) "
                        "SELECT 1\nUPDATE t SET a = 1 WHERE a = 2\nSET NOCOUNT ON")
    assert [n.head for n in nodes] == ["SELECT", "SELECT", "INSERT", "UPDATE", "SET"]


def test_if_else_with_block() -> None:
    nodes = split_batch("IF 1 = 1 BEGIN SELECT 1; SELECT 2 END ELSE SELECT 3")
    assert isinstance(nodes[0], IfStatement)
    assert isinstance(nodes[0].then[0], Block) and len(nodes[0].then[0].body) == 2
    assert isinstance(nodes[0].otherwise[0], Statement)


def test_merge_clauses_stay_in_one_statement() -> None:
    nodes = split_batch("MERGE INTO t AS tgt USING s ON (tgt.k = s.k) WHEN MATCHED THEN UPDATE "
                        "SET v = s.v WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v);")
    assert len(nodes) == 1


def test_alter_column_stays_in_its_alter_table_statement() -> None:
    nodes = split_batch("ALTER TABLE t ALTER COLUMN c nvarchar(64) NOT NULL\n"
                        "ALTER TABLE t ADD d int ALTER TABLE u DROP COLUMN e")
    assert [n.head for n in nodes] == ["ALTER", "ALTER", "ALTER"]
    assert isinstance(nodes[0].ast.args["actions"][0], exp.AlterColumn)
    assert len(nodes[1].ast.args["actions"]) == 1  # ADD d; the next ALTER TABLE is its own


@pytest.mark.parametrize(("sql", "near"), [("select a from", "from"), ("SELECT (1", "1"),
                                            ("SELECT * FROM t WHERE", "WHERE")])
def test_syntax_error_is_102(sql: str, near: str) -> None:
    with pytest.raises(SqlError) as info:
        split_batch(sql)
    assert info.value.number == 102
    assert near in info.value.message


def test_syntax_error_aborts_whole_batch(db) -> None:
    results = db.session.execute("SELECT 1\nSELECT FROM WHERE")
    assert len(results) == 1 and results[0].error.number == 102


def test_unsupported_construct_names_itself(db) -> None:
    err = db.error("CREATE PROCEDURE p AS SELECT 1")
    assert err.number >= 50000 and "CREATE PROCEDURE" in err.message
    err = db.error("WHILE 1 = 1 SELECT 1")
    assert err.number >= 50000 and "WHILE" in err.message


def test_if_runs_only_the_chosen_branch(db) -> None:
    results = db.run("IF 1 = 2 SELECT 'then' ELSE BEGIN SELECT 'else1'; SELECT 'else2' END")
    assert [r.rows for r in results] == [[("else1",)], [("else2",)]]


def test_batch_cache_returns_same_parse(engine) -> None:
    assert engine.batches.get("SELECT 1") is engine.batches.get("SELECT 1")
