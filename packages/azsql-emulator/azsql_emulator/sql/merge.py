"""MERGE, decomposed into checked DELETE / UPDATE / INSERT steps computed before any write.

DuckDB has its own MERGE, but it would bypass the SQL Server checks (types, NULLs, keys),
so the three row sets are selected first against the unchanged target, converted and
checked, and only then applied, all inside the statement's transaction.
"""

from __future__ import annotations

from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.catalog import ColumnMeta, TableMeta
from azsql_emulator.sql.dml import InsertPlan, WriteContext, hint_of, insert_plan, write_insert
from azsql_emulator.sql.translate import Translator, resolve_table
from azsql_emulator.sql.writes import RowShaper, apply_updates, delete_rids, unique_keys


def _clause_case(whens: list[exp.When]) -> exp.Expr:
    ifs = []
    for i, w in enumerate(whens):
        cond = w.args.get("condition")
        ifs.append(exp.If(this=cond.copy() if cond is not None else exp.true(),
                          true=exp.Literal.number(i)))
    return exp.Case(ifs=ifs, default=exp.Literal.number(-1))


def _not_exists(table: exp.Expr, on: exp.Expr) -> exp.Expr:
    inner = exp.select(exp.Literal.number(1)).from_(table.copy()).where(on.copy())
    return exp.Not(this=exp.Exists(this=inner))


def _set_columns(table: TableMeta, when: exp.When) -> list[tuple[ColumnMeta, exp.Expr]]:
    out = []
    for eq in when.args["then"].expressions:
        col = table.column(eq.this.name)
        if col is None:
            raise em.invalid_column(eq.this.name)
        if col.identity:
            raise SqlError(8102, f"Cannot update identity column '{col.name}'.")
        out.append((col, eq.expression))
    return out


def _fetch(ctx: WriteContext, select: exp.Select, table: TableMeta) -> list[tuple]:
    tr = Translator(ctx.env())
    tr.resolve_tables(select)
    tr.check_columns(select)
    duck = tr.rewrite(select)
    ctx.check_read(_sources_read(tr, table))
    return ctx.con.execute(duck.sql(dialect="duckdb"), tr.params).fetchall()


def _sources_read(tr: Translator, target: TableMeta) -> list[TableMeta]:
    # reading the MERGE target itself needs no SELECT permission, its sources do
    return [t for t in tr.reads if (t.database, t.object_id) != (target.database, target.object_id)]


class _Planned:
    """Row sets of one MERGE: rowids to delete, updates per clause, inserts per clause."""

    def __init__(self) -> None:
        self.deletes: list[int] = []
        self.updates: list[tuple[list[ColumnMeta], list[int], list[list[object]]]] = []
        self.inserts: list[tuple[InsertPlan, list[list[object]], list[str | None]]] = []


def _plan_target_side(ctx: WriteContext, table: TableMeta, select: exp.Select,
                      whens: list[exp.When], planned: _Planned, matched: bool) -> int:
    """Rows of the target hit by WHEN MATCHED or WHEN NOT MATCHED BY SOURCE clauses."""
    sets = [_set_columns(table, w) if isinstance(w.args["then"], exp.Update) else []
            for w in whens]
    exprs = [e.copy() for s in sets for _, e in s]
    select.set("expressions", [select.expressions[0], _clause_case(whens), *exprs])
    rows = _fetch(ctx, select, table)
    seen: set[int] = set()
    per_clause: dict[int, tuple[list[int], list[list[object]]]] = {}
    offsets, start = [], 2
    for s in sets:
        offsets.append(start)
        start += len(s)
    for row in rows:
        rid, clause = row[0], row[1]
        if clause < 0:
            continue
        if rid in seen and matched:
            raise SqlError(8672, "The MERGE statement attempted to UPDATE or DELETE the same row "
                                 "more than once. This happens when a target row matches more "
                                 "than one source row. A MERGE statement cannot UPDATE/DELETE the "
                                 "same row of the target table multiple times. Refine the ON "
                                 "clause to ensure a target row matches at most one source row, "
                                 "or use the GROUP BY clause to group the source rows.")
        seen.add(rid)
        then = whens[clause].args["then"]
        if isinstance(then, exp.Update):
            cols = [c for c, _ in sets[clause]]
            shaper = RowShaper(table, cols, "UPDATE")
            values = list(row[offsets[clause]:offsets[clause] + len(cols)])
            rids, vals = per_clause.setdefault(clause, ([], []))
            rids.append(rid)
            vals.append(shaper.convert(values, [None] * len(cols)))
        else:
            planned.deletes.append(rid)
    for clause, (rids, vals) in per_clause.items():
        cols = [c for c, _ in sets[clause]]
        touched = {c.name.lower() for c in cols}
        if any(touched & {x.lower() for x in k.columns} for k in unique_keys(table)):
            raise em.unsupported("MERGE ... UPDATE SET of key columns")
        planned.updates.append((cols, rids, vals))
    return len(seen)


