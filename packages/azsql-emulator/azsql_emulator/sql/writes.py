"""The write path shared by INSERT, UPDATE and MERGE: convert, check keys, ship via Arrow.

Every check runs before DuckDB sees a row, because any DuckDB error inside an explicit
transaction aborts that whole transaction, while SQL Server only ends the statement.
"""

# ruff: noqa: S608 - SQL is built from quote()d identifiers; values are bound parameters

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import errors_map as em
from azsql_emulator.sql.catalog import ColumnMeta, TableMeta, quote
from azsql_emulator.sql.checks import Converter, from_storage, make_converter
from azsql_emulator.sql.typemap import arrow_type
from azsql_emulator.sqltypes import SqlKind

_names = itertools.count(1)


def _cast_from(alias: str, col: ColumnMeta, source_name: str | None = None) -> str:
    ref = f"{alias}.{quote(source_name or col.name)}"
    if col.type.kind is SqlKind.UNIQUEIDENTIFIER:
        return f"CAST({ref} AS UUID)"
    return ref


def arrow_columns(cols: Sequence[ColumnMeta], rows: Sequence[Sequence[object]],
                  names: Sequence[str] | None = None) -> pa.Table:
    """Converted rows as an Arrow table typed for DuckDB's storage of each column.

    :param cols: the columns, in row order.
    :param rows: converted rows.
    :param names: Arrow column names (default: the column names).
    """
    arrays = []
    for i, col in enumerate(cols):
        arrays.append(pa.array([r[i] for r in rows], type=arrow_type(col.type)))
    return pa.table(arrays, names=list(names or [c.name for c in cols]))


