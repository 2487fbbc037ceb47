"""CREATE/DROP/TRUNCATE/ALTER TABLE, CREATE/DROP SCHEMA, CREATE/DROP INDEX and sp_rename."""

# ruff: noqa: S608 - SQL is built from quote()d identifiers; values are bound parameters

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Protocol

import duckdb
from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import catalog as cat
from azsql_emulator.sql import columnstore as cs
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.catalog import ColumnMeta, KeyMeta, TableMeta, quote
from azsql_emulator.sql.checks import from_storage
from azsql_emulator.sql.translate import Env, lookup, resolve_table, split_name, written_name
from azsql_emulator.sql.typemap import (
    duck_type,
    is_integer,
    sqltype_from_datatype,
    struct_stored,
    utf16_len,
    utf16_prefix,
)
from azsql_emulator.sql.writes import key_value
from azsql_emulator.sqltypes import SqlKind, SqlType


class DdlContext(Protocol):
    """What DDL handlers need from a session."""

    con: duckdb.DuckDBPyConnection

    def env(self) -> Env: ...
    def check_ddl(self, action: str, database: str) -> None: ...
    def new_object_ids(self, database: str, count: int) -> list[int]: ...
    def catalog_changed(self) -> None: ...
    def reset_identity(self, table: TableMeta) -> None: ...


def _auto_name(prefix: str, table: str) -> str:
    # SQL Server's system names look like PK__orders__3213E83F5F7C1C4A
    return f"{prefix}__{table[:8]}__{uuid.uuid4().hex[:16].upper()}"


def _default_text(node: exp.Expr) -> str:
    text = node.sql(dialect="tsql")
    if (isinstance(node, exp.Literal) and not node.is_string) or isinstance(node, exp.Neg):
        return f"(({text}))"  # SQL Server shows numeric defaults as ((0))
    return f"({text})"


def _key_columns(node: exp.Expr) -> list[str]:
    out = []
    for item in node.expressions:
        inner = item.this if isinstance(item, exp.Ordered) else item
        out.append(inner.name)
    return out


def _column_def(cdef: exp.ColumnDef, keys: list[tuple[str, str | None, list[str]]],
                position: int) -> ColumnMeta:
    name = cdef.name
    kind = cdef.args.get("kind")
    if not isinstance(kind, exp.DataType):
        raise em.unsupported(f"column '{name}' without a data type (computed column)")
    try:
        t = sqltype_from_datatype(kind)
    except ValueError as exc:
        raise em.unsupported(str(exc).removeprefix("the emulator does not support ")) from None
    nullable, identity, default = True, None, None
    for cons in cdef.args.get("constraints") or []:
        ck = cons.args.get("kind")
        cname = cons.name or None
        if isinstance(ck, exp.NotNullColumnConstraint):
            nullable = bool(ck.args.get("allow_null"))
        elif isinstance(ck, exp.PrimaryKeyColumnConstraint):
            keys.append(("PK", cname, [name]))
            nullable = False
        elif isinstance(ck, exp.UniqueColumnConstraint):
            keys.append(("UQ", cname, [name]))
        elif isinstance(ck, exp.DefaultColumnConstraint):
            default = _default_text(ck.this)
        elif isinstance(ck, exp.GeneratedAsIdentityColumnConstraint):
            seed = int(ck.args["start"].name) if ck.args.get("start") else 1
            incr = int(ck.args["increment"].name) if ck.args.get("increment") else 1
            exact = t.kind in (SqlKind.DECIMAL, SqlKind.NUMERIC) and t.scale == 0
            if not (is_integer(t) or exact):
                raise SqlError(2749, f"Identity column '{name}' must be of data type int, bigint, "
                                     "smallint, tinyint, or decimal or numeric with a scale of 0, "
                                     "and constrained to be nonnullable.")
            identity, nullable = (seed, incr), False
        elif isinstance(ck, exp.Reference | exp.CollateColumnConstraint):
            continue  # foreign keys and collations are accepted but not enforced
        else:
            raise em.unsupported(f"column constraint {ck.key.upper() if ck else '?'} on '{name}'")
    return ColumnMeta(name, t, nullable, position, identity, default)


