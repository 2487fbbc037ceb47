"""The table plan: target columns for an Arrow schema, their DDL, and validation.

A :class:`TablePlan` is decided once per load from the source schema (and a sample
of the data, which sizes text and binary columns): for every column its SQL type,
nullability and :class:`~engine.bind_casts.BindSpec`. Then

* :func:`create_table_sql` writes the ``CREATE TABLE`` for a new table;
* :func:`validate_against` checks an existing table (``INFORMATION_SCHEMA.COLUMNS``)
  and raises ONE :class:`~engine.errors.SchemaMismatchError` listing every incompatible
  column, before any row is sent.

How each batch's values travel is the binder's (:mod:`engine.binder`).

>>> import pyarrow as pa
>>> plan = plan_table(pa.schema([pa.field("id", pa.int64(), nullable=False),
...                              pa.field("name", pa.string())]),
...                   sample=pa.table({"id": [1], "name": ["Zoë"]}))
>>> print(create_table_sql(plan, "dbo.people"))
CREATE TABLE [dbo].[people] (
    [id] bigint NOT NULL,
    [name] nvarchar(16) NULL
)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import pyarrow as pa

from engine.bind_casts import BindSpec, bind_spec
from engine.errors import ConfigurationError, Mismatch, SchemaMismatchError
from engine.names import TableName, quote_identifier
from engine.text_length import measure
from engine.type_map import (
    MAX,
    SqlType,
    is_binary_like,
    is_text_like,
    sql_type_for,
)

__all__ = [
    "ColumnPlan",
    "ExistingColumn",
    "TablePlan",
    "create_table_sql",
    "plan_table",
    "validate_against",
]


@dataclass(frozen=True)
class ColumnPlan:
    """One target column.

    :param name: the column name (as in the source, after any renaming).
    :param arrow_type: the source column's Arrow type.
    :param sql_type: the SQL Server type it is written as.
    :param nullable: whether the created column allows NULL.
    :param bind: how its values are cast and bound (see :mod:`engine.bind_casts`).
    :param max_length: the longest sampled value (UTF-16 units for text, bytes for
        binary), None when not measured.
    :param sample_has_nulls: whether the sample held NULLs (None without a sample).
    :param overridden: True when ``sql_type`` came from a user override.
    """

    name: str
    arrow_type: pa.DataType
    sql_type: SqlType
    nullable: bool
    bind: BindSpec
    max_length: int | None = None
    sample_has_nulls: bool | None = None
    overridden: bool = False


@dataclass(frozen=True)
class TablePlan:
    """The columns of one load's target table, in source order.

    :param columns: one :class:`ColumnPlan` per source column.
    """

    columns: tuple[ColumnPlan, ...]

    @property
    def names(self) -> list[str]:
        """Column names in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnPlan:
        """The column called ``name`` (case-insensitive, as SQL Server compares names).

        :param name: the column name.
        :raises KeyError: when there is none.
        """
        for c in self.columns:
            if c.name.lower() == name.lower():
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class ExistingColumn:
    """One row of ``INFORMATION_SCHEMA.COLUMNS`` for the existing target table.

    :param name: COLUMN_NAME.
    :param data_type: DATA_TYPE (``nvarchar``, ``decimal``...).
    :param char_max_length: CHARACTER_MAXIMUM_LENGTH (-1 for max), or None.
    :param numeric_precision: NUMERIC_PRECISION, or None.
    :param numeric_scale: NUMERIC_SCALE, or None.
    :param datetime_precision: DATETIME_PRECISION, or None.
    :param is_nullable: IS_NULLABLE as ``YES``/``NO`` or a bool.
    :param column_default: COLUMN_DEFAULT, or None.
    """

    name: str
    data_type: str
    char_max_length: int | None = None
    numeric_precision: int | None = None
    numeric_scale: int | None = None
    datetime_precision: int | None = None
    is_nullable: str | bool = True
    column_default: str | None = None

    @classmethod
    def from_row(cls, row: Iterable[object]) -> ExistingColumn:
        """Build from a row selected in this order: COLUMN_NAME, DATA_TYPE,
        CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION,
        IS_NULLABLE[, COLUMN_DEFAULT].

        :param row: the row (a tuple, a pyodbc Row or a list).
        """
        values = list(row)
        ints = [None if v is None else int(v) for v in values[2:6]]  # type: ignore[call-overload]
        return cls(str(values[0]), str(values[1]), ints[0], ints[1], ints[2], ints[3],
                   values[6] if isinstance(values[6], bool) else str(values[6]),
                   None if len(values) < 8 or values[7] is None else str(values[7]))

    @property
    def nullable(self) -> bool:
        """Whether the column allows NULL."""
        if isinstance(self.is_nullable, bool):
            return self.is_nullable
        return self.is_nullable.strip().upper() == "YES"

    @property
    def sql_type(self) -> SqlType:
        """The column's type with its facets."""
        name = self.data_type.lower()
        if name in ("char", "varchar", "nchar", "nvarchar", "binary", "varbinary"):
            return SqlType(name, length=self.char_max_length)
        if name in ("decimal", "numeric"):
            return SqlType(name, precision=self.numeric_precision, scale=self.numeric_scale)
        if name in ("time", "datetime2", "datetimeoffset"):
            return SqlType(name, scale=self.datetime_precision)
        return SqlType(name)


