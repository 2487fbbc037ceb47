"""Rewrite a parsed T-SQL tree into DuckDB SQL: names, variables, built-ins, casts, operators."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.catalog import DEFAULT_SCHEMA, CatalogSnapshot, TableMeta
from azsql_emulator.sql.result_types import Source, TypeInference, value_type
from azsql_emulator.sql.typemap import (
    HNS_FIELD,
    MICROS_FIELD,
    duck_type,
    is_string,
    sqltype_from_datatype,
    stores_100ns,
    struct_stored,
)
from azsql_emulator.sqltypes import MAX, ColumnInfo, SqlKind, SqlType

_NOW = "CAST(now() AS TIMESTAMP)"  # connections run with TimeZone=UTC, like Azure SQL


@dataclass
class Variable:
    """A T-SQL variable or bound parameter."""

    type: SqlType | None
    value: object = None


@dataclass
class Env:
    """What a statement's translation needs to know about its session."""

    database: str
    snapshot: Callable[[str], CatalogSnapshot]
    variables: dict[str, Variable] = field(default_factory=dict)  # lower name without @
    system: dict[str, object] = field(default_factory=dict)  # @@NAME (upper) -> value
    functions: dict[str, object] = field(default_factory=dict)  # DB_NAME etc. -> value
    databases: tuple[str, ...] = ()


@dataclass
class Translation:
    """DuckDB SQL with its named parameters, the user tables it reads and its result types."""

    sql: str
    params: dict[str, object]
    reads: list[TableMeta]
    projections: list[ColumnInfo] | None = None


SYSTEM_TYPES = {"VERSION": SqlType(SqlKind.NVARCHAR, 300), "SPID": SqlType(SqlKind.SMALLINT),
                "TRANCOUNT": SqlType(SqlKind.INT), "ROWCOUNT": SqlType(SqlKind.INT),
                "IDENTITY": SqlType(SqlKind.NUMERIC, precision=38, scale=0),
                "SERVERNAME": SqlType(SqlKind.NVARCHAR, 128), "ERROR": SqlType(SqlKind.INT),
                "LANGUAGE": SqlType(SqlKind.NVARCHAR, 128),
                "MAX_PRECISION": SqlType(SqlKind.TINYINT),
                "OPTIONS": SqlType(SqlKind.INT), "SERVICENAME": SqlType(SqlKind.NVARCHAR, 128)}


def split_name(text: str) -> list[str]:
    """Split ``[db].dbo.[My Table]`` into its parts, brackets and quotes removed.

    :param text: a possibly quoted multi-part name.
    """
    parts = re.findall(r'\[((?:[^\]]|\]\])*)\]|"((?:[^"]|"")*)"|([^.]+)|(?<=\.)(?=\.)', text)
    out = []
    for bracket, dquote, bare in parts:
        out.append(bracket.replace("]]", "]") or dquote.replace('""', '"') or bare.strip())
    return out


def name_parts(table: exp.Table) -> tuple[str | None, str | None, str]:
    """(database, schema, name) as written; missing parts are None.

    :param table: a table reference.
    """
    return (table.catalog or None, table.db or None, table.name)


def lookup(env: Env, db: str | None, schema: str | None, name: str) -> TableMeta | None:
    """Find a table or catalog view by its parts.

    :param env: the session environment.
    :param db: database or None for the current one.
    :param schema: schema or None for dbo.
    :param name: table name.
    """
    database: str | None = env.database
    if db:
        database = next((d for d in env.databases if d.lower() == db.lower()), None)
    if database is None:
        return None
    return env.snapshot(database).table(schema or DEFAULT_SCHEMA, name)


def written_name(table: exp.Table) -> str:
    """The name as SQL Server repeats it in messages (dotted, no brackets).

    :param table: a table reference.
    """
    return ".".join(p for p in (table.catalog, table.db, table.name) if p)


def resolve_table(env: Env, table: exp.Table) -> TableMeta:
    """Resolve a table reference or raise 208.

    :param env: the session environment.
    :param table: the reference.
    """
    if table.this and isinstance(table.this, exp.Identifier) and table.this.args.get("temporary"):
        raise em.unsupported(f"temporary table #{table.name}")
    meta = lookup(env, *name_parts(table))
    if meta is None:
        raise em.invalid_object(written_name(table))
    return meta