def create_table(ctx: DdlContext, create: exp.Create) -> None:
    """CREATE TABLE with SQL Server types, identity, defaults, PRIMARY KEY and UNIQUE.

    :param ctx: the session.
    :param create: the parsed statement.
    """
    schema_node = create.this
    if not isinstance(schema_node, exp.Schema) or not isinstance(schema_node.this, exp.Table):
        raise em.unsupported("CREATE TABLE ... AS SELECT")
    ref = schema_node.this
    if isinstance(ref.this, exp.Identifier) and ref.this.args.get("temporary"):
        raise em.unsupported(f"temporary table #{ref.name}", None)
    env = ctx.env()
    database = _database(env, ref)
    ctx.check_ddl("CREATE TABLE", database)
    snap = env.snapshot(database)
    schema_name = ref.db or cat.DEFAULT_SCHEMA
    schema = snap.schemas.get(schema_name.lower())
    if schema is None:
        raise SqlError(2760, f'The specified schema name "{schema_name}" either does not exist or '
                             "you do not have permission to use it.")
    if (schema[0].lower(), ref.name.lower()) in snap.object_names:
        if create.args.get("exists"):
            return
        raise em.already_exists(ref.name)
    keys: list[tuple[str, str | None, list[str]]] = []
    columns: list[ColumnMeta] = []
    for item in schema_node.expressions:
        if isinstance(item, exp.ColumnDef):
            col = _column_def(item, keys, len(columns) + 1)
            if any(c.name.lower() == col.name.lower() for c in columns):
                raise SqlError(2705, f"Column names in each table must be unique. Column name "
                                     f"'{col.name}' in table '{ref.name}' is specified more than "
                                     "once.")
            columns.append(col)
        elif isinstance(item, exp.Constraint):
            for inner in item.expressions:
                _table_key(inner, item.name or None, keys)
        else:
            _table_key(item, None, keys)
    # inline INDEX cci CLUSTERED COLUMNSTORE, cut out before parsing (see columnstore.py)
    keys += [(kind, name, list(cols)) for kind, name, cols in create.meta.get("columnstore", ())]
    if sum(1 for k in keys if k[0] == cs.CLUSTERED) > 1:
        raise SqlError(1902, f"Cannot create more than one clustered index on table "
                             f"'{ref.name}'. Drop the existing clustered index before creating "
                             "another.")
    pk_cols = {c.lower() for kind, _, cols in keys if kind == "PK" for c in cols}
    if sum(1 for k in keys if k[0] == "PK") > 1:
        raise SqlError(8110, f"Cannot add multiple PRIMARY KEY constraints to table '{ref.name}'.")
    for i, col in enumerate(columns):
        if col.name.lower() in pk_cols and col.nullable:
            columns[i] = ColumnMeta(col.name, col.type, False, col.column_id, col.identity,
                                    col.default_sql)
    names = {c.name.lower() for c in columns}
    for _, _, cols in keys:
        for c in cols:
            if c.lower() not in names:
                raise SqlError(1911, f"Column name '{c}' does not exist in the target table or "
                                     "view.")
    ids = ctx.new_object_ids(database, 1 + len(keys))
    key_metas: list[KeyMeta] = []
    for (kind, name, cols), oid in zip(keys, ids[1:], strict=True):
        name = name or _auto_name(kind, ref.name)
        constraint = kind in ("PK", "UQ")  # a schema object; an index is named per table
        if (constraint and (schema[0].lower(), name.lower()) in snap.object_names) or any(
                k.name.lower() == name.lower() for k in key_metas):
            raise em.already_exists(name)
        canon = [next(c.name for c in columns if c.name.lower() == x.lower()) for x in cols]
        key_metas.append(KeyMeta(name, kind, tuple(canon), oid))
    table = TableMeta(database, schema[0], ref.name, ids[0], columns, key_metas)
    defs = [f"{quote(c.name)} {duck_type(c.type)}{'' if c.nullable else ' NOT NULL'}"
            for c in columns]
    for key in key_metas:
        if key.kind not in ("PK", "UQ"):
            continue  # a columnstore index changes nothing DuckDB stores
        word = "PRIMARY KEY" if key.kind == "PK" else "UNIQUE"
        key_cols = [table.column(c) for c in key.columns]
        if any(struct_stored(c.type) for c in key_cols):  # type: ignore[union-attr]
            continue  # DuckDB cannot index a struct: the write checks alone enforce the key
        if key.kind == "PK" or all(not c.nullable for c in key_cols):  # type: ignore[union-attr]
            # nullable UNIQUE columns: SQL Server allows one NULL, DuckDB many; checks.py decides
            defs.append(f"{word} ({', '.join(quote(c) for c in key.columns)})")
    ctx.con.execute(f"CREATE TABLE {table.duck_name} ({', '.join(defs)})").fetchall()
    cat.save_table(ctx.con, table)
    ctx.catalog_changed()


