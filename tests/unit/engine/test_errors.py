"""Error parsing, the one transient/terminal decision, remedies and scrubbing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import (
    TRANSIENT_ERROR_NUMBERS,
    AzsqlBulkError,
    ConfigurationError,
    ConnectError,
    CredentialError,
    DatabaseError,
    Diagnostic,
    Disposition,
    DriverNotFoundError,
    classify,
    database_error,
    describe,
    parse_diagnostics,
    remedy,
    scrub,
)

# Texts as the clients really word them (captured from turbodbc 5.3.0 / pyodbc 5 with
# Microsoft ODBC Driver 18.6 against the emulator).
TURBODBC_LOGIN = ("ODBC error\nstate: 28000\nnative error code: 18456\nmessage: [Microsoft]"
                  "[ODBC Driver 18 for SQL Server][SQL Server]Login failed for user 'x'.")
TURBODBC_TIMEOUT = ("ODBC error\nstate: HYT00\nnative error code: 0\nmessage: [Microsoft]"
                    "[ODBC Driver 18 for SQL Server]Login timeout expired")
PYODBC_EXPIRED = (
    "[28000] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Login failed for user "
    "'<token-identified principal>'. The access token has expired (at 2026-11-25 11:02:10 "
    "UTC, checked with 300 s clock skew); get a new token and reconnect. (18456) "
    "(SQLDriverConnect)")


class FakePyodbcError(Exception):
    """pyodbc's errors carry (sqlstate, text) as args."""


def test_hierarchy_has_one_root():
    for cls in (ConfigurationError, DriverNotFoundError, CredentialError, DatabaseError,
                ConnectError):
        assert issubclass(cls, AzsqlBulkError)
    assert issubclass(DriverNotFoundError, ConfigurationError)
    assert issubclass(ConnectError, DatabaseError)


def test_parse_turbodbc_text():
    assert parse_diagnostics(TURBODBC_LOGIN) == [
        Diagnostic("28000", 18456, "Login failed for user 'x'.")]
    assert parse_diagnostics(RuntimeError(TURBODBC_TIMEOUT)) == [
        Diagnostic("HYT00", 0, "Login timeout expired")]


def test_parse_pyodbc_args_and_str():
    error = FakePyodbcError("28000", PYODBC_EXPIRED)
    (diag,) = parse_diagnostics(error)
    assert (diag.sqlstate, diag.native_error) == ("28000", 18456)
    assert diag.message.startswith("Login failed") and "(at 2026" in diag.message
    assert parse_diagnostics(str(error)) == [diag]


def test_parse_several_pyodbc_records():
    text = ("[HYT00] [Microsoft][ODBC Driver 18 for SQL Server]Login timeout expired (0) "
            "(SQLDriverConnect); [08001] [Microsoft][ODBC Driver 18 for SQL Server]TCP "
            "Provider: Error code 0x2749 (10057)")
    assert parse_diagnostics(FakePyodbcError("HYT00", text)) == [
        Diagnostic("HYT00", 0, "Login timeout expired"),
        Diagnostic("08001", 10057, "TCP Provider: Error code 0x2749"),
    ]


def test_parse_unknown_text_keeps_it_whole():
    assert parse_diagnostics("something odd") == [Diagnostic("HY000", None, "something odd")]
    assert parse_diagnostics("IM002 data source not found")[0].sqlstate == "IM002"


@pytest.mark.parametrize("number", sorted(TRANSIENT_ERROR_NUMBERS))
def test_transient_numbers(number):
    assert classify([Diagnostic("42000", number, "whatever")]) is Disposition.TRANSIENT


def test_a_deadlock_victim_is_rerun():
    # as Driver 18 reported it when mapped shards created the load journal at once
    text = ("ODBC error\nstate: 40001\nnative error code: 1205\nmessage: [Microsoft][ODBC "
            "Driver 18 for SQL Server][SQL Server]Transaction (Process ID 61) was deadlocked on "
            "lock resources with another process and has been chosen as the deadlock victim. "
            "Rerun the transaction.")
    error = database_error(RuntimeError(text), phase="create the load journal",
                           where="[azsql_bulk].[load_journal]")
    assert error.disposition is Disposition.TRANSIENT and error.native_error == 1205
    assert "deadlock victim" in str(error) and "retried" in str(error)


@pytest.mark.parametrize("state", ["08S01", "08001", "HYT00"])
@pytest.mark.parametrize("native", [0, -1, None])
def test_transient_sqlstates_without_server_number(state, native):
    assert classify([Diagnostic(state, native, "x")]) is Disposition.TRANSIENT


@pytest.mark.parametrize("message", [
    "Login failed for user '<token-identified principal>'. Token is expired.",
    "Login failed for user '<token-identified principal>'. The access token has expired "
    "(at 2026-01-01 00:00:00 UTC); get a new token and reconnect.",
    "login failed. TOKEN IS EXPIRED",
])
def test_expired_token_login_is_its_own_disposition(message):
    assert classify([Diagnostic("28000", 18456, message)]) is Disposition.TOKEN_EXPIRED


