"""The connection factory without a database: options, connection strings, the retry policy.

The ODBC layer is replaced by a fake connect function that raises errors worded exactly
as turbodbc words them; that tests our retry policy, not the database layer (the
integration tests do that against the emulator).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.connection import (
    Connection,
    ConnectionFactory,
    ConnectionOptions,
    Encryption,
    RetryPolicy,
    connection_attributes,
    parse_server_address,
    probe_problem,
    probe_server,
    server_address,
)
from engine.connection_string import parse_connection_string
from engine.credentials import AccessToken, CredentialOptions, Secret, TokenProvider
from engine.errors import ConfigurationError, ConnectError, CredentialError, Disposition
from engine.login_diagnosis import SQL_AUDIENCES


def make_jwt(**claims) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJlX3NlY3JldA"


def odbc_error(state: str, number: int, message: str) -> Exception:
    """An error worded as turbodbc's DatabaseError."""
    return RuntimeError(f"ODBC error\nstate: {state}\nnative error code: {number}\n"
                        f"message: [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]"
                        f"{message}")


class FakeProvider(TokenProvider):
    """Hands out numbered JWTs; records forced refreshes."""

    def __init__(self, **claims):
        super().__init__()
        self.claims = {"aud": "https://database.windows.net/", "appid": "app-1",
                       "oid": "oid-1", "tid": "tenant-1", **claims}
        self.forced = 0
        self.fail_refresh: CredentialError | None = None

    def _fetch(self, *, force, rejected):
        if force:
            self.forced += 1
            if self.fail_refresh:
                raise self.fail_refresh
        n = self.fetches + 1
        claims = {"exp": 4_000_000_000, **self.claims, "uti": f"u{n}"}
        return AccessToken(Secret(make_jwt(**claims)), expires_on=claims["exp"] + 0.0,
                           obtained_at=claims["exp"] - 3600.0)