def _table_key(node: exp.Expr, name: str | None,
               keys: list[tuple[str, str | None, list[str]]]) -> None:
    if isinstance(node, exp.PrimaryKey):
        keys.append(("PK", name, _key_columns(node)))
    elif isinstance(node, exp.UniqueColumnConstraint):
        keys.append(("UQ", name, _key_columns(node.this)))
    elif isinstance(node, exp.ForeignKey):
        return
    else:
        raise em.unsupported(f"table constraint {node.key.upper()}")


def _database(env: Env, ref: exp.Table) -> str:
    if not ref.catalog:
        return env.database
    found = next((d for d in env.databases if d.lower() == ref.catalog.lower()), None)
    if found is None:
        raise SqlError(911, f"Database '{ref.catalog}' does not exist. Make sure that the name "
                            "is entered correctly.")
    return found


def drop_tables(ctx: DdlContext, drop: exp.Drop) -> None:
    """DROP TABLE [IF EXISTS] a, b.

    :param ctx: the session.
    :param drop: the parsed statement.
    """
    env = ctx.env()
    for ref in drop.expressions or drop.args.get("tables") or []:
        database = _database(env, ref)
        ctx.check_ddl("DROP TABLE", database)
        meta = lookup(env, *_parts(ref))
        if meta is None or meta.system:
            if drop.args.get("exists"):
                continue
            raise em.cannot_drop(written_name(ref))
        ctx.con.execute(f"DROP TABLE {meta.duck_name}").fetchall()
        cat.delete_table(ctx.con, meta)
        ctx.reset_identity(meta)
        ctx.catalog_changed()


def _parts(ref: exp.Table) -> tuple[str | None, str | None, str]:
    return ref.catalog or None, ref.db or None, ref.name


def truncate(ctx: DdlContext, node: exp.TruncateTable) -> None:
    """TRUNCATE TABLE: delete all rows and reset the identity to its seed.

    :param ctx: the session.
    :param node: the parsed statement.
    """
    env = ctx.env()
    for ref in node.expressions:
        meta = lookup(env, *_parts(ref))
        if meta is None or meta.system:
            raise SqlError(4701, f'Cannot find the object "{ref.name}" because it does not exist '
                                 "or you do not have permissions.")
        ctx.check_ddl("ALTER", meta.database)
        ctx.con.execute(f"DELETE FROM {meta.duck_name}").fetchall()
        ctx.reset_identity(meta)


def create_schema(ctx: DdlContext, name: str) -> None:
    """CREATE SCHEMA name.

    :param ctx: the session.
    :param name: the schema name.
    """
    env = ctx.env()
    ctx.check_ddl("CREATE SCHEMA", env.database)
    snap = env.snapshot(env.database)
    if name.lower() in snap.schemas:
        raise em.already_exists(name)
    next_id = max([sid for _, sid in snap.schemas.values()] + [4]) + 1
    cat.add_schema(ctx.con, env.database, name, next_id)
    ctx.catalog_changed()


def drop_schema(ctx: DdlContext, name: str, if_exists: bool) -> None:
    """DROP SCHEMA name (must be empty).

    :param ctx: the session.
    :param name: the schema.
    :param if_exists: DROP SCHEMA IF EXISTS.
    """
    env = ctx.env()
    ctx.check_ddl("DROP SCHEMA", env.database)
    snap = env.snapshot(env.database)
    hit = snap.schemas.get(name.lower())
    if hit is None or name.lower() in ("dbo", "sys", "information_schema", "guest"):
        if if_exists and hit is None:
            return
        raise em.cannot_drop(name, "schema")
    if any(s == name.lower() for s, _ in snap.tables):
        raise SqlError(3729, f"Cannot drop schema '{hit[0]}' because it is being referenced by "
                             "an object.")
    ctx.con.execute(f"DROP SCHEMA {quote(env.database)}.{quote(hit[0])}").fetchall()
    ctx.con.execute(f"DELETE FROM {quote(env.database)}._emu.schemas WHERE name = ?",
                    [hit[0]]).fetchall()
    ctx.catalog_changed()


