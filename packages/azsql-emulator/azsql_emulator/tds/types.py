"""TYPE_INFO and value codecs: the one import point for the data types of the TDS codec.

The work is split by concept: :mod:`~azsql_emulator.tds.collation` (COLLATION and code pages),
:mod:`~azsql_emulator.tds.typeinfo` (TYPE_INFO and the SqlType mapping),
:mod:`~azsql_emulator.tds.raw_values` (a value's bytes without framing),
:mod:`~azsql_emulator.tds.values` (values after TYPE_INFO: length prefixes, PLP, NULL),
:mod:`~azsql_emulator.tds.temporal` (date and time bytes) and
:mod:`~azsql_emulator.tds.variant` (sql_variant).

>>> from azsql_emulator.sqltypes import SqlType
>>> t = SqlType.parse("decimal(10,2)")
>>> encode_type_info(t).hex(), encode_value(t, Decimal("-1.50")).hex()
('6a090a02', '09009600000000000000')
>>> info, pos = decode_type_info(bytes.fromhex("6a090a02"), 0)
>>> info.to_sql_type().sql(), decode_value(info, bytes.fromhex("09009600000000000000"), 0)[0]
('decimal(10,2)', Decimal('-1.50'))
"""

from __future__ import annotations

from decimal import Decimal  # noqa: F401  (used by the doctest)

from azsql_emulator.tds.collation import (
    DEFAULT_COLLATION,
    Collation,
    collation_codec,
    decode_collation,
    encode_collation,
)
from azsql_emulator.tds.temporal import decode_time_ticks, encode_time_ticks
from azsql_emulator.tds.typeinfo import (
    PLP_SIZE,
    TypeInfo,
    decimal_size,
    decode_type_info,
    encode_type_info,
    type_info_for,
)
from azsql_emulator.tds.values import (
    PLP_NULL,
    PLP_UNKNOWN_LENGTH,
    decode_column_value,
    decode_plp,
    decode_value,
    encode_column_value,
    encode_plp,
    encode_value,
)
from azsql_emulator.tds.variant import decode_variant, encode_variant

__all__ = [
    "DEFAULT_COLLATION",
    "PLP_NULL",
    "PLP_SIZE",
    "PLP_UNKNOWN_LENGTH",
    "Collation",
    "TypeInfo",
    "collation_codec",
    "decimal_size",
    "decode_collation",
    "decode_column_value",
    "decode_plp",
    "decode_time_ticks",
    "decode_type_info",
    "decode_value",
    "decode_variant",
    "encode_collation",
    "encode_column_value",
    "encode_plp",
    "encode_time_ticks",
    "encode_type_info",
    "encode_value",
    "encode_variant",
    "type_info_for",
]
