"""Secrets stay out of everything a user or a log collector sees; encryption is on by default.

Known secret values (the SQL login's password, a service principal's client secret, an
access token) are used for real loads, successful and failing, through the Python API and
the CLI; the captured logs (DEBUG), exception texts and reprs, results and ``--json``
output are then scanned for the actual values and for anything shaped like a JWT.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loads import AZURE_VARS, CA_VARS, check_exact, connection_options, rows_table

from engine.connection import ConnectionOptions
from engine.credentials import CredentialOptions
from engine.errors import AzsqlBulkError
from engine.options import Target, TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = [pytest.mark.integration, pytest.mark.reliability]

CLI = str(Path(sys.executable).with_name("azsql-bulk"))
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
KINDS = ("sql", "service-principal", "access-token")


def identity(kind: str, emu) -> tuple[CredentialOptions, dict[str, str], str, list[str]]:
    """``(credential, environment, the secret, CLI arguments)`` for one way of logging in."""
    creds = emu.credentials
    if kind == "sql":
        return (CredentialOptions(kind="sql", sql_user=creds.sql_login),
                {"AZSQL_BULK_SQL_PASSWORD": creds.sql_password}, creds.sql_password,
                ["--auth", "sql", "--sql-user", creds.sql_login])
    if kind == "service-principal":
        app = creds.service_principal
        env = {**emu.env, "AZURE_CLIENT_ID": app.client_id,
               "AZURE_CLIENT_SECRET": app.client_secret}
        env.pop("IDENTITY_ENDPOINT", None)
        env.pop("IDENTITY_HEADER", None)
        return (CredentialOptions(kind="service-principal", client_id=app.client_id,
                                  tenant_id=emu.tenant_id, authority_host=emu.authority_host,
                                  disable_instance_discovery=True),
                env, app.client_secret,
                ["--auth", "service-principal", "--client-id", app.client_id,
                 "--tenant-id", emu.tenant_id, "--authority-host", emu.authority_host])
    token = emu.issue_token(lifetime=900)
    return (CredentialOptions(kind="access-token"), {"AZSQL_BULK_ACCESS_TOKEN": token}, token,
            ["--auth", "access-token"])


def texts_of(error: BaseException) -> list[str]:
    """str and repr of an error and of everything it chains to."""
    seen, out, todo = set(), [], [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out += [str(e), repr(e), repr(getattr(e, "__dict__", {}))]
        todo += [e.__cause__, e.__context__, getattr(e, "error", None)]
    return out


def assert_clean(texts: list[str], secret: str) -> None:
    assert texts and all(isinstance(t, str) for t in texts)
    for text in texts:
        assert secret not in text, f"the secret appears in: {text[:300]}"
        assert not JWT.search(text), f"a token appears in: {text[:300]}"


@pytest.mark.parametrize("kind", KINDS)
def test_no_secret_in_logs_errors_reprs_or_results(kind, emu_proc, reader, monkeypatch,
                                                   caplog):
    credential, env, secret, _ = identity(kind, emu_proc)
    for name in (*CA_VARS, *AZURE_VARS, "AZSQL_BULK_SQL_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {**emu_proc.env, **env}.items() if kind != "sql" else env.items():
        monkeypatch.setenv(name, value)
    if kind == "service-principal":
        for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
            monkeypatch.delenv(name, raising=False)
    caplog.set_level(logging.DEBUG)
    options = connection_options(emu_proc, credential)
    target = Target(options, f"dbo.sec_{uuid.uuid4().hex[:8]}")
    result = transfer(rows_table(3_000), target, TransferOptions(workers=2),
                      source_options=SourceOptions(rows_per_batch=500))
    check_exact(reader, target.table, 3_000)
    texts = [repr(credential), repr(options), repr(target), repr(result),
             json.dumps(result.to_dict())]
    # failures: a missing table with create='never', a NOT NULL violation mid-load
    with pytest.raises(AzsqlBulkError) as missing:
        transfer(rows_table(10), Target(options, f"dbo.sec_absent_{uuid.uuid4().hex[:6]}"),
                 TransferOptions(create="never"))
    reader.execute(f"CREATE TABLE dbo.sec_nn_{target.table.name} (id bigint NOT NULL, "
                   "amount float NOT NULL, name nvarchar(20) NULL)")
    broken = rows_table(2_000).set_column(1, "amount", pa.array(
        [None if i == 1_500 else i * 0.25 for i in range(2_000)]))
    with pytest.raises(AzsqlBulkError) as violated:
        transfer(broken, Target(options, f"dbo.sec_nn_{target.table.name}"),
                 TransferOptions(workers=2, create="never"),
                 source_options=SourceOptions(rows_per_batch=500))
    assert getattr(violated.value, "native_error", None) == 515
    texts += texts_of(missing.value) + texts_of(violated.value)
    texts.append(caplog.text)
    assert "sec_" in caplog.text or caplog.records  # something was logged at all
    assert_clean(texts, secret)


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    drop = ("AZURE_", "AZSQL_BULK_", "IDENTITY_", "MSI_", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(drop)}, **extra}


@pytest.mark.parametrize("kind", KINDS)
def test_cli_json_and_debug_logs_show_no_secret(kind, emu_proc, reader, tmp_path):
    _, env, secret, auth_args = identity(kind, emu_proc)
    pq.write_table(rows_table(2_000), tmp_path / "data.parquet")
    conn_args = ["--server", f"{emu_proc.tds_host},{emu_proc.tds_port}", "--database",
                 emu_proc.database, *auth_args, "--encrypt", "strict", "--server-certificate",
                 emu_proc.server_cert, "--host-name-in-certificate", "localhost",
                 "--login-timeout", "15"]
    common = ["--json", "--log-level", "debug", "--progress", "log", *conn_args]
    env = clean_env(env)
    table = f"dbo.sec_cli_{uuid.uuid4().hex[:8]}"
    ok = run_cli(["load", str(tmp_path / "data.parquet"), "--table", table, *common], env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.strip().splitlines()[-1])["rows"] == 2_000
    check_exact(reader, table, 2_000)
    failed = run_cli(["load", str(tmp_path / "data.parquet"), "--table",
                      f"dbo.sec_absent_{uuid.uuid4().hex[:6]}", "--create", "never", *common],
                     env)
    assert failed.returncode != 0 and "does not exist" in failed.stderr
    assert_clean([ok.stdout, ok.stderr, failed.stdout, failed.stderr], secret)


def test_wrong_sql_password_is_refused_without_showing_it(emu_proc, tmp_path):
    wrong = "Not-The-Password-" + uuid.uuid4().hex
    pq.write_table(rows_table(10), tmp_path / "d.parquet")
    proc = run_cli(["load", str(tmp_path / "d.parquet"), "--table", "dbo.sec_wrong", "--json",
                    "--log-level", "debug", "--server",
                    f"{emu_proc.tds_host},{emu_proc.tds_port}", "--database", emu_proc.database,
                    "--auth", "sql", "--sql-user", emu_proc.credentials.sql_login,
                    "--encrypt", "strict", "--server-certificate", emu_proc.server_cert,
                    "--host-name-in-certificate", "localhost", "--connect-attempts", "1"],
                   clean_env({"AZSQL_BULK_SQL_PASSWORD": wrong}))
    assert proc.returncode != 0 and "18456" in proc.stderr, proc.stderr
    assert wrong not in proc.stdout + proc.stderr


def test_encryption_is_on_by_default_and_checks_the_certificate(emu_proc, monkeypatch):
    assert str(ConnectionOptions("srv", "db").encrypt) in ("yes", "Encryption.YES")
    # default options, the emulator's certificate not trusted: the login is refused
    for name in (*CA_VARS, *AZURE_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", emu_proc.credentials.sql_password)
    options = ConnectionOptions(server=emu_proc.tds_host, port=emu_proc.tds_port,
                                database=emu_proc.database, login_timeout=60,
                                credential=CredentialOptions(
                                    kind="sql", sql_user=emu_proc.credentials.sql_login))
    with pytest.raises(AzsqlBulkError) as info:
        transfer(rows_table(10), Target(options, "dbo.sec_untrusted"),
                 TransferOptions(workers=1))
    assert "certificate" in str(info.value).lower(), str(info.value)


def test_encrypt_no_prints_a_warning_and_still_loads(emu_tls_off, tmp_path, driver_path):
    import pyodbc
    from support import odbc_string

    creds = emu_tls_off.identity.credentials
    pq.write_table(rows_table(1_000), tmp_path / "d.parquet")
    table = f"dbo.sec_plain_{uuid.uuid4().hex[:8]}"
    proc = run_cli(["load", str(tmp_path / "d.parquet"), "--table", table, "--json",
                    "--server", f"{emu_tls_off.tds_host},{emu_tls_off.tds_port}",
                    "--database", emu_tls_off.database, "--auth", "sql", "--sql-user",
                    creds.sql_login, "--encrypt", "no", "--login-timeout", "15"],
                   clean_env({"AZSQL_BULK_SQL_PASSWORD": creds.sql_password}))
    assert proc.returncode == 0, proc.stderr
    assert "warning: --encrypt no sends data unencrypted" in proc.stderr
    assert creds.sql_password not in proc.stdout + proc.stderr
    with pyodbc.connect(odbc_string(emu_tls_off, driver_path, encrypt="no", UID=creds.sql_login,
                                    PWD=creds.sql_password), autocommit=True) as conn:
        check_exact(conn, table, 1_000)
