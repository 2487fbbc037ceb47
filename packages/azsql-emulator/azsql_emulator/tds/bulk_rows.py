"""The ROW tokens of a bulk load decoded column by column (native ``decode_rows``).

A BULK_LOAD message (0x07) is COLMETADATA, one ROW token per row and a DONE. Each ROW
holds the values back to back in the TYPE_INFO order of COLMETADATA, encoded as RPC
parameter values are, so the native parameter-array decoder's value readers take them:
one :class:`~azsql_emulator.tds.columns.WireColumn` per column, with no Python object
per value, and the column-wise INSERT (``column_insert``) stores them.
"""

from __future__ import annotations

from collections.abc import Sequence

from azsql_emulator.tds.collation import collation_codec
from azsql_emulator.tds.columns import BULK_COLUMNAR_TYPES, WireColumn
from azsql_emulator.tds.requests import ascii_safe
from azsql_emulator.tds.typeinfo import PLP_SIZE, TypeInfo

try:
    from azsql_emulator import _tdsfast as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the C part is built with the package
    _native = None

__all__ = ["decode_rows_columnar"]

_CODE_PAGE_TEXT = frozenset({0xA7, 0xAF})  # BIGVARCHR, BIGCHAR
# (max) columns whose PLP values the native decoder takes: nvarchar, varchar, varbinary
_PLP_TYPES = frozenset({0xE7, 0xA7, 0xA5})


def decode_rows_columnar(payload: bytes, pos: int, infos: Sequence[TypeInfo]
                         ) -> tuple[int, int, list[WireColumn]] | None:
    """The ROW tokens from ``pos`` as (rows, end, columns); None when they must be decoded
    row-wise: a type the native decoder does not take (PLP only for nvarchar(max),
    varchar(max) and varbinary(max)), an NBCROW token, or a value it
    does not take exactly (the row-wise decoder then decides, and raises if it is bad).

    :param payload: the BULK_LOAD message.
    :param pos: the first ROW token's offset.
    :param infos: the COLMETADATA types.
    """
    if _native is None or not hasattr(_native, "decode_rows") or not infos:
        return None
    plp_flag = getattr(_native, "PLP_FLAG", None)  # absent: a build without PLP rows
    if any(ti.type not in BULK_COLUMNAR_TYPES or (ti.size == PLP_SIZE and (
            plp_flag is None or ti.type not in _PLP_TYPES)) for ti in infos):
        return None
    if any(ti.type in _CODE_PAGE_TEXT and not ascii_safe(collation_codec(ti.collation))
           for ti in infos):
        return None
    types = [ti.type | plp_flag if ti.size == PLP_SIZE and plp_flag else ti.type
             for ti in infos]
    count, end, cols = _native.decode_rows(payload, pos, types, [ti.scale for ti in infos])
    if end < len(payload) and payload[end] in (0xD1, 0xD2):  # stopped early: row-wise
        return None
    return count, end, [WireColumn(ti, *c) for ti, c in zip(infos, cols, strict=True)]