def create_index(ctx: DdlContext, create: exp.Create) -> None:
    """CREATE [UNIQUE] INDEX: kept as metadata; unique ones are enforced by the write checks.

    :param ctx: the session.
    :param create: the parsed statement.
    """
    index = create.this
    table = resolve_table(ctx.env(), index.args["table"])
    ctx.check_ddl("CREATE INDEX", table.database)
    params = index.args.get("params")
    cols = [c.this.name if isinstance(c, exp.Ordered) else c.name
            for c in ((params.args.get("columns") if params else None) or [])]
    for c in cols:
        if table.column(c) is None:
            raise SqlError(1911, f"Column name '{c}' does not exist in the target table or view.")
    if any(k.name.lower() == index.name.lower() for k in table.keys):
        raise SqlError(1913, f"The operation failed because an index or statistics with name "
                             f"'{index.name}' already exists on table '{table.two_part}'.")
    # CREATE [NON]CLUSTERED COLUMNSTORE INDEX: catalog only (see columnstore.py)
    columnstore = next((kind for kind, _, _ in create.meta.get("columnstore", ())), None)
    clustered = next((k for k in table.keys if k.kind == cs.CLUSTERED), None)
    if columnstore == cs.CLUSTERED and clustered is not None:
        raise SqlError(1902, f"Cannot create more than one clustered index on table "
                             f"'{table.two_part}'. Drop the existing clustered index "
                             f"'{clustered.name}' before creating another.")
    key = KeyMeta(index.name, columnstore or ("UX" if create.args.get("unique") else "IX"),
                  tuple(table.column(c).name for c in cols),  # type: ignore[union-attr]
                  ctx.new_object_ids(table.database, 1)[0])
    if key.kind == "UX":
        rows = ctx.con.execute(f"SELECT * FROM {table.duck_name}").fetchall()
        seen: set[tuple] = set()
        pos = [table.columns.index(table.column(c)) for c in cols]  # type: ignore[arg-type]
        for r in rows:
            k = tuple(key_value(r[p]) for p in pos)
            if k in seen:
                shown = ", ".join(em.quote_value(from_storage(r[p])) for p in pos)
                raise SqlError(1505, f"The CREATE UNIQUE INDEX statement terminated because a "
                                     f"duplicate key was found for the object name "
                                     f"'{table.two_part}' and the index name '{index.name}'. "
                                     f"The duplicate key value is "
                                     f"({shown}).")
            seen.add(k)
    cat.save_key(ctx.con, table, key)
    ctx.catalog_changed()


def drop_index(ctx: DdlContext, drop: exp.Drop) -> None:
    """DROP INDEX ix ON t.

    :param ctx: the session.
    :param drop: the parsed statement.
    """
    on = drop.args.get("cluster")
    if on is None:
        raise em.unsupported("DROP INDEX without ON <table>")
    table = resolve_table(ctx.env(), on.this)
    ctx.check_ddl("ALTER", table.database)
    # sqlglot keeps the index's name in `tables` (older releases: in `expressions`)
    refs = drop.expressions or drop.args.get("tables") or []
    name = refs[0].name if refs else ""
    kinds = ("UX", "IX", cs.CLUSTERED, cs.NONCLUSTERED)
    key = next((k for k in table.keys if k.name.lower() == name.lower() and k.kind in kinds),
               None)
    if key is None:
        raise em.cannot_drop(f"{table.name}.{name}", "index")
    ctx.con.execute(f"DELETE FROM {quote(table.database)}._emu.keys WHERE object_id = ? AND "
                    "name = ?", [table.object_id, key.name]).fetchall()
    ctx.catalog_changed()


