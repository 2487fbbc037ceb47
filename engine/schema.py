"""The schema plan: target columns for an Arrow schema, DDL, INSERT text, casts, validation.

A :class:`TablePlan` is decided once per load from the source schema (and a sample
of the data, which sizes text and binary columns): for every column its SQL type,
nullability and :class:`~engine.bind_casts.BindSpec`. Then

* :func:`create_table_sql` writes the ``CREATE TABLE`` for a new table;
* :func:`validate_against` checks an existing table (``INFORMATION_SCHEMA.COLUMNS``)
  and raises ONE :class:`SchemaMismatchError` listing every incompatible column,
  before any row is sent;
* :func:`insert_sql` writes the parameterised INSERT whose markers fit the bindings;
* :func:`cast_batch` turns each batch into the single-chunk table turbodbc binds.

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
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from engine.bind_casts import Binding, BindSpec, ValueCastError, bind_spec, cast_for_bind
from engine.errors import ConfigurationError
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
    "Mismatch",
    "SchemaMismatchError",
    "TablePlan",
    "cast_batch",
    "create_table_sql",
    "insert_sql",
    "max_utf16_units",
    "native_timestamp_columns",
    "plan_table",
    "quote_identifier",
    "split_long_text",
    "split_table_name",
    "validate_against",
]

_ASTRAL = "[\U00010000-\U0010ffff]"  # two UTF-16 code units each

try:  # native/fastcast (built by the project's CMake); the pyarrow path without it
    from engine import _fastcast  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a source tree without the built extension
    _fastcast = None


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


@dataclass(frozen=True)
class Mismatch:
    """One incompatible column: what, why, and what to do.

    :param column: the column name.
    :param source: the source side (Arrow type and planned SQL type), or ``-``.
    :param target: the existing column's type, or ``-`` when it is missing.
    :param why: the reason.
    :param fix: what to do about it.
    """

    column: str
    source: str
    target: str
    why: str
    fix: str


class SchemaMismatchError(ConfigurationError):
    """The existing table cannot take the source's columns; lists every mismatch.

    :param table: the target table.
    :param mismatches: every incompatible column.
    """

    def __init__(self, table: str, mismatches: list[Mismatch]) -> None:
        self.table = table
        self.mismatches = tuple(mismatches)
        lines = [f"table {table}: {len(mismatches)} column(s) are incompatible with the source; "
                 "nothing was sent"]
        lines += [f"  - column {m.column!r}: source {m.source}, target {m.target}: {m.why}; "
                  f"{m.fix}" for m in mismatches]
        super().__init__("\n".join(lines))


def quote_identifier(name: str) -> str:
    """Bracket-quote one identifier, doubling any ``]`` inside.

    :param name: a schema, table or column name.

    >>> quote_identifier("odd]name")
    '[odd]]name]'
    """
    if not name:
        raise ConfigurationError("an empty name cannot be a SQL identifier")
    return "[" + name.replace("]", "]]") + "]"


def split_table_name(table: str) -> tuple[str, str]:
    """Split ``schema.table`` (brackets allowed, ``]]`` inside them) into its two names.

    A name without a schema gets ``dbo``.

    :param table: e.g. ``dbo.sales``, ``[my schema].[odd.name]``.
    :raises ConfigurationError: for more than two parts or unbalanced brackets.

    >>> split_table_name("[s.x].[t]]1]")
    ('s.x', 't]1')
    """
    parts: list[str] = []
    i, n = 0, len(table)
    while i < n:
        if table[i] == "[":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise ConfigurationError(f"table name {table!r} has an unclosed '['")
                if table[j] == "]":
                    if j + 1 < n and table[j + 1] == "]":
                        buf.append("]")
                        j += 2
                        continue
                    break
                buf.append(table[j])
                j += 1
            parts.append("".join(buf))
            i = j + 1
        else:
            j = table.find(".", i)
            j = n if j < 0 else j
            parts.append(table[i:j].strip())
            i = j
        if i < n:
            if table[i] != ".":
                raise ConfigurationError(f"table name {table!r}: expected '.' at position {i}")
            i += 1
    if len(parts) == 1:
        parts.insert(0, "dbo")
    if len(parts) != 2 or not all(parts):
        raise ConfigurationError(f"table name {table!r} must be 'schema.table' or 'table'")
    return parts[0], parts[1]


def _qualified(table: str) -> str:
    schema, name = split_table_name(table)
    return f"{quote_identifier(schema)}.{quote_identifier(name)}"


def utf16_lengths(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Each text value's length in UTF-16 code units (how nvarchar(n) counts).

    >>> utf16_lengths(pa.array(["ab", "😀", None])).to_pylist()
    [2, 2, None]
    """
    return pc.add(pc.utf8_length(text), pc.count_substring_regex(text, _ASTRAL))


