"""Result set tokens: COLMETADATA (2.2.7.4), ROW (2.2.7.20) and NBCROW (2.2.7.15)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from azsql_emulator.sqltypes import ColumnInfo
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.constants import ColumnFlag, TokenType
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.primitives import U16, b_varchar, checked, expect_token, read_b_varchar
from azsql_emulator.tds.typeinfo import TypeInfo, encode_type_info, read_type_info, type_info_for
from azsql_emulator.tds.values import encode_column_value, read_column_value

__all__ = [
    "ColMetadata",
    "Column",
    "Row",
    "RowEncoder",
    "decode_colmetadata",
    "decode_row",
    "encode_colmetadata",
    "encode_row",
]

NO_METADATA = 0xFFFF
_COLUMN_HEAD = struct.Struct("<IH")  # UserType u32, Flags u16
_TEXT_TYPES = frozenset({0x23, 0x63, 0x22})  # TEXT, NTEXT, IMAGE: a table name follows TYPE_INFO
_ROW = bytes((TokenType.ROW,))
_NBCROW = bytes((TokenType.NBCROW,))


@dataclass(frozen=True)
class Column:
    """One COLMETADATA column as the wire describes it."""

    name: str
    type_info: TypeInfo
    flags: int = ColumnFlag.NULLABLE
    user_type: int = 0
    table_name: tuple[str, ...] = ()  # TEXT/NTEXT/IMAGE only

    @property
    def nullable(self) -> bool:
        return bool(self.flags & ColumnFlag.NULLABLE)

    def column_info(self) -> ColumnInfo:
        """The shared ColumnInfo (name, SqlType, nullable) for this column."""
        return ColumnInfo(self.name, self.type_info.to_sql_type(), self.nullable)

    @classmethod
    def from_column_info(cls, c: ColumnInfo, collation: bytes = DEFAULT_COLLATION) -> Column:
        """The wire column SQL Server would describe for ``c``."""
        flags = ColumnFlag.NULLABLE if c.nullable else ColumnFlag.NONE
        return cls(c.name, type_info_for(c.type, collation), int(flags))


def _as_column(c: ColumnInfo | Column, collation: bytes) -> Column:
    return c if isinstance(c, Column) else Column.from_column_info(c, collation)


@dataclass(frozen=True)
class ColMetadata:
    """COLMETADATA; ``columns`` is None for NoMetaData (count 0xFFFF)."""

    columns: list[Column] | None

    @property
    def column_infos(self) -> list[ColumnInfo]:
        return [c.column_info() for c in self.columns or ()]


def encode_colmetadata(columns: Sequence[ColumnInfo | Column] | None, *,
                       collation: bytes = DEFAULT_COLLATION) -> bytes:
    """Encode COLMETADATA for result columns (None: the NoMetaData form).

    >>> from azsql_emulator.sqltypes import SqlType
    >>> encode_colmetadata([ColumnInfo("x", SqlType.parse("int"), False)]).hex()
    '8101000000000000002604017800'
    """
    if columns is None:
        return bytes((TokenType.COLMETADATA,)) + U16.pack(NO_METADATA)
    if len(columns) >= NO_METADATA:
        raise ValueError(f"{len(columns)} columns exceed COLMETADATA's limit")
    out = [bytes((TokenType.COLMETADATA,)), U16.pack(len(columns))]
    for c in columns:
        col = _as_column(c, collation)
        out.append(_COLUMN_HEAD.pack(col.user_type, col.flags))
        out.append(encode_type_info(col.type_info))
        if col.type_info.type in _TEXT_TYPES:
            out.append(bytes((len(col.table_name),)))
            for part in col.table_name:
                raw = part.encode("utf-16-le")
                out.append(U16.pack(len(raw) // 2) + raw)
        out.append(b_varchar(col.name))
    return b"".join(out)


@checked
def decode_colmetadata(buf: bytes, pos: int = 0) -> tuple[ColMetadata, int]:
    """Decode COLMETADATA."""
    expect_token(buf, pos, TokenType.COLMETADATA)
    (count,) = U16.unpack_from(buf, pos + 1)
    pos += 3
    if count == NO_METADATA:
        return ColMetadata(None), pos
    cols = []
    for _ in range(count):
        user_type, flags = _COLUMN_HEAD.unpack_from(buf, pos)
        ti, pos = read_type_info(buf, pos + _COLUMN_HEAD.size)
        table: tuple[str, ...] = ()
        if ti.type in _TEXT_TYPES:
            parts = []
            nparts = buf[pos]
            pos += 1
            for _ in range(nparts):
                end = pos + 2 + 2 * U16.unpack_from(buf, pos)[0]
                if end > len(buf):
                    raise ProtocolError("COLMETADATA table name runs past the end")
                parts.append(str(buf[pos + 2:end], "utf-16-le", "surrogatepass"))
                pos = end
            table = tuple(parts)
        name, pos = read_b_varchar(buf, pos)
        cols.append(Column(name, ti, flags, user_type, table))
    return ColMetadata(cols), pos


@dataclass(frozen=True)
class Row:
    """A decoded ROW or NBCROW (``nbc`` tells which; it is not part of equality)."""

    values: list[Any]
    nbc: bool = field(default=False, compare=False)


class RowEncoder:
    """Encode rows for fixed result columns, choosing per row the smaller of ROW and NBCROW.

    Column types are resolved once, so encoding many rows does no per-row type lookups.

    >>> from azsql_emulator.sqltypes import SqlType
    >>> enc = RowEncoder([ColumnInfo("x", SqlType.parse("int"))])
    >>> enc.encode([1]).hex()
    'd10401000000'
    """

    def __init__(self, columns: Sequence[ColumnInfo | Column | TypeInfo], *,
                 collation: bytes = DEFAULT_COLLATION) -> None:
        self.type_infos = [c if isinstance(c, TypeInfo) else _as_column(c, collation).type_info
                           for c in columns]
        self._nulls: list[bytes | None] = []
        for ti in self.type_infos:
            try:
                self._nulls.append(encode_column_value(ti, None))
            except ValueError:
                self._nulls.append(None)  # a fixed-length type: NULL only fits NBCROW
        self._bitmap_len = (len(self.type_infos) + 7) // 8

    def encode(self, values: Sequence[Any]) -> bytes:
        """Encode one row; ``values`` in column order, None for NULL."""
        tis = self.type_infos
        if len(values) != len(tis):
            raise ValueError(f"row has {len(values)} values for {len(tis)} columns")
        parts = []
        bitmap = 0
        null_cost = 0
        for i, v in enumerate(values):
            if v is None:
                bitmap |= 1 << i
                marker = self._nulls[i]
                null_cost += 1 << 30 if marker is None else len(marker)
            else:
                parts.append(encode_column_value(tis[i], v))
        if not bitmap:
            return _ROW + b"".join(parts)
        if null_cost > self._bitmap_len:
            return _NBCROW + bitmap.to_bytes(self._bitmap_len, "little") + b"".join(parts)
        it = iter(parts)
        return _ROW + b"".join(self._nulls[i] if v is None else next(it)  # type: ignore[misc]
                               for i, v in enumerate(values))


def encode_row(columns: Sequence[ColumnInfo | Column | TypeInfo], values: Sequence[Any]) -> bytes:
    """Encode one ROW or NBCROW (whichever is smaller); use RowEncoder for many rows."""
    return RowEncoder(columns).encode(values)


def _type_infos(columns: Sequence[Column | TypeInfo]) -> list[TypeInfo]:
    return [c if isinstance(c, TypeInfo) else c.type_info for c in columns]


def _decode_row(buf: bytes, pos: int, tis: Sequence[TypeInfo]) -> tuple[Row, int]:
    token = buf[pos]
    pos += 1
    values: list[Any] = []
    if token == TokenType.ROW:
        for ti in tis:
            v, pos = read_column_value(ti, buf, pos)
            values.append(v)
        return Row(values), pos
    if token != TokenType.NBCROW:
        raise ProtocolError(f"expected ROW or NBCROW, got 0x{token:02x}")
    nbytes = (len(tis) + 7) // 8
    if pos + nbytes > len(buf):
        raise ProtocolError("NBCROW null bitmap runs past the end")
    bitmap = int.from_bytes(buf[pos:pos + nbytes], "little")
    pos += nbytes
    for i, ti in enumerate(tis):
        if bitmap >> i & 1:
            values.append(None)
        else:
            v, pos = read_column_value(ti, buf, pos)
            values.append(v)
    return Row(values, nbc=True), pos


@checked
def decode_row(buf: bytes, pos: int, columns: Sequence[Column | TypeInfo]) -> tuple[Row, int]:
    """Decode a ROW or NBCROW token for the given COLMETADATA columns."""
    return _decode_row(buf, pos, _type_infos(columns))