def run_merge(ctx: WriteContext, node: exp.Merge) -> int:
    """Execute the common MERGE shapes (upsert, sync with delete); returns rows affected.

    :param ctx: the session.
    :param node: the parsed statement (copied).
    """
    if node.args.get("returning"):
        raise em.unsupported("MERGE ... OUTPUT")
    env = ctx.env()
    target = node.this
    table = resolve_table(env, target)
    using = node.args["using"]
    on = node.args["on"]
    whens = list(node.args["whens"].expressions)
    for w in whens:
        then = w.args["then"]
        action = "INSERT" if isinstance(then, exp.Insert) else (
            "UPDATE" if isinstance(then, exp.Update) else "DELETE")
        ctx.check_write(table, action)
    matched = [w for w in whens if w.args.get("matched")]
    by_target = [w for w in whens if not w.args.get("matched") and not w.args.get("source")]
    by_source = [w for w in whens if not w.args.get("matched") and w.args.get("source")]
    alias = target.alias_or_name
    rowid = exp.column("rowid", table=alias, quoted=True)
    planned = _Planned()
    affected = 0
    if matched:
        select = exp.select(rowid.copy()).from_(target.copy()).join(using.copy(), on=on.copy())
        affected += _plan_target_side(ctx, table, select, matched, planned, matched=True)
    if by_source:
        select = exp.select(rowid.copy()).from_(target.copy()).where(_not_exists(using, on))
        affected += _plan_target_side(ctx, table, select, by_source, planned, matched=False)
    for when in by_target:
        ins = when.args["then"]
        names = [c.name for c in ins.this.expressions] if isinstance(ins.this, exp.Tuple) \
            else None
        values = ins.expression.expressions if isinstance(ins.expression, exp.Tuple) else []
        select = exp.select(*[v.copy() for v in values]).from_(using.copy()).where(
            _not_exists(target, on))
        cond = when.args.get("condition")
        if cond is not None:
            select = select.where(cond.copy())
        tr = Translator(env)
        tr.resolve_tables(select)
        hints = [hint_of(tr.inference.expr(e, tr.scope_of(e))[0]) for e in select.expressions]
        duck = tr.rewrite(select)
        ctx.check_read(_sources_read(tr, table))
        rows = ctx.con.execute(duck.sql(dialect="duckdb"), tr.params).fetchall()
        plan = insert_plan(ctx, table, names)
        if len(values) != len(plan.shaper.given):
            raise SqlError(213, "Column name or number of supplied values does not match table "
                                "definition.")
        # convert now so a bad row fails the MERGE before anything is written
        for row in rows:
            plan.shaper.convert(row, hints)
        planned.inserts.append((plan, [list(r) for r in rows], hints))
    delete_rids(ctx.con, table, planned.deletes)
    for cols, rids, vals in planned.updates:
        apply_updates(ctx.con, table, cols, rids, vals)
    for insert, new_rows, new_hints in planned.inserts:
        write_insert(ctx, insert, new_rows, new_hints)
        affected += len(new_rows)
    return affected
