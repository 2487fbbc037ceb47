"""Temporal values as text and DATEDIFF over datetimeoffset, through pyodbc and Microsoft's
driver, as SQL Server writes them."""

from __future__ import annotations

from contextlib import closing

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


@pytest.fixture
def conn(emu, driver_path):
    token = emu.identity.issue_token()
    with closing(pyodbc.connect(odbc_string(emu, driver_path), autocommit=True, timeout=15,
                                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})) as c:
        c.execute("CREATE TABLE dbo.temporal_text (d6 datetime2(6), d3 datetime2(3), "
                  "d0 datetime2(0), o6 datetimeoffset(6), o0 datetimeoffset(0), t7 time(7), "
                  "t0 time(0), dt date)")
        c.execute("INSERT INTO dbo.temporal_text VALUES ('0001-01-01 00:00:00.000001', "
                  "'2024-01-02 03:04:05.120', '9999-12-31 23:59:59', "
                  "'2024-01-02 03:04:05.123456 +05:30', '2024-01-02 03:04:05 -08:00', "
                  "'03:04:05.1000000', '23:59:59', '2024-01-02')")
        yield c
        c.execute("DROP TABLE dbo.temporal_text")


def test_cast_to_nvarchar_keeps_every_digit_of_the_scale_and_the_offset(conn):
    row = conn.execute("SELECT CAST(d6 AS nvarchar(40)), CAST(d3 AS nvarchar(40)), "
                       "CAST(d0 AS nvarchar(40)), CAST(o6 AS nvarchar(40)), "
                       "CONVERT(nvarchar(40), o0), CAST(t7 AS nvarchar(20)), "
                       "CONVERT(nvarchar(20), t0, 121), CAST(dt AS nvarchar(20)) "
                       "FROM dbo.temporal_text").fetchone()
    assert tuple(row) == ("0001-01-01 00:00:00.000001", "2024-01-02 03:04:05.120",
                          "9999-12-31 23:59:59", "2024-01-02 03:04:05.123456 +05:30",
                          "2024-01-02 03:04:05 -08:00", "03:04:05.1000000", "23:59:59",
                          "2024-01-02")


def test_datediff_over_datetimeoffset_counts_between_instants(conn):
    # o6 is 2024-01-01 21:34:05.123456 UTC, o0 2024-01-02 11:04:05 UTC
    row = conn.execute("SELECT DATEDIFF(second, o0, o6), DATEDIFF(minute, o6, o0), "
                       "DATEDIFF(day, d3, o6) FROM dbo.temporal_text").fetchone()
    assert tuple(row) == (-48_600, 810, -1)
