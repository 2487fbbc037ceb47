"""Provider metadata: the azure_sql_bulk connection type, its form fields, no UI imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_integration.provider_info import get_provider_info

airflow = pytest.importorskip("airflow")


def connection_type() -> dict:
    (conn_type,) = get_provider_info()["connection-types"]
    return conn_type


def test_provider_info_matches_airflow_runtime_schema():
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == "azsql-bulk"  # must equal the distribution's name


def test_connection_type_declares_fields_and_behaviour():
    conn_type = connection_type()
    assert conn_type["connection-type"] == "azure_sql_bulk"
    assert conn_type["hook-class-name"] == "airflow_integration.hooks.AzureSqlBulkHook"
    fields = conn_type["conn-fields"]
    assert {"auth", "managed_identity_client_id", "tenant_id", "client_id", "certificate_path",
            "encrypt", "server_certificate", "azure_conn_id"} <= set(fields)
    assert fields["auth"]["schema"]["enum"] == ["managed_identity", "workload_identity",
                                               "service_principal", "azure_cli", "default"]
    for name, field in fields.items():
        assert field["label"] and "type" in field["schema"], name
        # secrets live in the password field (secrets backends), never in a form extra
        assert field["schema"].get("format") != "password", name
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["relabeling"]["host"] == "Server"
    assert behaviour["relabeling"]["schema"] == "Database"
    assert "password" not in behaviour["hidden-fields"]


def test_the_auth_choices_are_the_ones_the_hook_accepts():
    from airflow_integration.connection_fields import AUTH_KINDS

    assert list(AUTH_KINDS) == connection_type()["conn-fields"]["auth"]["schema"]["enum"]


def test_providers_manager_finds_the_type_without_flask_or_wtforms():
    """In a fresh interpreter: the entry point is registered and nothing pulls in UI code."""
    code = """
import json, sys, warnings
warnings.simplefilter("ignore")
import airflow_integration.hooks, airflow_integration.operators
ui_after_import = sorted(m for m in ("flask", "wtforms", "flask_appbuilder") if m in sys.modules)
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
hook = pm.hooks.get("azure_sql_bulk")
print(json.dumps({
    "provider": "azsql-bulk" in pm.providers,
    "hook": hook.hook_class_name if hook else None,
    "behaviour": pm.field_behaviours.get("azure_sql_bulk"),
    "widgets": sorted(k for k in pm.connection_form_widgets if "azure_sql_bulk" in k),
    "ui_modules": ui_after_import,
}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["provider"] and found["hook"] == "airflow_integration.hooks.AzureSqlBulkHook"
    assert found["behaviour"]["relabeling"]["schema"] == "Database"
    assert "extra__azure_sql_bulk__auth" in found["widgets"]
    assert len(found["widgets"]) == len(connection_type()["conn-fields"])
    assert found["ui_modules"] == []
