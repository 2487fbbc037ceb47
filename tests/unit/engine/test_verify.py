"""``engine.verify``'s source side: facts accumulated batch by batch, the streamed sample,
the parsing of what the server returns, and how differences read."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli.verify import _text
from engine.names import TableName
from engine.table_facts import MAX_PARAMETERS, TableFacts, from_table, instant_ns, readable
from engine.verify import Difference, SourceFacts, VerifyReport

SETTINGS = settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=40)


def table(n: int) -> pa.Table:
    ids = range(n)
    return pa.table({
        "id": pa.array(ids, pa.int64()),
        "price": pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(18, 2)),
        "ratio": pa.array([i / 8 for i in ids], pa.float64()),
        "kind": pa.array([None if i % 7 == 0 else "abc"[i % 3] for i in ids]),
        "at": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
                        for i in ids], pa.timestamp("us", tz="UTC")),
        "ref": pa.array([uuid.UUID(int=i).bytes for i in ids], pa.uuid()),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 40) for i in ids],
                        pa.date32()),
    })


def facts_of(data: pa.Table, batch_rows: int, **kwargs: int) -> SourceFacts:
    facts = SourceFacts(data.schema, **kwargs)
    for batch in data.to_batches(max_chunksize=batch_rows):
        facts.add(batch)
    return facts


@SETTINGS
@given(rows=st.integers(0, 700), sizes=st.lists(st.integers(1, 300), min_size=2, max_size=2),
       sample=st.integers(0, 60))
def test_the_sample_is_the_same_whatever_the_batches_and_holds_real_rows(rows, sizes, sample):
    data = table(rows)
    one, other = (facts_of(data, size, sample_rows=sample) for size in sizes)
    assert one.sample == other.sample  # chosen by stream position only
    assert len(one.sample) == min(rows, sample)
    positions = [p for p, _ in one.sample]
    assert len(set(positions)) == len(positions)
    for position, row in one.sample:
        assert row["id"] == position and row["ref"] == str(uuid.UUID(int=position))
        assert row["at"] == (1_704_067_200 + position) * 10**9  # ns since 1970, UTC


def test_the_sample_reaches_past_the_first_rows_of_a_long_source():
    facts = facts_of(table(20_000), 1_000, sample_rows=50)
    assert max(p for p, _ in facts.sample) > 10_000


def test_counts_sums_and_values_are_exact():
    data = table(1_000)
    facts = facts_of(data, 128, max_values=4)  # a, b, c and NULL
    assert facts.rows == 1_000
    assert facts.non_null["kind"] == 1_000 - len(range(0, 1_000, 7))
    assert facts.sums["id"] == sum(range(1_000))
    assert facts.sums["price"] == Decimal(sum(range(1_000))) / 100
    assert facts.sums["ratio"] == sum(range(1_000)) / 8
    kinds = facts.values["kind"]
    assert kinds is not None and kinds[None] == len(range(0, 1_000, 7))
    assert sum(kinds.values()) == 1_000 and set(kinds) == {"a", "b", "c", None}
    assert facts.values["id"] is None  # 1,000 distinct values: not counted per value
    first, last = 1_704_067_200 * 10**9, (1_704_067_200 + 999) * 10**9
    assert facts.ranges["at"] == (first, last)
    assert facts.ranges["day"] == ("2024-01-01", "2024-02-09")
    assert readable("instant", facts.ranges["at"]) == ("2024-01-01 00:00:00.000000000",
                                                       "2024-01-01 00:16:39.000000000")


def test_integer_sums_do_not_overflow():
    big = 2**62
    data = pa.table({"n": pa.array([big, big, big], pa.int64())})
    assert facts_of(data, 3).sums["n"] == 3 * big


def test_server_text_is_read_back_to_the_compared_form():
    assert instant_ns("2024-01-02 03:04:05.1234567") == instant_ns(
        "2024-01-02 05:04:05.1234567 +02:00")
    assert instant_ns("1970-01-01 00:00:01.5") == 1_500_000_000
    assert from_table("clock", "00:00:01.0000001") == 1_000_000_100
    assert from_table("decimal", "12.50") == Decimal("12.5")
    assert from_table("uuid", "3C0FFEE0-0002-4000-8000-00000000A002") == \
        "3c0ffee0-0002-4000-8000-00000000a002"
    assert from_table("date", "2024-01-02") == "2024-01-02"
    assert readable("clock", 3_723_000_000_001) == "01:02:03.000000001"


def test_a_difference_says_column_what_expected_and_found():
    d = Difference("amount", "sum", Decimal("10.50"), Decimal("9.25"))
    assert d.describe() == "amount: sum: expected 10.50, found 9.25"
    assert d.to_dict() == {"column": "amount", "what": "sum", "expected": "10.50",
                           "found": "9.25"}
    assert Difference(None, "rows", 300, 299).describe() == "table: rows: expected 300, found 299"


def test_nanosecond_values_are_compared_as_the_table_stores_them():
    # the load rounds half-up to 100 ns (datetime2(7)); the source side must do the same
    data = pa.table({"at": pa.array([1_049, 1_050, -1_051, None], pa.timestamp("ns")),
                     "clock": pa.array([149, 150, 0, None], pa.time64("ns"))})
    facts = facts_of(data, 2, sample_rows=4)
    assert [row["at"] for _, row in facts.sample] == [1_000, 1_100, -1_100, None]
    assert [row["clock"] for _, row in facts.sample] == [100, 200, 0, None]
    assert facts.ranges["at"] == (-1_100, 1_100)


def test_unsigned_64_bit_values_come_back_as_integers():
    # decimal(20, 0) is read back as text; a uint64 compares as an int
    assert from_table("int", "18446744073709551615") == 2**64 - 1
    assert from_table("int", Decimal("7")) == 7 and from_table("int", 7) == 7


class _Recorder:
    """Records statements instead of running them: what :class:`TableFacts` binds."""

    def __init__(self) -> None:
        self.executed: list[tuple[str, list]] = []

    def cursor(self) -> _Recorder:
        return self

    def execute(self, sql: str, params: list | None = None) -> None:
        self.executed.append((sql, params or []))

    def fetchall(self) -> list:
        return []


def test_lookups_bind_exactly_and_stay_under_the_parameter_limit():
    kinds = {"id": "int", "price": "decimal", "day": "date", "x": "float", "name": "text"}
    conn = _Recorder()
    db = TableFacts(conn, TableName.parse("dbo.t"), kinds, {"price": 2})
    assert db.bind("price", Decimal("0.01")) == ("[price] = CAST(? AS decimal(38, 2))", ["0.01"])
    assert db.bind("id", 2**64 - 1) == ("[id] = CAST(? AS decimal(20, 0))",
                                        [str(2**64 - 1)])
    assert db.bind("id", 5) == ("[id] = ?", [5])
    assert db.bind("day", "2024-01-02") == ("[day] = CAST(? AS date)", ["2024-01-02"])
    assert db.bind("x", float("nan")) == ("1 = 1", [])
    assert db.bind("name", None) == ("[name] IS NULL", [])
    rows = [{"id": i, "price": Decimal(i), "day": "2024-01-01", "x": i / 3, "name": f"n{i}"}
            for i in range(3_000)]
    db.matching(rows, list(kinds), list(kinds))
    counts = [len(params) for _, params in conn.executed]
    assert sum(counts) == 3_000 * 5 and max(counts) <= MAX_PARAMETERS


def test_the_text_report_groups_a_flood_and_says_what_was_compared():
    many = tuple(Difference("amount", f"sample row (id={i})", i, i + 1) for i in range(50))
    text = _text(VerifyReport("dbo.t", 300, 400, 50, many))
    assert text.splitlines()[0] == "dbo.t: 300 source rows, 400 checks: 50 difference(s)"
    assert len(text.splitlines()) == 1 + 3 + 1
    assert "amount: sample row: and 47 more (--json lists them all)" in text
    partial = _text(VerifyReport("dbo.t", 300, 60, 10, ()))
    assert "matches the source" not in partial and "10 of 300 rows compared whole" in partial
    assert "matches the source" in _text(VerifyReport("dbo.t", 300, 310, 300, ()))


def test_text_lengths_are_counted_as_nvarchar_holds_them():
    # UTF-16 code units with trailing spaces: an emoji takes two, as DATALENGTH / 2 counts
    data = pa.table({"s": pa.array(["x ", "\N{GRINNING FACE}a", None, "", "é"])})
    assert facts_of(data, 2).lengths["s"] == 2 + 3 + 0 + 1
