"""`azsql-bulk` argument and environment parsing, secret refusal, the resume command."""

from __future__ import annotations

import argparse
import json
import shlex
import socket

import pytest

from engine.cli import main
from engine.cli.app import build_parser
from engine.cli.arguments import UsageError, byte_size, resolve
from engine.cli.connection_args import CONNECTION_OPTIONS, connection_options
from engine.cli.load_args import LOAD_OPTIONS, source_options, transfer_options
from engine.cli.resume import env_args, resume_command
from engine.cli.secret_guard import refuse_secrets, scrub_text

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"


def parse_load(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(["load", *argv])
    args.argv = ["load", *argv]
    resolve(args, (*LOAD_OPTIONS, *CONNECTION_OPTIONS), env or {})
    return args


# -- secrets ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "home"), [
    (["--password", "hunter2-secret"], "AZSQL_BULK_SQL_PASSWORD"),
    (["--password=hunter2-secret"], "AZSQL_BULK_SQL_PASSWORD"),
    (["--PWD", "hunter2-secret"], "AZSQL_BULK_SQL_PASSWORD"),
    (["--client-secret", "hunter2-secret"], "AZURE_CLIENT_SECRET"),
    (["--access-token", "hunter2-secret"], "AZSQL_BULK_ACCESS_TOKEN"),
    (["--certificate-password", "hunter2-secret"], "AZURE_CLIENT_CERTIFICATE_PASSWORD"),
])
def test_secret_options_are_refused_naming_the_variable(argv, home):
    message = refuse_secrets(["load", "a.parquet", *argv])
    assert message is not None
    assert "never taken from the command line" in message and f"${home}" in message
    assert "hunter2-secret" not in message


@pytest.mark.parametrize("value", [
    JWT, f"Bearer {JWT}",
    "myserver;PWD=hunter2-secret", "Server=x;Password=hunter2-secret", "password = hunter2-secret",
])
def test_secret_looking_values_are_refused_without_echo(value):
    message = refuse_secrets(["load", "a.parquet", "--server", value])
    assert message is not None
    assert "argument 4 (after --server)" in message
    assert "hunter2-secret" not in message and JWT not in message and "eyJhbGci" not in message


def test_ordinary_arguments_pass():
    assert refuse_secrets(["load", "data/*.parquet", "--table", "dbo.t", "--server",
                           "srv.database.windows.net,1433", "--auth", "access-token",
                           "--access-token-file", "/run/secrets/token"]) is None