class FakeConnect:
    """Fails with the queued errors, then returns a fake connection; records strings."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.strings: list[str] = []
        self.options: list[object] = []

    def __call__(self, text, turbodbc_options):
        self.strings.append(text)
        self.options.append(turbodbc_options)
        if self.errors:
            raise self.errors.pop(0)
        return FakeRaw()

    def tokens(self) -> list[str]:
        return [dict(parse_connection_string(s))["AccessToken"] for s in self.strings]


class FakeRaw:
    closed = 0

    def close(self):
        self.closed += 1

    def cursor(self):
        return "cursor"


class Sleeper:
    def __init__(self, clock):
        self.clock, self.waits = clock, []

    def __call__(self, seconds):
        self.waits.append(seconds)
        self.clock.now += seconds


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def factory(connect, provider=None, retry=None, probe=None, **options):
    clock = Clock()
    opts = ConnectionOptions(server="srv.database.windows.net", database="appdb",
                             retry=retry or RetryPolicy(attempts=5, total_seconds=60,
                                                        base_delay=1, max_delay=8),
                             **options)
    made = ConnectionFactory(opts, token_provider=provider or FakeProvider(), connect_fn=connect,
                             odbc_driver="/opt/shim/libazsql_odbc_shim.so", probe=probe,
                             sleep=Sleeper(clock), clock=clock, rng=lambda: 0.5)
    return made


# -- options and the connection string ---------------------------------------------------

def test_options_defaults_are_for_azure():
    options = ConnectionOptions("srv.database.windows.net", "db")
    assert options.port == 1433 and options.encrypt is Encryption.YES
    assert not options.trust_server_certificate
    assert options.application_name.startswith("azsql-bulk/")
    assert options.credential.kind == "default"


def test_options_normalise_and_validate():
    options = ConnectionOptions("tcp:srv,11433", "db", encrypt="STRICT",
                                server_certificate="/c.pem", turbodbc_options={"a": 1})
    assert (options.server, options.port, options.encrypt) == ("srv", 11433, Encryption.STRICT)
    with pytest.raises(TypeError):
        options.turbodbc_options["b"] = 2  # type: ignore[index]
    for bad in ({"encrypt": "maybe"}, {"port": 0}, {"packet_size": 100},
                {"server_certificate": "/c.pem"},
                {"encrypt": "strict", "trust_server_certificate": True}):
        with pytest.raises(ConfigurationError):
            ConnectionOptions("srv", "db", **bad)
    with pytest.raises(ConfigurationError):
        ConnectionOptions("  ", "db")
    with pytest.raises(ConfigurationError):
        RetryPolicy(attempts=0)


def test_connection_attributes_order_and_values():
    options = ConnectionOptions("srv", "db", encrypt="strict", server_certificate="/c.pem",
                                host_name_in_certificate="localhost", packet_size=16384,
                                extra_attributes={"MultiSubnetFailover": "yes"})
    attrs = dict(connection_attributes(options, "/shim.so"))
    assert list(attrs)[:4] == ["Driver", "Server", "Database", "Encrypt"]
    assert attrs["Server"] == "tcp:srv,1433" and attrs["Encrypt"] == "strict"
    assert attrs["ServerCertificate"] == options.server_certificate
    assert attrs["HostNameInCertificate"] == "localhost" and attrs["PacketSize"] == 16384
    assert attrs["MultiSubnetFailover"] == "yes" and attrs["TrustServerCertificate"] is None


def test_access_token_is_the_last_keyword_and_passes_turbodbc_options():
    connect = FakeConnect()
    made = factory(connect, turbodbc_options={"autocommit": False})
    conn = made.connect()
    (text,) = connect.strings
    pairs = parse_connection_string(text)
    assert pairs[0] == ("Driver", "/opt/shim/libazsql_odbc_shim.so")
    assert pairs[-1][0] == "AccessToken" and pairs[-1][1].startswith("eyJ")
    assert "AccessToken" not in text[:128]
    assert dict(pairs)["APP"].startswith("azsql-bulk/")
    assert dict(connect.options[0]) == {"autocommit": False}
    assert conn.token_expires_at == 4_000_000_000 and conn.attempts == 1


def test_sql_kind_sends_uid_and_pwd_last(monkeypatch, caplog):
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", "Pa55;word}")
    connect = FakeConnect()
    options = ConnectionOptions("localhost", "db", credential=CredentialOptions(
        kind="sql", sql_user="sa"), trust_server_certificate=True)
    with caplog.at_level(logging.INFO):
        made = ConnectionFactory(options, connect_fn=connect, odbc_driver="/shim.so")
    # a local server: said at INFO; a remote one gets a WARNING
    assert [r.levelno for r in caplog.records if "local SQL Server" in r.message] == [logging.INFO]
    assert made.token_provider is None
    caplog.clear()
    with caplog.at_level(logging.INFO):
        ConnectionFactory(ConnectionOptions("db.example.net", "db", credential=CredentialOptions(
            kind="sql", sql_user="sa")), connect_fn=connect, odbc_driver="/shim.so")
    assert [r.levelno for r in caplog.records if "local SQL Server" in r.message] == [
        logging.WARNING]
    conn = made.connect()
    pairs = parse_connection_string(connect.strings[0])
    assert pairs[-2:] == [("UID", "sa"), ("PWD", "Pa55;word}")]
    assert conn.token_expires_at is None and conn.seconds_left() is None
    assert not conn.should_recycle()


# -- the Connection wrapper ----------------------------------------------------------------

def test_connection_knows_its_token_expiry():
    raw = FakeRaw()
    conn = Connection(raw, token_expires_at=10_000.0, where="srv,1433/db",
                      logged_in_at=6_400.0)
    assert conn.seconds_left(now=9_000.0) == 1_000.0
    assert not conn.should_recycle(margin=300, now=9_000.0)
    assert conn.should_recycle(margin=300, now=9_800.0)
    assert conn.cursor() == "cursor" and "srv,1433/db open" in repr(conn)
    with conn:
        pass
    conn.close()
    assert raw.closed == 1 and "closed" in repr(conn)


# -- retry policy --------------------------------------------------------------------------

@given(attempt=st.integers(1, 30), base=st.floats(0, 10), ceiling=st.floats(0, 120),
       draw=st.floats(0, 1, exclude_max=True))
def test_backoff_is_full_jitter_within_the_exponential_ceiling(attempt, base, ceiling, draw):
    policy = RetryPolicy(base_delay=base, max_delay=ceiling)
    wait = policy.backoff(attempt, rng=lambda: draw)
    assert 0 <= wait <= min(ceiling, base * 2 ** (attempt - 1)) + 1e-9


def test_transient_failures_are_retried_with_growing_waits():
    connect = FakeConnect(odbc_error("42000", 40613, "Database 'appdb' is not available."),
                          odbc_error("08S01", 0, "Communication link failure"),
                          odbc_error("HYT00", 0, "Login timeout expired"))
    made = factory(connect)
    conn = made.connect()
    assert conn.attempts == 4 and made.stats.retries == 3 and made.stats.connects == 1
    assert made._sleep.waits == [0.5, 1.0, 2.0]  # rng 0.5 x (1, 2, 4)


def test_retries_stop_after_the_attempt_limit():
    connect = FakeConnect(*[odbc_error("42000", 40501, "The service is busy.")] * 10)
    made = factory(connect, retry=RetryPolicy(attempts=3, total_seconds=600))
    with pytest.raises(ConnectError) as info:
        made.connect()
    error = info.value
    assert error.attempts == 3 and len(connect.strings) == 3 and error.transient
    assert error.native_error == 40501
    assert "after 3 attempt(s)" in str(error) and "--connect-attempts" in str(error)
    assert "scale up" in str(error)


def test_retries_stop_at_the_time_budget():
    connect = FakeConnect(*[odbc_error("42000", 40613, "not available")] * 50)
    made = factory(connect, retry=RetryPolicy(attempts=50, total_seconds=10, base_delay=2,
                                              max_delay=100))
    with pytest.raises(ConnectError):
        made.connect()
    assert sum(made._sleep.waits) <= 10
    assert len(connect.strings) < 50


def test_terminal_failure_raises_at_once():
    connect = FakeConnect(odbc_error("42000", 229, "The SELECT permission was denied"))
    made = factory(connect)
    with pytest.raises(ConnectError) as info:
        made.connect()
    assert len(connect.strings) == 1 and made._sleep.waits == []
    assert info.value.disposition is Disposition.TERMINAL and info.value.native_error == 229
    assert "db_datawriter" in str(info.value)


def test_expired_token_forces_a_new_token_without_waiting():
    provider = FakeProvider()
    connect = FakeConnect(odbc_error("28000", 18456, "Login failed for user "
                                     "'<token-identified principal>'. Token is expired."))
    made = factory(connect, provider=provider)
    conn = made.connect()
    first, second = connect.tokens()
    assert first != second and provider.forced == 1 and made._sleep.waits == []
    assert made.stats.token_refreshes == 1 and conn.attempts == 2


def test_expired_token_that_cannot_be_renewed_is_terminal():
    provider = FakeProvider()
    provider.fail_refresh = CredentialError("the pre-obtained access token has expired")
    connect = FakeConnect(odbc_error("28000", 18456, "The access token has expired (at x)."))
    with pytest.raises(ConnectError) as info:
        factory(connect, provider=provider).connect()
    assert not info.value.transient and len(connect.strings) == 1
    assert "refused the access token as expired" in str(info.value)
    assert "pre-obtained access token has expired" in str(info.value)
    assert info.value.__context__ is None


def test_unknown_principal_names_the_identity_and_the_fix():
    connect = FakeConnect(odbc_error("28000", 18456, "Login failed for user "
                                     "'<token-identified principal>'."))
    with pytest.raises(ConnectError) as info:
        factory(connect, provider=FakeProvider(oid="0b1d")).connect()
    text = str(info.value)
    assert "app-1" in text and "0b1d" in text and "no database user in 'appdb'" in text
    assert "CREATE USER [<identity display name>] FROM EXTERNAL PROVIDER WITH OBJECT_ID = " \
        "'0b1d'" in text
    assert "ALTER ROLE db_datawriter ADD MEMBER" in text


def test_wrong_audience_is_diagnosed_from_the_token():
    connect = FakeConnect(odbc_error("28000", 18456, "Login failed for user "
                                     "'<token-identified principal>'."))
    provider = FakeProvider(aud="https://storage.azure.com/")
    with pytest.raises(ConnectError) as info:
        factory(connect, provider=provider).connect()
    text = str(info.value)
    assert "wrong token audience" in text and "https://storage.azure.com/" in text
    assert "https://database.windows.net/.default" in text
    assert SQL_AUDIENCES >= {
        "https://database.usgovcloudapi.net", "https://database.windows.net",
        "022907d3-0f1b-48f7-badc-1ba6abab6d66"}


def test_sql_login_failure_says_what_to_check(monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", "wrong")
    connect = FakeConnect(odbc_error("28000", 18456, "Login failed for user 'sa'."))
    options = ConnectionOptions("localhost", "db", credential=CredentialOptions(
        kind="sql", sql_user="sa"), retry=RetryPolicy(attempts=3))
    made = ConnectionFactory(options, connect_fn=connect, odbc_driver="/shim.so")
    with pytest.raises(ConnectError, match="AZSQL_BULK_SQL_PASSWORD"):
        made.connect()
    assert len(connect.strings) == 1


# -- no token anywhere ---------------------------------------------------------------------

def test_the_token_never_leaks_into_errors_or_logs(caplog):
    provider = FakeProvider()
    token = provider.get_token().token.reveal()
    # A hostile driver message that echoes the whole connection string.
    echo = odbc_error("28000", 18456, f"Login failed; saw Driver=x;AccessToken={token}")
    connect = FakeConnect(echo, echo)

    def leaky(text, options):
        try:
            return connect(text, options)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} while using {text}") from exc

    made = factory(leaky, provider=provider)
    with caplog.at_level(logging.DEBUG), pytest.raises(ConnectError) as info:
        made.connect()
    error = info.value
    rendered = "".join(traceback.format_exception(error))
    for place in (str(error), repr(error), rendered, caplog.text, repr(error.diagnostics),
                  repr(made), repr(made.options)):
        assert token not in place
        assert token.split(".")[1] not in place
    assert error.__cause__ is None and error.__context__ is None
    assert "AccessToken=***" in caplog.text  # the DEBUG line shows the redacted string


def test_factory_closes_only_a_provider_it_built(monkeypatch):
    monkeypatch.setenv("AZSQL_BULK_ACCESS_TOKEN", make_jwt(exp=4_000_000_000))
    options = ConnectionOptions("srv", "db", credential=CredentialOptions(kind="access-token"))
    with ConnectionFactory(options, connect_fn=FakeConnect(), odbc_driver="/shim.so") as made:
        assert made.connect().token_expires_at == 4_000_000_000
        assert made.token_provider._cached is not None
    assert made.token_provider._cached is None
    shared = FakeProvider()
    shared.get_token()
    ConnectionFactory(options, token_provider=shared, connect_fn=FakeConnect(),
                      odbc_driver="/shim.so").close()
    assert shared._cached is not None


def test_a_token_shorter_than_the_margin_still_serves_half_its_life():
    conn = Connection(object(), token_expires_at=1_060.0, where="srv,1433/db",
                      logged_in_at=1_000.0)  # a 60-second token, default 300 s margin
    assert not conn.should_recycle(margin=300, now=1_029.0)
    assert conn.should_recycle(margin=300, now=1_030.0)


# -- the TCP probe before each login ---------------------------------------------------------

class Probe:
    """Raises the queued errors, then lets the login go ahead; records its calls."""

    def __init__(self, *errors: OSError) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[str, int, float]] = []

    def __call__(self, host, port, timeout):
        self.calls.append((host, port, timeout))
        if self.errors:
            raise self.errors.pop(0)


def test_a_refused_port_is_retried_without_a_login_attempt():
    connect, probe = FakeConnect(), Probe(ConnectionRefusedError(111, "Connection refused"),
                                          TimeoutError())
    made = factory(connect, probe=probe)
    conn = made.connect()
    assert conn.attempts == 3 and len(connect.strings) == 1  # the driver ran once
    assert probe.calls == [("srv.database.windows.net", 1433, 15.0)] * 3
    assert made.stats.retries == 2


def test_a_port_that_stays_refused_exhausts_the_policy_naming_the_cause():
    refused = [ConnectionRefusedError(111, "Connection refused") for _ in range(5)]
    connect = FakeConnect()
    with pytest.raises(ConnectError) as info:
        factory(connect, probe=Probe(*refused)).connect()
    assert connect.strings == []
    assert info.value.disposition is Disposition.TRANSIENT
    assert "after 5 attempt(s)" in str(info.value)
    assert "TCP connect to srv.database.windows.net,1433 failed before login: Connection " \
           "refused" in str(info.value)


def test_a_name_that_does_not_resolve_is_terminal_at_once():
    import socket

    connect = FakeConnect()
    with pytest.raises(ConnectError) as info:
        factory(connect, probe=Probe(socket.gaierror(-2, "Name or service not known"))).connect()
    assert connect.strings == [] and info.value.disposition is Disposition.TERMINAL
    assert "does not resolve" in str(info.value) and "database.windows.net" in str(info.value)


def test_tcp_probe_against_real_sockets():
    import socket

    from engine.connection import tcp_probe

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(1)
        port = listening.getsockname()[1]
        tcp_probe("127.0.0.1", port, 5.0)  # accepted: no error
    with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
        tcp_probe("127.0.0.1", port, 5.0)


def test_no_probe_with_a_custom_connect_function():
    made = ConnectionFactory(ConnectionOptions("srv", "db"), token_provider=FakeProvider(),
                             connect_fn=FakeConnect(), odbc_driver="/x.so")
    assert made._probe is None


# -- the one server-address parser and the one probe ------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("srv.database.windows.net", ("srv.database.windows.net", 1433)),
    ("tcp:srv.database.windows.net,14330", ("srv.database.windows.net", 14330)),
    ("  TCP:127.0.0.1 , 1444 ", ("127.0.0.1", 1444)),
    ("host\\inst", ("host\\inst", 1433)),
])
def test_server_addresses_parse(text, expected):
    assert parse_server_address(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("srv,port", "port after ','"),
                                                ("tcp:,1433", "server is empty"),
                                                ("", "server is empty")])
def test_bad_server_addresses_say_what_is_wrong(text, expected):
    with pytest.raises(ConfigurationError, match=expected):
        parse_server_address(text)


@given(host=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,40}", fullmatch=True),
       port=st.integers(1, 65535))
def test_server_address_round_trips(host, port):
    assert parse_server_address(server_address(host, port)) == (host, port)
    assert ConnectionOptions(server_address(host, port), "db").port == port


def test_probe_server_retries_a_refused_port_with_growing_waits():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the socket is
    waits: list[float] = []
    with pytest.raises(ConnectionRefusedError) as info:
        probe_server("127.0.0.1", port, timeout=5.0, attempts=4, sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0]
    assert probe_problem(info.value) == "Connection refused"


def test_probe_server_does_not_retry_a_name_that_does_not_resolve():
    waits: list[float] = []
    with pytest.raises(socket.gaierror):
        probe_server("no-such-host.invalid", 1433, timeout=5.0, attempts=3,
                     sleep=waits.append)
    assert waits == []


def test_probe_server_leaves_named_instances_to_the_driver():
    probe_server("no-such-host.invalid\\SQLEXPRESS", 1433, timeout=5.0)  # no lookup, no error
    assert probe_problem(TimeoutError()) == "timed out"


@pytest.mark.parametrize("spelling", ["managed-identity", "managed_identity", "MANAGED_IDENTITY"])
def test_credential_kinds_take_the_cli_or_the_airflow_spelling(spelling):
    from engine.credentials import CredentialKind

    assert CredentialOptions(kind=spelling).kind is CredentialKind.MANAGED_IDENTITY
    assert CredentialKind.MANAGED_IDENTITY.extra_name == "managed_identity"
    with pytest.raises(ConfigurationError, match="managed-identity, workload-identity"):
        CredentialOptions(kind="managed identity")
