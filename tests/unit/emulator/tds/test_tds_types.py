"""TYPE_INFO and value codecs: golden bytes, round trips for every SQL type, NULL forms."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsql_emulator.sqltypes import SqlType
from azsql_emulator.tds.constants import DataType
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.temporal import encode_datetime, encode_smalldatetime, hns_of, with_hns
from azsql_emulator.tds.types import (
    DEFAULT_COLLATION,
    PLP_SIZE,
    Collation,
    TypeInfo,
    decode_collation,
    decode_plp,
    decode_time_ticks,
    decode_type_info,
    decode_value,
    decode_variant,
    encode_collation,
    encode_plp,
    encode_time_ticks,
    encode_type_info,
    encode_value,
    encode_variant,
)

COLL = DEFAULT_COLLATION.hex()


@pytest.mark.parametrize(("sql", "wire"), [
    ("bit", "6801"), ("tinyint", "2601"), ("smallint", "2602"), ("int", "2604"),
    ("bigint", "2608"), ("real", "6d04"), ("float", "6d08"), ("decimal(18,4)", "6a091204"),
    ("numeric(38,0)", "6c112600"), ("decimal(5,2)", "6a050502"), ("decimal(28,2)", "6a0d1c02"),
    ("money", "6e08"), ("smallmoney", "6e04"),
    ("char(10)", "af0a00" + COLL), ("varchar(50)", "a73200" + COLL),
    ("varchar(max)", "a7ffff" + COLL), ("nchar(3)", "ef0600" + COLL),
    ("nvarchar(50)", "e76400" + COLL), ("nvarchar(max)", "e7ffff" + COLL),
    ("binary(16)", "ad1000"), ("varbinary(8000)", "a5401f"), ("varbinary(max)", "a5ffff"),
    ("date", "28"), ("time(7)", "2907"), ("time(0)", "2900"), ("datetime", "6f08"),
    ("smalldatetime", "6f04"), ("datetime2(3)", "2a03"), ("datetimeoffset(7)", "2b07"),
    ("uniqueidentifier", "2410"),
])
def test_type_info_golden_and_inverse(sql: str, wire: str) -> None:
    t = SqlType.parse(sql)
    assert encode_type_info(t).hex() == wire
    info, pos = decode_type_info(bytes.fromhex(wire) + b"\xee", 0)
    assert pos == len(wire) // 2
    assert info.to_sql_type() == t
    assert encode_type_info(info) == bytes.fromhex(wire)


def test_default_collation_golden() -> None:
    assert DEFAULT_COLLATION == bytes.fromhex("0904d00034")
    c = decode_collation(DEFAULT_COLLATION)
    assert (c.lcid, c.sort_id, c.codec) == (0x0409, 52, "cp1252")


@given(st.builds(Collation, st.integers(0, 2**20 - 1), st.integers(0, 255), st.integers(0, 15),
                 st.integers(0, 255)))
def test_collation_round_trip(c: Collation) -> None:
    assert decode_collation(encode_collation(c)) == c


@pytest.mark.parametrize(("info", "wire", "value"), [
    # What clients send as RPC parameters (tds-wire-notes: `26 04 04 <int LE>`).
    (TypeInfo(DataType.INTN, 4), "0407000000", 7),
    (TypeInfo(DataType.INTN, 4), "00", None),
    (TypeInfo(DataType.INTN, 8), "04feffffff", -2),  # decode only: shorter than the max
    (TypeInfo(DataType.INT4, 4), "2a000000", 42),
    (TypeInfo(DataType.INT1, 1), "ff", 255),
    (TypeInfo(DataType.INT2, 2), "ffff", -1),
    (TypeInfo(DataType.INT8, 8), "0100000000000080", -2**63 + 1),
    (TypeInfo(DataType.BIT, 1), "01", True),
    (TypeInfo(DataType.FLT8, 8), "000000000000f03f", 1.0),
    (TypeInfo(DataType.FLT4, 4), "0000c03f", 1.5),
    (TypeInfo(DataType.MONEY, 8), "0000000010270000", Decimal("1.0000")),
    (TypeInfo(DataType.MONEY4, 4), "f0d8ffff", Decimal("-1.0000")),
    (TypeInfo(DataType.DATETIME, 8), "000000002c010000", dt.datetime(1900, 1, 1, 0, 0, 1)),
    (TypeInfo(DataType.DATETIM4, 4), "01003c00", dt.datetime(1900, 1, 2, 1, 0)),
    (TypeInfo(DataType.NVARCHAR, 100, collation=DEFAULT_COLLATION), "04006100e900", "aé"),
    (TypeInfo(DataType.NVARCHAR, 100, collation=DEFAULT_COLLATION), "ffff", None),
    (TypeInfo(DataType.BIGVARCHR, 10, collation=DEFAULT_COLLATION), "0200e980", "é€"),
    (TypeInfo(DataType.NVARCHAR, PLP_SIZE, collation=DEFAULT_COLLATION),
     "0400000000000000" "04000000" "61006200" "00000000", "ab"),
    (TypeInfo(DataType.NVARCHAR, PLP_SIZE, collation=DEFAULT_COLLATION), "ffffffffffffffff", None),
    (TypeInfo(DataType.BIGVARBIN, PLP_SIZE), "0000000000000000" "00000000", b""),
    (TypeInfo(DataType.NULLTYPE, 0), "", None),
    (TypeInfo(DataType.TEXT, 2**31 - 1, collation=DEFAULT_COLLATION), "02000000" "6869", "hi"),
    (TypeInfo(DataType.NTEXT, 2**31 - 1, collation=DEFAULT_COLLATION), "ffffffff", None),
    (TypeInfo(DataType.IMAGE, 2**31 - 1), "01000000" "ff", b"\xff"),
    (TypeInfo(DataType.GUID, 16), "10" "33221100554477668899aabbccddeeff",
     uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")),
    (TypeInfo(DataType.DATEN, 3), "03" "000000", dt.date(1, 1, 1)),
    (TypeInfo(DataType.DECIMALN, 17, 38, 2), "05" "01" "39300000", Decimal("123.45")),
])
def test_value_golden(info: TypeInfo, wire: str, value) -> None:
    raw = bytes.fromhex(wire)
    assert decode_value(info, raw + b"\xee", 0) == (value, len(raw))
    decode_only = info.type == DataType.DECIMALN or (info.type == DataType.INTN and info.size == 8)
    if not decode_only:
        assert encode_value(info, value) == raw


def test_utf8_collation_varchar() -> None:
    utf8 = encode_collation(Collation(0x0409, 0x01 | 0x40, 0, 0))
    info = TypeInfo(DataType.BIGVARCHR, 100, collation=utf8)
    assert encode_value(info, "ā€") == b"\x05\x00" + "ā€".encode()
    assert decode_value(info, b"\x05\x00" + "ā€".encode(), 0)[0] == "ā€"


def test_other_code_pages() -> None:
    cyrillic = encode_collation(Collation(0x0419, 0x01, 0, 0))  # Cyrillic_General_CI_AS
    info = TypeInfo(DataType.BIGVARCHR, 10, collation=cyrillic)
    assert decode_value(info, b"\x01\x00\xc4", 0)[0] == "Д"
    sql_cp850 = encode_collation(Collation(0x0409, 0x01, 0, 42))
    assert decode_value(TypeInfo(DataType.BIGCHAR, 1, collation=sql_cp850), b"\x01\x00\x82",
                        0)[0] == "é"


def test_unencodable_varchar_becomes_question_mark() -> None:
    assert encode_value(SqlType.parse("varchar(5)"), "a☃") == b"\x02\x00a?"


def test_plp_chunks_and_unknown_length() -> None:
    data = bytes.fromhex("feffffffffffffff" "02000000" "6100" "04000000" "62006300" "00000000")
    info = TypeInfo(DataType.NVARCHAR, PLP_SIZE, collation=DEFAULT_COLLATION)
    assert decode_value(info, data, 0) == ("abc", len(data))
    assert decode_plp(data, 0) == (b"a\x00b\x00c\x00", len(data))
    with pytest.raises(ProtocolError):  # declared total disagrees with the chunks
        decode_plp(bytes.fromhex("0500000000000000" "02000000" "6100" "00000000"), 0)


@given(st.none() | st.binary(max_size=3000))
def test_plp_round_trip(data: bytes | None) -> None:
    raw = encode_plp(data)
    assert decode_plp(raw, 0) == (data, len(raw))


def test_fixed_char_types_are_padded() -> None:
    assert encode_value(SqlType.parse("char(4)"), "ab") == b"\x04\x00ab  "
    assert encode_value(SqlType.parse("nchar(2)"), "a") == b"\x04\x00a\x00 \x00"
    assert encode_value(SqlType.parse("binary(3)"), b"\x01") == b"\x03\x00\x01\x00\x00"


@pytest.mark.parametrize(("sql", "value"), [
    ("tinyint", 256), ("tinyint", -1), ("smallint", 2**15), ("int", 2**31), ("int", 1.5),
    ("int", "1"), ("decimal(5,2)", Decimal("1000")), ("decimal(5,2)", float("nan")),
    ("money", Decimal("922337203685477.5808")), ("smallmoney", 214749),
    ("varchar(2)", "abc"), ("nvarchar(2)", "abc"), ("varbinary(1)", b"ab"), ("nvarchar(5)", 5),
    ("date", "2024-01-01"), ("time", dt.datetime(2024, 1, 1)),
    ("datetime", dt.datetime(1752, 12, 31)),
    ("smalldatetime", dt.datetime(2079, 6, 7)), ("uniqueidentifier", 5),
    ("datetimeoffset", dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=15)))),
    ("datetimeoffset", dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(seconds=30)))),
    ("datetime2(0)", dt.datetime(9999, 12, 31, 23, 59, 59, 600000)),
])
def test_encode_rejects(sql: str, value) -> None:
    with pytest.raises(ValueError):
        encode_value(SqlType.parse(sql), value)


# --- temporal details -----------------------------------------------------------------------

def test_datetime_rounding_like_sql_server() -> None:
    t = SqlType.parse("datetime")
    info = TypeInfo(DataType.DATETIMN, 8)

    def rt(v: dt.datetime) -> dt.datetime:
        return decode_value(info, encode_value(t, v), 0)[0]

    assert rt(dt.datetime(2024, 1, 1, 23, 59, 59, 999000)) == dt.datetime(2024, 1, 2)
    assert rt(dt.datetime(2024, 1, 1, 0, 0, 0, 2000)) == dt.datetime(2024, 1, 1, 0, 0, 0, 3333)
    assert rt(dt.datetime(2024, 1, 1, 0, 0, 0, 5000)) == dt.datetime(2024, 1, 1, 0, 0, 0, 6667)
    assert encode_datetime(dt.datetime(1900, 1, 1)) == bytes(8)
    assert encode_datetime(dt.datetime(1899, 12, 31)) == bytes.fromhex("ffffffff00000000")


def test_smalldatetime_rounding_like_sql_server() -> None:
    assert encode_smalldatetime(dt.datetime(1900, 1, 1, 0, 0, 29, 998000)) == bytes(4)
    assert encode_smalldatetime(dt.datetime(1900, 1, 1, 0, 0, 29, 999000)) == \
        bytes.fromhex("00000100")


def test_time_scales_and_exact_ticks() -> None:
    info = TypeInfo(DataType.TIMEN, scale=7)
    raw = encode_time_ticks(863_999_999_999, 7)
    assert decode_time_ticks(raw, 7) == 863_999_999_999
    got = decode_value(info, b"\x05" + raw, 0)[0]
    assert got == with_hns(dt.time(23, 59, 59, 999999), 9) and hns_of(got) == 9
    assert got != dt.time(23, 59, 59, 999999)  # equality counts the 100 ns digit
    t0 = SqlType.parse("time(0)")
    assert encode_value(t0, dt.time(1, 2, 3, 500000)) == b"\x03" + (3724).to_bytes(3, "little")
    assert encode_value(SqlType.parse("time(3)"), dt.time(0, 0, 0, 1500))[1:] == \
        (2).to_bytes(4, "little")
    # 23:59:59.6 at scale 0 rounds to midnight and wraps, like SQL Server's time(0).
    assert encode_value(t0, dt.time(23, 59, 59, 600000)) == b"\x03\x00\x00\x00"


@given(st.integers(0, 7).flatmap(lambda s: st.tuples(st.just(s),
                                                     st.integers(0, 86_400 * 10**s - 1))))
def test_time_ticks_round_trip(case: tuple[int, int]) -> None:
    scale, ticks = case
    assert decode_time_ticks(encode_time_ticks(ticks, scale), scale) == ticks


# --- round trips for every SQL type --------------------------------------------------------

def _decimals(p: int, s: int) -> st.SearchStrategy[Decimal]:
    return st.integers(-(10**p - 1), 10**p - 1).map(lambda u: Decimal(f"{u}E-{s}"))


def _round_us(us: int, scale: int) -> int:
    if scale >= 6:
        return us
    div = 10 ** (6 - scale)
    return (us + div // 2) // div * div


def _expect_time(v: dt.time, scale: int) -> dt.time:
    us = (((v.hour * 60 + v.minute) * 60 + v.second) * 10**6 + v.microsecond)
    us = _round_us(us, scale) % 86_400_000_000
    return (dt.datetime.min + dt.timedelta(microseconds=us)).time()


def _expect_dt2(v: dt.datetime, scale: int) -> dt.datetime:
    base = dt.datetime(v.year, v.month, v.day)
    return base + dt.timedelta(microseconds=_round_us(
        (((v.hour * 60 + v.minute) * 60 + v.second) * 10**6 + v.microsecond), scale))


offsets = st.integers(-840, 840).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
safe_datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
text_cp1252 = st.text(st.characters(codec="cp1252"), max_size=30)

CASES = [
    ("bit", st.booleans(), None),
    ("tinyint", st.integers(0, 255), None),
    ("smallint", st.integers(-2**15, 2**15 - 1), None),
    ("int", st.integers(-2**31, 2**31 - 1), None),
    ("bigint", st.integers(-2**63, 2**63 - 1), None),
    ("real", st.floats(width=32, allow_nan=False, allow_infinity=False), None),
    ("float", st.floats(allow_nan=False, allow_infinity=False), None),
    ("decimal(1,0)", _decimals(1, 0), None),
    ("decimal(9,4)", _decimals(9, 4), None),
    ("numeric(19,19)", _decimals(19, 19), None),
    ("decimal(28,10)", _decimals(28, 10), None),
    ("decimal(38,6)", _decimals(38, 6), None),
    ("money", st.integers(-2**63, 2**63 - 1).map(lambda u: Decimal(f"{u}E-4")), None),
    ("smallmoney", st.integers(-2**31, 2**31 - 1).map(lambda u: Decimal(f"{u}E-4")), None),
    ("varchar(30)", text_cp1252, None),
    ("char(30)", text_cp1252, lambda v: v.ljust(30)),
    ("varchar(max)", st.text(st.characters(codec="cp1252"), max_size=500), None),
    ("nvarchar(30)", st.text(max_size=15), None),
    ("nvarchar(max)", st.text(max_size=500), None),
    # BMP only (one UTF-16 unit per character, so 40 fit), and no lone surrogates: a high
    # one followed by a low one would come back joined as one astral character
    ("nchar(40)", st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)),
                          max_size=40),
     lambda v: v.ljust(40)),
    ("varbinary(50)", st.binary(max_size=50), None),
    ("varbinary(max)", st.binary(max_size=2000), None),
    ("binary(8)", st.binary(max_size=8), lambda v: v.ljust(8, b"\0")),
    ("date", st.dates(), None),
    *[(f"time({s})", st.times(), lambda v, s=s: _expect_time(v, s)) for s in range(8)],
    *[(f"datetime2({s})", safe_datetimes, lambda v, s=s: _expect_dt2(v, s)) for s in (0, 3, 7)],
    *[(f"datetimeoffset({s})", safe_datetimes.flatmap(
        lambda d: offsets.map(lambda tz, d=d: d.replace(tzinfo=tz))),
       lambda v, s=s: _expect_dt2(v.replace(tzinfo=None), s).replace(tzinfo=v.tzinfo))
      for s in (0, 4, 7)],
    ("uniqueidentifier", st.uuids(), None),
]


@pytest.mark.parametrize(("sql", "values", "expect"), CASES, ids=[c[0] for c in CASES])
@given(data=st.data())
def test_round_trip(sql: str, values, expect, data) -> None:
    t = SqlType.parse(sql)
    info, _ = decode_type_info(encode_type_info(t), 0)
    value = data.draw(st.none() | values)
    raw = encode_value(t, value)
    got, pos = decode_value(info, raw + b"\x99", 0)
    assert pos == len(raw)
    want = value if value is None or expect is None else expect(value)
    assert got == want
    if isinstance(want, dt.datetime) and want.tzinfo is not None:
        assert got.utcoffset() == want.utcoffset()
    if isinstance(want, Decimal):  # the scale survives too: 1.50 stays 1.50
        assert got.as_tuple().exponent == (-4 if "money" in sql else -(t.scale or 0))


@given(st.datetimes(min_value=dt.datetime(1753, 1, 1), max_value=dt.datetime(9999, 12, 31, 23,
                                                                              59, 59, 998000)))
def test_datetime_keeps_what_survives(v: dt.datetime) -> None:
    t = SqlType.parse("datetime")
    info = TypeInfo(DataType.DATETIMN, 8)
    got = decode_value(info, encode_value(t, v), 0)[0]
    assert abs(got - v) <= dt.timedelta(microseconds=1667)
    assert encode_value(t, got) == encode_value(t, v)  # stable once rounded


@given(st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2079, 6, 6, 23,
                                                                              59, 29)))
def test_smalldatetime_keeps_what_survives(v: dt.datetime) -> None:
    t = SqlType.parse("smalldatetime")
    got = decode_value(TypeInfo(DataType.DATETIMN, 4), encode_value(t, v), 0)[0]
    assert abs(got - v) <= dt.timedelta(seconds=30) and got.second == 0


def test_lone_surrogates_survive() -> None:
    t = SqlType.parse("nvarchar(10)")
    info, _ = decode_type_info(encode_type_info(t), 0)
    assert decode_value(info, encode_value(t, "a\ud800b"), 0)[0] == "a\ud800b"


variant_values = (st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1)
                  | st.floats(allow_nan=False) | _decimals(20, 5) | st.text(max_size=20)
                  | st.binary(max_size=20) | st.dates() | st.times() | safe_datetimes
                  | st.uuids())


@given(variant_values)
def test_variant_round_trip(value) -> None:
    raw = encode_variant(value)
    assert decode_variant(raw, 0) == (value, len(raw))
    assert decode_value(TypeInfo(DataType.SSVARIANT, 8009), raw, 0) == (value, len(raw))


any_values = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
              | st.binary(max_size=20) | st.decimals() | st.dates() | st.times() | st.datetimes()
              | st.uuids() | st.lists(st.integers(), max_size=2))


@pytest.mark.parametrize("sql", [c[0] for c in CASES])
@given(value=any_values)
def test_encode_fails_only_with_value_error(sql: str, value) -> None:
    try:
        encode_value(SqlType.parse(sql), value)
    except ValueError:
        pass
