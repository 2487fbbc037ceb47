"""SQL Server types of result columns: declared types for table columns, T-SQL rules otherwise.

Inference runs on the T-SQL tree after table resolution (each ``exp.Table`` carries its
``TableMeta`` in ``meta["emu"]``) and before the rewrite to DuckDB. A column it cannot
type is left as None and typed afterwards from DuckDB's result type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlglot import exp

from azsql_emulator.sql.catalog import TableMeta
from azsql_emulator.sql.typemap import is_integer, is_string, sqltype_from_datatype, utf16_len
from azsql_emulator.sqltypes import MAX, ColumnInfo, SqlKind, SqlType

INT = SqlType(SqlKind.INT)
BIGINT = SqlType(SqlKind.BIGINT)
FLOAT = SqlType(SqlKind.FLOAT, precision=53)
DATETIME = SqlType(SqlKind.DATETIME)
DATETIME2 = SqlType(SqlKind.DATETIME2, scale=7)
SYSNAME = SqlType(SqlKind.NVARCHAR, 128)


@dataclass
class Source:
    """One FROM item: column name (lower) -> info, or None when its columns are unknown."""

    alias: str
    columns: dict[str, ColumnInfo] | None
    ordered: list[ColumnInfo] | None


def value_type(value: object) -> SqlType | None:
    """The SQL Server type of a bound parameter value (as an RPC would declare it).

    :param value: a Python value.
    """
    import datetime as dt
    import uuid

    if value is None:
        return None
    if isinstance(value, bool):
        return SqlType(SqlKind.BIT)
    if isinstance(value, int):
        return INT if -(2**31) <= value < 2**31 else BIGINT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, Decimal):
        return _decimal_type(value)
    if isinstance(value, str):
        return SqlType(SqlKind.NVARCHAR, 4000 if utf16_len(value) <= 4000 else MAX)
    if isinstance(value, bytes | bytearray | memoryview):
        return SqlType(SqlKind.VARBINARY, 8000 if len(value) <= 8000 else MAX)
    if isinstance(value, dt.datetime):
        return SqlType(SqlKind.DATETIMEOFFSET if value.tzinfo else SqlKind.DATETIME2, scale=7)
    if isinstance(value, dt.date):
        return SqlType(SqlKind.DATE)
    if isinstance(value, dt.time):
        return SqlType(SqlKind.TIME, scale=7)
    if isinstance(value, uuid.UUID):
        return SqlType(SqlKind.UNIQUEIDENTIFIER)
    return None


def _decimal_type(value: Decimal) -> SqlType:
    _, digits, exponent = value.as_tuple()
    scale = max(0, -int(exponent))
    precision = max(len(digits), scale, 1)
    if int(exponent) > 0:
        precision = len(digits) + int(exponent)
    return SqlType(SqlKind.NUMERIC, precision=min(precision, 38), scale=min(scale, 38))


def literal_type(node: exp.Expr) -> SqlType | None:
    """The type SQL Server gives a literal: 1 -> int, 'x' -> varchar(1), 1.5 -> numeric(2,1).

    :param node: a Literal, National or HexString node.
    """
    if isinstance(node, exp.National):
        return SqlType(SqlKind.NVARCHAR, max(1, utf16_len(node.name)))
    if isinstance(node, exp.HexString):
        return SqlType(SqlKind.VARBINARY, max(1, len(node.name) // 2))
    if isinstance(node, exp.Literal):
        text = node.name
        if node.is_string:
            return SqlType(SqlKind.VARCHAR, max(1, len(text)))
        if "e" in text.lower():
            return FLOAT
        if "." in text:
            return _decimal_type(Decimal(text))
        number = int(text)
        return INT if number < 2**31 else SqlType(SqlKind.NUMERIC, precision=len(text), scale=0)
    return None


def _sum_type(t: SqlType | None) -> SqlType | None:
    if t is None:
        return None
    if t.kind in (SqlKind.TINYINT, SqlKind.SMALLINT, SqlKind.INT):
        return INT
    if t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
        return SqlType(t.kind, precision=38, scale=t.scale)
    if t.kind is SqlKind.REAL:
        return FLOAT
    return t


def _avg_type(t: SqlType | None) -> SqlType | None:
    if t is not None and t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC):
        return SqlType(t.kind, precision=38, scale=max(t.scale or 0, 6))
    return _sum_type(t)


_FIXED_FUNCS = {"DB_NAME": SYSNAME, "USER_NAME": SYSNAME, "SUSER_SNAME": SYSNAME,
                "SUSER_NAME": SYSNAME, "SCHEMA_NAME": SYSNAME, "OBJECT_ID": INT, "DB_ID": INT,
                "SYSUTCDATETIME": DATETIME2, "SYSDATETIME": DATETIME2, "GETUTCDATE": DATETIME,
                "SCOPE_IDENTITY": SqlType(SqlKind.NUMERIC, precision=38, scale=0),
                "ORIGINAL_LOGIN": SYSNAME, "HOST_NAME": SYSNAME, "APP_NAME": SYSNAME}


class TypeInference:
    """Infers expression types within the scopes of one statement.

    :param variables: declared variable types by lower-case name without ``@``.
    :param system_types: types of ``@@`` globals by upper-case name.
    """

    def __init__(self, variables: Mapping[str, SqlType | None],
                 system_types: Mapping[str, SqlType]) -> None:
        self.variables = variables
        self.system_types = system_types
        self._ctes: dict[str, list[ColumnInfo]] = {}

    def sources(self, node: exp.Expr) -> list[Source]:
        """The FROM items of a SELECT/UPDATE/DELETE, in DuckDB's star-expansion order.

        :param node: the statement or query node.
        """
        with_ = node.args.get("with_")
        if with_ is not None:
            for cte in with_.expressions:
                if isinstance(cte.this, exp.Query):
                    self._ctes[cte.alias_or_name.lower()] = self.projections(cte.this)
        items: list[exp.Expr] = []
        from_ = node.args.get("from_")
        if from_ is not None:
            items.append(from_.this)
            items.extend(j.this for j in from_.this.args.get("joins") or [])
        items.extend(j.this for j in node.args.get("joins") or [])
        return [self._source(item) for item in items]

    def _source(self, item: exp.Expr) -> Source:
        alias = item.alias_or_name.lower()
        cols: list[ColumnInfo] | None = None
        if isinstance(item, exp.Table):
            meta: TableMeta | None = item.meta.get("emu")
            if meta is not None:
                cols = [c.info() for c in meta.columns]
            elif item.name.lower() in self._ctes:
                cols = self._ctes[item.name.lower()]
        elif isinstance(item, exp.Subquery) and isinstance(item.this, exp.Query):
            cols = self.projections(item.this)
            names = [c.name for c in item.args["alias"].columns] if item.args.get("alias") else []
            if names and cols and len(names) == len(cols):
                cols = [ColumnInfo(n, c.type, c.nullable) for n, c in zip(names, cols, strict=True)]
        if cols is None or any(c.type is None for c in cols):
            return Source(alias, None, None)
        return Source(alias, {c.name.lower(): c for c in cols}, cols)

    def projections(self, query: exp.Expr) -> list[ColumnInfo]:
        """Name, type (None if unknown) and nullability of each output column.

        :param query: a SELECT or set operation.
        """
        if isinstance(query, exp.SetOperation):
            return self.projections(query.this)
        if isinstance(query, exp.Subquery):
            return self.projections(query.this)
        if not isinstance(query, exp.Select):
            return []
        sources = self.sources(query)
        out: list[ColumnInfo] = []
        for proj in query.expressions:
            if isinstance(proj, exp.Star):
                for src in sources:
                    out.extend(src.ordered or [ColumnInfo("", None, True)])  # type: ignore[arg-type]
                continue
            if isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
                star_src = next((s for s in sources if s.alias == proj.table.lower()), None)
                out.extend((star_src.ordered if star_src else None) or
                           [ColumnInfo("", None, True)])  # type: ignore[arg-type]
                continue
            name = proj.alias_or_name if isinstance(proj, exp.Alias | exp.Column) else ""
            t, nullable = self.expr(proj, sources)
            out.append(ColumnInfo(name, t, nullable))  # type: ignore[arg-type]
        return out

    def expr(self, node: exp.Expr, sources: list[Source]) -> tuple[SqlType | None, bool]:
        """The type of one expression and whether it can be NULL.

        :param node: the expression.
        :param sources: the FROM items in scope.
        """
        if isinstance(node, exp.Alias | exp.Paren):
            return self.expr(node.this, sources)
        if isinstance(node, exp.Column):
            col = self._column(node, sources)
            return (col.type, col.nullable) if col else (None, True)
        if isinstance(node, exp.Neg):
            return self.expr(node.this, sources)
        lit = literal_type(node)
        if lit is not None:
            return lit, False
        if isinstance(node, exp.Null):
            return INT, True
        if isinstance(node, exp.Cast | exp.TryCast):
            return self._datatype(node.args.get("to")), True
        if isinstance(node, exp.Convert):
            return self._datatype(node.this), True
        if isinstance(node, exp.Count):
            return (BIGINT if node.args.get("big_int") else INT), False
        if isinstance(node, exp.Sum):
            return _sum_type(self.expr(node.this, sources)[0]), True
        if isinstance(node, exp.Avg):
            return _avg_type(self.expr(node.this, sources)[0]), True
        if isinstance(node, exp.Min | exp.Max):
            return self.expr(node.this, sources)[0], True
        if isinstance(node, exp.Coalesce):
            return self.expr(node.this, sources)[0], True
        if isinstance(node, exp.Parameter):
            inner = node.this
            if isinstance(inner, exp.Parameter):
                return self.system_types.get(inner.name.upper()), True
            return self.variables.get(inner.name.lower()), True
        if isinstance(node, exp.CurrentTimestamp):
            return DATETIME, False
        if isinstance(node, exp.CurrentTimestampLTZ):
            return SqlType(SqlKind.DATETIMEOFFSET, scale=7), False
        if isinstance(node, exp.Uuid):
            return SqlType(SqlKind.UNIQUEIDENTIFIER), False
        if isinstance(node, exp.ObjectId):
            return INT, True
        if isinstance(node, exp.CurrentUser | exp.CurrentSchema):
            return SYSNAME, False
        if isinstance(node, exp.Anonymous) and node.name.upper() in _FIXED_FUNCS:
            return _FIXED_FUNCS[node.name.upper()], True
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod):
            left = self.expr(node.this, sources)[0]
            right = self.expr(node.expression, sources)[0]
            if left and right and is_string(left) and is_string(right) and isinstance(
                    node, exp.Add):
                return None, True
            if left and right and is_integer(left) and is_integer(right):
                wider = BIGINT if SqlKind.BIGINT in (left.kind, right.kind) else INT
                return wider, True
        return None, True

    def _datatype(self, dt_node: exp.Expr | None) -> SqlType | None:
        if not isinstance(dt_node, exp.DataType):
            return None
        try:
            t = sqltype_from_datatype(dt_node)
        except ValueError:
            return None
        if is_string(t) and not dt_node.expressions:
            return SqlType(t.kind, 30)  # CAST(x AS varchar) means varchar(30)
        return t

    def _column(self, node: exp.Column, sources: list[Source]) -> ColumnInfo | None:
        name = node.name.lower()
        table = node.table.lower()
        for src in sources:
            if (not table or src.alias == table) and src.columns and name in src.columns:
                return src.columns[name]
        return None

    def is_stringish(self, node: exp.Expr, sources: list[Source]) -> bool:
        """True when an expression is a string in SQL Server's eyes (for ``+`` as concat).

        :param node: the expression.
        :param sources: the FROM items in scope.
        """
        t = self.expr(node, sources)[0]
        if t is not None:
            return is_string(t)
        return isinstance(node, exp.DPipe) or (isinstance(node, exp.Add) and (
            self.is_stringish(node.this, sources) or self.is_stringish(node.expression, sources)))

    def is_integer(self, node: exp.Expr, sources: list[Source]) -> bool:
        """True when an expression is an integer type (for T-SQL's integer division).

        :param node: the expression.
        :param sources: the FROM items in scope.
        """
        t = self.expr(node, sources)[0]
        return t is not None and is_integer(t)