def max_utf16_units(text: pa.Array | pa.ChunkedArray, floor: int = 0) -> int:
    """The longest text value in UTF-16 code units, exact whenever it exceeds ``floor``
    (otherwise some length no greater than ``floor``).

    No per-character work when the byte lengths (from the offsets alone) are within
    ``floor``: a value's UTF-16 length never exceeds its UTF-8 byte length. Past that,
    code points bound it from below and ``code points + (bytes - code points) // 3``
    (each character outside the BMP: 4 bytes, 2 units) from above; the astral characters
    are counted (a regex, the slow part) only in values whose upper bound could still
    raise the maximum.

    :param text: a string or large_string array (chunked or not: nothing is copied).
    :param floor: the length below which the exact maximum does not matter.

    >>> max_utf16_units(pa.array(["ab", "😀😀x", None]))
    5
    >>> max_utf16_units(pa.array(["é" * 3]), floor=8) <= 8  # 6 bytes: not counted
    True
    """
    nbytes = pc.binary_length(text)
    top = pc.max(nbytes).as_py()
    if top is None or top <= floor:
        return int(top or 0)
    if _fastcast is not None:  # one pass in C, skipping values too short to matter
        chunks = text.chunks if isinstance(text, pa.ChunkedArray) else [text]
        best = 0
        for chunk in chunks:
            validity, offsets, data = chunk.buffers()
            if data is None:
                continue
            best = max(best, _fastcast.utf16_max(
                data, offsets, validity, chunk.offset, len(chunk),
                pa.types.is_large_string(chunk.type), max(best, floor)))
        return best
    points = pc.utf8_length(text)
    best = int(pc.max(points).as_py() or 0)
    bound = pc.add(points, pc.divide(pc.subtract(nbytes, points), 3))
    over = pc.fill_null(pc.greater(bound, max(best, floor)), False)
    if not pc.any(over).as_py():
        return best
    candidates = pc.filter(text, over)
    units = pc.add(pc.utf8_length(candidates), pc.count_substring_regex(candidates, _ASTRAL))
    return max(best, int(pc.max(units).as_py() or 0))


def longest_over(values: pa.ChunkedArray | pa.Array, t: pa.DataType, limit: int) -> int | None:
    """The longest value's length (UTF-16 units for text, bytes for binary) when it is over
    ``limit``, else None.

    Cheap when nothing is over: the byte length of text (from the offsets alone) bounds its
    UTF-16 length from above, so text is measured exactly only past that bound.

    :param values: one batch's column.
    :param t: its Arrow type (as planned).
    :param limit: the column's length.

    >>> import pyarrow as pa
    >>> longest_over(pa.array(["ab", "é" * 5]), pa.string(), 4), longest_over(
    ...     pa.array(["abc"]), pa.string(), 4)
    (5, None)
    """
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    storage = arr.storage if isinstance(arr.type, pa.BaseExtensionType) else arr
    if (pa.types.is_string(storage.type) or pa.types.is_large_string(storage.type)
            or pa.types.is_binary(storage.type) or pa.types.is_large_binary(storage.type)):
        bound = pc.max(pc.binary_length(storage)).as_py()
        if bound is None or bound <= limit:
            return None
    length = _measure(arr, t)
    return length if length is not None and length > limit else None


def _measure(values: pa.ChunkedArray | pa.Array, t: pa.DataType) -> int | None:
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if isinstance(arr.type, pa.BaseExtensionType):
        arr = arr.storage
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary  # the longest value is among the dictionary's
    if arr.null_count == len(arr):
        return None
    if is_text_like(t):
        result = max_utf16_units(arr.cast(pa.string()))
    else:
        if pa.types.is_fixed_size_binary(arr.type):
            return int(arr.type.byte_width)
        result = pc.max(pc.binary_length(arr.cast(pa.large_binary()))).as_py()
    return None if result is None else int(result)


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
                max_length = _measure(values, f.type)
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


