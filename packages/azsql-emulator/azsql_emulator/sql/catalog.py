"""Table metadata the emulator keeps beside DuckDB, and the catalog views built on it.

DuckDB does not keep SQL Server's declared types, identity, constraint names or
defaults, so every database holds them in tables of its own hidden schema ``_emu``.
Being ordinary DuckDB tables, they follow the same transactions as the data and
persist in the database file.
"""

# ruff: noqa: S608 - SQL is built from quote()d identifiers; values are bound parameters

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from azsql_emulator.sql.dmv import DMVS
from azsql_emulator.sql.typemap import (
    SYS_TYPES,
    SYSNAME,
    info_schema_facets,
    max_length_bytes,
    precision_scale,
)
from azsql_emulator.sqltypes import ColumnInfo, SqlType

META_SCHEMA = "_emu"
DEFAULT_SCHEMA = "dbo"
# SQL Server's fixed schema ids; user schemas start at 5
BUILTIN_SCHEMAS = {"dbo": 1, "guest": 2, "INFORMATION_SCHEMA": 3, "sys": 4}
FIRST_OBJECT_ID = 565_577_053  # looks like a SQL Server object id; grows by 16 per object

_META_DDL = """
CREATE TABLE IF NOT EXISTS {c}._emu.schemas (schema_id INTEGER, name VARCHAR);
CREATE TABLE IF NOT EXISTS {c}._emu.tables (object_id INTEGER, schema_name VARCHAR,
    name VARCHAR, create_date TIMESTAMP, modify_date TIMESTAMP);
CREATE TABLE IF NOT EXISTS {c}._emu.columns (object_id INTEGER, column_id INTEGER, name VARCHAR,
    type_sql VARCHAR, is_nullable BOOLEAN, identity_seed BIGINT, identity_increment BIGINT,
    default_sql VARCHAR, data_type VARCHAR, char_max_length INTEGER, char_octet_length INTEGER,
    numeric_precision INTEGER, numeric_precision_radix INTEGER, numeric_scale INTEGER,
    datetime_precision INTEGER, system_type_id INTEGER, max_length INTEGER, "precision" INTEGER,
    scale INTEGER);
CREATE TABLE IF NOT EXISTS {c}._emu.keys (object_id INTEGER, key_object_id INTEGER,
    name VARCHAR, kind VARCHAR, columns VARCHAR[]);
"""

_S = SqlType.parse
_INT, _SMALL, _TINY, _BIT = _S("int"), _S("smallint"), _S("tinyint"), _S("bit")
_DATETIME = _S("datetime")


def _v(name: str, t: SqlType, nullable: bool = True) -> ColumnInfo:
    return ColumnInfo(name, t, nullable)


@dataclass(frozen=True)
class SystemView:
    """A catalog view: its SQL Server columns and the DuckDB SELECT that fills it."""

    name: str
    columns: tuple[ColumnInfo, ...]
    select: str  # {c} is the quoted catalog, {db} the database name as a literal


