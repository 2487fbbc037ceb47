"""A session's state and statement dispatch: variables, options, permissions, transactions.

DuckDB has no savepoints and any DuckDB error aborts its open transaction, so the
engine checks everything it can before DuckDB runs a statement. When DuckDB itself
fails inside an explicit transaction, that transaction is rolled back (as with
XACT_ABORT ON) and @@TRANCOUNT drops to 0.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
from sqlglot import exp

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import ddl, dml
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.batch import Block, IfStatement, Node, Statement
from azsql_emulator.sql.catalog import CatalogSnapshot, TableMeta
from azsql_emulator.sql.checks import make_converter, make_reader
from azsql_emulator.sql.column_insert import column_table
from azsql_emulator.sql.dmv import DMVS, register_dmv, view_state_denied
from azsql_emulator.sql.merge import run_merge
from azsql_emulator.sql.results import VIEW_DATABASE_STATE, SessionUser, StatementResult
from azsql_emulator.sql.server_properties import SERVER_NAME, SERVER_PROPERTIES, VERSION
from azsql_emulator.sql.translate import (
    Env,
    Translation,
    Variable,
    raise_unsupported_node,
    split_name,
    translate_expressions,
    translate_query,
)
from azsql_emulator.sql.typemap import (
    sqltype_from_datatype,
    sqltype_from_duck,
    utf16_len,
    utf16_prefix,
)
from azsql_emulator.sql.writes import append_table
from azsql_emulator.sqltypes import ColumnInfo, SqlKind, SqlType

if TYPE_CHECKING:
    from azsql_emulator.sql.engine import SqlEngine
    from azsql_emulator.tds.columns import WireColumn

T = TypeVar("T")
_READ_ROLES = frozenset({"db_owner", "db_datareader"})
_WRITE_ROLES = frozenset({"db_owner", "db_datawriter"})
_DDL_ROLES = frozenset({"db_owner", "db_ddladmin"})
_STATE_ROLES = frozenset({"db_owner", VIEW_DATABASE_STATE})


class SessionState:
    """Everything a session carries between statements, and the statement handlers.

    :param engine: the owning engine.
    :param con: this session's DuckDB connection.
    :param database: the current database.
    :param user: the connected user.
    """

    def __init__(self, engine: SqlEngine, con: duckdb.DuckDBPyConnection, database: str,
                 user: SessionUser) -> None:
        self.engine = engine
        self.con = con
        self.database = database
        self.user = user
        self.nocount = False
        self.trancount = 0
        self.identity_insert: set[tuple[str, int]] = set()
        self.scope_identity: int | None = None
        self.rowcount = 0
        self.last_error = 0
        self.variables: dict[str, Variable] = {}
        # sp_set_session_context: key -> (value, read_only); SESSION_CONTEXT(N'key') reads it
        self.session_context: dict[str, tuple[object, bool]] = {}
        self._snapshots: dict[str, tuple[int, CatalogSnapshot]] = {}
        self._pending: Counter[str] = Counter()
        self._ddl_dirty = False
        self._ddl_generation = 0
        self._abort = False
        self._results: list[StatementResult] = []
        self._plans: dict[tuple, tuple] = {}

    def snapshot(self, database: str) -> CatalogSnapshot:  # pragma: no cover - see SqlSession
        raise NotImplementedError

    # -- environment and permissions ----------------------------------------------------

    def env(self) -> Env:
        """The translation environment for the next statement."""
        system = {"VERSION": VERSION, "SPID": self.user.spid, "TRANCOUNT": self.trancount,
                  "ROWCOUNT": self.rowcount, "IDENTITY": self.scope_identity,
                  "SERVERNAME": SERVER_NAME, "ERROR": self.last_error,
                  "LANGUAGE": "us_english", "MAX_PRECISION": 38, "OPTIONS": 0,
                  "SERVICENAME": "MSSQLSERVER"}
        login = self.user.login_name
        functions: dict[str, object] = {
            "DB_NAME": self.database, "DB_ID": self.engine.databases.index(self.database) + 1,
            "USER_NAME": self.user.name, "SUSER_SNAME": login, "SUSER_NAME": login,
            "ORIGINAL_LOGIN": login, "SCHEMA_NAME": "dbo", "SCOPE_IDENTITY": self.scope_identity,
            "HOST_NAME": SERVER_NAME, "APP_NAME": self.user.app_name}
        functions.update({f"SERVERPROPERTY:{k}": v for k, v in SERVER_PROPERTIES.items()})
        functions.update({f"SESSION_CONTEXT:{k}": v for k, (v, _) in self.session_context.items()})
        return Env(self.database, self.snapshot, self.variables, system, functions,
                   tuple(self.engine.databases))

    def _denied(self, roles: frozenset[str]) -> bool:
        return not (self.user.roles & roles)

    def check_read(self, tables: Sequence[TableMeta]) -> None:
        """229 unless the user may SELECT from every table; 300 (then 297) for a DMV
        without VIEW DATABASE STATE. A permitted DMV's rows are registered for the
        statement about to run.

        :param tables: user tables and DMVs read.
        """
        for t in tables:
            if t.dmv:
                if self._denied(_STATE_ROLES):
                    raise view_state_denied(t.database)
                register_dmv(self.con, DMVS[("sys", t.name.lower())], self.engine.dmv_source,
                             self.engine.databases)
            elif not t.system and self._denied(_READ_ROLES):
                raise em.permission_denied("SELECT", t.name, t.database, t.schema)

    def check_write(self, table: TableMeta, action: str) -> None:
        """229 unless the user may INSERT/UPDATE/DELETE.

        :param table: the target.
        :param action: the permission name.
        """
        if table.system or self._denied(_WRITE_ROLES):
            raise em.permission_denied(action, table.name, table.database, table.schema)

    def check_ddl(self, action: str, database: str) -> None:
        """262 unless the user is db_owner or db_ddladmin.

        :param action: e.g. CREATE TABLE.
        :param database: the database.
        """
        if self._denied(_DDL_ROLES):
            raise em.ddl_denied(action, database)

    # -- hooks the DML and DDL handlers call -------------------------------------------

    def allocate_identity(self, table: TableMeta, count: int) -> list[int]:
        return self.engine.allocate_identity(self.con, table, count)

    def observe_identity(self, table: TableMeta, values: Sequence[int]) -> None:
        self.engine.observe_identity(table, values)

    def reset_identity(self, table: TableMeta) -> None:
        self.engine.reset_identity(table)

    def count_inserted(self, table: TableMeta, count: int) -> None:
        if count:
            self._pending[table.full_name] += count

    def new_object_ids(self, database: str, count: int) -> list[int]:
        return self.engine.new_object_ids(self.con, database, count)

    def catalog_changed(self) -> None:
        self._snapshots.clear()
        self._ddl_dirty = True
        self._ddl_generation += 1

    # -- transactions -------------------------------------------------------------------

    def begin_transaction(self) -> None:
        """BEGIN TRANSACTION; nested calls only raise @@TRANCOUNT."""
        if self.trancount == 0:
            self.con.begin()
        self.trancount += 1

    def commit_transaction(self) -> None:
        """COMMIT: the outermost one makes the writes visible to other sessions."""
        if self.trancount == 0:
            raise SqlError(3902, "The COMMIT TRANSACTION request has no corresponding BEGIN "
                                 "TRANSACTION.")
        self.trancount -= 1
        if self.trancount == 0:
            self._finish(commit=True, explicit=True)

    def rollback_transaction(self) -> None:
        """ROLLBACK: undo the whole transaction, whatever @@TRANCOUNT was."""
        if self.trancount == 0:
            raise SqlError(3903, "The ROLLBACK TRANSACTION request has no corresponding BEGIN "
                                 "TRANSACTION.")
        self._finish(commit=False, explicit=True)

    def _finish(self, commit: bool, explicit: bool) -> None:
        self.trancount = 0
        if commit:
            try:
                self.con.commit()
            except duckdb.Error as exc:
                self._finish(commit=False, explicit=explicit)
                raise em.map_duckdb_error(exc, self.user.spid) from None
            self.engine.record_commit(self._pending, explicit, self._ddl_dirty)
        else:
            try:
                self.con.rollback()
            except duckdb.Error:
                pass  # DuckDB already ended the aborted transaction
            self.engine.record_rollback(explicit)
            if self._ddl_dirty:
                self._snapshots.clear()
        self._pending.clear()
        self._ddl_dirty = False

    def atomic(self, fn: Callable[[], T]) -> T:
        """Run one statement atomically: its own transaction in autocommit mode.

        :param fn: the statement's work.
        """
        explicit = self.trancount > 0
        if not explicit:
            self.con.begin()
        try:
            out = fn()
        except SqlError:
            if not explicit:
                self._finish(commit=False, explicit=False)
            raise
        except duckdb.Error as exc:
            err = em.map_duckdb_error(exc, self.user.spid)
            self._finish(commit=False, explicit=explicit)
            raise err from None
        if not explicit:
            self._finish(commit=True, explicit=False)
        return out

    # -- batches ------------------------------------------------------------------------

    def run_batch(self, sql: str, params: Mapping[str, object]) -> list[StatementResult]:
        """Parse and run a batch; compile errors stop it, statement errors do not.

        :param sql: the batch text.
        :param params: ``@name`` -> value.
        """
        self._results = []
        self._abort = False
        self.variables = {k.lstrip("@").lower(): Variable(None, v) for k, v in params.items()}
        try:
            nodes = self.engine.batches.get(sql)
        except SqlError as err:
            return [StatementResult(None, [], None, err)]
        self._run_nodes(nodes)
        return self._results

    def _run_nodes(self, nodes: list[Node]) -> None:
        for node in nodes:
            if self._abort:
                return
            if isinstance(node, Statement):
                tree = node.ast
                assert tree is not None

                def statement(t: exp.Expr = tree) -> StatementResult | None:
                    return self._dispatch(t.copy())

                self._guarded(statement)
            elif isinstance(node, IfStatement):
                outcome: list[bool] = []

                def decide(n: IfStatement = node, out: list[bool] = outcome) -> None:
                    out.append(self._condition(n.condition))

                self._guarded(decide)
                if outcome:
                    self._run_nodes(node.then if outcome[0] else node.otherwise)
            elif isinstance(node, Block):
                self._run_nodes(node.body)

    def _guarded(self, fn: Callable[[], StatementResult | None]) -> None:
        try:
            result = fn()
        except SqlError as err:
            self._fail(err)
            return
        except duckdb.Error as exc:
            self._fail(em.map_duckdb_error(exc, self.user.spid))
            return
        self.last_error = 0
        if isinstance(result, StatementResult):
            if result.rowcount is not None:
                self.rowcount = result.rowcount
            self._results.append(result)

    def _fail(self, err: SqlError) -> None:
        self.last_error = err.number
        self._results.append(StatementResult(None, [], None, err))
        self._abort = em.aborts_batch(err)

    def _condition(self, condition: exp.Expr) -> bool:
        tr = translate_query(condition.copy(), self.env())
        self.check_read(tr.reads)
        row = self.atomic(lambda: self.con.execute(tr.sql, tr.params).fetchall()[0])
        return bool(row and row[0] == 1)

    def _dispatch(self, node: exp.Expr) -> StatementResult | None:
        if isinstance(node, exp.Select) and node.expressions and all(
                isinstance(e, exp.EQ) and isinstance(e.this, exp.Parameter)
                for e in node.expressions):
            return self._select_assign(node)
        if isinstance(node, exp.Select | exp.SetOperation):
            if node.args.get("into"):
                raise em.unsupported("SELECT ... INTO")
            return self.atomic(lambda: self._query(translate_query(node, self.env())))
        writes = {exp.Insert: dml.run_insert, exp.Update: dml.run_update,
                  exp.Delete: dml.run_delete, exp.Merge: run_merge}
        for kind, handler in writes.items():
            if isinstance(node, kind):
                count = self.atomic(lambda h=handler: h(self, node))  # type: ignore[misc]
                return StatementResult(None, [], count)
        if isinstance(node, exp.Transaction):
            self.begin_transaction()
            return StatementResult(None, [], None)
        if isinstance(node, exp.Commit):
            self.commit_transaction()
            return StatementResult(None, [], None)
        if isinstance(node, exp.Rollback):
            if node.args.get("savepoint"):
                raise em.unsupported("ROLLBACK to a savepoint")
            self.rollback_transaction()
            return StatementResult(None, [], None)
        if isinstance(node, exp.Use):
            found = self.engine.find_database(node.this.name if node.this else "")
            if found is None:
                raise SqlError(911, f"Database '{node.this.name}' does not exist. Make sure that "
                                    "the name is entered correctly.")
            self.database = found
            return StatementResult(None, [], None, messages=[
                f"Changed database context to '{found}'."])
        if isinstance(node, exp.Declare):
            return self._declare(node)
        if isinstance(node, exp.Set):
            return self._set_variables(node)
        if isinstance(node, exp.Command):
            return self._command(node)
        if isinstance(node, exp.Execute):
            return self._exec(node)
        if isinstance(node, exp.Create | exp.Drop | exp.TruncateTable | exp.Alter):
            self.atomic(lambda: self._ddl(node))
            return StatementResult(None, [], None)
        raise raise_unsupported_node(node)

    def _ddl(self, node: exp.Expr) -> None:
        kind = str(node.args.get("kind") or "").upper()
        if isinstance(node, exp.Create) and kind == "TABLE":
            ddl.create_table(self, node)
        elif isinstance(node, exp.Create) and kind == "SCHEMA":
            ddl.create_schema(self, node.this.db or node.this.name)
        elif isinstance(node, exp.Create) and kind == "INDEX":
            ddl.create_index(self, node)
        elif isinstance(node, exp.Drop) and kind == "TABLE":
            ddl.drop_tables(self, node)
        elif isinstance(node, exp.Drop) and kind == "SCHEMA":
            ref = (node.expressions or node.args.get("tables") or [None])[0]
            if ref is None:
                raise em.syntax_error("SCHEMA")
            ddl.drop_schema(self, ref.db or ref.name, bool(node.args.get("exists")))
        elif isinstance(node, exp.Drop) and kind == "INDEX":
            ddl.drop_index(self, node)
        elif isinstance(node, exp.TruncateTable):
            ddl.truncate(self, node)
        elif isinstance(node, exp.Alter) and kind == "TABLE":
            ddl.alter_table(self, node)
        else:
            raise raise_unsupported_node(node)

    def _query(self, tr: Translation) -> StatementResult:
        self.check_read(tr.reads)
        cur = self.con.execute(tr.sql, tr.params)
        desc = cur.description or []
        rows = cur.fetchall()
        proj = tr.projections if tr.projections and len(tr.projections) == len(desc) else None
        columns = []
        for i, d in enumerate(desc):
            p = proj[i] if proj else None
            if p is not None and p.type is not None:
                columns.append(p)
            else:
                t = sqltype_from_duck(str(d[1]), [r[i] for r in rows])
                columns.append(ColumnInfo(p.name if p is not None else d[0], t, True))
        readers = [make_reader(c.type) for c in columns]
        if any(readers):
            rows = [tuple(v if f is None else f(v) for f, v in zip(readers, r, strict=True))
                    for r in rows]
        return StatementResult(columns, rows, len(rows))

    def _evaluate(self, exprs: list[exp.Expr], from_sql: str = "") -> tuple | None:
        tr = translate_expressions(exprs, self.env(), from_sql)
        self.check_read(tr.reads)
        return self.atomic(lambda: self.con.execute(tr.sql, tr.params).fetchall()[0])

    def _assign(self, name: str, value: object) -> None:
        var = self.variables.get(name.lower())
        if var is None:
            raise em.must_declare("@" + name)
        if var.type is not None and value is not None:
            value = make_converter(var.type, "@" + name, "")(value, None)
            reader = make_reader(var.type)
            value = reader(value) if reader else value
        var.value = value

    def _declare(self, node: exp.Declare) -> StatementResult | None:
        for item in node.expressions:
            targets = item.this if isinstance(item.this, list) else [item.this]
            for target in targets:
                name = target.name.lower()
                self.variables[name] = Variable(ddl.declared_type(item.args["kind"]))
                default = item.args.get("default")
                if isinstance(default, exp.Expr):
                    row = self._evaluate([default.copy()])
                    self._assign(name, row[0] if row else None)
        return StatementResult(None, [], None)

    def _set_variables(self, node: exp.Set) -> StatementResult | None:
        for item in node.expressions:
            eq = item.this
            if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Parameter):
                raise em.unsupported(f"SET {item.sql('tsql')[:40]}")
            row = self._evaluate([eq.expression])
            self._assign(eq.this.name, row[0] if row else None)
        return StatementResult(None, [], None)

    def _select_assign(self, node: exp.Select) -> StatementResult | None:
        targets = [e.this.name for e in node.expressions]
        node.set("expressions", [e.expression for e in node.expressions])
        tr = translate_query(node, self.env())
        self.check_read(tr.reads)
        rows = self.atomic(lambda: self.con.execute(tr.sql, tr.params).fetchall())
        if rows:
            for name, value in zip(targets, rows[-1], strict=True):
                self._assign(name, value)
        return StatementResult(None, [], len(rows))

    def _command(self, node: exp.Command) -> StatementResult | None:
        head = node.name.upper()
        text = node.expression.name if isinstance(node.expression, exp.Literal) \
            else str(node.expression or "")
        if head == "SET":
            return self._set_option(text)
        if head == "PRINT":
            from azsql_emulator.sql.batch import parse_statement_text

            row = self._evaluate([parse_statement_text(f"SELECT {text}").expressions[0]])
            return StatementResult(None, [], None, messages=[str(row[0]) if row else ""])
        if head == "CREATE" and text.upper().startswith("SCHEMA "):
            name = split_name(text.split()[1])[-1]
            self.atomic(lambda: ddl.create_schema(self, name))
            return StatementResult(None, [], None)
        raise raise_unsupported_node(node)

    def _set_option(self, text: str) -> StatementResult | None:
        words = text.replace(",", " ").split()
        if not words:
            raise em.syntax_error("SET")
        value = words[-1].upper()
        names = [w.upper() for w in words[:-1]]
        if names and names[0] == "IDENTITY_INSERT":
            parts = split_name(words[1])
            padded: list[str | None] = [None] * (3 - len(parts)) + list(parts)
            from azsql_emulator.sql.translate import lookup

            table = lookup(self.env(), padded[0], padded[1], padded[2] or "")
            if table is None or table.system:
                raise em.invalid_object(words[1])
            if table.identity_column is None:
                raise SqlError(8106, f"Table '{table.two_part}' does not have the identity "
                                     "property. Cannot perform SET operation.")
            key = (table.database, table.object_id)
            (self.identity_insert.add if value == "ON" else self.identity_insert.discard)(key)
        elif "NOCOUNT" in names:
            self.nocount = value == "ON"
        # other SET options (XACT_ABORT, ANSI_*, TEXTSIZE, isolation...) are accepted as-is
        return StatementResult(None, [], None)

    def _exec(self, node: exp.Execute) -> StatementResult | None:
        proc = node.this.name.lower() if node.this else ""
        args: list[object] = []
        named: dict[str, object] = {}
        env = self.env()
        for arg in node.expressions:
            if isinstance(arg, exp.EQ) and isinstance(arg.this, exp.Parameter):
                named[arg.this.name.lower()] = dml.python_literal(arg.expression, env)[0]
            else:
                args.append(dml.python_literal(arg, env)[0])
        if proc == "sp_rename":
            order = ["objname", "newname", "objtype"]
            args += [named[k] for k in order[len(args):] if k in named]
            self.atomic(lambda: ddl.sp_rename(self, args))
            return StatementResult(None, [], None)
        if proc == "sp_set_session_context":
            order = ["key", "value", "read_only"]
            args += [named[k] for k in order[len(args):] if k in named]
            self._set_session_context(args)
            return StatementResult(None, [], None)
        if proc == "sp_executesql":
            inner_sql = str(args[0] if args else named.get("stmt", ""))
            outer, results = self._results, self._results
            saved = self.variables
            try:
                nested = self.run_batch(inner_sql, {f"@{k}": v for k, v in named.items()})
            finally:
                self.variables, self._results = saved, outer
            results.extend(nested)
            self._abort = any(r.error and em.aborts_batch(r.error) for r in nested)
            return None
        raise SqlError(2812, f"Could not find stored procedure '{node.this.name}'.")

    def _set_session_context(self, args: list[object]) -> None:
        """``sp_set_session_context @key, @value[, @read_only]``: SQL Server's rules for a
        key (sysname, not NULL), a read-only key (15664) and a value (8,000 bytes)."""
        if not args or args[0] is None:
            raise SqlError(201, "Procedure or function 'sp_set_session_context' expects "
                                "parameter '@key', which was not supplied.")
        key = str(args[0])
        if len(key) > 128:
            raise SqlError(8152, "String or binary data would be truncated.")
        value = args[1] if len(args) > 1 else None
        if isinstance(value, str) and utf16_len(value) * 2 > 8000:
            raise SqlError(8152, "String or binary data would be truncated.")
        old = self.session_context.get(key)
        if old is not None and old[1]:
            raise SqlError(15664, f"Cannot set key '{key}' in the session context. The key "
                                  "has been set as read_only for this session.")
        read_only = bool(args[2]) if len(args) > 2 and args[2] is not None else False
        self.session_context[key] = (value, read_only)

    # -- execute_many -------------------------------------------------------------------

    def insert_many(self, sql: str, rows: Sequence[Sequence[object] | Mapping[str, object]],
                    per_row: bool = True) -> list[SqlError | None]:
        """One parameterised INSERT ... VALUES for many parameter rows (see SqlSession).

        :param sql: the INSERT text.
        :param rows: parameter rows.
        """
        plan, sources, names = self._cached_plan(sql)
        index = {n: i for i, n in enumerate(names)}
        source_rows = []
        for row in rows:
            get: Callable[[str], object]
            if isinstance(row, Mapping):
                get = {k.lstrip("@").lower(): v for k, v in row.items()}.get
            else:
                get = _positional(row, index)
            source_rows.append([get(s[1]) if s[0] == "param"
                                else _text_value([get(n) for n in s[1]], s[2]) if s[0] == "text"
                                else dml.hex_value([get(n) for n in s[1]]) if s[0] == "hex"
                                else s[1] for s in sources])
        hints = [s[2] if s[0] == "const" else None for s in sources]
        errors = self.atomic(lambda: dml.write_insert(self, plan, source_rows, hints,
                                                      per_row=per_row))
        return errors

    def insert_columns(self, sql: str, columns: Sequence[WireColumn], rows: int) -> bool:
        """Run a parameter array's INSERT column-wise (``column_insert``) when every value
        is decided there; False (nothing done) sends the caller row by row.

        :param sql: the INSERT text.
        :param columns: the parameters after the handle, decoded column-wise.
        :param rows: how many calls.
        """
        plan, sources, names = self._cached_plan(sql)
        data = column_table(self.con, plan.table, plan.shaper.given, sources, names, columns,
                            rows)
        if data is None:
            return False
        table = plan.table

        def insert() -> None:
            append_table(self.con, table, data)
            self.count_inserted(table, rows)

        self.atomic(insert)
        return True

    def _cached_plan(self, sql: str) -> tuple:
        key = (sql, self.database, self.engine.epoch, self._ddl_generation,
               frozenset(self.identity_insert))
        cached = self._plans.get(key)
        if cached is None:
            cached = self._plan_many(sql)
            if len(self._plans) > 256:
                self._plans.clear()
            self._plans[key] = cached
        return cached

    def _plan_many(self, sql: str) -> tuple:
        nodes = self.engine.batches.get(sql)
        stmt = nodes[0].ast if len(nodes) == 1 and isinstance(nodes[0], Statement) else None
        values = stmt.expression if isinstance(stmt, exp.Insert) else None
        if not isinstance(values, exp.Values) or len(values.expressions) != 1:
            raise em.unsupported("execute_many of anything but INSERT ... VALUES (one row)")
        stmt = stmt.copy()  # type: ignore[union-attr]
        target = stmt.this
        col_names = [i.name for i in target.expressions] if isinstance(target, exp.Schema) else None
        table_ref = target.this if isinstance(target, exp.Schema) else target
        env = self.env()
        from azsql_emulator.sql.translate import resolve_table

        table = resolve_table(env, table_ref)
        self.check_write(table, "INSERT")
        plan = dml.insert_plan(self, table, col_names)
        items = stmt.expression.expressions[0].expressions
        if len(items) != len(plan.shaper.given):
            raise SqlError(213, "Column name or number of supplied values does not match table "
                                "definition.")
        sources: list[tuple[str, Any, Any]] = []
        names: list[str] = []
        for item, column in zip(items, plan.shaper.given, strict=True):
            item = _same_type_cast_operand(item, column.type)
            text = _text_parameters(item)
            if isinstance(item, exp.Parameter) and not isinstance(item.this, exp.Parameter):
                name = item.name.lower()
                if name not in names:
                    names.append(name)
                sources.append(("param", name, None))
            elif text is not None:
                parts, length = text
                names.extend(n for n in parts if n not in names)
                sources.append(("text", parts, length))
            elif (hex_parts := dml.hex_parameters(item)) is not None:
                names.extend(n for n in hex_parts if n not in names)
                sources.append(("hex", hex_parts, None))
            else:
                value, hint = dml.python_literal(item, env)
                sources.append(("const", value, hint))
        return plan, sources, names


def _positional(row: Sequence[object], index: dict[str, int]) -> Callable[[str], object]:
    return lambda name: row[index[name]]


_TEXT_KINDS = (SqlKind.NVARCHAR, SqlKind.VARCHAR, SqlKind.NCHAR, SqlKind.CHAR)


def _text_parameters(item: exp.Expr) -> tuple[list[str], int | None] | None:
    """``CAST(@P AS nvarchar(n))``, or such casts joined with ``+`` (text sent in pieces):
    the parameter names and the outer length (None for max), when the item is only that.

    The values are joined and cut to the length as SQL Server's CAST does; a value that is
    not text makes :func:`_text_value` raise, and the caller runs row by row instead.
    """
    length: int | None = None
    node = item
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Cast) and not isinstance(node.this, exp.Parameter):
        t = _string_cast_type(node)
        if t is None:
            return None
        length = None if t.length in (None, -1) else t.length
        node = node.this
        while isinstance(node, exp.Paren):
            node = node.this
    parts: list[exp.Expr] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, exp.Add):
            stack.extend([cur.expression, cur.this])
        else:
            parts.append(cur)
    names: list[str] = []
    for part in parts:
        if not isinstance(part, exp.Cast) or _string_cast_type(part) is None:
            return None
        operand = part.this
        if not isinstance(operand, exp.Parameter) or isinstance(operand.this, exp.Parameter):
            return None
        t = _string_cast_type(part)
        assert t is not None
        if t.length not in (None, -1):
            if len(parts) > 1:
                return None  # pieces are always (max); anything else takes the general path
            length = t.length if length is None else min(length, t.length)
        names.append(operand.name.lower())
    return names, length


def _string_cast_type(node: exp.Cast) -> SqlType | None:
    if node.args.get("format") is not None:
        return None
    try:
        t = sqltype_from_datatype(node.to)
    except (ValueError, KeyError, SqlError):
        return None
    return t if t.kind in _TEXT_KINDS and t.kind.value.startswith("n") else None


def _text_value(values: list[object], length: int | None) -> object:
    if any(v is None for v in values):
        return None
    if not all(isinstance(v, str) for v in values):
        raise TypeError("a text cast of a non-text parameter")  # the general path decides
    text = "".join(values)  # type: ignore[arg-type]
    if length is not None and utf16_len(text) > length:
        return utf16_prefix(text, length)
    return text


def _same_type_cast_operand(item: exp.Expr, column_type: SqlType) -> exp.Expr:
    """``@P`` for ``CAST(@P AS t)`` / ``CONVERT(t, @P)`` when ``t`` is the target column's own
    type: assigning the value converts it exactly as the cast would (loaders that cannot
    bind a type, e.g. turbodbc for uniqueidentifier or datetimeoffset, send strings so).
    Anything else is returned unchanged."""
    if not isinstance(item, exp.Cast) or item.args.get("format") is not None:
        return item
    operand = item.this
    if not isinstance(operand, exp.Parameter) or isinstance(operand.this, exp.Parameter):
        return item
    try:
        target = sqltype_from_datatype(item.to)
    except (ValueError, KeyError, SqlError):
        return item
    decimals = (SqlKind.DECIMAL, SqlKind.NUMERIC)  # one type under two names
    if target.kind in decimals and column_type.kind in decimals:
        target = dataclasses.replace(target, kind=column_type.kind)
    return operand if target == column_type else item