def test_main_refuses_a_secret_with_exit_2_and_json(capsys):
    code = main(["load", "a.parquet", "--json", "--client-secret", "s3cr3t-value"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "AZURE_CLIENT_SECRET" in err and "s3cr3t-value" not in out + err
    last = json.loads(out.splitlines()[-1])
    assert last["exit_code"] == 2 and "AZURE_CLIENT_SECRET" in last["error"]


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["load", "a.parquet", "--workers"])
    assert info.value.code == 2
    assert "--workers" in capsys.readouterr().err


# -- environment ----------------------------------------------------------------------------------

def test_defaults_without_arguments_or_environment():
    args = parse_load(["a.parquet"])
    # the CLI writes the engine's default out (no pyarrow import for --help): keep them equal
    from engine.sources import DEFAULT_ROWS_PER_BATCH

    assert (args.workers, args.rows_per_batch, args.mode, args.create) == (
        4, DEFAULT_ROWS_PER_BATCH, "append", "if-missing")
    # resume is on: the same command run again finishes (or skips) the journaled load
    assert (args.resume, args.fresh, args.json, args.dry_run, args.encrypt, args.auth) == (
        True, False, False, False, "yes", "default")
    assert args.keys == () and args.sql_types == ()
    assert args.max_memory_bytes == 512 * 2**20 and args.max_retries == 5


def test_every_option_reads_its_environment_variable():
    env = {"AZSQL_BULK_WORKERS": "8", "AZSQL_BULK_ROWS_PER_BATCH": "20_000",
           "AZSQL_BULK_TABLE": "sales.orders", "AZSQL_BULK_SERVER": "srv,1444",
           "AZSQL_BULK_DATABASE": "db", "AZSQL_BULK_AUTH": "managed-identity",
           "AZSQL_BULK_RESUME": "no", "AZSQL_BULK_JSON": "1", "AZSQL_BULK_KEY": "a, b",
           "AZSQL_BULK_SQL_TYPE": "price=decimal(18,2), qty=int", "AZSQL_BULK_MAX_MEMORY": "512MiB",
           "AZSQL_BULK_ENCRYPT": "strict", "AZSQL_BULK_TOKEN_REFRESH_MARGIN": "120"}
    args = parse_load(["a.parquet"], env)
    assert (args.workers, args.rows_per_batch, args.table) == (8, 20_000, "sales.orders")
    assert (args.server, args.database, args.auth, args.encrypt) == (
        "srv,1444", "db", "managed-identity", "strict")
    assert args.resume is False and args.json is True
    assert args.keys == ("a", "b") and args.sql_types == (("price", "decimal(18,2)"),
                                                          ("qty", "int"))
    assert args.max_memory_bytes == 512 * 2**20 and args.token_refresh_margin == 120.0


def test_an_argument_wins_over_the_environment():
    args = parse_load(["a.parquet", "--workers", "2", "--key", "id"],
                      {"AZSQL_BULK_WORKERS": "8", "AZSQL_BULK_KEY": "a,b"})
    assert args.workers == 2 and args.keys == ("id",)


@pytest.mark.parametrize(("env", "expected"), [
    ({"AZSQL_BULK_WORKERS": "zero"}, "$AZSQL_BULK_WORKERS"),
    ({"AZSQL_BULK_WORKERS": "0"}, "at least 1"),
    ({"AZSQL_BULK_MODE": "merge"}, "not one of append, replace, upsert"),
    ({"AZSQL_BULK_RESUME": "maybe"}, "$AZSQL_BULK_RESUME"),
    ({"AZSQL_BULK_MAX_MEMORY": "lots"}, "512MiB"),
    ({"AZSQL_BULK_SQL_TYPE": "price"}, "COLUMN=SQLTYPE"),
])
def test_bad_environment_values_name_the_variable(env, expected):
    with pytest.raises(UsageError) as info:
        parse_load(["a.parquet"], env)
    assert expected in str(info.value)


def test_bad_argument_value_names_the_option():
    with pytest.raises(UsageError) as info:
        parse_load(["a.parquet", "--rows-per-batch", "-5"])
    assert str(info.value).startswith("--rows-per-batch:")


@pytest.mark.parametrize(("text", "size"), [("1000", 1000), ("2GB", 2 * 10**9),
                                            ("1.5 MiB", 3 * 2**19), ("64k", 64_000)])
def test_byte_sizes(text, size):
    assert byte_size(text) == size


# -- connection options -------------------------------------------------------------------------

def test_connection_options_from_arguments():
    args = parse_load(["a.parquet", "--server", "tcp:srv.example,14330", "--database", "db",
                       "--auth", "sql", "--sql-user", "loader", "--encrypt", "strict",
                       "--host-name-in-certificate", "localhost"])
    options = connection_options(args, warn=pytest.fail)
    assert (options.server, options.port, options.database) == ("srv.example", 14330, "db")
    assert options.credential.kind == "sql" and options.credential.sql_user == "loader"
    assert str(options.encrypt) == "strict" and options.host_name_in_certificate == "localhost"


def test_encrypt_no_warns():
    args = parse_load(["a.parquet", "--server", "srv", "--database", "db", "--encrypt", "no"])
    warnings: list[str] = []
    connection_options(args, warn=warnings.append)
    assert len(warnings) == 1 and "unencrypted" in warnings[0]


@pytest.mark.parametrize(("argv", "expected"), [
    (["--database", "db"], "missing --server"),
    (["--server", "srv"], "missing --database"),
    (["--server", "srv,port", "--database", "db"], "port after ','"),
    (["--server", "srv", "--database", "db", "--auth", "sql"], "--sql-user"),
])
def test_connection_usage_errors(argv, expected):
    with pytest.raises(UsageError) as info:
        connection_options(parse_load(["a.parquet", *argv]), warn=print)
    assert expected in str(info.value)


# -- the resume command and option mapping --------------------------------------------------------

def test_resume_command_replaces_load_id_and_keeps_the_rest():
    argv = ["load", "my data/*.parquet", "--table", "dbo.t", "--load-id", "old", "--resume",
            "--rows-per-batch=500", "--dry-run", "--json"]
    command = resume_command(argv, "new-id", rows_per_batch=500,
                                      env_args=["--workers", "8"])
    words = shlex.split(command)
    assert words[0].endswith("azsql-bulk") and words[1:] == [
        "load", "my data/*.parquet", "--table", "dbo.t", "--json", "--workers", "8",
        "--rows-per-batch", "500", "--load-id", "new-id", "--resume"]


def test_env_options_are_spelled_out_in_the_resume_command(monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_WORKERS", "3")
    monkeypatch.setenv("AZSQL_BULK_ROWS_PER_BATCH", "700")
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", "never-shown-pw")
    args = parse_load(["a.parquet", "--table", "t"], dict(__import__("os").environ))
    extra = env_args(args, (*LOAD_OPTIONS, *CONNECTION_OPTIONS))
    assert extra == ["--workers", "3"]  # rows per batch is always added by resume_command
    assert "never-shown-pw" not in " ".join(extra)


def test_transfer_options_map_the_cli_names():
    args = parse_load(["a.parquet", "--mode", "upsert", "--key", "id", "--create", "never",
                       "--sql-type", "price=decimal(18,2)", "--workers", "2"])
    options = transfer_options(args, None)
    assert (options.mode, tuple(options.keys), options.create, options.workers) == (
        "upsert", ("id",), "never", 2)
    assert dict(options.sql_types) == {"price": "decimal(18,2)"} and options.load_id is None
    assert options.resume is True and options.max_memory_bytes == 512 * 2**20


def test_source_options_map_the_cli_names():
    args = parse_load(["a.parquet", "--column", "id", "--column", "name", "--rename",
                       "name=label", "--rows-per-batch", "1,000", "--format", "csv"])
    options = source_options(args)
    assert (options.columns, dict(options.rename)) == (("id", "name"), {"name": "label"})
    assert (options.rows_per_batch, options.format) == (1000, "csv")
    assert source_options(parse_load(["a.parquet"])).columns is None


@pytest.mark.parametrize("spelling", ["managed_identity", "managed-identity",
                                      "Managed-Identity"])
def test_auth_takes_either_spelling(spelling):
    for args in (parse_load(["a.parquet", "--auth", spelling]),
                 parse_load(["a.parquet"], {"AZSQL_BULK_AUTH": spelling})):
        assert args.auth == "managed-identity"


def test_create_takes_either_spelling_and_names_the_choices():
    args = parse_load(["a.parquet", "--mode", "replace", "--create", "replace_schema"])
    assert args.create == "replace-schema"
    assert transfer_options(args, None).create == "replace_schema"
    with pytest.raises(UsageError, match="not one of if-missing, never, replace-schema"):
        parse_load(["a.parquet"], {"AZSQL_BULK_CREATE": "sometimes"})


def test_scrub_text_hides_secret_environment_values(monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_ACCESS_TOKEN", JWT)
    assert scrub_text(json.dumps({"e": f"bad {JWT}"})) == '{"e": "bad ***"}'


def test_a_missing_source_is_refused_before_any_login(capsys, tmp_path):
    # a listening socket passes the reachability probe; the engine opens the source before
    # it logs in, so nothing but the probe's connect ever reaches the "server"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        code = main(["load", str(tmp_path / "missing.parquet"), "--table", "dbo.t", "--json",
                     "--server", f"127.0.0.1,{port}", "--database", "db"])
        listener.settimeout(0)
        probe, _ = listener.accept()
        with probe:
            assert probe.recv(1) == b""  # the probe closed without sending a byte
    out, err = capsys.readouterr()
    assert code == 2
    assert "missing.parquet" in err and "does not exist" in err
    last = json.loads(out.strip().splitlines()[-1])
    assert last["exit_code"] == 2 and last["status"] == "configuration_error"
    assert "missing.parquet" in last["error"] and "resume_command" not in last
    assert "--resume" not in err


def test_load_without_a_database_is_a_usage_error(capsys, tmp_path):
    code = main(["load", str(tmp_path / "missing.parquet"), "--table", "dbo.t", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and "missing --server" in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "usage_error"


def test_options_that_do_not_fit_together_are_refused_before_any_connection(capsys, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    code = main(["load", str(tmp_path / "a.parquet"), "--table", "dbo.t", "--mode", "upsert",
                 "--server", f"127.0.0.1,{port}", "--database", "db", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and "needs keys" in err and "cannot reach" not in err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "configuration_error"


def test_the_resume_command_of_a_fresh_load_names_its_new_id_instead_of_fresh():
    command = resume_command(["load", "a.parquet", "--table", "dbo.t", "--fresh"], "new-id",
                             rows_per_batch=100)
    assert command.split()[1:] == ["load", "a.parquet", "--table", "dbo.t",
                                   "--rows-per-batch", "100", "--load-id", "new-id", "--resume"]
