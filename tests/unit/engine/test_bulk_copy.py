"""The bulk-copy transport's choices, without a server: one strategy per column, chosen once."""

from __future__ import annotations

import datetime as dt
import uuid

import pyarrow as pa
import pytest

from engine.bulk_copy import BulkCopyTransport, _writer_type
from engine.errors import ConfigurationError, NonFiniteValueError, ValueCastError
from engine.names import TableName
from engine.options import TransferOptions, TransportKind
from engine.plan import plan_table

pytest.importorskip("engine._bcp")


def test_native_types_pass_as_they_are_and_others_are_normalised():
    assert _writer_type(pa.decimal128(38, 10)) == pa.decimal128(38, 10)
    assert _writer_type(pa.timestamp("ns", tz="UTC")) == pa.timestamp("ns", tz="UTC")
    assert _writer_type(pa.uint64()) == pa.decimal128(20, 0)  # bigint cannot hold it
    assert _writer_type(pa.dictionary(pa.int8(), pa.string())) == pa.string()
    assert _writer_type(pa.date64()) == pa.date32()
    assert _writer_type(pa.string_view()) == pa.large_string()
    assert _writer_type(pa.list_(pa.int64())) is None  # JSON text, like parameter arrays


def test_a_batch_is_bound_natively_or_through_the_text_cast():
    source = pa.table({
        "u": pa.ExtensionArray.from_storage(pa.uuid(), pa.array([uuid.uuid4().bytes],
                                                                 pa.binary(16))),
        "raw16": pa.array([b"0123456789abcdef"], pa.binary(16)),
        "ts": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
        "tags": pa.array([[1, 2]]),
        "cat": pa.array(["x"]).dictionary_encode(),
    })
    plan = plan_table(source.schema, overrides={"raw16": "varbinary(16)"}, sample=source)
    transport = BulkCopyTransport(plan, TableName("dbo", "t"), "/nonexistent/driver.so")
    bound = transport.bind(source, row_offset=0)
    assert bound.sql == "[dbo].[t]" and bound.rows == 1
    types = dict(zip(bound.data.column_names, bound.data.schema.types, strict=True))
    assert types["u"] == pa.binary(16)  # a uniqueidentifier column: a GUID
    assert types["raw16"] == pa.large_binary()  # 16 bytes into varbinary: bytes, not a GUID
    assert types["ts"] == pa.timestamp("us") and types["cat"] == pa.string()
    assert bound.data.column("tags").to_pylist() == ["[1,2]"]


def test_non_finite_floats_name_the_source_row_or_become_null():
    source = pa.table({"x": pa.array([1.0, float("nan")])})
    plan = plan_table(source.schema)
    strict = BulkCopyTransport(plan, TableName("dbo", "t"), "/x")
    # the parameter-array path's check and error (engine.bind_casts.check_finite)
    with pytest.raises(NonFiniteValueError, match="column 'x', row 11"):
        strict.bind(source, row_offset=10)
    lenient = BulkCopyTransport(plan, TableName("dbo", "t"), "/x", nan_as_null=True)
    assert lenient.bind(source, row_offset=0).data.column("x").to_pylist() == [1.0, None]


def test_the_transport_option_takes_either_spelling():
    assert TransferOptions(transport="bulk_copy").transport is TransportKind.BULK_COPY
    assert TransferOptions().transport is TransportKind.AUTO
    with pytest.raises(ConfigurationError, match="transport must be one of"):
        TransferOptions(transport="carrier-pigeon")


def test_a_checked_numeric_conversion_takes_the_parameter_array_cast_and_its_error():
    source = pa.table({"id": pa.array([1, 2**63 + 7], pa.uint64()),
                       "small": pa.array([1, 2], pa.int32())})
    plan = plan_table(source.schema, overrides={"id": "bigint", "small": "decimal(9,0)"})
    transport = BulkCopyTransport(plan, TableName("dbo", "t"), "/x")
    assert transport.native == {"id": None, "small": None}  # both converted as for arrays
    with pytest.raises(ValueCastError, match=r"column 'id'.*row 41, value 9223372036854775815"):
        transport.bind(source, row_offset=40)
    plain = BulkCopyTransport(plan_table(source.schema), TableName("dbo", "t"), "/x")
    assert plain.native == {"id": pa.decimal128(20, 0), "small": pa.int32()}