def alter_table(ctx: DdlContext, alter: exp.Alter) -> None:
    """ALTER TABLE ... ADD column(s) / DROP COLUMN / ALTER COLUMN.

    :param ctx: the session.
    :param alter: the parsed statement.
    """
    table = resolve_table(ctx.env(), alter.this)
    ctx.check_ddl("ALTER", table.database)
    c = quote(table.database)
    for action in alter.args.get("actions") or []:
        if isinstance(action, exp.ColumnDef):
            keys: list[tuple[str, str | None, list[str]]] = []
            col = _column_def(action, keys, max(x.column_id for x in table.columns) + 1)
            if keys or col.identity:
                raise em.unsupported("ALTER TABLE ADD with keys or IDENTITY")
            if table.column(col.name):
                raise SqlError(2705, f"Column names in each table must be unique. Column name "
                                     f"'{col.name}' in table '{table.name}' is specified more "
                                     "than once.")
            count = ctx.con.execute(f"SELECT count(*) FROM {table.duck_name}").fetchall()[0][0]
            if not col.nullable and not col.default_sql and count:
                raise SqlError(4901, "ALTER TABLE only allows columns to be added that can contain "
                                     "nulls, or have a DEFAULT definition specified.")
            ctx.con.execute(f"ALTER TABLE {table.duck_name} ADD COLUMN {quote(col.name)} "
                            f"{duck_type(col.type)}").fetchall()
            ctx.con.execute(f"INSERT INTO {c}._emu.columns VALUES ({', '.join(['?'] * 19)})",
                            list(cat._column_row(table.object_id, col))).fetchall()
            table.columns.append(col)
        elif isinstance(action, exp.Drop) and action.args.get("kind") == "COLUMN":
            for ref in action.expressions or action.args.get("tables") or []:
                dropped = table.column(ref.name)
                if dropped is None:
                    raise SqlError(4924, f"ALTER TABLE DROP COLUMN failed because column "
                                         f"'{ref.name}' does not exist in table '{table.name}'.")
                if any(dropped.name in k.columns for k in table.keys):
                    raise SqlError(5074, f"The object is dependent on column '{dropped.name}'.")
                ctx.con.execute(f"ALTER TABLE {table.duck_name} DROP COLUMN "
                                f"{quote(dropped.name)}").fetchall()
                ctx.con.execute(f"DELETE FROM {c}._emu.columns WHERE object_id = ? AND name = ?",
                                [table.object_id, dropped.name]).fetchall()
        elif isinstance(action, exp.AlterColumn) and action.args.get("dtype") is not None:
            _alter_column(ctx, table, action)
        else:
            raise em.unsupported(f"ALTER TABLE {action.key.upper()}")
    ctx.catalog_changed()


_SIZED = (SqlKind.NVARCHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.CHAR, SqlKind.VARBINARY,
          SqlKind.BINARY)


def _alter_column(ctx: DdlContext, table: TableMeta, action: exp.AlterColumn) -> None:
    """``ALTER COLUMN c type [NULL | NOT NULL]`` when the stored representation stays (a
    length or nullability change, e.g. nvarchar(64) -> nvarchar(256)); as in SQL Server,
    without NULL/NOT NULL the column becomes NULL-able, and stored values must fit."""
    name = action.this.name
    index = next((i for i, c in enumerate(table.columns) if c.name.lower() == name.lower()), None)
    if index is None:
        raise SqlError(4924, f"ALTER TABLE ALTER COLUMN failed because column '{name}' does not "
                             f"exist in table '{table.name}'.")
    old = table.columns[index]
    new_type = sqltype_from_datatype(action.args["dtype"])
    allow_null = action.args.get("allow_null")
    nullable = True if allow_null is None else bool(allow_null)
    key = next((k for k in table.keys if old.name in k.columns), None)
    if key is not None and (new_type != old.type or nullable != old.nullable):
        raise SqlError(5074, f"The object '{key.name}' is dependent on column '{old.name}'.")
    if old.identity or duck_type(new_type) != duck_type(old.type):
        raise em.unsupported("ALTER COLUMN that changes an IDENTITY column or how values are "
                             f"stored ({old.type.sql()} -> {new_type.sql()})")
    ref = quote(old.name)
    if not nullable and old.nullable:
        (nulls,) = ctx.con.execute(f"SELECT count(*) FROM {table.duck_name} WHERE {ref} IS NULL"
                                   ).fetchall()[0]
        if nulls:
            raise em.null_not_allowed(old.name, table.full_name, "UPDATE")
    limit = new_type.length
    if (new_type.kind in _SIZED and limit not in (None, -1)
            and (old.type.length in (None, -1) or limit < old.type.length)):
        for (value,) in ctx.con.execute(f"SELECT {ref} FROM {table.duck_name} "
                                        f"WHERE {ref} IS NOT NULL").fetchall():
            size = (len(value) if isinstance(value, bytes | bytearray)
                    else utf16_len(value) if new_type.kind.value.startswith("n")
                    else len(value.encode()))
            if size > limit:
                shown = (value[:limit].hex() if isinstance(value, bytes | bytearray)
                         else utf16_prefix(value, limit))
                raise em.truncation(table.full_name, old.name, shown)
    changed = dataclasses.replace(old, type=new_type, nullable=nullable)
    c = quote(table.database)
    ctx.con.execute(f"DELETE FROM {c}._emu.columns WHERE object_id = ? AND name = ?",
                    [table.object_id, old.name]).fetchall()
    ctx.con.execute(f"INSERT INTO {c}._emu.columns VALUES ({', '.join(['?'] * 19)})",
                    list(cat._column_row(table.object_id, changed))).fetchall()
    table.columns[index] = changed