def plan_table(schema: pa.Schema, *, overrides: Mapping[str, str | SqlType] | None = None,
               sample: pa.Table | pa.RecordBatch | None = None) -> TablePlan:
    """Plan the target table for ``schema``.

    Text and binary columns are sized from ``sample`` (see :mod:`engine.type_map`);
    without a sample they are ``(max)``. A column is ``NOT NULL`` when its Arrow field
    is not nullable. Overrides (``{"price": "decimal(18,2)"}``, names case-insensitive)
    win over the mapping.

    :param schema: the source schema (after projection and renaming).
    :param overrides: per-column SQL types.
    :param sample: some of the data (e.g. the first batch), for sizing.
    :raises ConfigurationError: for an override naming no column, a bad type, or an
        Arrow type that cannot be written into the chosen SQL type.

    >>> import pyarrow as pa
    >>> plan = plan_table(pa.schema([("price", pa.float64())]),
    ...                   overrides={"PRICE": "decimal(18,2)"})
    >>> plan.columns[0].sql_type.sql(), plan.columns[0].bind.marker
    ('decimal(18,2)', '?')
    """
    by_lower = {k.lower(): v for k, v in (overrides or {}).items()}
    names = {f.name.lower() for f in schema}
    unknown = sorted(k for k in (overrides or {}) if k.lower() not in names)
    if unknown:
        raise ConfigurationError(f"type overrides name columns the source does not have: "
                                 f"{unknown}; the source's columns are {schema.names}")
    seen: set[str] = set()
    columns = []
    for f in schema:
        if f.name.lower() in seen:
            raise ConfigurationError(f"column {f.name!r} appears twice (SQL Server compares "
                                     "names case-insensitively); rename one of them")
        seen.add(f.name.lower())
        max_length = has_nulls = None
        if sample is not None and f.name in sample.schema.names:
            values = sample.column(f.name)
            has_nulls = values.null_count > 0
            if is_text_like(f.type) or is_binary_like(f.type):
                max_length = measure(values, f.type)
        override = by_lower.get(f.name.lower())
        if override is not None:
            sql_type = override if isinstance(override, SqlType) else SqlType.parse(override)
        else:
            sql_type = sql_type_for(f.type, max_length=max_length, column=f.name)
        bind = bind_spec(f.type, sql_type, column=f.name)
        columns.append(ColumnPlan(f.name, f.type, sql_type, f.nullable, bind, max_length,
                                  has_nulls, override is not None))
    if not columns:
        raise ConfigurationError("the source has no columns to load")
    return TablePlan(tuple(columns))