@pytest.mark.parametrize(("number", "message"), [
    (18456, "Login failed for user '<token-identified principal>'."),
    (18456, "The identity has no user in database 'appdb'"),
    (18456, "The access token's audience 'https://storage.azure.com/' is not valid"),
    (229, "The INSERT permission was denied on the object 't'"),
    (262, "CREATE TABLE permission denied in database 'appdb'"),
    (208, "Invalid object name 'dbo.t'."),
    (2627, "Violation of PRIMARY KEY constraint"),
])
def test_terminal_numbers(number, message):
    assert classify([Diagnostic("42000", number, message)]) is Disposition.TERMINAL


def test_client_side_states_are_terminal():
    assert classify([Diagnostic("IM002", 0, "Data source name not found")]) \
        is Disposition.TERMINAL
    assert classify([Diagnostic("HY000", None, "odd")]) is Disposition.TERMINAL
    assert classify([]) is Disposition.TERMINAL


def test_server_numbers_decide_before_sqlstates_and_terminal_wins():
    # A link failure reported next to a permission error must not be retried.
    assert classify([Diagnostic("08S01", 0, "link"), Diagnostic("42000", 229, "denied")]) \
        is Disposition.TERMINAL
    assert classify([Diagnostic("42000", 40613, "x"), Diagnostic("42000", 229, "y")]) \
        is Disposition.TERMINAL
    assert classify([Diagnostic("42000", 40613, "x"),
                     Diagnostic("28000", 18456, "Token is expired.")]) \
        is Disposition.TOKEN_EXPIRED
    assert classify([Diagnostic("HY000", 0, "x"), Diagnostic("42000", 40501, "busy")]) \
        is Disposition.TRANSIENT


def test_warnings_do_not_count_as_server_errors():
    changed = Diagnostic("01000", 5701, "Changed database context to 'appdb'.")
    assert not changed.is_server_error
    assert classify([changed, Diagnostic("08S01", 0, "link")]) is Disposition.TRANSIENT


@given(number=st.integers(min_value=1, max_value=99999).filter(lambda n: n != 18456),
       state=st.from_regex(r"[0-9A-Z]{5}", fullmatch=True), message=st.text(max_size=80))
def test_message_text_never_matters_except_for_18456(number, state, message):
    plain = classify([Diagnostic(state, number, "")])
    assert classify([Diagnostic(state, number, message)]) is plain
    assert classify([Diagnostic(state, number, "Token is expired.")]) is plain


def test_remedy_and_describe():
    diags = [Diagnostic("42000", 262, "CREATE TABLE permission denied")]
    assert "db_ddladmin" in remedy(diags)
    assert "firewall" in remedy([Diagnostic("08001", -1, "x")])
    assert remedy([Diagnostic("42000", 99999, "x")]) == ""
    assert describe(diags) == "[42000] (262) CREATE TABLE permission denied"
    assert describe([Diagnostic("HY000", None, "odd")]) == "[HY000] odd"


def test_scrub_removes_values_jwts_and_secret_keywords():
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"
    text = (f"Driver=x;PWD={{p;w}}}}d}};AccessToken={jwt};Server=s plus {jwt} and "
            "hunter22 and password=abc")
    out = scrub(text, ["hunter22", ""])
    assert jwt not in out and "hunter22" not in out and "p;w" not in out and "abc" not in out
    assert "Driver=x" in out and "Server=s" in out
    assert out.count("***") >= 4


def test_database_error_translates_and_scrubs():
    secret = "eyJzZWNyZXQiOiJ0b2tlbiJ9.eyJhIjoxfQ.sig"
    error = RuntimeError("ODBC error\nstate: 42000\nnative error code: 229\nmessage: "
                         f"The INSERT permission was denied ({secret})")
    translated = database_error(error, phase="insert", where="dbo.t batch 7", secrets=[secret])
    assert isinstance(translated, DatabaseError) and not translated.transient
    assert translated.native_error == 229 and translated.sqlstate == "42000"
    assert translated.phase == "insert"
    text = str(translated)
    assert "insert failed (dbo.t batch 7)" in text and "db_datawriter" in text
    assert secret not in text and secret not in repr(translated.diagnostics)


def test_database_error_transient_property():
    error = database_error(RuntimeError(TURBODBC_TIMEOUT), phase="connect", where="srv")
    assert error.transient and error.disposition is Disposition.TRANSIENT
    assert error.native_error == 0
    assert DatabaseError("x").sqlstate is None and DatabaseError("x").native_error is None


def test_a_reset_link_is_transient_not_a_server_error_number():
    """Driver 18 puts the socket's OS code (10054) in the native-error field of 08S01."""
    from engine.errors import Diagnostic, Disposition, classify, parse_diagnostics

    reset = parse_diagnostics("ODBC error\nstate: 08S01\nnative error code: 10054\nmessage: "
                              "[Microsoft][ODBC Driver 18 for SQL Server]TCP Provider: Error "
                              "code 0x2746")
    assert reset[0].component == "ODBC Driver 18 for SQL Server"
    assert not reset[0].is_server_error
    assert classify(reset) is Disposition.TRANSIENT
    server = parse_diagnostics("ODBC error\nstate: 23000\nnative error code: 515\nmessage: "
                               "[Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Cannot "
                               "insert the value NULL into column 'a'")
    assert server[0].is_server_error and classify(server) is Disposition.TERMINAL
    assert Diagnostic("42000", 229, "no prefix").is_server_error  # judged by number alone
