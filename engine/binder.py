"""The binder: how every column's values travel, chosen once per load, applied per batch.

From the :class:`~engine.plan.TablePlan` each column has one write strategy
(:class:`~engine.bind_casts.BindSpec`: bound as itself, as exact text, or as hex). Per
batch the binder adds what depends on the values only:

* a naive microsecond timestamp column whose values all lie in 1400-9999 binds as itself
  (:func:`native_timestamp_columns`), else as text;
* text too long for one parameter goes in pieces (:func:`split_long_text`);
* the parameterised INSERT for that shape (:func:`insert_sql`), built once per shape.

:class:`Binder` puts these together; a transport (:mod:`engine.transport`) sends its
:class:`BoundBatch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from engine.bind_casts import Binding, cast_for_bind
from engine.errors import ValueCastError
from engine.names import TableName, quote_identifier
from engine.plan import TablePlan
from engine.text_length import max_utf16_units

__all__ = ["Binder", "BoundBatch", "cast_batch", "insert_sql", "native_timestamp_columns",
           "split_long_text"]


@dataclass(frozen=True)
class BoundBatch:
    """One batch as a transport sends it.

    :param data: the columns to bind, one chunk each, in the statement's parameter order.
    :param sql: the parameterised INSERT whose markers fit ``data``.
    :param rows: the batch's row count.
    """

    data: pa.Table
    sql: str
    rows: int


class Binder:
    """Casts, native columns, long-text pieces and the INSERT of one load's table.

    :param plan: the load's table plan.
    :param table: the table the rows go into (the target, or a staging table).
    :param nan_as_null: write NaN and ±Infinity as NULL instead of failing.

    >>> import pyarrow as pa
    >>> from engine.plan import plan_table
    >>> binder = Binder(plan_table(pa.schema([("n", pa.int32())])), TableName("dbo", "t"))
    >>> bound = binder.bind(pa.table({"n": pa.array([1, 2], pa.int32())}))
    >>> bound.rows, bound.sql
    (2, 'INSERT INTO [dbo].[t] ([n]) VALUES (?)')
    """

    def __init__(self, plan: TablePlan, table: TableName, *, nan_as_null: bool = False) -> None:
        self.plan, self.table, self.nan_as_null = plan, table, nan_as_null
        self._statements: dict[tuple[tuple[tuple[str, int], ...], frozenset[str]], str] = {}

    def bind(self, batch: pa.Table | pa.RecordBatch, *, row_offset: int = 0) -> BoundBatch:
        """Cast one batch for its INSERT.

        :param batch: source rows with the plan's columns.
        :param row_offset: the source row of the batch's first row, for messages.
        :raises NonFiniteValueError: NaN/±Inf without ``nan_as_null``.
        :raises ValueCastError: a value the column's SQL type cannot hold.
        """
        native = native_timestamp_columns(self.plan, batch)
        cast = cast_batch(self.plan, batch, nan_as_null=self.nan_as_null,
                          row_offset=row_offset, native=native)
        data, pieces = split_long_text(self.plan, cast)
        return BoundBatch(data, self._statement(pieces, native), cast.num_rows)

    def _statement(self, pieces: dict[str, int], native: frozenset[str]) -> str:
        key = (tuple(sorted(pieces.items())), native)
        sql = self._statements.get(key)
        if sql is None:
            sql = self._statements[key] = insert_sql(self.plan, self.table, pieces, native)
        return sql


def insert_sql(plan: TablePlan, table: str | TableName, pieces: Mapping[str, int] | None = None,
               native: frozenset[str] = frozenset()) -> str:
    """The parameterised INSERT for :func:`cast_batch`'s output, one marker per column.

    :param plan: from :func:`plan_table`.
    :param table: ``schema.table``.
    :param pieces: from :func:`split_long_text`: text columns sent in several parameters,
        joined again by the server with ``+``.
    :param native: from :func:`native_timestamp_columns`: columns bound as themselves
        (a bare ``?``) in this batch instead of as text.

    >>> import pyarrow as pa
    >>> from engine.plan import plan_table
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
    return f"INSERT INTO {TableName.parse(table).quoted} ({cols}) VALUES ({markers})"  # noqa: S608


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
    >>> from engine.plan import plan_table
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
    >>> from engine.plan import plan_table
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
    >>> from engine.plan import plan_table
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