def create_table_sql(plan: TablePlan, table: str | TableName,
                     like: Iterable[ExistingColumn] | None = None) -> str:
    """``CREATE TABLE`` for the plan, identifiers bracket-quoted.

    :param plan: from :func:`plan_table`.
    :param table: ``schema.table`` (or ``table`` for dbo).
    :param like: an existing table's columns: a plan column with the same name (any case)
        takes that column's type and nullability instead of the plan's, which is sized
        from a sample (a staging table must hold whatever its target holds).

    >>> import pyarrow as pa
    >>> print(create_table_sql(plan_table(pa.schema([("a]b", pa.bool_())])), "x.y"))
    CREATE TABLE [x].[y] (
        [a]]b] bit NULL
    )
    """
    existing = {c.name.lower(): c for c in like or ()}
    lines = []
    for c in plan.columns:
        twin = existing.get(c.name.lower())
        sql_type, nullable = (twin.sql_type, twin.nullable) if twin else (c.sql_type, c.nullable)
        lines.append(f"    {quote_identifier(c.name)} {sql_type.sql()} "
                     f"{'NULL' if nullable else 'NOT NULL'}")
    return f"CREATE TABLE {TableName.parse(table).quoted} (\n" + ",\n".join(lines) + "\n)"


# -- validation against an existing table ----------------------------------------------------

_INT_RANK = {"bit": 0, "tinyint": 1, "smallint": 2, "int": 3, "bigint": 4}
_INT_DIGITS = {"bit": 1, "tinyint": 3, "smallint": 5, "int": 10, "bigint": 19}
_TEXT_KINDS = {"nvarchar": True, "nchar": True, "varchar": False, "char": False}
_DATETIME_KINDS = ("datetime2", "datetimeoffset", "time")


@dataclass(frozen=True)
class _Verdict:
    why: str = ""
    fix: str = ""
    ok: bool = field(default=False)


_OK = _Verdict(ok=True)


def _convertible(col: ColumnPlan, target: SqlType) -> _Verdict:
    """Can every value the plan sends for ``col`` be stored in ``target`` without loss?"""
    src, tgt = col.sql_type, target
    override = f"or override the column's SQL type to {tgt.sql()} if you accept it"
    if src.name in _INT_RANK and tgt.name in _INT_RANK:
        if _INT_RANK[tgt.name] >= _INT_RANK[src.name] and not (
                src.name == "tinyint" and tgt.name == "bit"):
            return _OK
        return _Verdict(f"{tgt.name} is narrower than {src.name}", f"widen the column, {override}")
    if src.name in _INT_RANK and tgt.name in ("decimal", "numeric"):
        if (tgt.precision or 18) - (tgt.scale or 0) >= _INT_DIGITS[src.name]:
            return _OK
        return _Verdict(f"{tgt.sql()} has too few integer digits for {src.name}",
                        f"widen the column, {override}")
    if src.name in ("decimal", "numeric") and tgt.name in ("decimal", "numeric"):
        sp, ss, tp, ts = src.precision or 18, src.scale or 0, tgt.precision or 18, tgt.scale or 0
        if ts >= ss and tp - ts >= sp - ss:
            return _OK
        return _Verdict(f"{tgt.sql()} cannot hold every {src.sql()} value exactly",
                        f"widen the column, {override}")
    if src.name in ("decimal", "numeric") and tgt.name in _INT_RANK and (src.scale or 0) == 0:
        if _INT_DIGITS[tgt.name] > (src.precision or 18) or (
                tgt.name == "bigint" and (src.precision or 18) <= 18):
            return _OK
    if src.name in ("real", "float") and tgt.name in ("real", "float"):
        if tgt.name == "float" or src.name == "real":
            return _OK
        return _Verdict("real keeps only 7 significant digits of a float",
                        f"change the column to float, {override}")
    if src.name in ("tinyint", "smallint", "int") and tgt.name == "float":
        return _OK
    if src.name in _TEXT_KINDS and tgt.name in _TEXT_KINDS:
        if _TEXT_KINDS[src.name] and not _TEXT_KINDS[tgt.name]:
            return _Verdict(f"{tgt.name} cannot hold all Unicode text (characters outside "
                            "its code page become '?')",
                            f"change the column to n{tgt.name}, {override}")
        return _length_verdict(col, tgt, "characters")
    if src.name in ("binary", "varbinary") and tgt.name in ("binary", "varbinary"):
        return _length_verdict(col, tgt, "bytes")
    if src.name == tgt.name and src.name in _DATETIME_KINDS:
        if (tgt.scale if tgt.scale is not None else 7) >= (src.scale or 0):
            return _OK
        return _Verdict(f"{tgt.sql()} keeps fewer fractional-second digits than {src.sql()}",
                        f"widen the column to {src.sql()}, {override} (values are rounded)")
    if src.name == "date" and tgt.name in ("date", "datetime2"):
        return _OK
    if src.name == tgt.name and src.name in ("bit", "date", "uniqueidentifier"):
        return _OK
    return _Verdict(f"{src.sql()} values cannot be stored in {tgt.sql()} without conversion "
                    "that could fail or lose data",
                    f"change the column to {src.sql()}, {override}")