def point_at(table: exp.Table, meta: TableMeta, alias: bool = True) -> None:
    """Rewrite a table reference to the DuckDB catalog name, keeping the written name as alias.

    :param table: the reference (edited in place).
    :param meta: what it resolved to.
    :param alias: add the written name as alias when there is none.
    """
    original = table.name
    catalog, schema, name = (p.strip('"').replace('""', '"') for p in _split_duck(meta.duck_name))
    table.set("catalog", exp.to_identifier(catalog, quoted=True))
    table.set("db", exp.to_identifier(schema, quoted=True))
    table.set("this", exp.to_identifier(name, quoted=True))
    if alias and not table.alias:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(original, quoted=True)))
    table.meta["emu"] = meta


def _split_duck(duck_name: str) -> list[str]:
    return re.findall(r'"(?:[^"]|"")*"', duck_name)


def literal_node(value: object) -> exp.Expr:
    """A DuckDB literal for a Python value.

    :param value: None, bool, int, Decimal, float or str.
    """
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | Decimal | float):
        return exp.Literal.number(str(value))
    return exp.Literal.string(str(value))


def duck_cast_type(t: SqlType) -> exp.DataType:
    """The DuckDB type a CAST to ``t`` becomes (datetimeoffset casts yield TIMESTAMPTZ).

    :param t: the T-SQL target type.
    """
    if t.kind is SqlKind.DATETIMEOFFSET:
        text = "TIMESTAMPTZ"
    elif stores_100ns(t):  # a computed value: microseconds (see typemap.DT2_DUCK)
        text = "TIME" if t.kind is SqlKind.TIME else "TIMESTAMP"
    else:
        text = duck_type(t)
    return exp.DataType.build(text, dialect="duckdb")


def _expression_subquery(select: exp.Select) -> bool:
    """True for a SELECT whose result is a value in an expression (``x IN (SELECT ...)``,
    ``(SELECT MAX(d) ...)``): its output is computed with, so stored structs become their
    microseconds there, as on the other side of the IN or comparison."""
    holder = select.parent
    while isinstance(holder, exp.Union | exp.Except | exp.Intersect):
        holder = holder.parent
    if isinstance(holder, exp.In):
        return True
    if not isinstance(holder, exp.Subquery):
        return False
    return not isinstance(holder.parent, exp.From | exp.Join | exp.Insert | exp.Merge
                          | exp.Create | exp.Union | exp.Except | exp.Intersect | exp.CTE
                          | exp.Exists | exp.Lateral)


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ,
                exp.NullSafeNEQ)
# Where a stored struct can stay a struct: it is moved, compared with its like, sorted,
# grouped or counted, never computed with (see Translator._lowered).
_STRUCT_PARENTS = (exp.Ordered, exp.Group, exp.Count, exp.Is, exp.Distinct)


