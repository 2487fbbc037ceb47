"""The column-wise INSERT of a parameter array (``SqlSession.insert_columns``) against the
row-wise one (``execute_many``): when it accepts a run, the stored rows are the same bit
for bit and the row-wise path would have raised no error; when it declines, it has stored
nothing (the caller then runs the row-wise path)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Context, Decimal

import pytest

from azsql_emulator.sql import SessionUser, SqlEngine
from azsql_emulator.tds.collation import DEFAULT_COLLATION
from azsql_emulator.tds.columns import ColumnarRun
from azsql_emulator.tds.requests import RpcCall, RpcParam, decode_rpc, encode_rpc
from azsql_emulator.tds.temporal import with_hns
from azsql_emulator.tds.typeinfo import TypeInfo

pytest.importorskip("azsql_emulator._tdsfast")

COLL = bytes(DEFAULT_COLLATION)
OWNER = SessionUser("dbo", "app@tenant", frozenset({"db_owner"}), 51)
WIDE = Context(prec=60)
INT4, INT8, INT1 = TypeInfo(0x26, 4), TypeInfo(0x26, 8), TypeInfo(0x26, 1)
NVARCHAR = TypeInfo(0xE7, 400, collation=COLL)
VARCHAR = TypeInfo(0xA7, 60, collation=COLL)


def ints(lo: int, hi: int, edge: list[int]):
    return lambda rng, bad: rng.choice(edge) if bad else rng.choice(
        [lo, hi, rng.randrange(lo, hi + 1)])


def floats(rng, bad):
    return rng.choice([rng.uniform(-1e300, 1e300), -0.0, 5e-324, 1e308, float("inf"),
                       rng.random()])


def decimal_text(rng, bad):
    if bad:
        return rng.choice(["1e5", "abc", "", "99999999999999.99995", "1 2", "\t5", "--1",
                           "١٢", "12345678901234567890"])
    whole = rng.choice(["0", "-0", "7", "99999999999999", "-99999999999999",
                        str(rng.randrange(10**14))])
    frac = "".join(rng.choice("0123456789") for _ in range(rng.randrange(7)))
    text = rng.choice([whole, f"{whole}.{frac}", f".{frac or '5'}", f"{whole}."])
    if rng.random() < 0.2:
        text = " " + ("+" + text if text[0] != "-" else text) + "  "
    return text


def wire_decimal(precision: int, scale: int):
    def make(rng, bad):
        top = 10 ** precision
        tie = 5 * 10 ** max(scale - 3, 0)  # ...5 right after a 2-digit column scale
        units = rng.choice([top - 1, -(top - 1), 0, 5, -5, tie, -3 * tie,
                            rng.randrange(-top + 1, top)])
        return Decimal(units).scaleb(-scale, WIDE)
    return make


def text(limit: int, pool: str):
    """Texts of at most ``limit`` UTF-16 units (bad: up to 3 more, or trailing blanks)."""
    def make(rng, bad):
        units = rng.randrange(limit + (4 if bad else 1))
        value = ""
        while True:
            ch = rng.choice(pool)
            if len((value + ch).encode("utf-16-le")) // 2 > units:
                break
            value += ch
        return value + ("   " if bad and rng.random() < 0.5 else "")
    return make


def dates(rng, bad):
    return rng.choice([dt.date(1, 1, 1), dt.date(9999, 12, 31),
                       dt.date(1, 1, 1) + dt.timedelta(days=rng.randrange(3_652_059))])


def hundred_ns(rng):
    """A 100 ns digit (sent only by scale-7 TYPE_INFOs; 5 is the rounding tie)."""
    return rng.choice([0, 5, 9, rng.randrange(10)])


def times(rng, bad):
    return with_hns(dt.time(rng.choice([23, rng.randrange(24)]),
                            rng.choice([59, rng.randrange(60)]),
                            rng.choice([59, rng.randrange(60)]),
                            rng.choice([999_999, 999_500, 500, rng.randrange(1_000_000)])),
                    hundred_ns(rng))


def datetimes(rng, bad):
    if bad:
        return dt.datetime(9999, 12, 31, 23, 59, 59, 999_999)  # 100 ns more: no wire scale 6
    return with_hns(rng.choice([
        dt.datetime(1, 1, 1), dt.datetime(1969, 12, 31, 23, 59, 59, 999_995),
        dt.datetime(rng.randrange(1, 10000), rng.randrange(1, 13), rng.randrange(1, 29),
                    rng.randrange(24), rng.randrange(60), rng.randrange(60),
                    rng.randrange(1_000_000))]), hundred_ns(rng))


# (column type, marker, wire TYPE_INFO, value maker); markers: "?" a bare parameter,
# "cast:n" CAST(@P AS nvarchar(n)).
CASES = [
    ("int", "?", INT8, ints(-2**31, 2**31 - 1, [2**31, -2**31 - 1])),
    ("int", "?", INT4, ints(-2**31, 2**31 - 1, [0])),
    ("bigint", "?", INT8, ints(-2**63, 2**63 - 1, [0])),
    ("smallint", "?", INT8, ints(-2**15, 2**15 - 1, [40_000, -40_000])),
    ("tinyint", "?", INT8, ints(0, 255, [-1, 256])),
    ("tinyint", "?", INT1, ints(0, 255, [0])),
    ("float", "?", TypeInfo(0x6D, 8), floats),
    ("float", "?", INT8, ints(-2**63, 2**63 - 1, [2**53 + 1])),
    ("decimal(12,2)", "?", INT8, ints(-10**10 + 1, 10**10 - 1, [10**10, -10**10])),
    ("decimal(18,4)", "?", NVARCHAR, decimal_text),
    ("decimal(18,4)", "cast:30", NVARCHAR, decimal_text),
    ("numeric(38,10)", "?", NVARCHAR, decimal_text),
    ("decimal(38,10)", "?", TypeInfo(0x6A, 17, 38, 10), wire_decimal(38, 10)),
    ("decimal(10,2)", "?", TypeInfo(0x6A, 17, 38, 6), wire_decimal(10, 6)),
    ("decimal(30,8)", "?", TypeInfo(0x6C, 9, 18, 3), wire_decimal(18, 3)),
    ("nvarchar(10)", "?", NVARCHAR, text(10, "aé中😀 ")),
    ("nvarchar(10)", "cast:12", NVARCHAR, text(10, "ab ")),
    ("varchar(5)", "?", NVARCHAR, text(5, "xé😀 ")),
    ("nvarchar(max)", "?", NVARCHAR, text(30, "z😀")),
    ("date", "?", TypeInfo(0x28, 3), dates),
    ("time(3)", "?", TypeInfo(0x29, 5, scale=7), times),
    ("time(7)", "?", TypeInfo(0x29, 5, scale=7), times),
    ("time", "?", TypeInfo(0x29, 4, scale=4), times),
    ("datetime2(2)", "?", TypeInfo(0x2A, 8, scale=7), datetimes),
    ("datetime2(0)", "?", TypeInfo(0x2A, 8, scale=7), datetimes),
    ("datetime2(6)", "?", TypeInfo(0x2A, 8, scale=6), datetimes),
    ("datetime2", "?", TypeInfo(0x2A, 8, scale=7), datetimes),
    ("bit", "?", TypeInfo(0x68, 1), lambda rng, bad: rng.random() < 0.5),
    ("varchar(8)", "?", VARCHAR, text(8, "ab c")),
    ("nvarchar(6)", "?", VARCHAR, text(6, "xy ")),
    ("decimal(18,4)", "?", VARCHAR,
     lambda rng, bad: v if (v := decimal_text(rng, bad)).isascii() else "1x"),
]


def make_run(cases, rows: int, rng: random.Random, bad_rate: float,
             null_rate: float) -> tuple[ColumnarRun, list[list[object]]]:
    calls = []
    for _ in range(rows):
        params = [RpcParam("", 0, INT4, 1)]
        for _type, _marker, ti, maker in cases:
            value = None if rng.random() < null_rate else maker(rng, rng.random() < bad_rate)
            params.append(RpcParam("", 0, ti, value))
        calls.append(RpcCall(proc_id=12, params=params))
    got = decode_rpc(encode_rpc(calls), columnar=True)
    assert [type(c) for c in got] == [ColumnarRun]
    run = got[0]
    return run, [[p.value for p in c.params[1:]] for c in run.expand()]


def stored(session) -> list[tuple]:
    return session.con.execute('SELECT * FROM "appdb"."dbo"."t" ORDER BY ALL').fetchall()


def both(cases, not_null: set[int], run: ColumnarRun, rows: list[list[object]]):
    """(accepted, column-wise rows, row-wise errors, row-wise rows) on two fresh engines."""
    cols = ", ".join(f"c{i} {c[0]}{' NOT NULL' if i in not_null else ''}"
                     for i, c in enumerate(cases))
    markers = ", ".join(f"CAST(@P{i + 1} AS nvarchar({c[1][5:]}))" if c[1].startswith("cast")
                        else f"@P{i + 1}" for i, c in enumerate(cases))
    sql = f"INSERT INTO dbo.t VALUES ({markers})"
    out = []
    for columnar in (True, False):
        engine = SqlEngine()
        session = engine.open_session("appdb", OWNER)
        try:
            (created,) = session.execute(f"CREATE TABLE dbo.t ({cols})")
            assert created.error is None
            if columnar:
                out.append(session.insert_columns(sql, run.columns[1:], run.count))
            else:
                try:
                    out.append(session.execute_many(sql, rows))
                except OverflowError:  # datetime2 rounding past 9999-12-31 (row-wise)
                    out.append(None)
            out.append(stored(session))
        finally:
            session.close()
            engine.close()
    return out


def check_case(cases, seed: int, bad_rate: float, null_rate: float,
               not_null: set[int]) -> bool:
    rng = random.Random(seed)
    run, rows = make_run(cases, rng.randrange(2, 40), rng, bad_rate, null_rate)
    accepted, column_rows, errors, row_rows = both(cases, not_null, run, rows)
    if accepted:
        assert errors == [None] * len(rows), "accepted rows the row-wise path refuses"
        assert column_rows == row_rows
        assert [type(v) for r in column_rows for v in r] == [type(v) for r in row_rows
                                                             for v in r]
    else:
        assert column_rows == []
    return bool(accepted)


@pytest.mark.parametrize("index", range(len(CASES)))
def test_clean_values_are_accepted_and_stored_as_row_by_row(index):
    cases = [CASES[index]]
    assert check_case(cases, index, bad_rate=0.0, null_rate=0.2, not_null=set())


@pytest.mark.parametrize("index", range(len(CASES)))
def test_bad_values_are_declined_or_stored_as_row_by_row(index):
    cases = [CASES[index]]
    for seed in range(8):
        check_case(cases, 1000 * index + seed, bad_rate=0.3, null_rate=0.1, not_null=set())


@pytest.mark.parametrize("seed", range(40))
def test_random_mixed_tables(seed):
    rng = random.Random(seed)
    cases = rng.sample(CASES, rng.randrange(1, 6))
    not_null = {i for i in range(len(cases)) if rng.random() < 0.3}
    check_case(cases, seed, bad_rate=rng.choice([0.0, 0.0, 0.05]),
               null_rate=rng.choice([0.0, 0.1]), not_null=not_null)


def test_null_into_not_null_is_declined():
    cases = [CASES[0]]
    assert not check_case(cases, 5, bad_rate=0.0, null_rate=0.5, not_null={0})
    assert check_case(cases, 5, bad_rate=0.0, null_rate=0.0, not_null={0})


@pytest.mark.parametrize("ddl", [
    "k int, v int DEFAULT 5", "k int, v int NOT NULL", "id int IDENTITY(1,1), k int, v int",
    "k int, v float PRIMARY KEY"])
def test_tables_needing_more_than_conversion_are_declined(ddl):
    run, _rows = make_run([CASES[1]], 3, random.Random(1), 0.0, 0.0)
    engine = SqlEngine()
    session = engine.open_session("appdb", OWNER)
    try:
        (created,) = session.execute(f"CREATE TABLE dbo.t ({ddl})")
        assert created.error is None
        assert not session.insert_columns("INSERT INTO dbo.t (k) VALUES (@P1)",
                                          run.columns[1:], run.count)
        assert stored(session) == []
    finally:
        session.close()
        engine.close()


def test_missing_nullable_columns_are_null_and_rows_are_counted():
    run, rows = make_run([CASES[1]], 5, random.Random(2), 0.0, 0.0)
    engine = SqlEngine()
    session = engine.open_session("appdb", OWNER)
    try:
        session.execute("CREATE TABLE dbo.t (a nvarchar(3), k int, b float)")
        assert session.insert_columns("INSERT INTO dbo.t (k) VALUES (@P1)",
                                      run.columns[1:], run.count)
        assert stored(session) == sorted((None, r[0], None) for r in rows)
        result = session.execute("SELECT COUNT(*) FROM dbo.t")[-1]
        assert result.rows == [(5,)]
    finally:
        session.close()
        engine.close()


KEY_CASES = [
    ("int", INT8, ints(0, 6, [0])),
    ("nvarchar(4)", NVARCHAR, text(2, "ab")),
    ("decimal(9,2)", NVARCHAR, lambda rng, bad: rng.choice(["1", "1.0", "1.001", "2.5", "-0"])),
    ("datetime2(0)", TypeInfo(0x2A, 8, scale=7),
     lambda rng, bad: dt.datetime(2024, 1, 1, 0, 0, rng.randrange(3), rng.randrange(1_000_000))),
    ("date", TypeInfo(0x28, 3), lambda rng, bad: dt.date(2000, 1, 1 + rng.randrange(4))),
    ("bit", TypeInfo(0x68, 1), lambda rng, bad: rng.random() < 0.5),
]


def keyed(seed: int) -> tuple[list, str, list, list]:
    """A random keyed table: (cases, DDL, rows already stored, the run's rows)."""
    rng = random.Random(seed)
    cases = rng.sample(KEY_CASES, rng.randrange(1, 4))
    cols = [f"c{i} {c[0]}" for i, c in enumerate(cases)] + ["extra int"]
    key = ", ".join(f"c{i}" for i in range(rng.randrange(1, len(cases) + 1)))
    if rng.random() < 0.5:
        ddl = ", ".join(cols) + f", PRIMARY KEY ({key})"
        nulls = 0.0
    else:
        ddl = ", ".join(cols) + f", CONSTRAINT uq UNIQUE ({key})"
        nulls = 0.15
    def row():
        return [None if rng.random() < nulls else maker(rng, False) for _t, _ti, maker in cases]
    return cases, ddl, [row() for _ in range(rng.randrange(3))], [row() for _ in range(
        rng.randrange(2, 6))]


def test_keyed_runs_are_both_accepted_and_declined():
    outcomes = {check_keyed(seed) for seed in range(60)}
    assert outcomes == {True, False}


@pytest.mark.parametrize("seed", range(60))
def test_keys_are_checked_as_row_by_row(seed):
    check_keyed(seed)


def check_keyed(seed: int) -> bool:
    cases, ddl, before, rows = keyed(seed)
    calls = [RpcCall(proc_id=12, params=[RpcParam("", 0, INT4, 1)] + [
        RpcParam("", 0, ti, v) for (_t, ti, _m), v in zip(cases, r, strict=True)]) for r in rows]
    (run,) = decode_rpc(encode_rpc(calls), columnar=True)
    names = ", ".join(f"c{i}" for i in range(len(cases)))
    markers = ", ".join(f"@P{i + 1}" for i in range(len(cases)))
    sql = f"INSERT INTO dbo.t ({names}) VALUES ({markers})"
    out = []
    for columnar in (True, False):
        engine = SqlEngine()
        session = engine.open_session("appdb", OWNER)
        try:
            (created,) = session.execute(f"CREATE TABLE dbo.t ({ddl})")
            assert created.error is None
            session.execute_many(sql, before)
            stored_before = stored(session)
            if columnar:
                out.append(session.insert_columns(sql, run.columns[1:], run.count))
            else:
                out.append(session.execute_many(sql, [list(r) for r in rows]))
            out.append((stored_before, stored(session)))
        finally:
            session.close()
            engine.close()
    accepted, (kept, column_rows), errors, (_, row_rows) = out
    if accepted:
        assert errors == [None] * len(rows)
        assert column_rows == row_rows
    else:
        assert column_rows == kept
        assert any(e is not None and e.number in (2627, 2601) for e in errors)
    return bool(accepted)


def test_a_key_repeated_in_the_run_or_stored_is_declined():
    engine = SqlEngine()
    session = engine.open_session("appdb", OWNER)
    try:
        session.execute("CREATE TABLE dbo.t (k int PRIMARY KEY, v nvarchar(5))")
        sql = "INSERT INTO dbo.t VALUES (@P1, @P2)"

        def run_of(keys):
            calls = [RpcCall(proc_id=12, params=[RpcParam("", 0, INT4, 1), RpcParam("", 0, INT8, k),
                                                 RpcParam("", 0, NVARCHAR, "x")]) for k in keys]
            (run,) = decode_rpc(encode_rpc(calls), columnar=True)
            return run

        for keys in ([1, 2, 1], [3, 4]):
            run = run_of(keys)
            assert session.insert_columns(sql, run.columns[1:], run.count) is (keys == [3, 4])
        run = run_of([5, 3])  # 3 is stored now
        assert not session.insert_columns(sql, run.columns[1:], run.count)
        assert stored(session) == [(3, "x"), (4, "x")]
    finally:
        session.close()
        engine.close()
