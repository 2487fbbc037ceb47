"""The bulk-copy transport: TDS bulk load through Driver 18's ``bcp_*`` API, on the same
token-authenticated turbodbc connection and inside the batch's transaction.

Rows travel as a bulk-load stream (one ``insert bulk`` and ROW tokens, nothing back per
row) instead of one RPC per row, and every value is bound natively by
:mod:`engine._bcp` (native/bcp/bcp_writer.c): decimals, uuids, datetimeoffsets and 100 ns
timestamps never become text. The connection must be opened with bulk copy on
(:attr:`engine.connection.ConnectionOptions.bulk_copy`, which the token shim turns into
``SQL_COPT_SS_BCP``); the writer is given the driver manager's connection handle.

Nothing documents whether the driver's bulk copy stays inside the caller's transaction, so
the engine proves it on every server before the first batch (:func:`probe_transactional`):
a row bulk-copied inside a transaction and rolled back must be gone. Before each commit the
batch writer also checks ``@@TRANCOUNT`` is 1 (:meth:`BulkCopyTransport.write`).
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa

from engine.bind_casts import Binding, cast_for_bind, check_finite
from engine.binder import BoundBatch
from engine.errors import ConfigurationError, DatabaseError
from engine.names import TableName
from engine.plan import ColumnPlan, TablePlan

__all__ = ["BulkCopyTransport", "native_writer", "probe_transactional"]

try:  # native/bcp (built by the project's CMake)
    from engine import _bcp  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a source tree without the built extension
    _bcp = None


def native_writer() -> Any:
    """The compiled writer, or a ConfigurationError saying how to get it."""
    if _bcp is None:
        raise ConfigurationError("the bulk-copy transport needs engine._bcp, which this "
                                 "install lacks: reinstall azsql-bulk (make setup), or use "
                                 "transport='parameter-arrays'")
    _fast_text(_bcp)
    return _bcp


def _fast_text(writer: Any) -> bool:
    """Let the writer convert UTF-8 to UTF-16 with the simdutf function turbodbc's extension
    exports (the conversion parameter arrays get from turbodbc; the writer's own loop took
    ~3.5 ns per byte of mixed-script text, 60% of a text load's client CPU). False when
    turbodbc lacks it: the writer's loop stays, same output."""
    try:
        import turbodbc_intern  # loaded with turbodbc
    except ImportError:  # pragma: no cover - turbodbc is a dependency
        return False
    return bool(writer.use_utf16_converter(turbodbc_intern.__file__))


def _writer_type(t: pa.DataType) -> pa.DataType | None:
    """The Arrow type the writer binds natively for ``t``, or None (then the parameter-array
    cast supplies text, e.g. JSON for nested values)."""
    if isinstance(t, pa.BaseExtensionType):
        return _writer_type(t.storage_type)
    if pa.types.is_dictionary(t):
        return _writer_type(t.value_type)
    if pa.types.is_uint64(t):
        return pa.decimal128(20, 0)  # bigint cannot hold it; the plan made it decimal(20,0)
    if (pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_float32(t)
            or pa.types.is_float64(t) or pa.types.is_date32(t) or pa.types.is_time(t)
            or pa.types.is_timestamp(t) or pa.types.is_decimal128(t)):
        return t
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return t
    if pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return t
    if pa.types.is_binary_view(t):
        return pa.large_binary()
    if pa.types.is_fixed_size_binary(t):
        return t if t.byte_width == 16 else pa.large_binary()
    return None


def _is_number(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
            or pa.types.is_boolean(t))


class BulkCopyTransport:
    """Bulk-copy each batch into ``table`` with :mod:`engine._bcp`.

    :param plan: the load's plan.
    :param table: the table the rows go into (the target, or a staging table).
    :param driver_path: Microsoft's ``libmsodbcsql-18`` (where the ``bcp_*`` functions are).
    :param nan_as_null: write NaN and ±Infinity as NULL instead of failing.
    :param hints: bulk-load hints (``bcp_control(BCPHINTS)``), e.g. ``TABLOCK``; see
        :func:`engine.transport_choice.bulk_hints`.
    """

    name = "bulk-copy"

    def __init__(self, plan: TablePlan, table: TableName, driver_path: str, *,
                 nan_as_null: bool = False, hints: str = "") -> None:
        self.plan, self.table, self.driver = plan, table, driver_path
        self.nan_as_null, self.hints = nan_as_null, hints
        self.writer = native_writer()
        # one strategy per column, chosen once: native, or the text/hex cast of the
        # parameter-array path for what the writer does not bind (nested values)
        self.native = {c.name: self._strategy(c) for c in plan.columns}

    @staticmethod
    def _strategy(c: ColumnPlan) -> pa.DataType | None:
        wanted = _writer_type(c.arrow_type)
        if (wanted is not None and c.bind.binding == Binding.NATIVE
                and wanted != c.bind.arrow_type and _is_number(wanted)):
            # a numeric column converted for its SQL type (e.g. uint64 into a bigint
            # override): the parameter-array cast, with its range checks and located errors
            return None
        if (wanted is not None and pa.types.is_fixed_size_binary(wanted)
                and c.sql_type.name != "uniqueidentifier"):
            return pa.large_binary()  # 16 bytes into a binary column: bytes, not a GUID
        return wanted

    def bind(self, batch: pa.Table | pa.RecordBatch, *, row_offset: int) -> BoundBatch:
        arrays = [self._column(c, batch.column(c.name), row_offset) for c in self.plan.columns]
        data = pa.Table.from_arrays(arrays, names=self.plan.names)
        return BoundBatch(data, self.table.quoted, data.num_rows)

    def _column(self, c: ColumnPlan, values: pa.Array | pa.ChunkedArray,
                row_offset: int) -> pa.Array:
        arr = _one_array(values)
        wanted = self.native[c.name]
        if wanted is None:
            return _one_array(cast_for_bind(arr, c.bind, column=c.name,
                                            nan_as_null=self.nan_as_null,
                                            row_offset=row_offset))
        if isinstance(arr.type, pa.BaseExtensionType):
            arr = arr.storage
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if pa.types.is_floating(arr.type):  # the same check (and error) as parameter arrays
            arr = check_finite(arr, c.name, self.nan_as_null, row_offset)
        return arr if arr.type == wanted else arr.cast(wanted)

    def write(self, conn: Any, cursor: Any, bound: BoundBatch) -> None:
        handle = conn.odbc_handle
        if handle is None:
            raise ConfigurationError("turbodbc does not expose its connection handle (it was "
                                     "built without scripts/turbodbc-handle.patch): run make "
                                     "setup, or use transport='parameter-arrays'")
        batch = bound.data.combine_chunks().to_batches()[0] if bound.rows else None
        if batch is None:
            return
        schema, array = batch.__arrow_c_array__()
        taken = self.writer.write(handle, self.driver, bound.sql, schema, array, self.hints)
        if taken != bound.rows:  # bcp_done's count: what the server says it stored
            raise DatabaseError(
                f"bulk copy into {self.table} stored {taken} of the batch's {bound.rows} "
                "rows: the batch is rolled back and fails rather than commit a short batch")
        # the rows must still be inside the batch's open transaction, or the journal row
        # would commit without them (or they without it). Asked natively on the same
        # connection: one SQL batch, without a turbodbc result set (its buffer costs
        # ~0.4 ms of CPU per query) or a prepared statement to drop later.
        depth = self.writer.trancount(handle)
        if depth != 1:
            raise DatabaseError(
                f"bulk copy into {self.table} left @@TRANCOUNT at {depth}, not 1: its rows "
                "are not inside the batch's transaction, so exactly-once cannot hold; use "
                "transport='parameter-arrays' with this server")


def _one_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` as one Array, without a copy when it is one already (a ChunkedArray's
    ``combine_chunks`` copies even a single chunk: ~20 ms per 50,000 wide rows)."""
    if isinstance(values, pa.ChunkedArray):
        return values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return values


def probe_transactional(conn: Any, schema: str, driver_path: str) -> str | None:
    """Whether bulk copy on ``conn`` stays inside the caller's transaction: bulk-copy one
    row into a scratch table, roll back, count. None when it does, else why not.

    :param conn: an open connection with bulk copy on (autocommit off).
    :param schema: a schema the login may create tables in (the journal's).
    :param driver_path: Microsoft's driver library.
    """
    writer = native_writer()
    if conn.odbc_handle is None:
        return "turbodbc does not expose its connection handle"
    scratch = TableName(schema, f"bcp_probe_{uuid.uuid4().hex[:12]}")
    cursor = conn.cursor()
    cursor.execute(f"CREATE TABLE {scratch.quoted} ([n] int NOT NULL)")
    conn.commit()
    try:
        batch = pa.record_batch({"n": pa.array([1], pa.int32())})
        schema_capsule, array_capsule = batch.__arrow_c_array__()
        try:
            writer.write(conn.odbc_handle, driver_path, scratch.quoted, schema_capsule,
                         array_capsule)
        except (RuntimeError, ValueError) as exc:
            conn.rollback()
            return f"the driver's bulk copy failed: {str(exc).splitlines()[-1]}"
        cursor.execute("SELECT @@TRANCOUNT")
        depth = int(cursor.fetchall()[0][0])
        conn.rollback()
        cursor.execute(f"SELECT COUNT(*) FROM {scratch.quoted}")  # noqa: S608
        left = int(cursor.fetchall()[0][0])
        conn.commit()
        if depth != 1 or left:
            return (f"a rolled-back bulk copy left {left} row(s) (@@TRANCOUNT {depth} inside "
                    "the transaction)")
        return None
    finally:
        cursor.execute(f"DROP TABLE {scratch.quoted}")
        conn.commit()
