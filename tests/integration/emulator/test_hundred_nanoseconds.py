"""datetime2(7), time(7) and datetimeoffset(7) keep 100 ns through Microsoft's driver.

Python's datetime stops at microseconds, so the values go in as text (the server converts,
as SQL Server does) and come back through output converters that read the driver's
SQL_TIMESTAMP_STRUCT / SQL_SS_TIME2_STRUCT / SQL_SS_TIMESTAMPOFFSET_STRUCT, whose
fraction is in nanoseconds. Expected values are computed here with integers, not with
the emulator's code.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, read_temporals_as_text, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

N = 5_000


def connect(emu, driver):
    conn = pyodbc.connect(
        odbc_string(emu, driver),
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(emu.issue_token())},
        timeout=30, autocommit=True)
    read_temporals_as_text(conn)
    return closing(conn)


def row(i: int) -> tuple:
    """Row i: every 100 ns digit, the days at both ends of the range, a tie for the
    datetime2(3) column (rounded half-up there)."""
    year = (1, 9999, 1969, 2024)[i % 4]
    month, day = (1 + i % 12, 1 + i % 28) if year not in (1, 9999) else \
        ((1, 1) if year == 1 else (12, 31))
    frac = (i * 7_919_993) % 10_000_000
    if i % 97 == 0:
        frac = 9_999_999
    if i % 89 == 0:
        frac = 5_000  # .0005000: the tie datetime2(3) rounds up
    h, mi, s = (23, 59, 59) if frac == 9_999_999 else (i % 24, i % 60, (i * 7) % 60)
    stamp = f"{year:04d}-{month:02d}-{day:02d} {h:02d}:{mi:02d}:{s:02d}.{frac:07d}"
    offset = ("+05:30", "-08:00", "+00:00", "+14:00")[i % 4] if year not in (1, 9999) \
        else "+00:00"
    # datetime2(3) of 9999-12-31 23:59:59.9999999 would round past the last day (242)
    last = year == 9999 and frac >= 9_995_000 and (h, mi, s) == (23, 59, 59)
    return i, stamp, stamp[11:], f"{stamp} {offset}", None if last else stamp


def rounded_ms(stamp: str | None) -> str | None:
    """datetime2(3): the 7-digit fraction rounded half-up to milliseconds, carrying."""
    if stamp is None:
        return None
    head, frac = stamp.split(".")
    whole = dt.datetime.strptime(head, "%Y-%m-%d %H:%M:%S")
    at = whole + dt.timedelta(milliseconds=(int(frac) + 5_000) // 10_000)
    return (f"{at.year:04d}-{at.month:02d}-{at.day:02d} {at.hour:02d}:{at.minute:02d}:"
            f"{at.second:02d}.{at.microsecond // 1000:03d}000000")


def test_hundred_nanoseconds_round_trip_exactly(emu_proc, driver_path):
    rows = [row(i) for i in range(N)]
    with connect(emu_proc, driver_path) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.hns (k int PRIMARY KEY, d7 datetime2(7), t7 time(7), "
                    "o7 datetimeoffset(7), d3 datetime2(3))")
        cur.fast_executemany = True
        # pyodbc sizes a text parameter by the described type: datetime2(3) takes 23
        # characters, so the 7-digit text for d3 goes as nvarchar and the server rounds it
        cur.executemany("INSERT INTO dbo.hns VALUES (?, ?, ?, ?, CAST(? AS nvarchar(27)))",
                        rows)
        back = cur.execute("SELECT k, d7, t7, o7, d3, CONVERT(nvarchar(27), d7, 121), "
                           "CAST(t7 AS nvarchar(16)) FROM dbo.hns ORDER BY k").fetchall()
    assert len(back) == N
    for (k, stamp, clock, aware, ms_source), got in zip(rows, back, strict=True):
        assert got[0] == k
        assert got[1] == stamp + "00", k  # nanoseconds: the 100 ns digit then two zeros
        assert got[2] == clock + "00", k
        assert got[3] == aware.replace(stamp, stamp + "00"), k
        assert got[4] == rounded_ms(ms_source), k
        assert (got[5], got[6]) == (stamp, clock), k


def test_comparisons_and_copies_see_the_100ns_digit(emu_proc, driver_path):
    with connect(emu_proc, driver_path) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.hns_a (k int, d7 datetime2(7), t7 time(7))")
        cur.execute("CREATE TABLE dbo.hns_b (k int, d7 datetime2(7) PRIMARY KEY, t7 time(7))")
        cur.execute("INSERT INTO dbo.hns_a VALUES (1, '2024-05-06 07:08:09.1234567', "
                    "'07:08:09.1234567'), (2, '2024-05-06 07:08:09.1234568', "
                    "'07:08:09.1234568')")
        # values one 100 ns apart are different keys, sort apart and join apart
        cur.execute("INSERT INTO dbo.hns_b SELECT k, d7, t7 FROM dbo.hns_a")
        assert cur.execute("SELECT COUNT(*) FROM dbo.hns_a a JOIN dbo.hns_b b "
                           "ON a.d7 = b.d7 AND a.t7 = b.t7").fetchone()[0] == 2
        assert cur.execute("SELECT COUNT(*) FROM dbo.hns_a a JOIN dbo.hns_b b "
                           "ON a.d7 = b.d7 AND a.k <> b.k").fetchone()[0] == 0
        assert [r[0] for r in cur.execute("SELECT k FROM dbo.hns_b ORDER BY d7 DESC")] == [2, 1]
        assert cur.execute("SELECT MAX(d7) FROM dbo.hns_b").fetchone()[0] == \
            "2024-05-06 07:08:09.123456800"
        with pytest.raises(pyodbc.IntegrityError) as err:
            cur.execute("INSERT INTO dbo.hns_b VALUES (3, '2024-05-06 07:08:09.1234568', NULL)")
        assert "2627" in str(err.value) and "2024-05-06 07:08:09.1234568" in str(err.value)
        # an UPDATE from another table carries the digit too
        cur.execute("UPDATE b SET t7 = a.t7 FROM dbo.hns_b b JOIN dbo.hns_a a ON a.k = b.k + 1")
        got = cur.execute("SELECT k, d7, t7 FROM dbo.hns_b ORDER BY k").fetchall()
    assert [tuple(r) for r in got] == [
        (1, "2024-05-06 07:08:09.123456700", "07:08:09.123456800"),
        (2, "2024-05-06 07:08:09.123456800", "07:08:09.123456800")]
