"""The native decoder of sp_execute parameter arrays (native/tdsfast) against the Python one:
the same calls and values for every type it handles, and a clean hand-over for the rest."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from azsql_emulator.reply import Reply
from azsql_emulator.tds import requests
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.requests import FastCall, RpcCall, RpcParam, decode_rpc, encode_rpc
from azsql_emulator.tds.typeinfo import TypeInfo

pytest.importorskip("azsql_emulator._tdsfast")

COLL = bytes(DEFAULT_COLLATION)
LAYOUT = [TypeInfo(0x26, 4), TypeInfo(0x26, 8), TypeInfo(0x26, 1), TypeInfo(0x26, 2),
          TypeInfo(0x68, 1), TypeInfo(0x6D, 8), TypeInfo(0x6D, 4),
          TypeInfo(0xE7, 80, collation=COLL), TypeInfo(0xEF, 40, collation=COLL),
          TypeInfo(0xA5, 50),
          # framed natively, converted by the Python decoders
          TypeInfo(0x6A, 17, 38, 10), TypeInfo(0x28, 3), TypeInfo(0x29, 5, scale=7),
          TypeInfo(0x2A, 8, scale=7), TypeInfo(0x2A, 6, scale=2), TypeInfo(0x2B, 10, scale=7),
          TypeInfo(0x24, 16), TypeInfo(0x6E, 8), TypeInfo(0x6F, 8),
          TypeInfo(0xA7, 30, collation=COLL)]


def value_for(ti: TypeInfo, rng: random.Random):
    if rng.random() < 0.15:
        return None
    kind = ti.type
    if kind == 0x26:
        bits = ti.size * 8
        return rng.randrange(0, 256) if ti.size == 1 else rng.randrange(-2**(bits - 1),
                                                                         2**(bits - 1))
    if kind == 0x68:
        return rng.random() < 0.5
    if kind == 0x6D:
        return 1.5 if ti.size == 4 else rng.uniform(-1e300, 1e300)
    if kind == 0x6A:
        return Decimal(rng.randrange(-10**28, 10**28)).scaleb(-10)
    if kind == 0x28:
        return dt.date(1, 1, 1) + dt.timedelta(days=rng.randrange(3_652_059))
    if kind == 0x29:
        return dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60),
                       rng.randrange(1_000_000))
    if kind in (0x2A, 0x2B, 0x6F):
        value = dt.datetime(rng.randrange(1900, 2100), rng.randrange(1, 13),
                            rng.randrange(1, 29), rng.randrange(24), rng.randrange(60),
                            rng.randrange(60), rng.randrange(1_000_000) if kind != 0x6F else 0)
        return value.replace(tzinfo=dt.timezone(dt.timedelta(minutes=330))) if kind == 0x2B \
            else value
    if kind == 0x24:
        return __import__("uuid").UUID(int=rng.getrandbits(128))
    if kind == 0x6E:
        return Decimal(rng.randrange(-10**12, 10**12)).scaleb(-4)
    if kind == 0xA7:
        return "".join(rng.choice("abcé ") for _ in range(rng.randrange(12)))
    if kind in (0xE7, 0xEF):
        return "".join(rng.choice(["a", "é", "中", "😀", ""]) for _ in range(rng.randrange(8)))
    return bytes(rng.randrange(256) for _ in range(rng.randrange(10)))


def calls_for(n: int, seed: int, layout=LAYOUT, handle=7) -> list[RpcCall]:
    rng = random.Random(seed)
    return [RpcCall(proc_id=12, params=[RpcParam("", 0, TypeInfo(0x26, 4), handle)] + [
        RpcParam("", 0, ti, value_for(ti, rng)) for ti in layout]) for _ in range(n)]


def plain(req) -> list[tuple]:
    return [(c.name, c.proc_id, c.options,
             [(p.name, p.status, p.type_info, p.value) for p in c.params]) for c in req]


@pytest.mark.parametrize("seed", range(5))
def test_native_and_python_decoders_agree(seed, monkeypatch):
    payload = encode_rpc(calls_for(300, seed))
    fast = decode_rpc(payload)
    assert sum(isinstance(c, FastCall) for c in fast) == 299  # all but the first call
    monkeypatch.setattr(requests, "_native", None)
    slow = decode_rpc(payload)
    assert not any(isinstance(c, FastCall) for c in slow)
    assert plain(fast) == plain(slow)


def test_a_call_with_another_layout_or_type_is_left_to_python(monkeypatch):
    calls = calls_for(3, 1)
    calls += [RpcCall(proc_id=12, params=[RpcParam("", 0, TypeInfo(0x26, 4), 7),
                                         RpcParam("", 0, TypeInfo(0xE7, 0xFFFF, collation=COLL),
                                                  "nvarchar(max) is PLP")])]
    calls += calls_for(2, 2)
    calls += [RpcCall(proc_id=12, params=[RpcParam("", 0, TypeInfo(0x26, 4), 7),
                                         RpcParam("", 0, TypeInfo(0x38, 4), 5)])]  # INT4
    calls += [RpcCall(name="sp_unprepare", params=[RpcParam("", 0, TypeInfo(0x26, 4), 7)])]
    payload = encode_rpc(calls)
    fast = decode_rpc(payload)
    monkeypatch.setattr(requests, "_native", None)
    assert plain(fast) == plain(decode_rpc(payload))
    assert [type(c) is RpcCall for c in fast] == [True, False, False, True, True, False, True,
                                                   True]


def test_truncated_payload_is_still_a_protocol_error():
    payload = encode_rpc(calls_for(5, 3))
    with pytest.raises(Exception, match=r"truncated|past the end|does not fit"):
        decode_rpc(payload[:-3])


def test_inserted_rows_writes_the_same_tokens_as_one_call_at_a_time():
    for last in (True, False):
        for counted in (True, False):
            one_by_one = Reply()
            for k in range(4):
                one_by_one.done(kind="inproc", more=True, count=1 if counted else None,
                                curcmd=0xC3)
                one_by_one.return_status(0).done(kind="proc", more=not (last and k == 3))
            batched = Reply().inserted_rows(4, last_call_is_last=last, curcmd=0xC3,
                                            rows_counted=counted)
            assert batched.payload() == one_by_one.payload()