class Translator:
    """Translates one statement tree (already copied: it is edited in place).

    :param env: the session environment.
    """

    def __init__(self, env: Env) -> None:
        self.env = env
        self.params: dict[str, object] = {}
        self._param_keys: dict[str, str] = {}
        self.reads: list[TableMeta] = []
        types = {k: v.type if v.type else value_type(v.value) for k, v in env.variables.items()}
        self.inference = TypeInference(types, SYSTEM_TYPES)
        self._scopes: dict[int, list[Source]] = {}

    def resolve_tables(self, node: exp.Expr, skip: set[int] | None = None) -> None:
        """Resolve every table reference under ``node`` (CTE names excepted).

        :param node: the tree.
        :param skip: ids of Table nodes the caller handles itself.
        """
        ctes = {c.alias_or_name.lower() for c in node.find_all(exp.CTE)}
        for table in list(node.find_all(exp.Table)):
            if (skip and id(table) in skip) or "emu" in table.meta:
                continue
            if not isinstance(table.this, exp.Identifier):
                continue  # table functions
            if not table.db and not table.catalog and table.name.lower() in ctes:
                continue
            meta = resolve_table(self.env, table)
            if not meta.system or meta.dmv:
                self.reads.append(meta)
            point_at(table, meta)

    def scope_of(self, node: exp.Expr) -> list[Source]:
        """The FROM items visible to ``node`` (its nearest SELECT/UPDATE/DELETE).

        :param node: any node inside a resolved tree.
        """
        owner = node.find_ancestor(exp.Select, exp.Update, exp.Delete)
        if owner is None:
            return []
        key = id(owner)
        if key not in self._scopes:
            self._scopes[key] = self.inference.sources(owner)
        return self._scopes[key]

    def check_columns(self, node: exp.Expr) -> None:
        """Raise 207 for columns that exist in no table in scope, before DuckDB sees them.

        :param node: the resolved tree.
        """
        for col in node.find_all(exp.Column):
            if isinstance(col.this, exp.Star) or not isinstance(col.this, exp.Identifier) \
                    or col.name.lower() == "rowid":
                continue
            owner = col.find_ancestor(exp.Select, exp.Update, exp.Delete)
            if owner is None or isinstance(owner.parent, exp.Subquery | exp.Exists):
                continue  # correlated names may come from an outer query
            sources = self.scope_of(col)
            if not sources or any(s.columns is None for s in sources):
                continue
            name = col.name.lower()
            if col.table:
                src = next((s for s in sources if s.alias == col.table.lower()), None)
                if src is not None and name not in src.columns:  # type: ignore[operator]
                    raise em.invalid_column(col.name)
                continue
            aliases = {e.alias.lower() for e in owner.expressions if isinstance(e, exp.Alias)} \
                if isinstance(owner, exp.Select) else set()
            if name not in aliases and not any(name in s.columns for s in sources):  # type: ignore[operator]
                raise em.invalid_column(col.name)

    def _param(self, name: str) -> exp.Expr:
        low = name.lower()
        if low not in self.env.variables:
            raise em.must_declare("@" + name)
        key = self._param_keys.get(low)
        if key is None:
            key = f"p{len(self._param_keys)}"
            self._param_keys[low] = key
            self.params[key] = self.env.variables[low].value
        return exp.Placeholder(this=key)

    def _object_id(self, args: list[exp.Expr]) -> exp.Expr:
        texts = []
        for arg in args:
            if isinstance(arg, exp.Literal | exp.National):
                texts.append(arg.name)
            elif isinstance(arg, exp.Parameter) and not isinstance(arg.this, exp.Parameter):
                texts.append(str(self.env.variables.get(arg.name.lower(), Variable(None)).value))
            else:
                raise em.unsupported("OBJECT_ID of an expression")
        parts = split_name(texts[0]) if texts else []
        if not parts or len(parts) > 3:
            return exp.Null()
        padded: list[str] = [""] * (3 - len(parts)) + parts
        kind = texts[1].strip().upper() if len(texts) > 1 else None
        meta = lookup(self.env, padded[0] or None, padded[1] or None, padded[2])
        if meta is not None and not meta.system and kind in (None, "U"):
            return exp.Literal.number(meta.object_id)
        if kind not in (None, "U"):
            snap = self.env.snapshot(self.env.database)
            for table in snap.tables.values():
                for key in table.keys:
                    if key.name.lower() == padded[2].lower() and key.kind == kind:
                        return exp.Literal.number(key.object_id)
        return exp.Null()

    def _storage_type(self, node: exp.Expr) -> SqlType | None:
        """The type of a column reference stored as a struct with a 100 ns field, else None."""
        if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
            return None
        t, _ = self.inference.expr(node, self.scope_of(node))
        return t if struct_stored(t) else None

    def _keeps_struct(self, node: exp.Expr, t: SqlType) -> bool:
        """True where a struct-stored column may stay a struct: a projection (SELECT list,
        INSERT ... SELECT, a subquery's output), ORDER/GROUP BY, COUNT, IS NULL, MIN/MAX in
        such a place, or a comparison with another column of the same stored type.
        Anywhere else it is computed with, and becomes its microsecond field."""
        child: exp.Expr = node
        parent = node.parent
        while isinstance(parent, exp.Paren):
            child, parent = parent, parent.parent
        if isinstance(parent, exp.Alias):
            child, parent = parent, parent.parent
            return isinstance(parent, exp.Select) and child in parent.expressions \
                and not _expression_subquery(parent)
        if isinstance(parent, exp.Select):
            return child in parent.expressions and not _expression_subquery(parent)
        if isinstance(parent, exp.Max | exp.Min):
            return self._keeps_struct(parent, t)
        if isinstance(parent, _STRUCT_PARENTS):
            return True
        if isinstance(parent, exp.Window):
            return any(child is p for p in parent.args.get("partition_by") or [])
        if isinstance(parent, _COMPARISONS) and isinstance(node, exp.Column):
            other = parent.expression if child is parent.this else parent.this
            while isinstance(other, exp.Paren):
                other = other.this
            u = self._storage_type(other)
            return u is not None and u.kind is t.kind
        return False

    def _lowered(self, node: exp.Column, t: SqlType) -> exp.Expr:
        """The column's microsecond field (what a computation sees of it); for
        datetimeoffset the instant as a TIMESTAMPTZ, which is also what CAST(x AS
        datetimeoffset) and SYSDATETIMEOFFSET() give."""
        field = exp.Anonymous(this="struct_extract", expressions=[
            node, exp.Literal.string(MICROS_FIELD[t.kind])])
        if t.kind is SqlKind.DATETIMEOFFSET:
            return exp.Cast(this=field, to=exp.DataType.build("TIMESTAMPTZ"))
        return field

    def _rewrite(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column):
            t = self._storage_type(node)
            if t is not None and "emu_raw" not in node.meta and not self._keeps_struct(node, t):
                node.meta["emu_raw"] = True
                return self._lowered(node, t)
            return node
        if isinstance(node, exp.Parameter):
            inner = node.this
            if isinstance(inner, exp.Parameter):
                name = inner.name.upper()
                if name not in self.env.system:
                    raise em.unsupported(f"@@{inner.name}")
                value = self.env.system[name]
                if name == "IDENTITY" and value is not None:
                    return exp.cast(literal_node(value), exp.DataType.build("DECIMAL(38,0)"))
                return literal_node(value)
            return self._param(inner.name)
        if isinstance(node, exp.National):
            return exp.Literal.string(node.name)
        if isinstance(node, exp.Convert):
            target = self._target(node.this)
            cast_cls = exp.TryCast if node.args.get("safe") else exp.Cast
            value = self._moved(node.expression)
            style = node.args.get("style")
            if target.kind.value in ("binary", "varbinary") and isinstance(style, exp.Literal) \
                    and style.name in ("1", "2"):
                # styles 1 ('0x' + hex digits) and 2 (hex digits): text to bytes, decoded
                if style.name == "1":
                    value = exp.Substring(this=value, start=exp.Literal.number(3))
                value = exp.Anonymous(this="unhex", expressions=[value])
            if is_string(target) and (style is None or (isinstance(style, exp.Literal)
                                                        and style.name in _PLAIN_STYLES)):
                shown = self._temporal_text(node.expression, node)
                if shown is not None:
                    return self._cast(exp.Cast(this=shown, to=node.this), target, moved=True)
            return self._cast(cast_cls(this=value, to=node.this), target, moved=True)
        if isinstance(node, exp.Cast | exp.TryCast) and "emu_done" not in node.meta:
            to = node.args.get("to")
            if isinstance(to, exp.DataType) and to.this not in (exp.DataType.Type.USERDEFINED,):
                target = self._target(to)
                if is_string(target):
                    shown = self._temporal_text(node.this, node)
                    if shown is not None:
                        node.set("this", shown)
                        return self._cast(node, target, moved=True)
                return self._cast(node, target)
        if isinstance(node, exp.CurrentTimestamp):
            return exp.Var(this=_NOW)
        if isinstance(node, exp.CurrentTimestampLTZ):
            return exp.Var(this=f"CAST({_NOW} AS TIMESTAMPTZ)")
        if isinstance(node, exp.ObjectId):
            return self._object_id([a for a in (node.this, node.args.get("expression")) if a])
        if isinstance(node, exp.CurrentUser):
            # sqlglot folds SUSER_SNAME(), SUSER_NAME(), SYSTEM_USER and CURRENT_USER together
            return literal_node(self.env.functions.get("SUSER_SNAME"))
        if isinstance(node, exp.CurrentSchema):
            return literal_node("dbo")
        if isinstance(node, exp.Length):
            return self._len(node)
        if isinstance(node, exp.Anonymous):
            return self._function(node)
        if isinstance(node, exp.Add) and any(self.inference.is_stringish(side, self.scope_of(node))
                                             for side in (node.this, node.expression)):
            return exp.DPipe(this=self._moved(node.this), expression=self._moved(node.expression))
        if isinstance(node, exp.Div) and self.inference.is_integer(node.this, self.scope_of(node)) \
                and self.inference.is_integer(node.expression, self.scope_of(node)):
            return exp.Cast(this=exp.IntDiv(this=self._moved(node.this),
                                            expression=self._moved(node.expression)),
                            to=exp.DataType.build("BIGINT"))
        return node

    def _moved(self, child: exp.Expr) -> exp.Expr:
        """Rewrite a subtree that a replacement node adopts.

        ``transform`` walks top-down and does not descend into a node it replaced, so
        children carried into a new node (``CAST(@p AS nvarchar(9))`` wrapped in LEFT,
        ``@a + N'x'`` turned into ``||``) would keep their T-SQL form: a parameter
        inside them reached DuckDB unbound.
        """
        return self.rewrite(child)

    def _temporal_text(self, value: exp.Expr, owner: exp.Expr) -> exp.Expr | None:
        """SQL Server's text of a datetime2, datetimeoffset or time value (style 0/121
        shape: every fraction digit of the type's scale, the offset as +hh:mm), or None
        for other types. A stored datetime2(7)/time(7)/datetimeoffset column gives its 100 ns
        digit too; a computed value has microseconds (a 7th digit of 0)."""
        t, _ = self.inference.expr(value, self.scope_of(owner))
        if t is None or t.kind not in (SqlKind.DATETIME2, SqlKind.DATETIMEOFFSET, SqlKind.TIME):
            return None
        scale = 7 if t.scale is None else t.scale
        raw = struct_stored(t) and isinstance(value, exp.Column)
        if t.kind is SqlKind.DATETIMEOFFSET:
            template = _DTO_TEXT
        elif t.kind is SqlKind.TIME:
            template = _TIME_TEXT
        else:
            template = _DATETIME2_TEXT
        micros = _MICROS[t.kind]
        if raw and t.kind is not SqlKind.DATETIMEOFFSET:  # (_DTO_TEXT reads the struct)
            field = f"struct_extract(__v, '{MICROS_FIELD[t.kind]}')"
            template, micros = template.replace("__v", field), micros.replace("__v", field)
        hns = f"struct_extract(__v, '{HNS_FIELD[t.kind]}')" if raw else "0"
        fraction = "''" if scale == 0 else _FRACTION.format(scale=scale, micros="{micros}",
                                                             hns=hns)
        sql = template.format(fraction=fraction).replace("{micros}", micros)
        tree = _parse_duck(sql)
        if raw:
            value.meta["emu_raw"] = True
        moved = value if raw else self._moved(value)
        return tree.transform(lambda n: moved.copy() if isinstance(n, exp.Column)
                              and n.name == "__v" else n)

    def _target(self, dt_node: exp.Expr) -> SqlType:
        try:
            t = sqltype_from_datatype(dt_node)  # type: ignore[arg-type]
        except ValueError as exc:
            raise em.unsupported(str(exc).removeprefix("the emulator does not support ")) from None
        if is_string(t) and not dt_node.expressions:
            t = SqlType(t.kind, 30)
        return t

    def _cast(self, node: exp.Expr, target: SqlType, *, moved: bool = False) -> exp.Expr:
        node.set("to", duck_cast_type(target))
        node.meta["emu_done"] = True
        if is_string(target) and target.length != MAX:
            if not moved:  # the LEFT() replaces the cast, so transform will not visit inside
                node.set("this", self._moved(node.this))
            return exp.Left(this=node, expression=exp.Literal.number(target.length))
        return node

    def _function(self, node: exp.Anonymous) -> exp.Expr:
        name = node.name.upper()
        if name in ("SYSUTCDATETIME", "SYSDATETIME", "GETUTCDATE"):
            return exp.Var(this=_NOW)
        if name == "OBJECT_ID":
            return self._object_id(list(node.expressions))
        if name == "SERVERPROPERTY":
            prop = node.expressions[0].name if node.expressions else ""
            return literal_node(self.env.functions.get(f"SERVERPROPERTY:{prop.upper()}"))
        if name == "SESSION_CONTEXT":
            return literal_node(self.env.functions.get(
                f"SESSION_CONTEXT:{self._session_key(node)}"))
        if name in ("DB_NAME", "DB_ID") and node.expressions:
            raise em.unsupported(f"{name} with an argument")
        if name in self.env.functions:
            return literal_node(self.env.functions[name])
        if name == "DATALENGTH":
            return self._datalength(node)
        return node

    def _session_key(self, node: exp.Anonymous) -> str:
        """The key of ``SESSION_CONTEXT(N'key')`` (a literal or a variable)."""
        arg = node.expressions[0] if len(node.expressions) == 1 else None
        if isinstance(arg, exp.National) or (isinstance(arg, exp.Literal) and arg.is_string):
            return str(arg.name)
        if isinstance(arg, exp.Parameter) and not isinstance(arg.this, exp.Parameter):
            var = self.env.variables.get(arg.name.lower())
            if var is not None and var.value is not None:
                return str(var.value)
        raise em.unsupported("SESSION_CONTEXT with anything but a text key")

    def _len(self, node: exp.Length) -> exp.Expr:
        """LEN(x): UTF-16 code units (how SQL Server counts nvarchar), trailing blanks not
        counted. (The T-SQL parser wraps x in a CAST AS TEXT, which is not T-SQL's varchar
        cast with its 30-character default: it is dropped here.)"""
        arg = node.this
        if isinstance(arg, exp.Cast) and arg.to.this == exp.DataType.Type.TEXT:
            arg = arg.this
        t, _ = self.inference.expr(arg, self.scope_of(node))
        if t is not None and t.kind in (SqlKind.BINARY, SqlKind.VARBINARY):  # one per byte
            return exp.Anonymous(this="octet_length", expressions=[self._moved(arg)])
        text = exp.Anonymous(this="rtrim", expressions=[
            exp.cast(self._moved(arg), "VARCHAR"), exp.Literal.string(" ")])
        return _utf16_units(text)

    def _datalength(self, node: exp.Anonymous) -> exp.Expr:
        """DATALENGTH(x): bytes as SQL Server stores them: 2 per UTF-16 unit for nchar and
        nvarchar, the bytes of binary and varbinary, UTF-8 bytes for char and varchar (the
        emulator's code page), and the text's bytes for anything else."""
        arg = node.expressions[0]
        t, _ = self.inference.expr(arg, self.scope_of(node))
        value = self._moved(arg)
        if t is not None and t.kind in (SqlKind.BINARY, SqlKind.VARBINARY):
            return exp.Anonymous(this="octet_length", expressions=[value])
        if t is not None and t.kind in (SqlKind.NCHAR, SqlKind.NVARCHAR):
            return exp.Mul(this=_utf16_units(exp.cast(value, "VARCHAR")),
                           expression=exp.Literal.number(2))
        return exp.Anonymous(this="octet_length", expressions=[
            exp.Anonymous(this="encode", expressions=[exp.cast(value, "VARCHAR")])])

    def rewrite(self, node: exp.Expr) -> exp.Expr:
        """Apply the T-SQL -> DuckDB rewrites to a resolved tree, bottom-up.

        :param node: the tree.
        """
        return node.transform(self._rewrite, copy=False)


