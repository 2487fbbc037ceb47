"""``sp_describe_first_result_set``: the columns a batch's first result set would have.

Microsoft ODBC Driver 18's bulk copy (``bcp_initW``) starts with the RPC
``sp_describe_first_result_set N'select * from <table>'`` (by name, one NVARCHAR
parameter) and builds its ``INSERT BULK`` column list and its COLMETADATA from the
answer: one row per column, in SQL Server's documented 39-column shape. ``select *``
over one table is answered from the catalog (identity, updateability); any other SELECT
is run with ``TOP 0`` and described from its result columns; other batches have no
result set (an empty answer, as SQL Server gives).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql.translate import resolve_table
from azsql_emulator.sql.typemap import SYS_TYPES, max_length_bytes, precision_scale
from azsql_emulator.sqltypes import ColumnInfo, SqlKind, SqlType
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.typeinfo import type_info_for

if TYPE_CHECKING:
    from azsql_emulator.sql.catalog import ColumnMeta
    from azsql_emulator.sql.engine import SqlSession, StatementResult

__all__ = ["COLUMNS", "batch_call", "describe_first_result_set"]

_BIT = SqlType(SqlKind.BIT)
_TINYINT = SqlType(SqlKind.TINYINT)
_SMALLINT = SqlType(SqlKind.SMALLINT)
_INT = SqlType(SqlKind.INT)
_SYSNAME = SqlType(SqlKind.NVARCHAR, 128)

# The result set's columns, in SQL Server's order, types and nullability.
COLUMNS = [ColumnInfo(name, t, nullable) for name, t, nullable in (
    ("is_hidden", _BIT, False),
    ("column_ordinal", _INT, False),
    ("name", _SYSNAME, True),
    ("is_nullable", _BIT, False),
    ("system_type_id", _INT, False),
    ("system_type_name", SqlType(SqlKind.NVARCHAR, 256), True),
    ("max_length", _SMALLINT, False),
    ("precision", _TINYINT, False),
    ("scale", _TINYINT, False),
    ("collation_name", _SYSNAME, True),
    ("user_type_id", _INT, True),
    ("user_type_database", _SYSNAME, True),
    ("user_type_schema", _SYSNAME, True),
    ("user_type_name", _SYSNAME, True),
    ("assembly_qualified_type_name", SqlType(SqlKind.NVARCHAR, 4000), True),
    ("xml_collection_id", _INT, True),
    ("xml_collection_database", _SYSNAME, True),
    ("xml_collection_schema", _SYSNAME, True),
    ("xml_collection_name", _SYSNAME, True),
    ("is_xml_document", _BIT, False),
    ("is_case_sensitive", _BIT, False),
    ("is_fixed_length_clr_type", _BIT, False),
    ("source_server", _SYSNAME, True),
    ("source_database", _SYSNAME, True),
    ("source_schema", _SYSNAME, True),
    ("source_table", _SYSNAME, True),
    ("source_column", _SYSNAME, True),
    ("is_identity_column", _BIT, True),
    ("is_part_of_unique_key", _BIT, True),
    ("is_updateable", _BIT, True),
    ("is_computed_column", _BIT, True),
    ("is_sparse_column_set", _BIT, True),
    ("ordinal_in_order_by_list", _SMALLINT, True),
    ("order_by_list_length", _SMALLINT, True),
    ("order_by_is_descending", _SMALLINT, True),
    ("tds_type_id", _INT, False),
    ("tds_length", _INT, False),
    ("tds_collation_id", _INT, True),
    ("tds_collation_sort_id", _TINYINT, True),
)]
_COLLATION_NAME = "SQL_Latin1_General_CP1_CI_AS"
_CHAR_KINDS = frozenset({SqlKind.CHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.NVARCHAR})
_COLLATION_ID = int.from_bytes(DEFAULT_COLLATION[:4], "little")
_SORT_ID = DEFAULT_COLLATION[4]
_PLP_LENGTH = 0xFFFF  # tds_length of the (max) types
# "exec sp_describe_first_result_set N'...'" in a SQL batch (the RPC form is decoded apart)
_BATCH_CALL = re.compile(
    r"^\s*(?:exec(?:ute)?\s+)?(?:(?:\[?sys\]?|\[?master\]?\.\[?sys\]?)\.)?"
    r"\[?sp_describe_first_result_set\]?\s+(?:@tsql\s*=\s*)?N?'(?P<tsql>(?:[^']|'')*)'"
    r"(?:\s*,[^;]*)?\s*;?\s*$", re.IGNORECASE | re.DOTALL)


def batch_call(text: str) -> str | None:
    """The ``@tsql`` of a SQL batch that only calls sp_describe_first_result_set, else None.

    >>> batch_call("exec sp_describe_first_result_set N'select * from [t]'")
    'select * from [t]'
    """
    m = _BATCH_CALL.match(text)
    return m.group("tsql").replace("''", "'") if m else None


def _row(ordinal: int, name: str, t: SqlType, nullable: bool, *, identity: bool = False,
         updateable: bool = True) -> tuple[object, ...]:
    type_id = SYS_TYPES[t.kind.value][0]
    precision, scale = precision_scale(t)
    info = type_info_for(t)
    textual = t.kind in _CHAR_KINDS
    tds_length = _PLP_LENGTH if info.is_plp else info.size or max_length_bytes(t)
    return (
        False, ordinal, name, nullable, type_id, t.sql(), max_length_bytes(t), precision, scale,
        _COLLATION_NAME if textual else None, type_id, None, None, None, None,
        None, None, None, None, False, False, False,
        None, None, None, None, None,
        identity, None, updateable, False, False, None, None, None,
        int(info.type), tds_length, _COLLATION_ID if textual else None,
        _SORT_ID if textual else None,
    )


def _table_rows(columns: Sequence[ColumnMeta]) -> list[tuple[object, ...]]:
    return [_row(i, c.name, c.type, c.nullable, identity=c.identity is not None,
                 updateable=c.identity is None) for i, c in enumerate(columns, start=1)]


def _single_table_star(tree: exp.Expr) -> exp.Table | None:
    """The table of ``SELECT * FROM <table>`` (nothing else), or None."""
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1 or \
            not isinstance(tree.expressions[0], exp.Star):
        return None
    source = tree.args.get("from") or tree.args.get("from_")
    if source is None or tree.args.get("joins") or tree.args.get("where") or \
            tree.args.get("group"):
        return None
    table = source.this
    return table if isinstance(table, exp.Table) and isinstance(table.this, exp.Identifier) \
        else None


def describe_first_result_set(sql: SqlSession, tsql: str) -> StatementResult:
    """The result set of ``sp_describe_first_result_set @tsql = tsql``.

    :param sql: the caller's SQL session (its database, permissions, open transaction).
    :param tsql: the batch to describe.
    :raises SqlError: 208 for an unknown table, 102 for text that does not parse, or the
        error the described SELECT raises.
    """
    from azsql_emulator.sql.engine import StatementResult

    try:
        statements = [s for s in sqlglot.parse(tsql, read="tsql") if s is not None]
    except sqlglot.errors.ParseError as exc:
        detail = exc.errors[0].get("description", "") if exc.errors else ""
        raise SqlError(102, f"Incorrect syntax near '{tsql[:40]}' ({detail}).", 15) from None
    first = next((s for s in statements if isinstance(s, exp.Select | exp.SetOperation)), None)
    if first is None:
        return StatementResult(columns=COLUMNS, rows=[], rowcount=0)
    table_ref = _single_table_star(first)
    if table_ref is not None:
        table = resolve_table(sql.env(), table_ref)
        sql.check_read([table])
        rows = _table_rows(table.columns)
        return StatementResult(columns=COLUMNS, rows=rows, rowcount=len(rows))
    shaped = first.copy()
    shaped.set("limit", exp.Limit(expression=exp.Literal.number(0)))
    result = sql.execute(shaped.sql(dialect="tsql"))[-1]
    if result.error is not None:
        raise result.error
    described: list[ColumnInfo] = result.columns or []
    rows = [_row(i, c.name, c.type, c.nullable, updateable=False)
            for i, c in enumerate(described, start=1)]
    return StatementResult(columns=COLUMNS, rows=rows, rowcount=len(rows))
