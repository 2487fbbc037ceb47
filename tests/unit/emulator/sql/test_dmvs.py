"""The resource DMVs in the SQL engine: figures from ResourceStats, VIEW DATABASE STATE."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from azsql_emulator.faults import FaultPlan
from azsql_emulator.identity.clients import load_or_create_default_credentials
from azsql_emulator.identity.principals import PrincipalDirectory
from azsql_emulator.resource_stats import KEEP_ROWS, ResourceStats
from azsql_emulator.sql import SessionUser
from azsql_emulator.sql.results import VIEW_DATABASE_STATE


@pytest.fixture
def stats(engine):
    faults = FaultPlan()
    source = ResourceStats(faults, interval=15.0)
    engine.dmv_source = source
    yield faults, source
    engine.dmv_source = None


def _session(engine, *roles: str, app_name: str = ""):
    return engine.open_session("appdb", SessionUser("u", "u@t", frozenset(roles), 60, app_name))


def test_log_write_percent_is_admitted_bytes_over_the_cap(engine, stats) -> None:
    faults, source = stats
    source.sample()  # no throttle: NULL
    faults.configure({"kind": "throttle", "bytes_per_second": 1_000_000})
    source.sample()  # starts a fresh interval
    faults.admit(10)  # well under the cap for any interval length
    last = source.sample()
    s = _session(engine, "db_owner")
    rows = s.execute("SELECT avg_log_write_percent FROM sys.dm_db_resource_stats "
                     "ORDER BY end_time")[0].rows
    assert len(rows) == 3 and rows[0] == (None,)
    assert rows[2][0] == last[3] and Decimal("0") < last[3] < Decimal("100")
    cap = s.execute("SELECT primary_max_log_rate, slo_name FROM "
                    "sys.dm_user_db_resource_governance WHERE database_id = DB_ID()")[0].rows
    assert cap == [(1_000_000, "Emulator")]


def test_the_percentage_is_capped_at_100(stats) -> None:
    faults, source = stats
    faults.configure({"kind": "throttle", "bytes_per_second": 1})
    source.sample()
    faults.admit(1)  # a 1 s burst passes without waiting
    faults.admitted_bytes += 10**9  # as if a huge request had been admitted
    assert source.sample()[3] == Decimal("100.00")


def test_only_the_last_rows_are_kept(stats) -> None:
    _, source = stats
    for _ in range(KEEP_ROWS + 5):
        source.sample()
    assert len(source.resource_stats()) == KEEP_ROWS


def test_wait_stats_count_the_throttles_waits(engine, stats) -> None:
    faults, _ = stats
    s = _session(engine, "db_owner")
    query = ("SELECT waiting_tasks_count, wait_time_ms FROM sys.dm_db_wait_stats "
             "WHERE wait_type = N'LOG_RATE_GOVERNOR'")
    assert s.execute(query)[0].rows == [(0, 0)]
    faults.configure({"kind": "throttle", "bytes_per_second": 1_000_000})
    faults.admit(1_050_000)  # 50 ms over the 1 s burst: one wait
    count, waited = s.execute(query)[0].rows[0]
    assert count == 1 and waited >= 49


@pytest.mark.parametrize("view", ["dm_db_resource_stats", "dm_user_db_resource_governance",
                                  "dm_db_wait_stats"])
def test_without_view_database_state_300_then_297(engine, stats, view) -> None:
    s = _session(engine, "db_datareader", "db_datawriter", "db_ddladmin")
    err = s.execute(f"SELECT * FROM sys.{view}")[0].error
    assert (err.number, err.severity, err.message) == (
        300, 14, "VIEW DATABASE STATE permission denied on object 'appdb', database 'appdb'.")
    assert [(e.number, e.severity, e.message) for e in err.also] == [
        (297, 16, "The user does not have permission to perform this action.")]
    granted = _session(engine, "db_datareader", VIEW_DATABASE_STATE)
    assert granted.execute(f"SELECT COUNT(*) FROM sys.{view}")[0].error is None


def test_without_a_source_the_views_are_empty(engine) -> None:
    s = _session(engine, "db_owner")
    assert s.execute("SELECT COUNT(*) FROM sys.dm_db_resource_stats")[0].rows == [(0,)]
    assert s.execute("SELECT primary_max_log_rate FROM sys.dm_user_db_resource_governance "
                     "WHERE database_id = DB_ID()")[0].rows == [(None,)]


def test_app_name_is_the_sessions(engine) -> None:
    s = _session(engine, "db_owner", app_name="nightly-load")
    assert s.execute("SELECT APP_NAME()")[0].rows == [("nightly-load",)]


def test_principals_file_may_grant_view_database_state(tmp_path) -> None:
    creds = load_or_create_default_credentials(tmp_path)
    data = {"principals": [{"id": creds.no_user_app.client_id, "name": "monitor", "kind": "app",
                            "databases": {"appdb": ["db_datareader", VIEW_DATABASE_STATE]}}]}
    path = tmp_path / "principals.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    directory = PrincipalDirectory.from_file(path, tenant_id=creds.tenant_id)
    entry = next(e for e in directory.entries if e.name == "monitor")
    assert entry.databases["appdb"] == frozenset({"db_datareader", VIEW_DATABASE_STATE})


def test_loader_app_has_ddl_but_not_view_database_state(tmp_path) -> None:
    creds = load_or_create_default_credentials(tmp_path)
    directory = PrincipalDirectory.defaults(creds)
    entry = next(e for e in directory.entries if e.identity == creds.loader_app.client_id.lower())
    assert entry.name == "azsql-bulk-loader"
    assert entry.databases["appdb"] == frozenset({"db_datareader", "db_datawriter",
                                                  "db_ddladmin"})
    saved = json.loads((tmp_path / "credentials.json").read_text(encoding="utf-8"))
    assert saved["secrets"]["loader_app"] == creds.loader_app.client_secret
