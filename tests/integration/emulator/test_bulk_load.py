"""TDS bulk load (INSERT BULK + packet type 0x07) from python-tds and mssql-python."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

pytestmark = pytest.mark.integration

ROWS = [
    (1, "one", Decimal("1.50"), dt.datetime(2024, 2, 29, 23, 59, 59, 123000)),
    (2, "two ☃ 𝄞", None, None),
    (3, None, Decimal("-99999999.99"), dt.datetime(1, 1, 1)),
    (4, "", Decimal("0.01"), dt.datetime(9999, 12, 31, 23, 59, 59)),
]


def _create(cur, name):
    cur.execute(f"CREATE TABLE dbo.{name} (a int NOT NULL, s nvarchar(20), d decimal(10,2), "
                "t datetime2(3))")


def test_mssql_python_bulkcopy_is_exact(emu_proc):
    mssql_python = pytest.importorskip("mssql_python")
    creds = emu_proc.credentials
    conn = mssql_python.connect(
        f"Server=tcp:{emu_proc.tds_host},{emu_proc.tds_port};Database={emu_proc.database};"
        f"UID={creds.sql_login};PWD={{{creds.sql_password}}};Encrypt=strict;"
        f"ServerCertificate={emu_proc.server_cert}", autocommit=True)
    try:
        cur = conn.cursor()
        _create(cur, "bulk_mssql")
        result = cur.bulkcopy("dbo.bulk_mssql", ROWS)
        assert result["rows_copied"] == len(ROWS)
        cur.execute("SELECT a, s, d, t FROM dbo.bulk_mssql ORDER BY a")
        back = [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()
    assert back == ROWS


def test_python_tds_copy_to_is_exact(emu_proc):
    pytds = pytest.importorskip("pytds")
    creds = emu_proc.credentials
    conn = pytds.connect(server=emu_proc.tds_host, port=emu_proc.tds_port,
                         database=emu_proc.database, user=creds.sql_login,
                         password=creds.sql_password, autocommit=True,
                         cafile=emu_proc.ca_cert, validate_host=False)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.bulk_pytds (a int NOT NULL, s nvarchar(20))")
        source = io.StringIO("".join(f"{a}\t{s}\n" for a, s, *_ in ROWS if s))
        cur.copy_to(source, "bulk_pytds", schema="dbo", sep="\t")
        cur.execute("SELECT a, s FROM dbo.bulk_pytds ORDER BY a")
        back = [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()
    assert back == [(a, s) for a, s, *_ in ROWS if s]


def test_bulk_load_with_a_bad_row_applies_nothing(emu_proc):
    mssql_python = pytest.importorskip("mssql_python")
    creds = emu_proc.credentials
    conn = mssql_python.connect(
        f"Server=tcp:{emu_proc.tds_host},{emu_proc.tds_port};Database={emu_proc.database};"
        f"UID={creds.sql_login};PWD={{{creds.sql_password}}};Encrypt=yes;"
        "TrustServerCertificate=yes", autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.bulk_bad (a int PRIMARY KEY, s nvarchar(10))")
        with pytest.raises(RuntimeError) as info:  # mssql-python's native layer raises this
            cur.bulkcopy("dbo.bulk_bad", [(1, "ok"), (2, "fine"), (1, "duplicate")])
        assert "2627" in str(info.value)
        cur.execute("SELECT COUNT(*) FROM dbo.bulk_bad")
        assert cur.fetchone()[0] == 0
    finally:
        conn.close()
