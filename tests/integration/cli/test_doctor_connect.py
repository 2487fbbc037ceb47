"""`azsql-bulk doctor` connectivity check against the emulator, as a real subprocess."""

from __future__ import annotations

import subprocess

import pytest
from integration.cli.cli_env import SCRIPT, clean_env, managed_identity_env

pytest.importorskip("turbodbc")
pytestmark = pytest.mark.integration



def where(emu) -> list[str]:
    return ["--server", f"{emu.tds_host},{emu.tds_port}", "--database", emu.database,
            "--encrypt", "strict", "--server-certificate", emu.server_cert,
            "--host-name-in-certificate", "localhost"]


def doctor(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, "doctor", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def line(output: str, name: str) -> str:
    return next(x for x in output.splitlines() if x[5:].startswith(name))


def test_doctor_logs_in_with_managed_identity_and_shows_the_principal(emu_proc):
    mi = emu_proc.credentials.managed_identity
    proc = doctor([*where(emu_proc), "--auth", "managed-identity", "--table", "dbo.not_yet"],
                  clean_env(**managed_identity_env(emu_proc)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    token = line(proc.stdout, "access token")
    assert token.startswith("OK") and f"appid {mi.client_id}" in token
    assert "https://database.windows.net" in token and "eyJ" not in proc.stdout
    login = line(proc.stdout, "login")
    assert login.startswith("OK") and f"as {mi.client_id}@{emu_proc.tenant_id}" in login
    assert f"database user {mi.display_name}" in login
    perms = line(proc.stdout, "permissions for dbo.not_yet")
    assert perms.startswith("OK") and "does not exist yet" in perms
    assert "CREATE TABLE on schema dbo" in perms
    bulk = line(proc.stdout, "bulk copy")
    assert bulk.startswith("OK") and "rolled back with its transaction" in bulk
    assert emu_proc.env["IDENTITY_HEADER"] not in proc.stdout + proc.stderr


def test_doctor_says_what_a_writer_without_ddl_lacks(emu_proc):
    writer = emu_proc.credentials.writer_app
    env = clean_env(SSL_CERT_FILE=emu_proc.ca_cert, REQUESTS_CA_BUNDLE=emu_proc.ca_cert,
                    AZURE_CLIENT_SECRET=writer.client_secret or "")
    proc = doctor([*where(emu_proc), "--auth", "service-principal", "--client-id",
                   writer.client_id, "--tenant-id", emu_proc.tenant_id, "--authority-host",
                   emu_proc.authority_host, "--table", "sales.new_orders"], env)
    assert proc.returncode == 1
    perms = line(proc.stdout, "permissions for sales.new_orders")
    assert perms.startswith("FAIL") and "missing: CREATE TABLE on schema sales" in perms
    assert f"ALTER ROLE db_ddladmin ADD MEMBER [{writer.display_name}]" in perms
    # without CREATE TABLE the probe cannot run: a warning, not a failure (loads still run)
    bulk = line(proc.stdout, "bulk copy")
    assert bulk.startswith("WARN") and "the probe could not run" in bulk
    assert "loads still run, with parameter arrays" in bulk
    assert proc.stdout.splitlines()[-1].endswith("1 failed")
    assert (writer.client_secret or "unset") not in proc.stdout + proc.stderr


def test_doctor_sql_login_on_an_existing_table(emu_proc, tmp_path):
    creds = emu_proc.credentials
    env = clean_env(AZSQL_BULK_SQL_PASSWORD=creds.sql_password)
    import pyodbc
    from support import odbc_string

    from engine.driver import find_driver

    with pyodbc.connect(odbc_string(emu_proc, str(find_driver().path), UID=creds.sql_login,
                                    PWD=creds.sql_password), autocommit=True) as conn:
        conn.execute("CREATE TABLE dbo.doctor_existing (id int NOT NULL, v nvarchar(10))")
    proc = doctor([*where(emu_proc), "--auth", "sql", "--sql-user", creds.sql_login,
                   "--table", "dbo.doctor_existing"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"as {creds.sql_login}" in line(proc.stdout, "login")
    perms = line(proc.stdout, "permissions for dbo.doctor_existing")
    assert "exists (2 columns)" in perms and "INSERT on [dbo].[doctor_existing]" in perms
    assert creds.sql_password not in proc.stdout + proc.stderr


def test_doctor_unreachable_server(emu_proc):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = doctor(["--server", f"127.0.0.1,{port}", "--database", "db", "--auth", "sql",
                   "--sql-user", "x"], clean_env())
    assert proc.returncode == 1
    net = line(proc.stdout, "network")
    assert net.startswith("FAIL") and f"cannot reach 127.0.0.1,{port}" in net
