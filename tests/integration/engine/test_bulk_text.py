"""Text through the bulk-copy writer's two UTF-8 to UTF-16 conversions: simdutf's (taken
from turbodbc's extension) and the writer's own loop. Every value is read back by another
client (pyodbc) and compared exactly. Empty values sit among long ones in (max) columns:
an empty value there is sent with bcp_collen(0) (a zero length indicator made Driver 18
send a malformed PLP value)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pyarrow as pa
import pytest

from engine import bulk_copy
from engine.options import TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytest.importorskip("engine._bcp")
pytestmark = pytest.mark.integration

ALPHABETS = ("abcdefghij klmnop 0123456789", "ÀÉÎÕÜàéîõüßçñ", "数据库加载テスト한국어✓",
             "😀🚀\U0001d11e\U0010ffff", "\x01\x7f\u0080\u07ff\u0800\uffff\U00010000")


def _values(n: int) -> list[str | None]:
    """Mixed scripts at every length around the converters' 4- and 8-byte steps, long
    values (nvarchar(max) beyond 4,000 characters), empty strings and NULLs."""
    rng = random.Random(18)
    out: list[str | None] = [None, "", "a", "é", "😀", "abcdefgh😀", "abcdefg" + "é" * 9]
    while len(out) < n:
        length = rng.choice([rng.randint(0, 20), rng.randint(0, 700), rng.randint(4000, 6000)])
        mix = rng.sample(ALPHABETS, rng.randint(1, len(ALPHABETS)))
        out.append("".join(rng.choice(rng.choice(mix)) for _ in range(length)))
    out[n // 2] = None
    return out[:n]


@pytest.fixture(params=["simdutf", "own loop"])
def converter(request) -> Iterator[str]:
    writer = bulk_copy.native_writer()
    if request.param == "simdutf" and not bulk_copy._fast_text(writer):
        pytest.skip("this turbodbc build does not export simdutf's conversion")
    saved = bulk_copy._fast_text
    if request.param == "own loop":
        bulk_copy._fast_text = lambda w: bool(w.use_utf16_converter(""))  # type: ignore[assignment]
    try:
        yield request.param
    finally:
        bulk_copy._fast_text = saved  # type: ignore[assignment]
        saved(writer)


def test_text_round_trips_through_either_conversion(sql_target, reader, converter):
    values = _values(400)
    blobs = [None if v is None else v.encode()[:9000] for v in values]
    source = pa.table({"id": pa.array(range(len(values)), pa.int64()),
                       "s": pa.array(values, pa.string()),
                       "ls": pa.array(list(reversed(values)), pa.large_string()),
                       "b": pa.array(blobs, pa.binary())})
    target = sql_target("bulk_text")
    result = transfer(source, target, TransferOptions(workers=1, transport="bulk-copy"),
                      source_options=SourceOptions(rows_per_batch=150))
    assert result.transport == "bulk-copy" and result.rows == len(values)
    rows = reader.execute(f"SELECT id, s, ls, b FROM {target.table.quoted} ORDER BY id").fetchall()
    assert [r[1] for r in rows] == values, converter
    assert [r[2] for r in rows] == list(reversed(values)), converter
    assert [r[3] for r in rows] == blobs
