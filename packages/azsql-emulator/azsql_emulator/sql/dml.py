"""INSERT, UPDATE and DELETE with SQL Server's checks, on top of ``writes``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import duckdb
from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.batch import parse_statement_text
from azsql_emulator.sql.catalog import ColumnMeta, TableMeta
from azsql_emulator.sql.translate import (
    Env,
    Translator,
    resolve_table,
    translate_expressions,
    translate_query,
)
from azsql_emulator.sql.writes import (
    RowShaper,
    append_rows,
    apply_updates,
    find_duplicates,
    unique_keys,
)
from azsql_emulator.sqltypes import SqlKind


class WriteContext(Protocol):
    """What the DML handlers need from a session."""

    con: duckdb.DuckDBPyConnection
    scope_identity: int | None
    identity_insert: set[tuple[str, int]]

    def env(self) -> Env: ...
    def check_read(self, tables: Sequence[TableMeta]) -> None: ...
    def check_write(self, table: TableMeta, action: str) -> None: ...
    def allocate_identity(self, table: TableMeta, count: int) -> list[int]: ...
    def observe_identity(self, table: TableMeta, values: Sequence[int]) -> None: ...
    def count_inserted(self, table: TableMeta, count: int) -> None: ...


def hint_of(t: object) -> str | None:
    """The source type name used in conversion messages.

    :param t: a SqlType or None.
    """
    kind = getattr(t, "kind", None)
    if kind is None:
        return None
    return "numeric" if kind is SqlKind.DECIMAL else kind.value


def python_literal(node: exp.Expr, env: Env) -> tuple[object, str | None]:
    """Evaluate a literal, parameter or negated number without DuckDB.

    :param node: a VALUES item.
    :param env: for variables.
    :raises LookupError: when the node needs DuckDB to evaluate.
    """
    if isinstance(node, exp.Paren):
        return python_literal(node.this, env)
    if isinstance(node, exp.National):
        return node.name, "nvarchar"
    if isinstance(node, exp.Literal):
        text = node.name
        if node.is_string:
            return text, "varchar"
        if "e" in text.lower():
            return float(text), "float"
        if "." in text:
            return Decimal(text), "numeric"
        number = int(text)
        return number, "int" if number < 2**31 else "numeric"
    if isinstance(node, exp.Null):
        return None, None
    if isinstance(node, exp.Neg):
        value, hint = python_literal(node.this, env)
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return -value, hint
        raise LookupError
    if isinstance(node, exp.HexString):
        return bytes.fromhex(node.name if len(node.name) % 2 == 0 else "0" + node.name), \
            "varbinary"
    if isinstance(node, exp.Parameter) and not isinstance(node.this, exp.Parameter):
        var = env.variables.get(node.name.lower())
        if var is None:
            raise em.must_declare("@" + node.name)
        return var.value, hint_of(var.type)
    raise LookupError


def _parameter_name(node: exp.Expr) -> str | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Parameter) and not isinstance(node.this, exp.Parameter):
        return node.name.lower()
    return None


def _max_text_cast(node: exp.Expr, kinds: tuple[object, ...]) -> exp.Expr | None:
    """The operand of ``CAST(x AS <kind>(max))`` (one of ``kinds``), else None."""
    while isinstance(node, exp.Paren):
        node = node.this
    if not isinstance(node, exp.Cast) or node.args.get("format") is not None:
        return None
    to = node.to
    if to.this not in kinds or len(to.expressions) != 1:
        return None
    size = to.expressions[0]
    inner = size.this if isinstance(size, exp.DataTypeParam) else size
    if not (isinstance(inner, exp.Var) and inner.name.lower() == "max"):
        return None
    return node.this


_DT = exp.DataType.Type
_HEX_DIGITS = re.compile(r"(?:[0-9a-fA-F]{2})*")


def hex_parameters(node: exp.Expr) -> list[str] | None:
    """The parameter names of ``CONVERT(varbinary(max), CAST(@P AS varchar(max)), 2)``, the
    marker azsql-bulk binds bytes with (hex text; engine/bind_casts.py), or of its long form
    ``CONVERT(varbinary(max), CAST((CAST(@P1 AS nvarchar(max)) + ...) AS varchar(max)), 2)``
    (hex text too long for one parameter, sent in pieces); None for anything else.

    :param node: a VALUES item.
    """
    while isinstance(node, exp.Paren):
        node = node.this
    if not isinstance(node, exp.Convert):
        return None
    style = node.args.get("style")
    target = node.this
    if not (isinstance(style, exp.Literal) and style.name == "2"
            and isinstance(target, exp.DataType) and target.this == _DT.VARBINARY):
        return None
    sizes = target.expressions
    inner = sizes[0].this if sizes and isinstance(sizes[0], exp.DataTypeParam) else None
    if len(sizes) != 1 or not (isinstance(inner, exp.Var) and inner.name.lower() == "max"):
        return None
    operand = _max_text_cast(node.expression, (_DT.VARCHAR,))
    if operand is None:
        return None
    single = _parameter_name(operand)
    if single is not None:
        return [single]
    parts: list[exp.Expr] = []
    stack = [operand.this if isinstance(operand, exp.Paren) else operand]
    while stack:
        cur = stack.pop()
        if isinstance(cur, exp.Add):
            stack.extend([cur.expression, cur.this])
        else:
            parts.append(cur)
    names = []
    for part in parts:
        piece = _max_text_cast(part, (_DT.NVARCHAR,))
        name = None if piece is None else _parameter_name(piece)
        if name is None:
            return None
        names.append(name)
    return names


def hex_value(values: Sequence[object]) -> bytes | None:
    """What ``CONVERT(varbinary(max), <joined text>, 2)`` gives for one call's pieces.

    :param values: the pieces' parameter values.
    :raises TypeError: a piece that is not text, or text that is not whole hex digits (the
        general path then evaluates the statement and reports SQL Server's error).
    """
    if any(v is None for v in values):
        return None
    if not all(isinstance(v, str) for v in values):
        raise TypeError("a hex cast of a non-text parameter")
    text = "".join(values)  # type: ignore[arg-type]
    if _HEX_DIGITS.fullmatch(text) is None:
        raise TypeError("not hex digits")
    return bytes.fromhex(text)


@dataclass
class InsertPlan:
    """An INSERT's target, column mapping and converters; reusable for many rows."""

    table: TableMeta
    shaper: RowShaper
    identity_given: bool


def insert_plan(ctx: WriteContext, table: TableMeta, names: list[str] | None) -> InsertPlan:
    """Map the INSERT column list onto the table (207, 544, 545 on mistakes).

    :param ctx: the session.
    :param table: the target.
    :param names: the column list, or None for all non-identity columns.
    """
    ident = table.identity_column
    identity_on = (table.database, table.object_id) in ctx.identity_insert
    if names is None:
        given = [c for c in table.columns if not c.identity or identity_on]
    else:
        given = []
        for name in names:
            col = table.column(name)
            if col is None:
                raise em.invalid_column(name)
            given.append(col)
    identity_given = ident is not None and any(c is ident for c in given)
    if identity_given and not identity_on:
        raise SqlError(544, f"Cannot insert explicit value for identity column in table "
                            f"'{table.name}' when IDENTITY_INSERT is set to OFF.")
    if ident is not None and identity_on and not identity_given:
        raise SqlError(545, f"Explicit value must be specified for identity column in table "
                            f"'{table.name}' either when IDENTITY_INSERT is set to ON or when a "
                            "replication user is inserting into a NOT FOR REPLICATION identity "
                            "column.")
    return InsertPlan(table, RowShaper(table, given), identity_given)


_DEFAULT_TREES: dict[str, exp.Expr] = {}


def _default_values(ctx: WriteContext, cols: list[ColumnMeta], count: int) -> list[list[object]]:
    """Per column, ``count`` values of its DEFAULT (evaluated per row, like NEWID())."""
    exprs = []
    for col in cols:
        tree = _DEFAULT_TREES.get(col.default_sql or "")
        if tree is None:
            tree = parse_statement_text(f"SELECT {col.default_sql}").expressions[0]
            _DEFAULT_TREES[col.default_sql or ""] = tree
        exprs.append(tree.copy())
    tr = translate_expressions(exprs, ctx.env(), f" FROM range({count})")
    rows = ctx.con.execute(tr.sql, tr.params).fetchall()
    return [[r[i] for r in rows] for i in range(len(cols))]


def write_insert(ctx: WriteContext, plan: InsertPlan, rows: Sequence[Sequence[object]],
                 hints: Sequence[str | None], per_row: bool = False) -> list[SqlError | None]:
    """Convert, complete (identity, defaults), key-check and append rows.

    :param ctx: the session.
    :param plan: the INSERT plan.
    :param rows: source rows in the plan's column order.
    :param hints: source type names per column.
    :param per_row: True reports each row's error and inserts the good rows; False raises
        the first error and inserts nothing (one statement is atomic).
    """
    table, shaper = plan.table, plan.shaper
    errors: list[SqlError | None] = [None] * len(rows)
    converted: list[list[object] | None] = []
    for i, row in enumerate(rows):
        try:
            converted.append(shaper.convert(row, hints))
        except SqlError as err:
            if not per_row:
                raise
            errors[i] = err
            converted.append(None)
    good = [i for i, r in enumerate(converted) if r is not None]
    missing = [c for c, s in zip(table.columns, shaper.slots, strict=True) if s is None]
    fills: dict[str, list[object]] = {}
    with_default = [c for c in missing if c.default_sql and not c.identity]
    if with_default and good:
        for col, values in zip(with_default, _default_values(ctx, with_default, len(good)),
                               strict=True):
            conv = RowShaper(table, [col]).converters[0]
            fills[col.name] = [conv(v, None) for v in values]
    for col in missing:
        if not col.identity and not col.default_sql and not col.nullable and good:
            missing_err = em.null_not_allowed(col.name, table.full_name, "INSERT")
            if not per_row:
                raise missing_err
            for i in good:
                errors[i] = missing_err
            good = []
    ident = table.identity_column
    identity_values: list[int] = []
    if ident is not None and not plan.identity_given and good:
        identity_values = ctx.allocate_identity(table, len(good))
        fills[ident.name] = identity_values  # type: ignore[assignment]
    full: list[list[object] | None] = [None] * len(rows)
    for k, i in enumerate(good):
        fill = [fills[c.name][k] if c.name in fills else None for c in table.columns]
        full[i] = shaper.widen(converted[i], fill)  # type: ignore[arg-type]
    if unique_keys(table) and good:
        for i, dup in find_duplicates(ctx.con, table, full).items():
            if not per_row:
                raise dup
            errors[i] = dup
            full[i] = None
    ready = [r for r in full if r is not None]
    append_rows(ctx.con, table, ready)
    if ident is not None and ready:
        pos = table.columns.index(ident)
        values = [r[pos] for r in ready]
        if plan.identity_given:
            ctx.observe_identity(table, values)  # type: ignore[arg-type]
        ctx.scope_identity = values[-1]  # type: ignore[assignment]
    ctx.count_inserted(table, len(ready))
    return errors


def run_insert(ctx: WriteContext, stmt: exp.Insert) -> int:
    """Execute INSERT ... VALUES / SELECT / DEFAULT VALUES; returns rows inserted.

    :param ctx: the session.
    :param stmt: the parsed statement (copied).
    """
    if stmt.args.get("returning"):
        raise em.unsupported("INSERT ... OUTPUT")
    env = ctx.env()
    target = stmt.this
    names = None
    if isinstance(target, exp.Schema):
        names = [i.name for i in target.expressions]
        target = target.this
    if not isinstance(target, exp.Table):
        raise em.unsupported("this INSERT target")
    table = resolve_table(env, target)
    ctx.check_write(table, "INSERT")
    plan = insert_plan(ctx, table, names)
    width = len(plan.shaper.given)
    source = stmt.expression
    rows: list[Sequence[object]]
    if isinstance(source, exp.Values):
        rows, hints = _values_rows(ctx, env, source, width)
    elif isinstance(source, exp.Query):
        tr = translate_query(source, env)
        ctx.check_read(tr.reads)
        rows = list(ctx.con.execute(tr.sql, tr.params).fetchall())
        if (rows and len(rows[0]) != width) or (tr.projections and len(tr.projections) != width):
            raise SqlError(213, "Column name or number of supplied values does not match table "
                                "definition.")
        hints = [hint_of(p.type) for p in tr.projections or []] or [None] * width
    elif source is None and stmt.args.get("default"):
        rows, hints = [[]], []
    else:
        raise em.unsupported("this INSERT source")
    write_insert(ctx, plan, rows, hints)
    return len(rows)


def _values_rows(ctx: WriteContext, env: Env, values: exp.Values,
                 width: int) -> tuple[list[Sequence[object]], list[str | None]]:
    rows: list[Sequence[object]] = []
    hints: list[str | None] = [None] * width
    for tup in values.expressions:
        items = tup.expressions if isinstance(tup, exp.Tuple) else [tup]
        if len(items) != width:
            if len(items) > width:
                raise SqlError(110, "There are fewer columns in the INSERT statement than values "
                                    "specified in the VALUES clause. The number of values in the "
                                    "VALUES clause must match the number of columns specified in "
                                    "the INSERT statement.")
            raise SqlError(109, "There are more columns in the INSERT statement than values "
                                "specified in the VALUES clause. The number of values in the "
                                "VALUES clause must match the number of columns specified in the "
                                "INSERT statement.")
        try:
            pairs = [python_literal(item, env) for item in items]
            rows.append([p[0] for p in pairs])
            row_hints = [p[1] for p in pairs]
        except LookupError:
            tr = translate_expressions([i.copy() for i in items], env)
            ctx.check_read(tr.reads)
            rows.append(list(ctx.con.execute(tr.sql, tr.params).fetchall()[0]))
            row_hints = [hint_of(p.type) for p in tr.projections or []] or [None] * width
        # messages name the first row's literal types, like SQL Server's VALUES typing
        hints = [h or r for h, r in zip(hints, row_hints, strict=True)]
    return rows, hints


def _target_of(stmt: exp.Update, env: Env) -> tuple[exp.Select, exp.Table, TableMeta]:
    """The SELECT over the UPDATE's FROM items and the item that is the target."""
    ref = stmt.this
    from_ = stmt.args.get("from_")
    select = exp.Select()
    if from_ is not None:
        items = [from_.this, *(j.this for j in from_.this.args.get("joins") or [])]
        items += [j.this for j in stmt.args.get("joins") or []]
        match = next((i for i in items if isinstance(i, exp.Table) and not ref.db
                      and i.alias_or_name.lower() == ref.name.lower()), None)
        if match is not None:
            select.set("from_", from_)
            target = match
        else:
            target = ref
            select.set("from_", exp.From(this=ref))
            select.set("joins", [exp.Join(this=from_.this, kind="CROSS")])
    else:
        target = ref
        select.set("from_", exp.From(this=ref))
    return select, target, resolve_table(env, target)


def run_update(ctx: WriteContext, stmt: exp.Update) -> int:
    """Execute UPDATE (with optional FROM/JOIN); returns rows updated.

    :param ctx: the session.
    :param stmt: the parsed statement (copied).
    """
    if stmt.args.get("returning"):
        raise em.unsupported("UPDATE ... OUTPUT")
    env = ctx.env()
    select, target, table = _target_of(stmt, env)
    ctx.check_write(table, "UPDATE")
    alias = target.alias_or_name
    cols: list[ColumnMeta] = []
    exprs: list[exp.Expr] = [exp.column("rowid", table=alias, quoted=True)]
    for eq in stmt.expressions:
        if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
            raise em.unsupported("this SET clause")
        col = table.column(eq.this.name)
        if col is None:
            raise em.invalid_column(eq.this.name)
        if col.identity:
            raise SqlError(8102, f"Cannot update identity column '{col.name}'.")
        cols.append(col)
        exprs.append(eq.expression)
    touched = {c.name.lower() for c in cols}
    keys = [k for k in unique_keys(table) if touched & {c.lower() for c in k.columns}]
    key_cols = [c for c in table.columns if any(c.name.lower() in {x.lower() for x in k.columns}
                                                for k in keys)]
    exprs += [exp.column(c.name, table=alias, quoted=True) for c in key_cols]
    select.set("expressions", exprs)
    if stmt.args.get("where") is not None:
        select.set("where", stmt.args["where"])
    tr = Translator(env)
    tr.resolve_tables(select)
    tr.check_columns(select)
    hints = [hint_of(tr.inference.expr(e, tr.scope_of(e))[0]) for e in exprs[1:1 + len(cols)]]
    duck = tr.rewrite(select)
    ctx.check_read([t for t in tr.reads if t is not table])
    fetched = ctx.con.execute(duck.sql(dialect="duckdb"), tr.params).fetchall()
    seen: set[int] = set()
    rids: list[int] = []
    values: list[list[object]] = []
    key_rows: list[list[object]] = []
    shaper = RowShaper(table, cols, "UPDATE")
    for row in fetched:
        if row[0] in seen:
            continue  # a target row joined twice: SQL Server also applies one of them
        seen.add(row[0])
        new = shaper.convert(row[1:1 + len(cols)], hints)
        rids.append(row[0])
        values.append(new)
        if keys:
            old = dict(zip((c.name.lower() for c in key_cols), row[1 + len(cols):], strict=True))
            mapping = {c.name.lower(): v for c, v in zip(cols, new, strict=True)}
            key_rows.append([mapping.get(c.name.lower(), old.get(c.name.lower()))
                             for c in table.columns])
    if keys and rids:
        dups = find_duplicates(ctx.con, table, key_rows, rids=rids, keys=keys)
        if dups:
            raise dups[min(dups)]
    apply_updates(ctx.con, table, cols, rids, values)
    return len(rids)


def run_delete(ctx: WriteContext, stmt: exp.Delete) -> int:
    """Execute DELETE (also ``DELETE t FROM t JOIN ...``); returns rows deleted.

    :param ctx: the session.
    :param stmt: the parsed statement (copied).
    """
    if stmt.args.get("returning"):
        raise em.unsupported("DELETE ... OUTPUT")
    env = ctx.env()
    this = stmt.this
    if stmt.args.get("tables") or stmt.args.get("using") or (
            isinstance(this, exp.Table) and this.args.get("joins")):
        return _delete_joined(ctx, stmt, env)
    if not isinstance(this, exp.Table):
        raise em.unsupported("this DELETE target")
    table = resolve_table(env, this)
    ctx.check_write(table, "DELETE")
    tr = Translator(env)
    tr.resolve_tables(stmt)
    tr.check_columns(stmt)
    ctx.check_read([t for t in tr.reads if t is not table])
    duck = tr.rewrite(stmt)
    return int(ctx.con.execute(duck.sql(dialect="duckdb"), tr.params).fetchall()[0][0])


def _delete_joined(ctx: WriteContext, stmt: exp.Delete, env: Env) -> int:
    from azsql_emulator.sql.writes import delete_rids

    tables = stmt.args.get("tables") or [stmt.this]
    ref = tables[0]
    source = stmt.this
    select = exp.Select()
    joins = source.args.pop("joins", None) if isinstance(source, exp.Table) else None
    if isinstance(source, exp.Table):
        source.set("joins", None)
    select.set("from_", exp.From(this=source))
    if joins:
        select.set("joins", joins)
    items = [source, *(j.this for j in joins or [])]
    target = next((i for i in items if isinstance(i, exp.Table)
                   and i.alias_or_name.lower() == ref.name.lower()), None)
    if target is None:
        raise em.invalid_object(ref.name)
    table = resolve_table(env, target)
    ctx.check_write(table, "DELETE")
    select.set("expressions", [exp.column("rowid", table=target.alias_or_name, quoted=True)])
    if stmt.args.get("where") is not None:
        select.set("where", stmt.args["where"])
    tr = Translator(env)
    tr.resolve_tables(select)
    tr.check_columns(select)
    duck = tr.rewrite(select)
    found = ctx.con.execute(duck.sql(dialect="duckdb"), tr.params).fetchall()
    rids = sorted({r[0] for r in found})
    delete_rids(ctx.con, table, rids)
    return len(rids)