# DuckDB text of temporal values as SQL Server writes them; __v is the value. Fractions
# are cut (not rounded) from the stored microseconds, as the stored value already has the
# column's scale.
_PLAIN_STYLES = frozenset({"0", "20", "21", "120", "121"})  # 'yyyy-mm-dd hh:mi:ss[.f]'
_FRACTION = ("'.' || lpad(CAST(CAST(floor((({micros}) * 10 + {hns}) / pow(10, 7 - {scale})) "
             "AS BIGINT) AS VARCHAR), {scale}, '0')")
_MICROS = {
    SqlKind.DATETIME2: "((epoch_us(__v) % 1000000) + 1000000) % 1000000",
    SqlKind.DATETIMEOFFSET: "((epoch_us(struct_extract(__v, 'dto_utc')) % 1000000) + 1000000)"
                            " % 1000000",
    SqlKind.TIME: "date_part('microseconds', __v) % 1000000",
}
_DATETIME2_TEXT = "strftime(__v, '%Y-%m-%d %H:%M:%S') || {fraction}"
_TIME_TEXT = "strftime(DATE '2000-01-01' + __v, '%H:%M:%S') || {fraction}"
_OFFSET = "struct_extract(__v, 'dto_offset')"
_DTO_TEXT = (f"strftime(struct_extract(__v, 'dto_utc') + to_minutes(CAST({_OFFSET} AS BIGINT)), "
             "'%Y-%m-%d %H:%M:%S') || {fraction} || ' ' || "
             f"CASE WHEN {_OFFSET} < 0 THEN '-' ELSE '+' END || "
             f"lpad(CAST(abs({_OFFSET}) // 60 AS VARCHAR), 2, '0') || ':' || "
             f"lpad(CAST(abs({_OFFSET}) % 60 AS VARCHAR), 2, '0')")


