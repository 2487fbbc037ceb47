"""``airflow providers`` (the real CLI, in a child process) lists the provider and its fields."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("airflow")
pytestmark = pytest.mark.integration

AIRFLOW = Path(shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow")


def airflow_cli(home: Path, *args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    proc = subprocess.run([str(AIRFLOW), *args, "-o", "json"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found: list[dict] = json.loads(proc.stdout)
    return found


def test_providers_list_and_get_show_the_connection_type_and_fields(tmp_path):
    listed = airflow_cli(tmp_path, "providers", "list")
    assert any(p.get("package_name", p.get("Provider")) == "azsql-bulk" for p in listed), listed
    (info,) = airflow_cli(tmp_path, "providers", "get", "azsql-bulk", "--full")
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "azure_sql_bulk"
    assert conn_type["hook-class-name"] == "airflow_integration.hooks.AzureSqlBulkHook"
    assert {"auth", "tenant_id", "client_id", "encrypt", "azure_conn_id"} <= set(
        conn_type["conn-fields"])
    assert conn_type["ui-field-behaviour"]["relabeling"]["host"] == "Server"


def test_connections_test_shows_the_server_database_and_principal(emu_proc, tmp_path):
    """``airflow connections test`` itself prints only "Connection success!" and silences
    logging unless given ``--verbose``; with it, the hook's logged message (server,
    database, principal) is in the output."""
    from integration.airflow.airflow_env import AZURE_VARS, conn_json, identity_env

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW") and k not in AZURE_VARS}
    env.update(identity_env(emu_proc))
    env.update({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW_CONN_AZSQL_SP": conn_json(emu_proc, "service_principal")})
    app = emu_proc.credentials.service_principal
    message = (f"Connected to {emu_proc.tds_host},{emu_proc.tds_port}/{emu_proc.database} as "
               f"{app.client_id}@{emu_proc.tenant_id} (service-principal)")
    outputs = {}
    for flags in ((), ("--verbose",)):
        proc = subprocess.run([str(AIRFLOW), "connections", "test", "azsql_sp", *flags],
                              env=env, capture_output=True, text=True, timeout=180)
        outputs[flags] = proc.stdout + proc.stderr
        assert proc.returncode == 0, outputs[flags][-3000:]
        assert "Connection success!" in outputs[flags]
        assert app.client_secret not in outputs[flags]
    assert message in outputs[("--verbose",)], outputs[("--verbose",)]
    assert "Connected to" not in outputs[()]  # what the README says: Airflow drops it