def sp_rename(ctx: DdlContext, args: Sequence[object]) -> None:
    """sp_rename 'schema.table', 'new' or sp_rename 'schema.table.col', 'new', 'COLUMN'.

    :param ctx: the session.
    :param args: objname, newname[, objtype] as evaluated values.
    """
    if len(args) < 2:
        raise SqlError(201, "Procedure or function 'sp_rename' expects parameter '@newname', "
                            "which was not supplied.")
    objname, newname = str(args[0]), str(args[1])
    objtype = str(args[2]).upper() if len(args) > 2 and args[2] is not None else None
    parts = split_name(objname)
    env = ctx.env()
    if objtype == "COLUMN":
        if len(parts) < 2:
            raise SqlError(15248, "Either the parameter @objname is ambiguous or the claimed "
                                  "@objtype (COLUMN) is wrong.")
        padded = [None] * (4 - len(parts)) + parts
        table = lookup(env, padded[0], padded[1], padded[2])  # type: ignore[arg-type]
        col = table.column(padded[3]) if table else None  # type: ignore[arg-type]
        if table is None or col is None or table.system:
            raise SqlError(15248, "Either the parameter @objname is ambiguous or the claimed "
                                  "@objtype (COLUMN) is wrong.")
        ctx.check_ddl("ALTER", table.database)
        if table.column(newname):
            raise SqlError(15335, f"Error: The new name '{newname}' is already in use as a "
                                  "COLUMN name and would cause a duplicate that is not permitted.")
        ctx.con.execute(f"ALTER TABLE {table.duck_name} RENAME COLUMN {quote(col.name)} TO "
                        f"{quote(newname)}").fetchall()
        cat.rename_column(ctx.con, table, col.name, newname)
    elif objtype in (None, "OBJECT"):
        names: list[str | None] = [None] * (3 - len(parts)) + list(parts)
        table = lookup(env, names[0], names[1], names[2] or "")
        if table is None or table.system:
            raise SqlError(15248, "Either the parameter @objname is ambiguous or the claimed "
                                  f"@objtype ({objtype or 'OBJECT'}) is wrong.")
        ctx.check_ddl("ALTER", table.database)
        new = split_name(newname)[-1]
        if env.snapshot(table.database).table(table.schema, new) is not None:
            raise SqlError(15335, f"Error: The new name '{new}' is already in use as a object "
                                  "name and would cause a duplicate that is not permitted.")
        ctx.con.execute(f"ALTER TABLE {table.duck_name} RENAME TO {quote(new)}").fetchall()
        cat.rename_table(ctx.con, table, new)
    else:
        raise em.unsupported(f"sp_rename with @objtype '{objtype}'")
    ctx.catalog_changed()


def declared_type(node: exp.Expr) -> SqlType:
    """The SqlType of a DECLARE's data type.

    :param node: a DataType node.
    """
    try:
        return sqltype_from_datatype(node)  # type: ignore[arg-type]
    except ValueError as exc:
        raise em.unsupported(str(exc).removeprefix("the emulator does not support ")) from None