def _parse_duck(sql: str) -> exp.Expr:
    import sqlglot

    return sqlglot.parse_one(sql, read="duckdb")


def _utf16_units(text: exp.Expr) -> exp.Expr:
    """UTF-16 code units of a DuckDB VARCHAR: its code points plus one per character
    outside the Basic Multilingual Plane (stored as a surrogate pair)."""
    astral = exp.Anonymous(this="regexp_replace", expressions=[
        text.copy(), exp.Literal.string("[^\\x{10000}-\\x{10FFFF}]"), exp.Literal.string(""),
        exp.Literal.string("g")])
    return exp.Paren(this=exp.Add(
        this=exp.Anonymous(this="length", expressions=[text]),
        expression=exp.Anonymous(this="length", expressions=[astral])))


def translate_query(node: exp.Expr, env: Env) -> Translation:
    """Translate a SELECT (or set operation) into DuckDB SQL with result types.

    :param node: a copied tree.
    :param env: the session environment.
    """
    tr = Translator(env)
    tr.resolve_tables(node)
    tr.check_columns(node)
    projections = tr.inference.projections(node)
    node = tr.rewrite(node)
    return Translation(node.sql(dialect="duckdb"), tr.params, tr.reads, projections)


def translate_expressions(exprs: list[exp.Expr], env: Env,
                          from_sql: str = "") -> Translation:
    """Translate free expressions into one ``SELECT e1, e2, ...``.

    :param exprs: the expressions (copied).
    :param env: the session environment.
    :param from_sql: an optional DuckDB FROM clause appended as-is.
    """
    select = exp.Select(expressions=exprs)
    tr = Translator(env)
    tr.resolve_tables(select)
    projections = tr.inference.projections(select)
    duck = tr.rewrite(select)
    return Translation(duck.sql(dialect="duckdb") + from_sql, tr.params, tr.reads, projections)


def raise_unsupported_node(node: exp.Expr) -> SqlError:
    """The error for a statement the engine has no handler for.

    :param node: the statement.
    """
    if isinstance(node, exp.Command):
        return em.unsupported(f"{node.name.upper()} {str(node.expression or '')[:40]}".strip())
    kind = node.args.get("kind")
    label = f"{node.key.upper()} {kind}" if isinstance(kind, str) else node.key.upper()
    return em.unsupported(label)