_STR_KINDS = "('char','varchar','nchar','nvarchar')"
SYSTEM_VIEWS: dict[tuple[str, str], SystemView] = {
    ("information_schema", "tables"): SystemView("is_tables", (
        _v("TABLE_CATALOG", SYSNAME), _v("TABLE_SCHEMA", SYSNAME), _v("TABLE_NAME", SYSNAME, False),
        _v("TABLE_TYPE", _S("varchar(10)"))),
        "SELECT {db} AS TABLE_CATALOG, schema_name AS TABLE_SCHEMA, name AS TABLE_NAME, "
        "'BASE TABLE' AS TABLE_TYPE FROM {c}._emu.tables"),
    ("information_schema", "columns"): SystemView("is_columns", (
        _v("TABLE_CATALOG", SYSNAME), _v("TABLE_SCHEMA", SYSNAME), _v("TABLE_NAME", SYSNAME, False),
        _v("COLUMN_NAME", SYSNAME), _v("ORDINAL_POSITION", _INT),
        _v("COLUMN_DEFAULT", _S("nvarchar(4000)")), _v("IS_NULLABLE", _S("varchar(3)")),
        _v("DATA_TYPE", SYSNAME), _v("CHARACTER_MAXIMUM_LENGTH", _INT),
        _v("CHARACTER_OCTET_LENGTH", _INT), _v("NUMERIC_PRECISION", _TINY),
        _v("NUMERIC_PRECISION_RADIX", _SMALL), _v("NUMERIC_SCALE", _INT),
        _v("DATETIME_PRECISION", _SMALL), _v("COLLATION_NAME", SYSNAME)),
        "SELECT {db} AS TABLE_CATALOG, t.schema_name AS TABLE_SCHEMA, t.name AS TABLE_NAME, "
        "c.name AS COLUMN_NAME, c.column_id AS ORDINAL_POSITION, c.default_sql AS COLUMN_DEFAULT, "
        "CASE WHEN c.is_nullable THEN 'YES' ELSE 'NO' END AS IS_NULLABLE, "
        "c.data_type AS DATA_TYPE, c.char_max_length AS CHARACTER_MAXIMUM_LENGTH, "
        "c.char_octet_length AS CHARACTER_OCTET_LENGTH, "
        "CAST(c.numeric_precision AS UTINYINT) AS NUMERIC_PRECISION, "
        "c.numeric_precision_radix AS NUMERIC_PRECISION_RADIX, c.numeric_scale AS NUMERIC_SCALE, "
        "c.datetime_precision AS DATETIME_PRECISION, CASE WHEN c.data_type IN " + _STR_KINDS +
        " THEN 'SQL_Latin1_General_CP1_CI_AS' END AS COLLATION_NAME "
        "FROM {c}._emu.columns c JOIN {c}._emu.tables t USING (object_id)"),
    ("information_schema", "schemata"): SystemView("is_schemata", (
        _v("CATALOG_NAME", SYSNAME), _v("SCHEMA_NAME", SYSNAME), _v("SCHEMA_OWNER", SYSNAME)),
        "SELECT {db} AS CATALOG_NAME, name AS SCHEMA_NAME, 'dbo' AS SCHEMA_OWNER "
        "FROM {c}._emu.schemas"),
    ("information_schema", "table_constraints"): SystemView("is_table_constraints", (
        _v("CONSTRAINT_CATALOG", SYSNAME), _v("CONSTRAINT_SCHEMA", SYSNAME),
        _v("CONSTRAINT_NAME", SYSNAME, False), _v("TABLE_CATALOG", SYSNAME),
        _v("TABLE_SCHEMA", SYSNAME), _v("TABLE_NAME", SYSNAME, False),
        _v("CONSTRAINT_TYPE", _S("varchar(11)"))),
        "SELECT {db} AS CONSTRAINT_CATALOG, t.schema_name AS CONSTRAINT_SCHEMA, "
        "k.name AS CONSTRAINT_NAME, {db} AS TABLE_CATALOG, t.schema_name AS TABLE_SCHEMA, "
        "t.name AS TABLE_NAME, CASE k.kind WHEN 'PK' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END "
        "AS CONSTRAINT_TYPE FROM {c}._emu.keys k JOIN {c}._emu.tables t USING (object_id) "
        "WHERE k.kind IN ('PK', 'UQ')"),
    ("information_schema", "key_column_usage"): SystemView("is_key_column_usage", (
        _v("CONSTRAINT_CATALOG", SYSNAME), _v("CONSTRAINT_SCHEMA", SYSNAME),
        _v("CONSTRAINT_NAME", SYSNAME, False), _v("TABLE_CATALOG", SYSNAME),
        _v("TABLE_SCHEMA", SYSNAME), _v("TABLE_NAME", SYSNAME, False),
        _v("COLUMN_NAME", SYSNAME), _v("ORDINAL_POSITION", _INT, False)),
        "SELECT {db} AS CONSTRAINT_CATALOG, t.schema_name AS CONSTRAINT_SCHEMA, "
        "k.name AS CONSTRAINT_NAME, {db} AS TABLE_CATALOG, t.schema_name AS TABLE_SCHEMA, "
        "t.name AS TABLE_NAME, unnest(k.columns) AS COLUMN_NAME, "
        "CAST(generate_subscripts(k.columns, 1) AS INTEGER) AS ORDINAL_POSITION "
        "FROM {c}._emu.keys k JOIN {c}._emu.tables t USING (object_id) "
        "WHERE k.kind IN ('PK', 'UQ')"),
    ("sys", "tables"): SystemView("sys_tables", (
        _v("name", SYSNAME, False), _v("object_id", _INT, False), _v("schema_id", _INT, False),
        _v("type", _S("char(2)")), _v("type_desc", _S("nvarchar(60)")),
        _v("create_date", _DATETIME, False), _v("modify_date", _DATETIME, False)),
        "SELECT t.name, t.object_id, s.schema_id, 'U ' AS type, 'USER_TABLE' AS type_desc, "
        "t.create_date, t.modify_date FROM {c}._emu.tables t "
        "JOIN {c}._emu.schemas s ON s.name = t.schema_name"),
    ("sys", "objects"): SystemView("sys_objects", (
        _v("name", SYSNAME, False), _v("object_id", _INT, False), _v("schema_id", _INT, False),
        _v("parent_object_id", _INT, False), _v("type", _S("char(2)")),
        _v("type_desc", _S("nvarchar(60)")), _v("create_date", _DATETIME, False),
        _v("modify_date", _DATETIME, False)),
        "SELECT t.name, t.object_id, s.schema_id, 0 AS parent_object_id, 'U ' AS type, "
        "'USER_TABLE' AS type_desc, t.create_date, t.modify_date FROM {c}._emu.tables t "
        "JOIN {c}._emu.schemas s ON s.name = t.schema_name UNION ALL "
        "SELECT k.name, k.key_object_id, s.schema_id, k.object_id, k.kind, "
        "CASE k.kind WHEN 'PK' THEN 'PRIMARY_KEY_CONSTRAINT' ELSE 'UNIQUE_CONSTRAINT' END, "
        "t.create_date, t.modify_date FROM {c}._emu.keys k JOIN {c}._emu.tables t "
        "USING (object_id) JOIN {c}._emu.schemas s ON s.name = t.schema_name "
        "WHERE k.kind IN ('PK', 'UQ')"),
    ("sys", "columns"): SystemView("sys_columns", (
        _v("object_id", _INT, False), _v("name", SYSNAME), _v("column_id", _INT, False),
        _v("system_type_id", _TINY, False), _v("user_type_id", _INT, False),
        _v("max_length", _SMALL, False), _v("precision", _TINY, False),
        _v("scale", _TINY, False), _v("collation_name", SYSNAME), _v("is_nullable", _BIT),
        _v("is_identity", _BIT, False), _v("is_computed", _BIT, False)),
        "SELECT object_id, name, column_id, CAST(system_type_id AS UTINYINT) AS system_type_id, "
        "CAST(system_type_id AS INTEGER) AS user_type_id, max_length, "
        "CAST(\"precision\" AS UTINYINT) AS \"precision\", CAST(scale AS UTINYINT) AS scale, "
        "CASE WHEN data_type IN " + _STR_KINDS + " THEN 'SQL_Latin1_General_CP1_CI_AS' END "
        "AS collation_name, is_nullable, identity_seed IS NOT NULL AS is_identity, "
        "false AS is_computed FROM {c}._emu.columns"),
    ("sys", "types"): SystemView("sys_types", (
        _v("name", SYSNAME, False), _v("system_type_id", _TINY, False),
        _v("user_type_id", _INT, False), _v("schema_id", _INT, False),
        _v("max_length", _SMALL, False), _v("precision", _TINY, False),
        _v("scale", _TINY, False), _v("is_nullable", _BIT), _v("is_user_defined", _BIT, False)),
        "SELECT name, CAST(system_type_id AS UTINYINT) AS system_type_id, user_type_id, "
        "4 AS schema_id, CAST(max_length AS SMALLINT) AS max_length, "
        "CAST(\"precision\" AS UTINYINT) AS \"precision\", CAST(scale AS UTINYINT) AS scale, "
        "true AS is_nullable, false AS is_user_defined FROM (VALUES {types}) "
        "v(name, system_type_id, user_type_id, max_length, \"precision\", scale)"),
    # a table without a clustered index is a heap (index_id 0); a clustered columnstore
    # (kind CS) or else the primary key is the clustered index (1); the rest are 2, 3...
    ("sys", "indexes"): SystemView("sys_indexes", (
        _v("object_id", _INT, False), _v("name", SYSNAME), _v("index_id", _INT, False),
        _v("type", _TINY, False), _v("type_desc", _S("nvarchar(60)")),
        _v("is_unique", _BIT), _v("is_primary_key", _BIT), _v("is_unique_constraint", _BIT)),
        "WITH k AS (SELECT k.*, k.kind = 'CS' OR (k.kind = 'PK' AND NOT EXISTS (SELECT 1 "
        "FROM {c}._emu.keys x WHERE x.object_id = k.object_id AND x.kind = 'CS')) AS clustered "
        "FROM {c}._emu.keys k) "
        "SELECT t.object_id, NULL AS name, 0 AS index_id, CAST(0 AS UTINYINT) AS type, "
        "'HEAP' AS type_desc, false AS is_unique, false AS is_primary_key, "
        "false AS is_unique_constraint FROM {c}._emu.tables t WHERE NOT EXISTS (SELECT 1 "
        "FROM k WHERE k.object_id = t.object_id AND k.clustered) UNION ALL "
        "SELECT object_id, name, CASE WHEN clustered THEN 1 ELSE 1 + CAST(row_number() OVER "
        "(PARTITION BY object_id, clustered ORDER BY key_object_id) AS INTEGER) END, "
        "CAST(CASE kind WHEN 'CS' THEN 5 WHEN 'NCS' THEN 6 ELSE CASE WHEN clustered THEN 1 "
        "ELSE 2 END END AS UTINYINT), CASE kind WHEN 'CS' THEN 'CLUSTERED COLUMNSTORE' "
        "WHEN 'NCS' THEN 'NONCLUSTERED COLUMNSTORE' ELSE CASE WHEN clustered THEN 'CLUSTERED' "
        "ELSE 'NONCLUSTERED' END END, kind IN ('PK', 'UQ', 'UX'), kind = 'PK', kind = 'UQ' "
        "FROM k"),
    ("sys", "schemas"): SystemView("sys_schemas", (
        _v("name", SYSNAME, False), _v("schema_id", _INT, False), _v("principal_id", _INT)),
        "SELECT name, schema_id, 1 AS principal_id FROM {c}._emu.schemas"),
    ("sys", "databases"): SystemView("sys_databases", (
        _v("name", SYSNAME, False), _v("database_id", _INT, False),
        _v("create_date", _DATETIME, False), _v("compatibility_level", _TINY, False)),
        "SELECT name, database_id, TIMESTAMP '2024-01-01' AS create_date, "
        "CAST(160 AS UTINYINT) AS compatibility_level FROM (VALUES {databases}) "
        "v(name, database_id)"),
}


