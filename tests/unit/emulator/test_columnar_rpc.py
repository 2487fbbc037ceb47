"""The column-wise decoder of sp_execute parameter arrays (native decode_columns) against
the row-wise decoders: the same calls once expanded, the same values in its Arrow arrays,
and a clean hand-over for calls it does not take."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Context, Decimal

import pytest

from azsql_emulator.tds import requests
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.columns import ColumnarRun
from azsql_emulator.tds.packet import ProtocolError
from azsql_emulator.tds.requests import RpcCall, RpcParam, decode_rpc, encode_rpc
from azsql_emulator.tds.typeinfo import TypeInfo

pytest.importorskip("azsql_emulator._tdsfast")

COLL = bytes(DEFAULT_COLLATION)
LAYOUT = [TypeInfo(0x26, 4), TypeInfo(0x26, 8), TypeInfo(0x26, 1), TypeInfo(0x26, 2),
          TypeInfo(0x68, 1), TypeInfo(0x6D, 8), TypeInfo(0x6D, 4),
          TypeInfo(0xE7, 80, collation=COLL), TypeInfo(0xEF, 40, collation=COLL),
          TypeInfo(0x6A, 17, 38, 10), TypeInfo(0x6C, 9, 18, 0), TypeInfo(0x6A, 5, 9, 9),
          TypeInfo(0x28, 3), TypeInfo(0x29, 5, scale=7), TypeInfo(0x29, 3, scale=0),
          TypeInfo(0x2A, 8, scale=7), TypeInfo(0x2A, 6, scale=2), TypeInfo(0x2A, 8, scale=6)]
WIDE = Context(prec=60)
TEXT = ["a", "é", "中", "😀", "", " ", "\U0010ffff", "\x00"]


def value_for(ti: TypeInfo, rng: random.Random) -> object:
    if rng.random() < 0.15:
        return None
    kind = ti.type
    if kind == 0x26:
        bits = ti.size * 8
        if ti.size == 1:
            return rng.choice([0, 255, rng.randrange(256)])
        return rng.choice([-2**(bits - 1), 2**(bits - 1) - 1, 0,
                           rng.randrange(-2**(bits - 1), 2**(bits - 1))])
    if kind == 0x68:
        return rng.random() < 0.5
    if kind == 0x6D:
        if ti.size == 4:
            return rng.choice([1.5, -0.0, 3.25e38])
        return rng.choice([rng.uniform(-1e300, 1e300), -0.0, 5e-324, float("inf")])
    if kind in (0x6A, 0x6C):
        top = 10 ** ti.precision
        return Decimal(rng.choice([top - 1, -(top - 1), 0, rng.randrange(-top + 1, top)])
                       ).scaleb(-ti.scale, WIDE)
    if kind == 0x28:
        return rng.choice([dt.date(1, 1, 1), dt.date(9999, 12, 31),
                           dt.date(1, 1, 1) + dt.timedelta(days=rng.randrange(3_652_059))])
    if kind == 0x29:
        return dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60),
                       rng.randrange(1_000_000) if ti.scale else 0)
    if kind == 0x2A:
        if rng.random() < 0.1:
            return rng.choice([dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)])
        micros = rng.randrange(1_000_000) // 10 ** max(0, 6 - ti.scale) * 10 ** max(
            0, 6 - ti.scale)
        return dt.datetime(rng.randrange(1, 10000), rng.randrange(1, 13), rng.randrange(1, 29),
                           rng.randrange(24), rng.randrange(60), rng.randrange(60), micros)
    return "".join(rng.choice(TEXT) for _ in range(rng.randrange(12)))


def calls_for(n: int, seed: int, layout=LAYOUT, handle=7) -> list[RpcCall]:
    rng = random.Random(seed)
    return [RpcCall(proc_id=12, params=[RpcParam("", 0, TypeInfo(0x26, 4), handle)] + [
        RpcParam("", 0, ti, value_for(ti, rng)) for ti in layout]) for _ in range(n)]


def plain(calls) -> list[tuple]:
    return [(c.name, c.proc_id, c.options,
             [(p.name, p.status, p.type_info, p.value) for p in c.params]) for c in calls]


def flat(calls) -> list:
    out = []
    for c in calls:
        out.extend(c.expand() if isinstance(c, ColumnarRun) else [c])
    return out


def row_wise(payload: bytes, monkeypatch) -> list:
    with monkeypatch.context() as m:
        m.setattr(requests, "_native", None)
        return list(decode_rpc(payload))


def wire_value(ti: TypeInfo, value: object) -> object:
    """A row-wise decoded value as the column-wise Arrow array shows it."""
    if value is None:
        return None
    if ti.type == 0x68:
        return int(value)  # type: ignore[call-overload]
    return value


@pytest.mark.parametrize("seed", range(6))
def test_columns_hold_the_row_wise_values(seed, monkeypatch):
    payload = encode_rpc(calls_for(250, seed))
    got = decode_rpc(payload, columnar=True)
    assert [type(c) for c in got] == [ColumnarRun]
    run = got[0]
    assert len(run) == 250
    want = row_wise(payload, monkeypatch)
    assert plain(run.expand()) == plain(want)
    for j, (arr, ti) in enumerate(zip(run.arrays(), [TypeInfo(0x26, 4), *LAYOUT], strict=True)):
        values = [wire_value(ti, c.params[j].value) for c in want]
        assert arr.to_pylist() == values, (j, ti)
        assert arr.null_count == values.count(None)
        col = run.columns[j]
        if ti.type in (0xE7, 0xEF):
            lengths = [len(v.encode("utf-16-le")) // 2 for v in values if v is not None]
            assert col.max_units == max(lengths, default=0)
    assert run.one_handle()


def test_one_call_is_left_row_wise():
    payload = encode_rpc(calls_for(1, 1))
    assert [type(c) for c in decode_rpc(payload, columnar=True)] == [RpcCall]


def test_lone_surrogate_splits_the_run_and_python_takes_that_call(monkeypatch):
    calls = calls_for(10, 2, layout=[TypeInfo(0xE7, 80, collation=COLL)])
    calls[4].params[1] = RpcParam("", 0, TypeInfo(0xE7, 80, collation=COLL), "a\ud800b")
    payload = encode_rpc(calls)
    got = decode_rpc(payload, columnar=True)
    assert [type(c).__name__ for c in got][:2] == ["ColumnarRun", "RpcCall"]
    assert len(got[0]) == 4
    assert got[1].params[1].value == "a\ud800b"
    assert plain(flat(got)) == plain(row_wise(payload, monkeypatch))


def test_other_layouts_types_and_procedures_are_left_row_wise(monkeypatch):
    calls = calls_for(3, 1)
    calls += [RpcCall(proc_id=12, params=[RpcParam("", 0, TypeInfo(0x26, 4), 7),
                                         RpcParam("", 0, TypeInfo(0xE7, 0xFFFF, collation=COLL),
                                                  "nvarchar(max) is PLP")])] * 3
    calls += calls_for(2, 2, handle=8)
    calls += [RpcCall(proc_id=12, params=[RpcParam("", 0, TypeInfo(0x26, 4), 7),
                                         RpcParam("", 0, TypeInfo(0x6F, 8), None)])] * 2
    calls += [RpcCall(name="sp_unprepare", params=[RpcParam("", 0, TypeInfo(0x26, 4), 7)])]
    payload = encode_rpc(calls)
    got = decode_rpc(payload, columnar=True)
    kinds = [type(c).__name__ for c in got]
    assert kinds == ["ColumnarRun", "RpcCall", "RpcCall", "RpcCall", "ColumnarRun", "RpcCall",
                     "FastCall", "RpcCall"]
    assert [len(got[0]), len(got[4])] == [3, 2]
    assert plain(flat(got)) == plain(row_wise(payload, monkeypatch))


def test_mixed_handles_in_one_layout_are_not_one_handle():
    calls = calls_for(3, 1, handle=7) + calls_for(3, 1, handle=8)
    (run,) = decode_rpc(encode_rpc(calls), columnar=True)
    assert len(run) == 6 and not run.one_handle()


def test_bad_values_stop_the_run_and_python_reports_them():
    calls = calls_for(6, 4, layout=[TypeInfo(0x2A, 8, scale=7)])
    for c in calls:
        c.params[1] = RpcParam("", 0, TypeInfo(0x2A, 8, scale=7), dt.datetime(2024, 1, 2))
    payload = bytearray(encode_rpc(calls))
    # the last call's date: 3 bytes past 9999-12-31 (0xFFFFFF days)
    payload[-3:] = b"\xff\xff\xff"
    with pytest.raises(ProtocolError):
        decode_rpc(bytes(payload), columnar=True)
    with pytest.raises(ProtocolError):
        decode_rpc(bytes(payload)[:-1], columnar=True)


def test_varchar_is_columnar_while_it_is_ascii(monkeypatch):
    varchar = TypeInfo(0xA7, 30, collation=COLL)
    calls = [RpcCall(proc_id=12, params=[RpcParam("", 0, TypeInfo(0x26, 4), 7),
                                         RpcParam("", 0, varchar, v)])
             for v in ["abc", None, "", " x ", "~\x7f", "café", "z"]]
    payload = encode_rpc(calls)
    got = decode_rpc(payload, columnar=True)
    assert [type(c).__name__ for c in got] == ["ColumnarRun", "RpcCall", "FastCall"]
    assert got[0].arrays()[1].to_pylist() == ["abc", None, "", " x ", "~\x7f"]
    assert got[0].columns[1].max_units == 3
    assert plain(flat(got)) == plain(row_wise(payload, monkeypatch))
