"""Parameters and literals inside nodes the translator replaces are rewritten too.

A regression test: CAST(@p AS nvarchar(n)) and CONVERT(...) used to reach DuckDB with
the parameter unbound ("Values were not provided for the following parameters").
"""

from __future__ import annotations

import datetime as dt

import pytest

from azsql_emulator.tds.temporal import with_hns

PARAMS = {"@P1": 5, "@P2": "ab"}


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT CAST(@P1 AS varchar(10))", "5"),
    ("SELECT CAST(@P1 AS nvarchar)", "5"),
    ("SELECT CONVERT(nvarchar(50), @P1)", "5"),
    ("SELECT CONVERT(int, @P1) + 1", 6),
    ("SELECT @P2 + N'x'", "abx"),
    ("SELECT @P1 / 2", 2),
    ("SELECT CAST(CAST(@P1 AS varchar(5)) + @P2 AS nvarchar(3))", "5ab"),
    ("SELECT CONVERT(varchar(3), CONVERT(varchar(10), @P2 + @P2))", "aba"),
])
def test_parameters_inside_replaced_nodes(db, sql, expected):
    assert db.rows(sql, PARAMS) == [(expected,)]


def test_seven_fraction_digits_never_carry_into_the_next_day(db):
    db.run("CREATE TABLE day_end (t time(7), d datetime2(7))")
    db.run("INSERT INTO day_end VALUES ('23:59:59.9999999', '9999-12-31 23:59:59.9999999')")
    assert db.rows("SELECT t, d FROM day_end") == [
        (with_hns(dt.time(23, 59, 59, 999999), 9),
         with_hns(dt.datetime(9999, 12, 31, 23, 59, 59, 999999), 9))]
