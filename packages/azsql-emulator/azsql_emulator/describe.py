"""``sp_describe_undeclared_parameters``: the parameter types Microsoft's driver binds.

pyodbc's ``fast_executemany`` asks this before it binds a parameter array; with no
answer it falls back to varchar(255) and non-Latin text is lost. The answer has SQL
Server's 24-column shape; this emulator can describe the parameters of
``INSERT INTO t [(cols)] VALUES (...)`` (each ``@P`` gets its column's type) and of
simple ``col = @P`` comparisons; other parameters are described as nvarchar(4000).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql.translate import resolve_table
from azsql_emulator.sql.typemap import SYS_TYPES, max_length_bytes, precision_scale
from azsql_emulator.sqltypes import ColumnInfo, SqlKind, SqlType
from azsql_emulator.tds.typeinfo import type_info_for

if TYPE_CHECKING:
    from azsql_emulator.sql.engine import SqlSession, StatementResult

_PARAM_RE = re.compile(r"@[A-Za-z_][\w@#$]*")
_INT = SqlType(SqlKind.INT)
_SMALLINT = SqlType(SqlKind.SMALLINT)
_TINYINT = SqlType(SqlKind.TINYINT)
_BIT = SqlType(SqlKind.BIT)
_SYSNAME = SqlType(SqlKind.NVARCHAR, 128)
_FALLBACK = SqlType(SqlKind.NVARCHAR, 4000)

# The result set's columns, in SQL Server's order and types.
COLUMNS = [ColumnInfo(name, t, nullable) for name, t, nullable in (
    ("parameter_ordinal", _INT, False),
    ("name", _SYSNAME, False),
    ("suggested_system_type_id", _INT, False),
    ("suggested_system_type_name", SqlType(SqlKind.NVARCHAR, 256), True),
    ("suggested_max_length", _SMALLINT, False),
    ("suggested_precision", _TINYINT, False),
    ("suggested_scale", _TINYINT, False),
    ("suggested_user_type_id", _INT, True),
    ("suggested_user_type_database", _SYSNAME, True),
    ("suggested_user_type_schema", _SYSNAME, True),
    ("suggested_user_type_name", _SYSNAME, True),
    ("suggested_assembly_qualified_type_name", SqlType(SqlKind.NVARCHAR, 4000), True),
    ("suggested_xml_collection_id", _INT, True),
    ("suggested_xml_collection_database", _SYSNAME, True),
    ("suggested_xml_collection_schema", _SYSNAME, True),
    ("suggested_xml_collection_name", _SYSNAME, True),
    ("suggested_is_xml_document", _BIT, False),
    ("suggested_is_case_sensitive", _BIT, False),
    ("suggested_is_fixed_length_type", _BIT, False),
    ("suggested_is_input", _BIT, False),
    ("suggested_is_output", _BIT, False),
    ("formal_parameter_name", _SYSNAME, True),
    ("suggested_tds_type_id", _INT, False),
    ("suggested_tds_length", _INT, False),
)]
_FIXED = {SqlKind.BIT, SqlKind.TINYINT, SqlKind.SMALLINT, SqlKind.INT, SqlKind.BIGINT,
          SqlKind.REAL, SqlKind.FLOAT, SqlKind.MONEY, SqlKind.SMALLMONEY, SqlKind.DATE,
          SqlKind.DATETIME, SqlKind.SMALLDATETIME, SqlKind.UNIQUEIDENTIFIER, SqlKind.CHAR,
          SqlKind.NCHAR, SqlKind.BINARY}


def _param_name(node: exp.Expr) -> str | None:
    if isinstance(node, exp.Parameter):
        return "@" + node.name
    return None


def parameter_types(sql: SqlSession, statement: str) -> dict[str, SqlType]:
    """Map each ``@name`` in ``statement`` (as written, in order of first appearance) to the
    type its context implies.

    :raises SqlError: 102 when the statement does not parse, 208 for an unknown table.
    """
    try:
        tree = sqlglot.parse_one(statement, read="tsql")
    except sqlglot.errors.ParseError as exc:
        detail = exc.errors[0].get("description", "") if exc.errors else ""
        raise SqlError(102, f"Incorrect syntax near '{statement[:40]}' ({detail}).",
                       15) from None
    found: dict[str, SqlType] = {}
    if isinstance(tree, exp.Insert) and isinstance(tree.expression, exp.Values):
        target = tree.this
        table_ref = target.this if isinstance(target, exp.Schema) else target
        table = resolve_table(sql.env(), table_ref)
        by_name = {c.name.lower(): c for c in table.columns}
        names = ([i.name.lower() for i in target.expressions] if isinstance(target, exp.Schema)
                 else [c.name.lower() for c in table.columns])
        for row in tree.expression.expressions:
            for col, value in zip(names, row.expressions, strict=False):
                pname = _param_name(value)
                if pname and col in by_name:
                    found.setdefault(pname.lower(), by_name[col].type)
    # The driver reads the answer by parameter_ordinal, which follows the order in which
    # parameters first appear in the text (@P8 inside a CAST is still the 8th).
    ordered: dict[str, SqlType] = {}
    seen: set[str] = set()
    for match in _PARAM_RE.finditer(statement):
        name = match.group(0)
        if name.lower() not in seen:
            seen.add(name.lower())
            ordered[name] = found.get(name.lower(), _FALLBACK)
    return ordered


def describe(sql: SqlSession, statement: str) -> StatementResult:
    """The result set of ``sp_describe_undeclared_parameters @tsql = statement``."""
    from azsql_emulator.sql.engine import StatementResult

    rows = []
    for ordinal, (name, t) in enumerate(parameter_types(sql, statement).items(), start=1):
        type_id = SYS_TYPES[t.kind.value][0]
        precision, scale = precision_scale(t)
        info = type_info_for(t)
        rows.append((
            ordinal, name, type_id, t.sql(), max_length_bytes(t), precision, scale,
            type_id, None, None, None, None, None, None, None, None,
            False, False, t.kind in _FIXED, True, False, name,
            int(info.type), 0xFFFF if info.is_plp else int(info.size or 0),
        ))
    return StatementResult(columns=COLUMNS, rows=rows, rowcount=len(rows))
