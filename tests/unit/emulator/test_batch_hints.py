"""INSERT target table hints (TABLOCK and friends) parse as plain INSERTs in the emulator."""

from __future__ import annotations

import pytest

from azsql_emulator.errors import SqlError
from azsql_emulator.sql.batch import split_batch


@pytest.mark.parametrize("sql", [
    "INSERT INTO dbo.t WITH (TABLOCK) ([id], [v]) SELECT [id], [v] FROM dbo.s",
    "INSERT [dbo].[t] WITH (TABLOCK, HOLDLOCK) SELECT 1, 2",
])
def test_insert_table_hints_are_accepted(sql):
    (node,) = split_batch(sql)
    assert node.ast.key == "insert"
    assert "TABLOCK" not in node.ast.sql(dialect="tsql").upper()


def test_an_unknown_word_in_the_hint_list_is_still_a_syntax_error():
    with pytest.raises(SqlError) as info:
        split_batch("INSERT INTO dbo.t WITH (BOGUS) SELECT 1")
    assert info.value.number == 102