def create_table_sql(plan: TablePlan, table: str,
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
    return f"CREATE TABLE {_qualified(table)} (\n" + ",\n".join(lines) + "\n)"


def insert_sql(plan: TablePlan, table: str, pieces: Mapping[str, int] | None = None,
               native: frozenset[str] = frozenset()) -> str:
    """The parameterised INSERT for :func:`cast_batch`'s output, one marker per column.

    :param plan: from :func:`plan_table`.
    :param table: ``schema.table``.
    :param pieces: from :func:`split_long_text`: text columns sent in several parameters,
        joined again by the server with ``+``.
    :param native: from :func:`native_timestamp_columns`: columns bound as themselves
        (a bare ``?``) in this batch instead of as text.

    >>> import pyarrow as pa
    >>> insert_sql(plan_table(pa.schema([("d", pa.date32()), ("n", pa.int32())])), "t")
    'INSERT INTO [dbo].[t] ([d], [n]) VALUES (CAST(? AS nvarchar(10)), ?)'
    """
    cols = ", ".join(quote_identifier(c.name) for c in plan.columns)
    pieces = pieces or {}
    markers = ", ".join(
        "?" if c.name in native
        else c.bind.marker.replace("?", "(" + " + ".join([_PIECE_MARKER] * pieces[c.name]) + ")", 1)
        if c.name in pieces else c.bind.marker for c in plan.columns)
    # identifiers are bracket-quoted and markers are fixed text: nothing user-supplied is raw
    return f"INSERT INTO {_qualified(table)} ({cols}) VALUES ({markers})"  # noqa: S608


# turbodbc converts timestamp[us] to SQL_TIMESTAMP_STRUCT with boost's Gregorian calendar,
# which starts in 1400, and binds 6 fractional digits: inside these bounds (microseconds
# since the Unix epoch) a naive microsecond timestamp binds as itself, exactly.
_NATIVE_TS_LOW = -17_987_443_200_000_000  # 1400-01-01 00:00:00
_NATIVE_TS_HIGH = 253_402_300_799_999_999  # 9999-12-31 23:59:59.999999


def native_timestamp_columns(plan: TablePlan, batch: pa.Table | pa.RecordBatch) -> frozenset[str]:
    """Timestamp columns of this batch that can bind as themselves instead of as text.

    Text (``CAST(? AS nvarchar(n))``) is exact for every value; a naive ``timestamp[us]``
    going into ``datetime2(6)`` or ``(7)`` binds natively when all its values lie in
    1400-9999, which saves formatting every value as text (most of the engine's casting
    cost). The choice is per batch, so one early date only sends its own batch as text.

    >>> import datetime as dt, pyarrow as pa
    >>> plan = plan_table(pa.schema([("t", pa.timestamp("us"))]))
    >>> sorted(native_timestamp_columns(plan, pa.table({"t": pa.array([dt.datetime(2024, 1, 1)],
    ...                                                               pa.timestamp("us"))})))
    ['t']
    >>> sorted(native_timestamp_columns(plan, pa.table({"t": pa.array([dt.datetime(1399, 1, 1)],
    ...                                                               pa.timestamp("us"))})))
    []
    """
    names = []
    for c in plan.columns:
        t, target = c.arrow_type, c.sql_type
        if not (c.bind.binding is Binding.TEXT and pa.types.is_timestamp(t) and t.unit == "us"
                and t.tz is None and target.name == "datetime2"
                and (target.scale is None or target.scale >= 6)):
            continue
        values = batch.column(c.name)
        bounds = pc.min_max(values.cast(pa.int64()))
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is None or (low >= _NATIVE_TS_LOW and high <= _NATIVE_TS_HIGH):
            names.append(c.name)
    return frozenset(names)


def cast_batch(plan: TablePlan, batch: pa.Table | pa.RecordBatch, *, nan_as_null: bool = False,
               row_offset: int = 0, native: frozenset[str] = frozenset()) -> pa.Table:
    """Cast one batch to the single-chunk table turbodbc's ``executemanycolumns`` binds.

    :param plan: from :func:`plan_table`.
    :param batch: source rows with the plan's columns (matched by name).
    :param nan_as_null: write NaN and ±Infinity as NULL instead of failing.
    :param row_offset: source row index of the batch's first row, for messages.
    :param native: columns to pass as they are (see :func:`native_timestamp_columns`).
    :raises NonFiniteValueError: NaN/±Inf without ``nan_as_null`` (column and row named).
    :raises ValueCastError: a value the column's SQL type cannot hold.

    >>> import pyarrow as pa
    >>> plan = plan_table(pa.schema([("x", pa.float32())]))
    >>> cast_batch(plan, pa.table({"x": pa.array([1.5], pa.float32())})).schema.types
    [DataType(double)]
    """
    arrays = [_combined(batch.column(c.name)) if c.name in native
              else cast_for_bind(batch.column(c.name), c.bind, column=c.name,
                                 nan_as_null=nan_as_null, row_offset=row_offset)
              for c in plan.columns]
    return pa.Table.from_arrays(arrays, names=plan.names)


def _combined(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


# Driver 18 refuses (HY104) a wide-character parameter whose bound column size exceeds
# 4,000, and turbodbc binds 2 * (1.2 * longest value in UTF-16 units + 1) bytes, so a text
# value longer than about 1,665 UTF-16 units cannot travel in one parameter (measured:
# 1,600 'x' and 800 emoji go, 1,700 'x' and 900 emoji fail). A column whose longest value
# in the batch exceeds 2 * TEXT_PIECE units goes in pieces of at most TEXT_PIECE code
# points (at most 1,600 UTF-16 units even when every character is outside the BMP),
# joined by the server.
TEXT_PIECE = 800
MAX_PARAMETERS = 2100  # SQL Server's limit per statement
_PIECE_MARKER = "CAST(? AS nvarchar(max))"


def split_long_text(plan: TablePlan, bound: pa.Table, *,
                    piece: int = TEXT_PIECE) -> tuple[pa.Table, dict[str, int]]:
    """Cut text columns whose longest value exceeds ``2 * piece`` UTF-16 code units into
    pieces of ``piece`` code points.

    :param plan: from :func:`plan_table`.
    :param bound: :func:`cast_batch`'s output.
    :param piece: code points per parameter (a column goes whole while its values fit
        ``2 * piece`` UTF-16 units, the most a piece can hold).
    :returns: the table to bind (unchanged when nothing is long) and, per split column,
        how many parameters carry it (pass it to :func:`insert_sql`).
    :raises ValueCastError: when the pieces would need more than 2,100 parameters.

    >>> import pyarrow as pa
    >>> plan = plan_table(pa.schema([("s", pa.string())]))
    >>> table, pieces = split_long_text(plan, pa.table({"s": ["abcde", None]}), piece=2)
    >>> pieces, table.column(2).to_pylist()
    ({'s': 3}, ['e', None])
    >>> split_long_text(plan, pa.table({"s": ["abcd"]}), piece=2)[1]  # 4 units: whole
    {}
    """
    arrays: list[pa.Array | pa.ChunkedArray] = []
    pieces: dict[str, int] = {}
    for c, values in zip(plan.columns, bound.columns, strict=True):
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            if max_utf16_units(values, 2 * piece) > 2 * piece:
                count = -(-(pc.max(pc.utf8_length(values)).as_py() or 0) // piece)
                pieces[c.name] = count
                arrays.extend(pc.utf8_slice_codeunits(values, i * piece, (i + 1) * piece)
                              for i in range(count))
                continue
        arrays.append(values)
    if not pieces:
        return bound, pieces
    if len(arrays) > MAX_PARAMETERS:
        longest_column = max(pieces, key=lambda name: pieces[name])
        raise ValueCastError(
            f"column {longest_column!r} holds a value of about "
            f"{pieces[longest_column] * piece:,} characters: long text travels in pieces of "
            f"{piece} characters, and this batch would need {len(arrays):,} parameters, "
            f"more than SQL Server's {MAX_PARAMETERS:,} (a smaller rows_per_batch does not help: "
            "the limit is per value). Store such documents elsewhere (e.g. blob storage) "
            "and load a reference, or split the text into several rows")
    return pa.Table.from_arrays(arrays, names=[f"p{i}" for i in range(len(arrays))]), pieces


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
                     *, table: str = "the target table") -> None:
    """Check that an existing table can take the plan's columns; raise listing every problem.

    Names match case-insensitively. Every source column must exist with a type that
    holds its values without loss and a length that holds the sampled values; a
    NOT NULL target must not get sampled NULLs; a NOT NULL target column without a
    default must be among the source's columns.

    :param plan: from :func:`plan_table`.
    :param existing_columns: :class:`ExistingColumn` objects, or raw
        ``INFORMATION_SCHEMA.COLUMNS`` rows in :meth:`ExistingColumn.from_row`'s order.
    :param table: the table's name, for the message.
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