class Registered:
    """An Arrow table visible to one DuckDB connection under a unique name, for a ``with``.

    :param con: the connection.
    :param table: the Arrow data.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
        self.con = con
        self.name = f"_emu_rows_{next(_names)}"
        con.register(self.name, table)

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.con.unregister(self.name)


def key_value(value: object) -> object:
    """A stored or converted value as a hashable key (structs as tuples, UUIDs as text).

    :param value: a key column's value.
    """
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return tuple(value.values())
    return value


def _shown(value: object) -> object:
    if isinstance(value, dict) and "dto_utc" in value:
        return value["dto_utc"]
    return from_storage(value)


def unique_keys(table: TableMeta) -> list:
    """The keys that forbid duplicates: PRIMARY KEY, UNIQUE constraints, unique indexes.

    :param table: the table.
    """
    return [k for k in table.keys if k.kind in ("PK", "UQ", "UX")]


def find_duplicates(con: duckdb.DuckDBPyConnection, table: TableMeta,
                    rows: Sequence[Sequence[object] | None], rids: Sequence[int] | None = None,
                    keys: list | None = None) -> dict[int, SqlError]:
    """Row index -> 2627/2601 for rows whose key repeats an earlier row or a stored row.

    :param con: the session's connection.
    :param table: the target table.
    :param rows: full rows in table column order (None = already failed, skipped).
    :param rids: for UPDATE, the rowids being rewritten (their old keys do not count).
    :param keys: restrict to these keys.
    """
    errors: dict[int, SqlError] = {}
    positions = {c.name.lower(): i for i, c in enumerate(table.columns)}
    for key in keys if keys is not None else unique_keys(table):
        idx = [positions[c.lower()] for c in key.columns]
        cols = [table.columns[i] for i in idx]
        first: dict[tuple, int] = {}
        for n, row in enumerate(rows):
            if row is None or n in errors:
                continue
            k = tuple(key_value(row[i]) for i in idx)
            if k in first:
                errors[n] = em.duplicate_key(key.kind, key.name, table.two_part,
                                             tuple(_shown(row[i]) for i in idx))
            else:
                first[k] = n
        if not first:
            continue
        order = list(first.values())
        data = arrow_columns(cols, [[rows[n][i] for i in idx] for n in order],  # type: ignore[index]
                             names=[f"k{j}" for j in range(len(idx))])
        data = data.append_column("n", pa.array(order, pa.int64()))
        if rids is not None:
            exclude = pa.table({"rid": pa.array(list(rids), pa.int64())})
        cond = " AND ".join(
            f"t.{quote(c.name)} IS NOT DISTINCT FROM {_cast_from('n', c, f'k{j}')}"
            for j, c in enumerate(cols))
        with Registered(con, data) as reg:
            sql = f"SELECT n.n FROM {reg} n JOIN {table.duck_name} t ON {cond}"
            if rids is not None:
                with Registered(con, exclude) as ex:
                    found = con.execute(sql + f" WHERE t.rowid NOT IN (SELECT rid FROM {ex})"
                                        ).fetchall()
            else:
                found = con.execute(sql).fetchall()
        for (n,) in found:
            row = rows[n]
            errors[n] = em.duplicate_key(key.kind, key.name, table.two_part,
                                         tuple(_shown(row[i]) for i in idx))
    return errors


def append_rows(con: duckdb.DuckDBPyConnection, table: TableMeta,
                rows: Sequence[Sequence[object]]) -> None:
    """Insert checked rows (full table column order) in one DuckDB statement.

    :param con: the session's connection.
    :param table: the target.
    :param rows: converted rows.
    """
    if not rows:
        return
    append_table(con, table, arrow_columns(table.columns, rows,
                                           names=[f"c{i}" for i in range(len(table.columns))]))


def append_table(con: duckdb.DuckDBPyConnection, table: TableMeta, data: pa.Table) -> None:
    """Insert checked rows given as Arrow columns ``c0``, ``c1``... in table column order.

    :param con: the session's connection.
    :param table: the target.
    :param data: one column per table column, typed as ``typemap.arrow_type`` says.
    """
    if not any(c.type.kind is SqlKind.UNIQUEIDENTIFIER for c in table.columns):
        con.from_arrow(data).insert_into(table.duck_name)  # no view to register: faster
        return
    select = ", ".join(_cast_from("r", c, f"c{i}") for i, c in enumerate(table.columns))
    with Registered(con, data) as reg:
        con.execute(f"INSERT INTO {table.duck_name} SELECT {select} FROM {reg} r").fetchall()


def apply_updates(con: duckdb.DuckDBPyConnection, table: TableMeta, cols: list[ColumnMeta],
                  rids: Sequence[int], values: Sequence[Sequence[object]]) -> None:
    """Set ``cols`` of the rows with ``rids`` to the checked ``values``.

    :param con: the session's connection.
    :param table: the target.
    :param cols: the columns being set.
    :param rids: DuckDB rowids.
    :param values: converted values per row, in ``cols`` order.
    """
    if not rids:
        return
    data = arrow_columns(cols, values, names=[f"c{i}" for i in range(len(cols))])
    data = data.append_column("rid", pa.array(list(rids), pa.int64()))
    sets = ", ".join(f"{quote(c.name)} = {_cast_from('r', c, f'c{i}')}"
                     for i, c in enumerate(cols))
    alias = quote(table.name)
    with Registered(con, data) as reg:
        con.execute(f"UPDATE {table.duck_name} SET {sets} FROM {reg} r "
                    f"WHERE {alias}.rowid = r.rid").fetchall()


def delete_rids(con: duckdb.DuckDBPyConnection, table: TableMeta, rids: Sequence[int]) -> None:
    """Delete rows by DuckDB rowid.

    :param con: the session's connection.
    :param table: the target.
    :param rids: the rowids.
    """
    if not rids:
        return
    with Registered(con, pa.table({"rid": pa.array(list(rids), pa.int64())})) as reg:
        con.execute(f"DELETE FROM {table.duck_name} WHERE rowid IN (SELECT rid FROM {reg})"
                    ).fetchall()


@dataclass
class RowShaper:
    """Converts source rows for a fixed list of target columns into full table rows.

    :param table: the target table.
    :param given: the columns the statement supplies, in source order.
    :param operation: INSERT or UPDATE (for 515's wording).
    """

    table: TableMeta
    given: list[ColumnMeta]
    operation: str = "INSERT"

    def __post_init__(self) -> None:
        full = self.table.full_name
        self.converters: list[Converter] = [
            make_converter(c.type, c.name, full, c.nullable or bool(c.identity), self.operation)
            for c in self.given]
        given_names = {c.name.lower() for c in self.given}
        self.slots = [next(i for i, g in enumerate(self.given) if g.name.lower() == c.name.lower())
                      if c.name.lower() in given_names else None for c in self.table.columns]

    def convert(self, row: Sequence[object], hints: Sequence[str | None]) -> list[object]:
        """Convert one source row (raises the first column's error).

        :param row: source values in ``given`` order.
        :param hints: source type names for messages.
        """
        return [conv(v, h) for conv, v, h in zip(self.converters, row, hints, strict=True)]

    def widen(self, converted: list[object], fill: Sequence[object]) -> list[object]:
        """A full table row: given values, else ``fill`` (identity/default/NULL) per column.

        :param converted: values in ``given`` order.
        :param fill: per table column, the value when not given.
        """
        return [converted[s] if s is not None else fill[i] for i, s in enumerate(self.slots)]
