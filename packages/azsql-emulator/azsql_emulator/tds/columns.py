"""A parameter array decoded column by column (native ``decode_columns``).

Microsoft's driver sends a parameter array as one RPC message with one ``sp_execute``
call per row. When every parameter has a type the native decoder takes column-wise, the
calls of one layout become one :class:`ColumnarRun`: per parameter, Arrow buffers of the
wire values (every value validated as :func:`~azsql_emulator.tds.values.read_value` would),
with no Python object per value. :meth:`ColumnarRun.expand` gives the same calls the
row-wise decoder makes, for every path that wants them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from azsql_emulator.tds.constants import DataType as D
from azsql_emulator.tds.typeinfo import TypeInfo

__all__ = ["BULK_COLUMNAR_TYPES", "COLUMNAR_TYPES", "TEXT_TYPES", "ColumnarRun", "WireColumn"]

# Wire types decode_columns (parameter arrays) and decode_rows (bulk-load rows) take (not as
# PLP); see native/tdsfast/tdsfast.c. uniqueidentifier comes as its text, varbinary as Arrow
# binary, datetimeoffset as 16 bytes a value (int64 UTC 100 ns units since 1970, int16
# offset minutes, 6 zero bytes). Clients such as pyodbc's fast_executemany bind uuids,
# bytes and tz-aware datetimes as these.
COLUMNAR_TYPES = frozenset({D.INTN, D.BITN, D.FLTN, D.NVARCHAR, D.NCHAR, D.BIGVARCHR,
                            D.BIGCHAR, D.DECIMALN, D.NUMERICN, D.DATEN, D.TIMEN,
                            D.DATETIME2N, D.GUID, D.BIGVARBIN, D.DATETIMEOFFSETN})
# Text types: Arrow strings. varchar/char are taken as ASCII only (see tdsfast.c).
TEXT_TYPES = frozenset({D.NVARCHAR, D.NCHAR, D.BIGVARCHR, D.BIGCHAR})
BULK_COLUMNAR_TYPES = COLUMNAR_TYPES


@dataclass(frozen=True)
class WireColumn:
    """One parameter's values across the run, as decode_columns returns them.

    :param info: the parameter's TYPE_INFO.
    :param values: fixed-width values, or UTF-8 text.
    :param validity: Arrow validity bitmap (bit set = not NULL).
    :param nulls: how many values are NULL.
    :param offsets: text only: int32 offsets into ``values``.
    :param units: text only: int32 UTF-16 length of each value (varchar: its length).
    :param max_units: text only: the largest such length.
    """

    info: TypeInfo
    values: bytes
    validity: bytes
    nulls: int
    offsets: bytes | None
    units: bytes | None
    max_units: int

    def array(self, rows: int) -> pa.Array:
        """The values as an Arrow array typed for the wire type (no copy).

        :param rows: the run's call count.
        """
        t = self.info.type
        validity = pa.py_buffer(self.validity) if self.nulls else None
        if t in TEXT_TYPES or t in (D.GUID, D.BIGVARBIN):
            assert self.offsets is not None
            return pa.Array.from_buffers(pa.binary() if t == D.BIGVARBIN else pa.string(), rows, [
                validity, pa.py_buffer(self.offsets), pa.py_buffer(self.values)], self.nulls)
        arrow_type = _WIRE_ARROW.get(t)
        if arrow_type is None:  # decimals: 128-bit units at the wire scale
            arrow_type = pa.decimal128(38, self.info.scale)
        values = self.values
        if t in (D.TIMEN, D.DATETIME2N):  # 100 ns units: Arrow's are microseconds (cut)
            values = (self.hundred_ns(rows) // 10).tobytes()
        return pa.Array.from_buffers(arrow_type, rows, [validity, pa.py_buffer(values)],
                                     self.nulls)

    def hundred_ns(self, rows: int) -> np.ndarray:
        """time / datetime2 only: the exact values as int64 100 ns units (since midnight /
        since 1970-01-01), 0 for NULL.

        :param rows: the run's call count.
        """
        return np.frombuffer(self.values, dtype=np.int64, count=rows)


_WIRE_ARROW: dict[int, pa.DataType] = {
    D.INTN: pa.int64(), D.BITN: pa.uint8(), D.FLTN: pa.float64(), D.DATEN: pa.date32(),
    D.TIMEN: pa.time64("us"), D.DATETIME2N: pa.timestamp("us"),
}


@dataclass
class ColumnarRun:
    """``count`` consecutive sp_execute calls of one layout, decoded column-wise.

    :param first: the first call, decoded by the Python decoder (name, options, metadata).
    :param count: how many calls (2 or more), the first included.
    :param columns: one :class:`WireColumn` per parameter, the handle first.
    :param payload: the request payload, and ``start``/``end``: the calls' byte range in
        it (``start`` at the first call, ``end`` after the last one).
    :param expander: decodes ``payload[start:end]`` row-wise into the same calls.
    """

    first: Any
    count: int
    columns: list[WireColumn]
    payload: bytes
    start: int
    end: int
    expander: Any

    def __len__(self) -> int:
        return self.count

    @property
    def handle(self) -> object:
        """The first call's handle (the run may still hold others: see :meth:`one_handle`)."""
        return self.first.params[0].value

    def one_handle(self) -> bool:
        """True when every call names the same prepared handle (the first call's)."""
        col = self.columns[0]
        if col.nulls or col.info.type != D.INTN:
            return False
        handles = np.frombuffer(col.values, dtype=np.int64, count=self.count)
        return bool(handles.min() == handles.max() == self.handle)

    def arrays(self) -> list[pa.Array]:
        """Each parameter's values as an Arrow array (the handle first)."""
        return [c.array(self.count) for c in self.columns]

    def expand(self) -> Sequence[Any]:
        """The run's calls as the row-wise decoder makes them (RpcCall, then FastCalls)."""
        calls: Sequence[Any] = self.expander(self.payload[:self.end], self.start)
        return calls
