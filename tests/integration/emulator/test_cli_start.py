"""``azsql-bulk emulator start``: the JSON facts line, SIGTERM, and state that persists."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest
from support import SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

FACT_KEYS = {"tds_host", "tds_port", "ca_cert", "server_cert", "control_url", "tenant_id",
             "database", "env"}
CONSOLE_SCRIPT = Path(sys.executable).with_name("azsql-bulk")


class Facts:
    """The first stdout line, with attributes as odbc_string() expects them."""

    def __init__(self, info: dict) -> None:
        self.__dict__.update(info)


def start(args: list[str]) -> tuple[subprocess.Popen, dict]:
    if CONSOLE_SCRIPT.exists():
        cmd = [str(CONSOLE_SCRIPT), "emulator", "start", *args]
    else:
        cmd = [sys.executable, "-m", "azsql_emulator", "start", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(120)  # bounds for a hang only
        pytest.fail(f"emulator exited with {proc.returncode}: {proc.stderr.read()}")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def mint_token(info: dict) -> str:
    req = urllib.request.Request(info["control_url"] + "/token", data=b"{}",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["access_token"]


def get_json(info: dict, path: str):
    with urllib.request.urlopen(info["control_url"] + path, timeout=30) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        return json.loads(resp.read())


def connect(info: dict, driver: str):
    token = mint_token(info)
    return closing(pyodbc.connect(odbc_string(Facts(info), driver), autocommit=True, timeout=15,
                                  attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)}))


def test_start_prints_facts_and_stops_on_sigterm(driver_path):
    proc, info = start(["--port", "0", "--database", "clidb"])
    try:
        assert FACT_KEYS <= set(info)
        assert info["database"] == "clidb" and info["tds_host"] == "127.0.0.1"
        assert isinstance(info["tds_port"], int) and info["tds_port"] > 0
        assert Path(info["ca_cert"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert Path(info["server_cert"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        # by default only the managed identity's variables: no secret, no SSL_CERT_FILE
        assert {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"} <= set(info["env"])
        assert not {"AZURE_CLIENT_SECRET", "AZURE_CLIENT_ID", "SSL_CERT_FILE"} & set(info["env"])
        with connect(info, driver_path) as conn:
            assert conn.cursor().execute("SELECT DB_NAME()").fetchone()[0] == "clidb"
    finally:
        code = stop(proc)
    assert code == 0


def test_python_dash_m_is_the_same_command():
    proc = subprocess.Popen([sys.executable, "-m", "azsql_emulator", "start", "--tls", "off"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert FACT_KEYS <= set(info)
    finally:
        code = stop(proc)
    assert code == 0


def test_bad_option_exits_nonzero():
    result = subprocess.run([sys.executable, "-m", "azsql_emulator", "start", "--tls", "sideways"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--tls" in result.stderr


def test_state_dir_persists_tables_across_restarts(tmp_path, driver_path):
    state = tmp_path / "state"
    proc, info = start(["--state-dir", str(state)])
    try:
        with connect(info, driver_path) as conn:
            cur = conn.cursor()
            cur.execute("CREATE TABLE dbo.kept (id int NOT NULL PRIMARY KEY, note nvarchar(20))")
            cur.execute("INSERT INTO dbo.kept VALUES (1, N'before'), (2, N'restart ☃')")
    finally:
        assert stop(proc) == 0
    proc, again = start(["--state-dir", str(state)])
    try:
        assert again["ca_cert"] == info["ca_cert"]  # clients that trust it keep working
        with connect(again, driver_path) as conn:
            rows = conn.cursor().execute("SELECT id, note FROM dbo.kept ORDER BY id").fetchall()
            assert [tuple(r) for r in rows] == [(1, "before"), (2, "restart ☃")]
            tables = conn.cursor().execute(
                "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'kept'"
            ).fetchall()
            assert len(tables) == 1
    finally:
        assert stop(proc) == 0


def test_control_api_over_http(driver_path):
    proc, info = start([])
    try:
        with connect(info, driver_path) as conn:
            cur = conn.cursor()
            cur.execute("CREATE TABLE dbo.counted (id int)")
            cur.execute("INSERT INTO dbo.counted VALUES (1), (2), (3)")
            sessions = get_json(info, "/sessions")
            spid = cur.execute("SELECT @@SPID").fetchone()[0]
            metrics = get_json(info, "/metrics")
        assert {"logins_ok", "logins_failed", "distinct_tokens", "sessions", "rows_inserted",
                "bytes_received", "rpc_calls", "commits", "rollbacks"} <= set(metrics)
        assert metrics["logins_ok"] >= 1 and metrics["distinct_tokens"] >= 1
        assert metrics["sessions"] >= 1 and metrics["bytes_received"] > 0
        assert metrics["rpc_calls"] >= 1  # pyodbc's sp_datatype_info_100 calls at connect
        assert sum(v for k, v in metrics["rows_inserted"].items() if "counted" in k) == 3
        assert isinstance(metrics["logins_failed"], dict)
        assert isinstance(sessions, list)
        assert spid in {s["spid"] for s in sessions}
        mine = next(s for s in sessions if s["spid"] == spid)
        assert mine["database"] == info["database"] and mine["encryption"] == "strict"
    finally:
        assert stop(proc) == 0


# Variables that would give the azsql-bulk child an identity or a CA the test did not choose.
_IDENTITY_VARS = ("AZURE_", "AZSQL_BULK_", "IDENTITY_", "MSI_", "REQUESTS_CA_BUNDLE",
                  "SSL_CERT_FILE", "CURL_CA_BUNDLE")
_EXPECTED_APP = {"managed-identity": "managed_identity", "service-principal": "service_principal",
                 "certificate": "certificate_app", "workload-identity": "workload_app"}


@pytest.mark.parametrize("kind", list(_EXPECTED_APP))
def test_env_of_each_identity_logs_in_without_ssl_cert_file(tmp_path, kind):
    """A real login by ``azsql-bulk doctor`` from nothing but ``--env-identity KIND``'s env:
    the token through azure-identity (trusting the emulator via REQUESTS_CA_BUNDLE only) and
    the driver (trusting the server certificate via AZSQL_BULK_SERVER_CERTIFICATE)."""
    from azsql_emulator.identity.clients import load_or_create_default_credentials

    state = tmp_path / "state"
    proc, info = start(["--state-dir", str(state), "--env-identity", kind])
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_IDENTITY_VARS)}
        env.update(info["env"], AZSQL_BULK_SERVER=f"{info['tds_host']},{info['tds_port']}",
                   AZSQL_BULK_DATABASE=info["database"])
        doctor = subprocess.run([str(CONSOLE_SCRIPT), "doctor"], env=env, capture_output=True,
                                text=True, timeout=300, check=False)
    finally:
        assert stop(proc) == 0
    app = getattr(load_or_create_default_credentials(state), _EXPECTED_APP[kind])
    login = next((x for x in doctor.stdout.splitlines() if x[5:].startswith("login")), "")
    assert login.startswith("OK") and f"database user {app.display_name}" in login, \
        doctor.stdout + doctor.stderr
    assert "SSL_CERT_FILE" not in info["env"]
    assert ("AZURE_CLIENT_SECRET" in info["env"]) == (kind == "service-principal")
    for secret in (app.client_secret, info["env"].get("IDENTITY_HEADER")):
        if secret:
            assert secret not in doctor.stdout + doctor.stderr


def test_env_identity_all_keeps_every_test_identity():
    proc, info = start(["--env-identity", "all", "--tls", "off"])
    try:
        assert {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"} <= set(info["env"])
    finally:
        assert stop(proc) == 0