def _length_verdict(col: ColumnPlan, tgt: SqlType, unit: str) -> _Verdict:
    target_len = MAX if tgt.length in (None, MAX) else tgt.length
    if target_len == MAX:
        return _OK
    if col.max_length is not None and col.max_length > target_len:
        return _Verdict(f"the longest sampled value has {col.max_length} {unit}, more than "
                        f"{target_len}", f"widen the column to {col.sql_type.sql()} or more")
    return _OK  # unmeasured: the server rejects a too-long value when it arrives


def validate_against(plan: TablePlan, existing_columns: Iterable[ExistingColumn | Iterable[object]],
                     *, table: str = "the target table", sampled: bool = True) -> None:
    """Check that an existing table can take the plan's columns; raise listing every problem.

    Names match case-insensitively. Every source column must exist with a type that
    holds its values without loss and a length that holds the sampled values; a
    NOT NULL target must not get sampled NULLs; a NOT NULL target column without a
    default must be among the source's columns.

    :param plan: from :func:`plan_table`.
    :param existing_columns: :class:`ExistingColumn` objects, or raw
        ``INFORMATION_SCHEMA.COLUMNS`` rows in :meth:`ExistingColumn.from_row`'s order.
    :param table: the table's name, for the message.
    :param sampled: also refuse what the first batch's values show (NULLs for a NOT NULL
        column, text longer than the column); False when such rows are to be set aside
        one by one (``max_errors``) instead of stopping the load.
    :raises SchemaMismatchError: listing every incompatible column.

    >>> import pyarrow as pa
    >>> plan = plan_table(pa.schema([("id", pa.int64())]))
    >>> validate_against(plan, [("ID", "bigint", None, 19, 0, None, "YES")])
    """
    existing = [c if isinstance(c, ExistingColumn) else ExistingColumn.from_row(c)
                for c in existing_columns]
    by_lower = {c.name.lower(): c for c in existing}
    problems: list[Mismatch] = []
    for col in plan.columns:
        if not sampled:
            col = replace(col, max_length=None, sample_has_nulls=None)
        source = f"{col.arrow_type} -> {col.sql_type.sql()}"
        target = by_lower.get(col.name.lower())
        if target is None:
            problems.append(Mismatch(col.name, source, "-", "the table has no such column",
                                     f"add it (ALTER TABLE ... ADD {quote_identifier(col.name)} "
                                     f"{col.sql_type.sql()} NULL), or drop or rename it in the "
                                     "source"))
            continue
        verdict = _convertible(col, target.sql_type)
        if not verdict.ok:
            problems.append(Mismatch(col.name, source, target.sql_type.sql(), verdict.why,
                                     verdict.fix))
        elif not target.nullable and col.sample_has_nulls:
            problems.append(Mismatch(col.name, source, f"{target.sql_type.sql()} NOT NULL",
                                     "the source holds NULLs", "fill the NULLs in the source, "
                                     "or make the column NULL-able"))
    wanted = {c.name.lower() for c in plan.columns}
    for target in existing:
        if target.name.lower() not in wanted and not target.nullable \
                and target.column_default is None:
            problems.append(Mismatch(target.name, "-", f"{target.sql_type.sql()} NOT NULL",
                                     "the source lacks this NOT NULL column and it has no "
                                     "default", "add the column to the source, or give the "
                                     "table column a default"))
    if problems:
        raise SchemaMismatchError(table, problems)