@dataclass(frozen=True)
class ColumnMeta:
    """A table column as declared in T-SQL."""

    name: str
    type: SqlType
    nullable: bool = True
    column_id: int = 0
    identity: tuple[int, int] | None = None  # (seed, increment)
    default_sql: str | None = None  # T-SQL text as INFORMATION_SCHEMA shows it, e.g. ((0))

    def info(self) -> ColumnInfo:
        return ColumnInfo(self.name, self.type, self.nullable)


@dataclass(frozen=True)
class KeyMeta:
    """A PRIMARY KEY (PK), UNIQUE constraint (UQ), unique index (UX) or plain index (IX)."""

    name: str
    kind: str
    columns: tuple[str, ...]
    object_id: int = 0


@dataclass
class TableMeta:
    """A user table or a catalog view, resolved to its DuckDB name."""

    database: str
    schema: str
    name: str
    object_id: int
    columns: list[ColumnMeta]
    keys: list[KeyMeta] = field(default_factory=list)
    create_date: dt.datetime | None = None
    system: bool = False
    dmv: bool = False  # a DMV: rows registered per statement (sql/dmv.py), VIEW DATABASE STATE

    @property
    def duck_name(self) -> str:
        if self.dmv:
            return DMVS[(self.schema.lower(), self.name.lower())].duck_name
        schema = META_SCHEMA if self.system else self.schema
        name = SYSTEM_VIEW_NAMES.get((self.schema.lower(), self.name.lower()), self.name) \
            if self.system else self.name
        return f"{quote(self.database)}.{quote(schema)}.{quote(name)}"

    @property
    def two_part(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def full_name(self) -> str:
        return f"{self.database}.{self.schema}.{self.name}"

    def column(self, name: str) -> ColumnMeta | None:
        """The column named ``name`` (case-insensitive), or None.

        :param name: a column name.
        """
        low = name.lower()
        for col in self.columns:
            if col.name.lower() == low:
                return col
        return None

    @property
    def identity_column(self) -> ColumnMeta | None:
        return next((c for c in self.columns if c.identity), None)


SYSTEM_VIEW_NAMES = {key: view.name for key, view in SYSTEM_VIEWS.items()}


def quote(name: str) -> str:
    """A DuckDB quoted identifier.

    :param name: the raw name.
    """
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal.

    :param text: the raw text.
    """
    return "'" + text.replace("'", "''") + "'"


@dataclass
class CatalogSnapshot:
    """One database's schemas and tables as one session's transaction sees them."""

    database: str
    schemas: dict[str, tuple[str, int]]  # lower name -> (name, schema_id)
    tables: dict[tuple[str, str], TableMeta]  # (schema lower, name lower) -> table
    object_names: set[tuple[str, str]]  # (schema lower, name lower) of tables and constraints

    def table(self, schema: str, name: str) -> TableMeta | None:
        """A user table or a catalog view.

        :param schema: schema name (any case).
        :param name: table name (any case).
        """
        key = (schema.lower(), name.lower())
        hit = self.tables.get(key)
        if hit is None and key in SYSTEM_VIEWS:
            view = SYSTEM_VIEWS[key]
            cols = [ColumnMeta(c.name, c.type, c.nullable, i + 1) for i, c in
                    enumerate(view.columns)]
            return TableMeta(self.database, "INFORMATION_SCHEMA" if key[0] != "sys" else "sys",
                             key[1], 0, cols, system=True)
        if hit is None and key in DMVS:
            dmv = DMVS[key]
            cols = [ColumnMeta(c.name, c.type, c.nullable, i + 1) for i, c in
                    enumerate(dmv.columns)]
            return TableMeta(self.database, "sys", dmv.name, dmv.object_id, cols, system=True,
                             dmv=True)
        return hit


def init_database(con: duckdb.DuckDBPyConnection, database: str,
                  all_databases: list[str]) -> None:
    """Create the metadata tables, the dbo schema and the catalog views in one database.

    :param con: a connection with ``database`` attached.
    :param database: the catalog name.
    :param all_databases: every database, for sys.databases.
    """
    c = quote(database)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {c}.{META_SCHEMA}").fetchall()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {c}.{DEFAULT_SCHEMA}").fetchall()
    for ddl in _META_DDL.format(c=c).split(";"):
        if ddl.strip():
            con.execute(ddl).fetchall()
    if not con.execute(f"SELECT count(*) FROM {c}._emu.schemas").fetchall()[0][0]:
        con.executemany(f"INSERT INTO {c}._emu.schemas VALUES (?, ?)",
                        [(sid, name) for name, sid in BUILTIN_SCHEMAS.items()]).fetchall()
    types = ", ".join(f"({literal(n)}, {v[0]}, {v[0]}, {v[1]}, {v[2]}, {v[3]})"
                      for n, v in sorted(SYS_TYPES.items()))
    types += ", ('sysname', 231, 256, 256, 0, 0)"
    databases = ", ".join(f"({literal(n)}, {i + 1})" for i, n in enumerate(all_databases))
    for view in SYSTEM_VIEWS.values():
        body = view.select.format(c=c, db=literal(database), types=types, databases=databases)
        name = f"{c}.{META_SCHEMA}.{quote(view.name)}"
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}").fetchall()


def load_snapshot(con: duckdb.DuckDBPyConnection, database: str) -> CatalogSnapshot:
    """Read one database's metadata as this connection's transaction sees it.

    :param con: the session's connection.
    :param database: the catalog name.
    """
    c = quote(database)
    schemas = {name.lower(): (name, sid) for sid, name in
               con.execute(f"SELECT schema_id, name FROM {c}._emu.schemas").fetchall()}
    tables: dict[tuple[str, str], TableMeta] = {}
    by_id: dict[int, TableMeta] = {}
    for oid, schema, name, created in con.execute(
            f"SELECT object_id, schema_name, name, create_date FROM {c}._emu.tables").fetchall():
        meta = TableMeta(database, schema, name, oid, [], [], created)
        tables[(schema.lower(), name.lower())] = meta
        by_id[oid] = meta
    for oid, cid, name, type_sql, nullable, seed, incr, default in con.execute(
            f"SELECT object_id, column_id, name, type_sql, is_nullable, identity_seed, "
            f"identity_increment, default_sql FROM {c}._emu.columns "
            f"ORDER BY object_id, column_id").fetchall():
        if oid in by_id:
            identity = (seed, incr) if seed is not None else None
            by_id[oid].columns.append(ColumnMeta(name, SqlType.parse(type_sql), nullable, cid,
                                                 identity, default))
    names = {(t.schema.lower(), t.name.lower()) for t in tables.values()}
    for oid, koid, name, kind, cols in con.execute(
            f"SELECT object_id, key_object_id, name, kind, columns FROM {c}._emu.keys").fetchall():
        if oid in by_id:
            by_id[oid].keys.append(KeyMeta(name, kind, tuple(cols), koid))
            if kind in ("PK", "UQ"):  # constraints are schema objects; index names are per table
                names.add((by_id[oid].schema.lower(), name.lower()))
    return CatalogSnapshot(database, schemas, tables, names)


def max_object_id(con: duckdb.DuckDBPyConnection, database: str) -> int:
    """The highest object id used in a database (tables and constraints).

    :param con: a connection.
    :param database: the catalog name.
    """
    c = quote(database)
    row = con.execute(f"SELECT greatest(coalesce((SELECT max(object_id) FROM {c}._emu.tables), 0),"
                      f" coalesce((SELECT max(key_object_id) FROM {c}._emu.keys), 0))"
                      ).fetchall()[0]
    return max(int(row[0]), FIRST_OBJECT_ID)


def _column_row(oid: int, col: ColumnMeta) -> tuple:
    f = info_schema_facets(col.type)
    precision, scale = precision_scale(col.type)
    seed, incr = col.identity if col.identity else (None, None)
    return (oid, col.column_id, col.name, col.type.sql(), col.nullable, seed, incr,
            col.default_sql, f.data_type, f.char_max_length, f.char_octet_length,
            f.numeric_precision, f.numeric_precision_radix, f.numeric_scale,
            f.datetime_precision, SYS_TYPES[col.type.kind.value][0], max_length_bytes(col.type),
            precision, scale)


def save_table(con: duckdb.DuckDBPyConnection, table: TableMeta) -> None:
    """Record a new table's metadata (in the caller's transaction).

    :param con: the session's connection.
    :param table: the table with object ids assigned.
    """
    c = quote(table.database)
    now = table.create_date or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(f"INSERT INTO {c}._emu.tables VALUES (?, ?, ?, ?, ?)",
                [table.object_id, table.schema, table.name, now, now]).fetchall()
    for col in table.columns:
        con.execute(f"INSERT INTO {c}._emu.columns VALUES ({', '.join(['?'] * 19)})",
                    list(_column_row(table.object_id, col))).fetchall()
    for key in table.keys:
        save_key(con, table, key)


def save_key(con: duckdb.DuckDBPyConnection, table: TableMeta, key: KeyMeta) -> None:
    """Record a key or index of a table.

    :param con: the session's connection.
    :param table: the table.
    :param key: the key.
    """
    con.execute(f"INSERT INTO {quote(table.database)}._emu.keys VALUES (?, ?, ?, ?, ?)",
                [table.object_id, key.object_id, key.name, key.kind, list(key.columns)]).fetchall()


def delete_table(con: duckdb.DuckDBPyConnection, table: TableMeta) -> None:
    """Forget a dropped table's metadata.

    :param con: the session's connection.
    :param table: the table.
    """
    c = quote(table.database)
    for meta in ("tables", "columns", "keys"):
        con.execute(f"DELETE FROM {c}._emu.{meta} WHERE object_id = ?",
                    [table.object_id]).fetchall()


def rename_table(con: duckdb.DuckDBPyConnection, table: TableMeta, new_name: str) -> None:
    """Record a table's new name.

    :param con: the session's connection.
    :param table: the table.
    :param new_name: its new name.
    """
    con.execute(f"UPDATE {quote(table.database)}._emu.tables SET name = ? WHERE object_id = ?",
                [new_name, table.object_id]).fetchall()


def rename_column(con: duckdb.DuckDBPyConnection, table: TableMeta, old: str, new: str) -> None:
    """Record a column's new name (also inside key column lists).

    :param con: the session's connection.
    :param table: the table.
    :param old: the current column name.
    :param new: the new column name.
    """
    c = quote(table.database)
    con.execute(f"UPDATE {c}._emu.columns SET name = ? WHERE object_id = ? AND name = ?",
                [new, table.object_id, old]).fetchall()
    con.execute(f"UPDATE {c}._emu.keys SET columns = list_transform(columns, "
                f"lambda x: CASE WHEN x = ? THEN ? ELSE x END) WHERE object_id = ?",
                [old, new, table.object_id]).fetchall()


def add_schema(con: duckdb.DuckDBPyConnection, database: str, name: str, schema_id: int) -> None:
    """Create a schema in DuckDB and record its id.

    :param con: the session's connection.
    :param database: the catalog.
    :param name: the schema name.
    :param schema_id: its id.
    """
    con.execute(f"CREATE SCHEMA {quote(database)}.{quote(name)}").fetchall()
    con.execute(f"INSERT INTO {quote(database)}._emu.schemas VALUES (?, ?)",
                [schema_id, name]).fetchall()

