"""Azure SQL's resource DMVs answered by the emulator, read through pyodbc and turbodbc.

``sys.dm_db_resource_stats`` (a row per interval), ``sys.dm_user_db_resource_governance``
(the log-rate cap) and ``sys.dm_db_wait_stats`` (LOG_RATE_GOVERNOR) reflect the throttle of
``POST /faults``; they need VIEW DATABASE STATE, which ``loader_app`` lacks (300 then 297).
Each test here has its own emulator process: a throttle must not slow other modules' tests.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from decimal import Decimal

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, inject_fault, odbc_string, token_struct, wait_until

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

INTERVAL = 0.2  # seconds between dm_db_resource_stats rows in these tests
RATE = 64 * 1024  # throttle, bytes per second
PAYLOAD = 16 * 1024  # request bytes per INSERT of the load (8,192 characters, UTF-16)
INSERTS = 16  # 256 KiB in all: at least 3 s of throttling after the 1 s burst


@pytest.fixture
def emu_dmv():
    from azsql_emulator.process import EmulatorProcess

    with EmulatorProcess() as emu:
        inject_fault(emu, kind="resource_stats", interval_seconds=INTERVAL)
        yield emu


def connect(emu, driver_path, app=None, **extra):
    """A pyodbc connection as ``app`` (a token), or as the SQL login (db_owner)."""
    if app is None:
        creds = emu.credentials
        return closing(pyodbc.connect(odbc_string(emu, driver_path, UID=creds.sql_login,
                                                  PWD=creds.sql_password, **extra),
                                      autocommit=True, timeout=30))
    token = emu.issue_token(appid=app.client_id)
    return closing(pyodbc.connect(
        odbc_string(emu, driver_path, **extra), autocommit=True, timeout=30,
        attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)}))


def latest_end_time(cur) -> dt.datetime:
    value = cur.execute("SELECT MAX(end_time) FROM sys.dm_db_resource_stats").fetchone()[0]
    return value or dt.datetime(2000, 1, 1)


def rows_after(cur, since: dt.datetime) -> list[tuple]:
    # a datetime parameter: pyodbc sends milliseconds (datetime is the first row the
    # emulator's sp_datatype_info_100 lists for SQL_TYPE_TIMESTAMP, as SQL Server's does)
    return [tuple(r) for r in cur.execute(
        "SELECT end_time, avg_cpu_percent, avg_data_io_percent, avg_log_write_percent, "
        "avg_memory_usage_percent FROM sys.dm_db_resource_stats WHERE end_time > ? "
        "ORDER BY end_time", since).fetchall()]


def governor(cur) -> tuple[int, int]:
    row = cur.execute("SELECT waiting_tasks_count, wait_time_ms FROM sys.dm_db_wait_stats "
                      "WHERE wait_type = N'LOG_RATE_GOVERNOR'").fetchone()
    return int(row[0]), int(row[1])


def cap(cur) -> tuple:
    return tuple(cur.execute(
        "SELECT primary_max_log_rate, slo_name, max_db_max_size_in_mb FROM "
        "sys.dm_user_db_resource_governance WHERE database_id = DB_ID()").fetchone())


def test_without_throttle_the_cap_and_log_percent_are_null(emu_dmv, driver_path):
    with connect(emu_dmv, driver_path) as conn:
        cur = conn.cursor()
        since = latest_end_time(cur)
        assert wait_until(lambda: len(rows_after(cur, since)) >= 2)
        rows = rows_after(cur, since)
        assert [r[3] for r in rows] == [None] * len(rows)
        for end_time, cpu, data_io, _, memory in rows:
            assert isinstance(end_time, dt.datetime)
            for value in (cpu, data_io, memory):
                assert isinstance(value, Decimal) and Decimal(0) <= value <= Decimal(100)
        assert cap(cur) == (None, "Emulator", 1_048_576)
        assert governor(cur) == (0, 0)


def test_throttle_shows_in_every_dmv(emu_dmv, driver_path):
    with connect(emu_dmv, driver_path) as conn, connect(emu_dmv, driver_path) as loader:
        cur = conn.cursor()
        cur.execute("CREATE TABLE dbo.dmv_load (id int NOT NULL, payload nvarchar(max))")
        before = governor(cur)
        inject_fault(emu_dmv, kind="throttle", bytes_per_second=RATE)
        assert cap(cur)[0] == RATE
        since = latest_end_time(cur)
        insert = loader.cursor()
        for i in range(INSERTS):
            # a literal, not a parameter: the request's size is the SQL text's (UTF-16)
            insert.execute(f"INSERT INTO dbo.dmv_load VALUES ({i}, N'{'x' * (PAYLOAD // 2)}')")
        rows = rows_after(cur, since)
        after = governor(cur)
        inject_fault(emu_dmv, kind="throttle", bytes_per_second=0)
        assert cap(cur)[0] is None

    log_percent = [r[3] for r in rows]
    assert log_percent and None not in log_percent  # the throttle was set for all of them
    assert all(Decimal(0) <= p <= Decimal(100) for p in log_percent)
    # 256 KiB at 64 KiB/s spread over several intervals; admitted at once, they would fill one
    assert sum(1 for p in log_percent if p > 0) >= 2, log_percent
    assert after[0] > before[0] and after[1] > before[1], (before, after)


def test_dmvs_through_turbodbc(emu_dmv, driver_path):
    turbodbc = pytest.importorskip("turbodbc")
    inject_fault(emu_dmv, kind="throttle", bytes_per_second=RATE)
    creds = emu_dmv.credentials
    conn = turbodbc.connect(
        connection_string=odbc_string(emu_dmv, driver_path, UID=creds.sql_login,
                                      PWD=creds.sql_password),
        turbodbc_options=turbodbc.make_options(autocommit=True))
    try:
        cur = conn.cursor()
        assert wait_until(lambda: cur.execute(
            "SELECT COUNT(*) FROM sys.dm_db_resource_stats "
            "WHERE avg_log_write_percent IS NOT NULL").fetchone()[0] >= 2)
        cur.execute("SELECT TOP 2 end_time, avg_log_write_percent FROM sys.dm_db_resource_stats "
                    "WHERE avg_log_write_percent IS NOT NULL ORDER BY end_time DESC")
        top = cur.fetchall()
        cur.execute("SELECT primary_max_log_rate, slo_name FROM "
                    "sys.dm_user_db_resource_governance WHERE database_id = DB_ID()")
        governance = cur.fetchall()
        cur.execute("SELECT wait_type, waiting_tasks_count FROM sys.dm_db_wait_stats")
        waits = cur.fetchallarrow()
    finally:
        conn.close()
    assert len(top) == 2 and top[0][0] > top[1][0]
    assert all(0 <= float(p) <= 100 for _, p in top)
    assert [tuple(r) for r in governance] == [(RATE, "Emulator")]
    assert "LOG_RATE_GOVERNOR" in waits.column("wait_type").to_pylist()


def test_loader_app_loads_but_may_not_view_database_state(emu_dmv, driver_path):
    loader = emu_dmv.credentials.loader_app
    assert loader.display_name == "azsql-bulk-loader" and loader.client_secret
    with connect(emu_dmv, driver_path, loader) as conn:
        cur = conn.cursor()
        cur.execute("CREATE SCHEMA scratch")
        cur.execute("CREATE TABLE scratch.t (id int NOT NULL PRIMARY KEY, v nvarchar(10))")
        cur.execute("INSERT INTO scratch.t VALUES (1, N'a'), (2, N'b')")
        assert cur.execute("SELECT COUNT(*) FROM scratch.t").fetchone()[0] == 2
        assert cur.execute("SELECT USER_NAME()").fetchone()[0] == "azsql-bulk-loader"
        for view in ("dm_db_resource_stats", "dm_user_db_resource_governance",
                     "dm_db_wait_stats"):
            with pytest.raises(pyodbc.Error) as info:
                cur.execute(f"SELECT * FROM sys.{view}").fetchall()
            text = str(info.value)  # pyodbc shows the first of the two errors
            assert info.value.args[0] == "42000" and "(300)" in text, text
            assert "VIEW DATABASE STATE permission denied on object 'appdb', database " \
                   "'appdb'." in text
        cur.execute("DROP TABLE scratch.t")
    with connect(emu_dmv, driver_path, emu_dmv.credentials.service_principal) as conn:
        assert conn.cursor().execute(
            "SELECT COUNT(*) FROM sys.dm_user_db_resource_governance").fetchone()[0] >= 1


def test_app_name_is_the_one_the_login_sent(emu_dmv, driver_path):
    with connect(emu_dmv, driver_path, APP="dmv-reporter") as conn:
        assert conn.cursor().execute("SELECT APP_NAME()").fetchone()[0] == "dmv-reporter"


def test_resource_stats_interval_must_be_positive(emu_dmv):
    import urllib.error

    for bad in (0, -1, "soon", None):
        with pytest.raises(urllib.error.HTTPError) as info:
            inject_fault(emu_dmv, kind="resource_stats", interval_seconds=bad)
        assert info.value.code == 400
        assert "interval_seconds" in info.value.read().decode()


def test_denied_dmv_sends_300_then_297(emu_tls_off):
    pytds = pytest.importorskip("pytds")
    creds = emu_tls_off.identity.credentials
    token = emu_tls_off.identity.issue_token(appid=creds.loader_app.client_id)
    with closing(pytds.connect(server=emu_tls_off.tds_host, port=emu_tls_off.tds_port,
                               database=emu_tls_off.database, autocommit=True,
                               access_token_callable=lambda: token)) as conn:
        cur = conn.cursor()
        with pytest.raises(pytds.OperationalError) as info:
            cur.execute("SELECT TOP 1 wait_type FROM sys.dm_db_wait_stats")
        received = [(e.msg_no, e.severity, str(e.args[0])) for _, e in cur.messages]
    assert info.value.msg_no == 297
    assert received == [
        (300, 14, "VIEW DATABASE STATE permission denied on object 'appdb', database 'appdb'."),
        (297, 16, "The user does not have permission to perform this action.")]
