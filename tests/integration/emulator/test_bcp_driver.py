"""Microsoft ODBC Driver 18's bulk copy API (bcp_initW ... bcp_done) against the emulator.

``bcp_probe.c`` is compiled here with gcc against unixODBC and drives the real driver
through the driver manager; what it sends (sp_describe_first_result_set, INSERT BULK,
BULK_LOAD messages) is stored by the emulator and read back by pyodbc, another client.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from support import HANG_SECONDS, inject_fault, odbc_string, read_temporals_as_text

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

PROBE_SOURCE = Path(__file__).with_name("bcp_probe.c")
EVERY_TYPE = ("id bigint NOT NULL PRIMARY KEY, i int, si smallint, ti tinyint, b bit, r real, "
              "f float, d decimal(18,2), d38 decimal(38,10), s nvarchar(20), sm nvarchar(max), "
              "vb varbinary(16), vbm varbinary(max), dt date, tm time(7), dt2 datetime2(7), "
              "dto datetimeoffset(7), u uniqueidentifier")
SM = "".join(chr(ord("a") + k % 26) for k in range(9000))
VBM = bytes(k % 251 for k in range(20000))
# (pyodbc reads uniqueidentifier as upper-case text)
EXPECTED = [
    (1, -2**31, -32768, 255, True, 1.5, -2.25e300, Decimal("1234567890123456.78"),
     Decimal("1234567890123456789012345678.0123456789"), "snow \u2603 \U0001d11e", SM,
     b"\x00\xff\x10", VBM, dt.date(2024, 2, 29), "23:59:59.999999900",
     "9999-12-31 23:59:59.999999900", "2024-06-01 12:34:56.123456700 +05:30",
     "01234567-89AB-CDEF-0123-456789ABCDEF"),
    (2, *([None] * 17)),
    (3, 0, 0, 0, False, -0.0, 0.0, Decimal("-0.01"), Decimal("0E-10"), "", "a", b"", b"\x00",
     dt.date(1, 1, 1), "00:00:00.000000000", "0001-01-01 00:00:00.000000000",
     "2000-01-01 00:00:00.000000100 -08:00", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"),
]


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("bcp") / "bcp_probe"
    subprocess.run(["gcc", "-Wall", "-Werror", "-O1", "-o", str(out), str(PROBE_SOURCE),
                    "-lodbc"], check=True, capture_output=True, text=True,
                   timeout=HANG_SECONDS)
    return out


@pytest.fixture(scope="module")
def conn_str(emu, driver_path) -> str:
    creds = emu.identity.credentials
    return odbc_string(emu, driver_path, UID=creds.sql_login, PWD=creds.sql_password)


@pytest.fixture
def reader(conn_str):
    conn = pyodbc.connect(conn_str, autocommit=True)
    read_temporals_as_text(conn)
    yield conn
    conn.close()


def run_probe(probe: Path, conn_str: str, table: str, mode: str,
              journal: str = "") -> tuple[int, str]:
    done = subprocess.run([str(probe), conn_str, table, mode, journal], capture_output=True,
                          text=True, timeout=HANG_SECONDS)
    return done.returncode, done.stdout + done.stderr


def new_table(reader, prefix: str, columns: str) -> str:
    name = f"dbo.{prefix}_{uuid.uuid4().hex[:8]}"
    reader.execute(f"CREATE TABLE {name} ({columns})")
    return name


def test_every_type_is_stored_exactly(emu, probe, conn_str, reader):
    table = new_table(reader, "bcp_all", EVERY_TYPE)
    before = emu.metrics()["bulk_loads"]
    code, out = run_probe(probe, conn_str, table, "all")
    assert code == 0, out
    assert "ROWS 1000" in out  # bcp_done: the rows of the last batch
    rows = [tuple(r) for r in reader.execute(
        f"SELECT * FROM {table} WHERE id < 100 ORDER BY id").fetchall()]
    assert [differences(got, want) for got, want in zip(rows, EXPECTED, strict=True)] == \
        [[], [], []]
    narrow = reader.execute(f"SELECT COUNT(*), MIN(id), MAX(id), SUM(CAST(i AS bigint)), "
                            f"COUNT(s), COUNT(d) FROM {table} WHERE id >= 100").fetchone()
    assert tuple(narrow) == (2000, 100, 2099, sum(range(2000)), 2000, 0)
    assert reader.execute(f"SELECT s FROM {table} WHERE id = 1099").fetchone()[0] == "row 999"
    assert emu.metrics()["bulk_loads"] - before == 3  # one message per bcp_batch/bcp_done


def differences(got: tuple, want: tuple) -> list[tuple[int, object, object]]:
    """(column, got, expected) where a row differs; long values shortened."""
    def short(v: object) -> object:
        return (v[:20], len(v)) if isinstance(v, str | bytes) and len(v) > 40 else v
    return [(k, short(g), short(w)) for k, (g, w) in enumerate(zip(got, want, strict=True))
            if g != w or type(g) is not type(w)]


def counts(reader, table: str, journal: str) -> tuple[int, int]:
    return (reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0],
            reader.execute(f"SELECT COUNT(*) FROM {journal}").fetchone()[0])


@pytest.mark.parametrize(("mode", "expected"), [("commit", (3, 1)), ("rollback", (0, 0))])
def test_bulk_copy_commits_and_rolls_back_with_the_transaction(probe, conn_str, reader,
                                                                mode, expected):
    table = new_table(reader, "bcp_tx", "id bigint NOT NULL PRIMARY KEY, s nvarchar(20)")
    journal = new_table(reader, "bcp_journal", "load_id varchar(20)")
    code, out = run_probe(probe, conn_str, table, mode, journal)
    assert code == 0, out
    assert counts(reader, table, journal) == expected
    if mode == "commit":
        rows = reader.execute(f"SELECT id, s FROM {table} ORDER BY id").fetchall()
        assert [tuple(r) for r in rows] == [(k, f"value {k}") for k in (1, 2, 3)]


def test_narrow_rows_are_decoded_column_wise(emu, probe, conn_str, reader):
    table = new_table(reader, "bcp_narrow", "id bigint NOT NULL PRIMARY KEY, s nvarchar(20)")
    before = emu.metrics()["bulk_columnar_rows"]
    code, out = run_probe(probe, conn_str, table, "plain")
    assert code == 0, out
    assert emu.metrics()["bulk_columnar_rows"] - before == 3
    rows = reader.execute(f"SELECT id, s FROM {table} ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(k, f"value {k}") for k in (1, 2, 3)]


def test_not_null_violation_fails_the_whole_batch(probe, conn_str, reader):
    table = new_table(reader, "bcp_null", "id bigint NOT NULL, s nvarchar(20)")
    code, out = run_probe(probe, conn_str, table, "nullfail")
    assert code == 2, out
    assert " 515 " in out and "'id'" in out, out
    assert reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0


def test_duplicate_key_fails_the_whole_batch(probe, conn_str, reader):
    table = new_table(reader, "bcp_dup", "id bigint NOT NULL PRIMARY KEY, s nvarchar(20)")
    reader.execute(f"INSERT INTO {table} VALUES (2, N'already here')")
    code, out = run_probe(probe, conn_str, table, "plain")
    assert code == 2, out
    assert " 2627 " in out, out
    rows = reader.execute(f"SELECT id, s FROM {table}").fetchall()
    assert [tuple(r) for r in rows] == [(2, "already here")]


def test_unknown_table_is_208_at_bcp_init(probe, conn_str):
    code, out = run_probe(probe, conn_str, "dbo.no_such_table_for_bcp", "plain")
    assert code == 2, out
    assert "FAILED bcp_initW" in out and " 208 " in out, out


def test_injected_error_fails_the_bulk_load(emu, probe, conn_str, reader):
    table = new_table(reader, "bcp_fault", "id bigint NOT NULL PRIMARY KEY, s nvarchar(20)")
    inject_fault(emu, kind="error", number=49918, after_rpc_calls=0, count=1)
    try:
        code, out = run_probe(probe, conn_str, table, "plain")
    finally:
        inject_fault(emu, kind="clear")
    assert code == 2, out
    assert " 49918 " in out, out
    assert reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
    code, out = run_probe(probe, conn_str, table, "plain")
    assert code == 0, out
    assert reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 3


def test_describe_first_result_set_as_a_batch(reader):
    table = new_table(reader, "describe", EVERY_TYPE)
    cur = reader.execute(f"EXEC sp_describe_first_result_set N'select * from {table}'")
    names = [d[0] for d in cur.description]
    assert names[:11] == ["is_hidden", "column_ordinal", "name", "is_nullable", "system_type_id",
                          "system_type_name", "max_length", "precision", "scale",
                          "collation_name", "user_type_id"]
    assert len(names) == 39 and names[-4:] == ["tds_type_id", "tds_length", "tds_collation_id",
                                               "tds_collation_sort_id"]
    got = {r.name: (r.column_ordinal, r.is_nullable, r.system_type_id, r.system_type_name,
                    r.max_length, r.precision, r.scale, r.collation_name)
           for r in cur.fetchall()}
    latin = "SQL_Latin1_General_CP1_CI_AS"
    assert got == {
        "id": (1, False, 127, "bigint", 8, 19, 0, None),
        "i": (2, True, 56, "int", 4, 10, 0, None),
        "si": (3, True, 52, "smallint", 2, 5, 0, None),
        "ti": (4, True, 48, "tinyint", 1, 3, 0, None),
        "b": (5, True, 104, "bit", 1, 1, 0, None),
        "r": (6, True, 59, "real", 4, 24, 0, None),
        "f": (7, True, 62, "float", 8, 53, 0, None),
        "d": (8, True, 106, "decimal(18,2)", 9, 18, 2, None),
        "d38": (9, True, 106, "decimal(38,10)", 17, 38, 10, None),
        "s": (10, True, 231, "nvarchar(20)", 40, 0, 0, latin),
        "sm": (11, True, 231, "nvarchar(max)", -1, 0, 0, latin),
        "vb": (12, True, 165, "varbinary(16)", 16, 0, 0, None),
        "vbm": (13, True, 165, "varbinary(max)", -1, 0, 0, None),
        "dt": (14, True, 40, "date", 3, 10, 0, None),
        "tm": (15, True, 41, "time(7)", 5, 16, 7, None),
        "dt2": (16, True, 42, "datetime2(7)", 8, 27, 7, None),
        "dto": (17, True, 43, "datetimeoffset(7)", 10, 34, 7, None),
        "u": (18, True, 36, "uniqueidentifier", 16, 0, 0, None),
    }


def test_describe_first_result_set_unknown_table_is_208(reader):
    with pytest.raises(pyodbc.ProgrammingError, match="208"):
        reader.execute("EXEC sp_describe_first_result_set N'select * from dbo.nowhere_x'")
