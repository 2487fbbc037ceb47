"""Token-authenticated turbodbc connections to Azure SQL, with retries on transient failures.

:class:`ConnectionFactory` opens :class:`Connection` objects: each ``connect()`` takes a
token from the shared :class:`~engine.credentials.TokenProvider` (cached while fresh)
and logs in through the ODBC token shim, which hands the token to Microsoft's driver.
Transient failures (decided by :func:`engine.errors.classify`) are retried with
exponential backoff and full jitter; an expired-token refusal gets a new token first.
Terminal failures raise :class:`~engine.errors.ConnectError` at once, saying why and
what to do. The connection string carries the token, so it is never logged, stored,
or put into an exception; ODBC errors are re-raised as our own, scrubbed and unchained.

>>> options = ConnectionOptions(server="myserver.database.windows.net", database="sales",
...                             credential=CredentialOptions(kind="managed-identity"))
>>> with ConnectionFactory(options) as factory, factory.connect() as conn:  # doctest: +SKIP
...     conn.cursor().execute("SELECT 1").fetchall()
[[1]]
"""

from __future__ import annotations

import dataclasses
import logging
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from engine.connection_string import build_connection_string, redact
from engine.credentials import (
    AccessToken,
    CredentialKind,
    CredentialOptions,
    Secret,
    TokenProvider,
    create_token_provider,
    sql_login,
)
from engine.errors import (
    ConfigurationError,
    ConnectError,
    CredentialError,
    Diagnostic,
    Disposition,
    classify,
    describe,
    error_text,
    remedy,
    scrubbed_diagnostics,
)
from engine.login_diagnosis import login_diagnosis
from engine.odbc_connection import ConnectFunction, Connection, turbodbc_connect
from engine.session_audit import application_label, session_context, set_session_context

log = logging.getLogger(__name__)

DEFAULT_PORT = 1433
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("azsql-bulk")
    except Exception:  # not installed (a source checkout): still name the product
        return "0"


class Encryption(StrEnum):
    """TDS encryption: ``strict`` (TDS 8.0, TLS first), ``yes`` (TLS, certificate checked), ``no``.
    """

    STRICT = "strict"
    YES = "yes"
    NO = "no"


@dataclass(frozen=True)
class RetryPolicy:
    """How ``connect()`` retries transient failures: exponential backoff with full jitter.

    The n-th wait is uniform in ``[0, min(max_delay, base_delay * 2**(n-1))]``; retrying
    stops after ``attempts`` attempts or when the next wait would pass ``total_seconds``
    since the first attempt.

    :param attempts: connection attempts in all (1 = no retries).
    :param total_seconds: time budget for all attempts and waits.
    :param base_delay: the first wait's upper bound, in seconds.
    :param max_delay: upper bound of any single wait.

    >>> RetryPolicy(base_delay=1.0).backoff(3, rng=lambda: 0.5)
    2.0
    """

    attempts: int = 6
    total_seconds: float = 120.0
    base_delay: float = 1.0
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError("retry attempts must be at least 1")
        if self.total_seconds < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("retry times must not be negative")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based).

        :param attempt: the attempt that just failed.
        :param rng: a uniform ``[0, 1)`` source.
        """
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling * rng()


def parse_server_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """Split a server address, ``[tcp:]host[,port]``, into the host and the port.

    The one parser of the ODBC ``Server=`` spelling: options, the CLI and the Airflow
    connection all read ``--server``-like text through it. :func:`server_address` is
    its inverse.

    :param text: e.g. ``myserver.database.windows.net``, ``tcp:127.0.0.1,14330``.
    :param default_port: the port when the text names none.
    :raises ConfigurationError: an empty host, or a port that is not a number.

    >>> parse_server_address("tcp:srv.database.windows.net,14330")
    ('srv.database.windows.net', 14330)
    >>> parse_server_address(server_address("srv", 1433)) == ("srv", 1433)
    True
    """
    server = text.strip()
    if server.lower().startswith("tcp:"):
        server = server[4:]
    host, comma, port_text = server.partition(",")
    host = host.strip()
    if not host:
        raise ConfigurationError("server is empty; give the server's host name")
    if not comma:
        return host, default_port
    try:
        return host, int(port_text.strip())
    except ValueError:
        raise ConfigurationError(
            f"server {text!r}: the port after ',' must be a number, as in "
            "myserver.database.windows.net,1433") from None


def server_address(host: str, port: int) -> str:
    """``tcp:host,port``: the ODBC ``Server=`` value (see :func:`parse_server_address`)."""
    return f"tcp:{host},{port}"


@dataclass(frozen=True)
class ConnectionOptions:
    """Where and how to connect. Defaults are right for Azure SQL Database.

    :param server: host name, e.g. ``myserver.database.windows.net`` (a ``tcp:`` prefix
        and ``,port`` suffix are accepted too).
    :param database: database name.
    :param credential: how to log in (see :class:`~engine.credentials.CredentialOptions`).
    :param port: TCP port.
    :param encrypt: ``strict``, ``yes`` (default; the certificate is validated against the
        system's CAs, or ``$SSL_CERT_FILE``) or ``no``.
    :param server_certificate: ``strict`` only: a PEM the server's certificate must equal.
    :param host_name_in_certificate: the name to expect in the server's certificate when it
        differs from ``server``.
    :param trust_server_certificate: skip certificate validation (``yes``/``no`` only): for
        local development, never for Azure.
    :param application_name: the login's application name (``audit`` facts follow).
    :param login_timeout: seconds, sent as ``LoginTimeout=``. Microsoft's Driver 18 ignores
        that keyword (seen: a silent server still times out after its 15 s default); it
        takes effect only where the token shim maps it to ``SQL_ATTR_LOGIN_TIMEOUT``.
    :param packet_size: TDS packet size in bytes (512-32767), or None for the server's.
    :param turbodbc_options: keyword arguments for ``turbodbc.make_options``
        (``prefer_unicode`` defaults to True here).
    :param retry: the retry policy for transient connect failures.
    :param driver_path: Microsoft's ``libmsodbcsql-18`` (default:
        :func:`engine.driver.find_driver`).
    :param extra_attributes: further ODBC keywords for the driver.
    :param bulk_copy: enable the driver's bulk-copy (``bcp_*``) API on the connection: the
        token shim sets ``SQL_COPT_SS_BCP`` before login (``BulkCopy=yes``).
    :param audit: what the sessions belong to (``load``, ``dag``, ``task``...): in the
        application name and SESSION_CONTEXT (:mod:`engine.session_audit`). No secret.

    >>> ConnectionOptions(server="tcp:srv.database.windows.net,1433", database="db").server
    'srv.database.windows.net'
    """

    server: str
    database: str
    credential: CredentialOptions = field(default_factory=CredentialOptions)
    port: int = DEFAULT_PORT
    encrypt: Encryption | str = Encryption.YES
    server_certificate: Path | None = None
    host_name_in_certificate: str | None = None
    trust_server_certificate: bool = False
    application_name: str = field(default_factory=lambda: f"azsql-bulk/{_version()}")
    login_timeout: int = 30
    packet_size: int | None = None
    turbodbc_options: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    driver_path: Path | None = None
    extra_attributes: Mapping[str, str] = field(default_factory=dict)
    bulk_copy: bool = False
    audit: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        server, port = parse_server_address(self.server, self.port)
        object.__setattr__(self, "server", server)
        object.__setattr__(self, "port", port)
        try:
            object.__setattr__(self, "encrypt", Encryption(str(self.encrypt).lower()))
        except ValueError:
            raise ConfigurationError(
                f"encrypt must be strict, yes or no, not {self.encrypt!r}") from None
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"port {self.port} is not a TCP port")
        if self.packet_size is not None and not 512 <= self.packet_size <= 32767:
            raise ConfigurationError(f"packet_size {self.packet_size} is outside 512-32767")
        if self.server_certificate is not None:
            object.__setattr__(self, "server_certificate", Path(self.server_certificate))
            if self.encrypt is not Encryption.STRICT:
                raise ConfigurationError(
                    "server_certificate only works with encrypt=strict (the driver ignores it "
                    "otherwise); for encrypt=yes trust the server's CA instead (SSL_CERT_FILE)")
        if self.trust_server_certificate and self.encrypt is Encryption.STRICT:
            raise ConfigurationError(
                "trust_server_certificate has no effect with encrypt=strict; give "
                "server_certificate, or trust the server's CA")
        for name in ("turbodbc_options", "extra_attributes", "audit"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))


def connection_attributes(options: ConnectionOptions, driver: str) -> list[tuple[str, object]]:
    """The ODBC keywords for ``options``, without credentials (those are appended last).

    :param options: the connection options.
    :param driver: the ``Driver=`` value (the shim's path).

    >>> [k for k, _ in connection_attributes(ConnectionOptions("s", "d"), "/shim.so")][:4]
    ['Driver', 'Server', 'Database', 'Encrypt']
    """
    attrs: list[tuple[str, object]] = [
        ("Driver", driver),
        ("Server", server_address(options.server, options.port)),
        ("Database", options.database),
        ("Encrypt", str(options.encrypt)),
        ("ServerCertificate", options.server_certificate),
        ("HostNameInCertificate", options.host_name_in_certificate),
        ("TrustServerCertificate", True if options.trust_server_certificate else None),
        ("APP", application_label(options.application_name, options.audit)),
        ("LoginTimeout", options.login_timeout),
        ("PacketSize", options.packet_size),
        # consumed by the token shim, which sets SQL_COPT_SS_BCP before login
        ("BulkCopy", True if options.bulk_copy else None),
    ]
    extra = {k.lower() for k in options.extra_attributes}
    if "connectretrycount" not in extra:
        # Off: Driver 18's idle-connection resiliency reconnects silently after a dropped
        # link, and a transaction open at that moment is gone while later statements and
        # the commit "succeed" (seen against the emulator). The loader reconnects and
        # replays batches itself, so it must see the failure.
        attrs.append(("ConnectRetryCount", 0))
    attrs.extend(options.extra_attributes.items())
    return attrs


@dataclass
class ConnectStats:
    """Counters across a factory's connects (for TransferResult)."""

    connects: int = 0
    retries: int = 0
    token_refreshes: int = 0


ProbeFunction = Callable[[str, int, float], None]


def tcp_probe(host: str, port: int, timeout: float) -> None:
    """Open and close a TCP connection to ``host,port``.

    Microsoft's driver reports a refused port, an unroutable host and a silent firewall
    all alike, as "Login timeout expired" after 15 s or more per attempt (measured: 106 s
    for six attempts against a closed local port). A plain TCP connect tells these apart
    in milliseconds, so the factory tries it before each login.

    :raises socket.gaierror: the name does not resolve.
    :raises OSError: refused, unreachable or timed out.
    """
    socket.create_connection((host, port), timeout=timeout).close()


def probe_server(host: str, port: int, *, timeout: float, attempts: int = 1,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """:func:`tcp_probe` until the port accepts, at most ``attempts`` times.

    A refused or silent port is tried again after 1, 2, 4... seconds (at most 10); a name
    that does not resolve is not (a typo does not fix itself). A named instance
    (``host\\instance``) is not probed: the driver finds its port.

    :param host: the server's host name.
    :param port: its TCP port.
    :param timeout: seconds for one attempt.
    :param attempts: tries in all.
    :param sleep: waits between attempts.
    :raises socket.gaierror: the name does not resolve.
    :raises OSError: the last attempt's failure (see :func:`probe_problem`).
    """
    if is_named_instance(host):
        return
    for attempt in range(1, attempts + 1):
        try:
            tcp_probe(host, port, timeout)
            return
        except socket.gaierror:
            raise
        except OSError:
            if attempt >= attempts:
                raise
            sleep(min(2.0 ** (attempt - 1), 10.0))


def probe_problem(exc: OSError) -> str:
    """What a failed probe met, in a few words (``Connection refused``, ``timed out``)."""
    return exc.strerror or ("timed out" if isinstance(exc, TimeoutError)
                            else type(exc).__name__)


def is_named_instance(host: str) -> bool:
    """``host\\instance``: SQL Browser tells the driver the port, so there is none to probe."""
    return "\\" in host


def _probe_failure(host: str, port: int, exc: OSError) -> list[Diagnostic]:
    """A failed probe as the transient diagnostic the driver would have given, slowly."""
    return [Diagnostic("08001", 0, f"TCP connect to {host},{port} failed before login: "
                                   f"{probe_problem(exc)}", component="azsql-bulk")]


class ConnectionFactory:
    """Opens token-authenticated connections; share one per load so workers share a token cache.

    :param options: where and how to connect.
    :param token_provider: a provider to share (default: built from ``options.credential``).
    :param connect_fn: opens a connection from (connection string, turbodbc options);
        default :func:`turbodbc_connect`.
    :param odbc_driver: the ``Driver=`` value to use instead of the token shim (tests).
    :param probe: checks that the server's port accepts TCP before each login (see
        :func:`tcp_probe`); default: :func:`tcp_probe` with the real driver, none with
        a ``connect_fn`` (tests).
    :param sleep: waits between attempts.
    :param clock: monotonic seconds, for the retry budget.
    :param rng: uniform ``[0, 1)`` numbers for jitter.

    >>> factory = ConnectionFactory(ConnectionOptions("srv", "db",  # doctest: +SKIP
    ...     credential=CredentialOptions(kind="default")))
    >>> conn = factory.connect(); conn.should_recycle()  # doctest: +SKIP
    False
    """

    def __init__(self, options: ConnectionOptions, *, token_provider: TokenProvider | None = None,
                 connect_fn: ConnectFunction | None = None, odbc_driver: str | None = None,
                 probe: ProbeFunction | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random) -> None:
        self.options = options
        self._kind = CredentialKind(options.credential.kind)
        self._own_provider = token_provider is None and self._kind is not CredentialKind.SQL
        self.token_provider = token_provider if token_provider is not None else (
            None if self._kind is CredentialKind.SQL else create_token_provider(options.credential))
        self._connect_fn = connect_fn or turbodbc_connect
        self._probe = probe if probe is not None else (tcp_probe if connect_fn is None
                                                       else None)
        self._odbc_driver = odbc_driver
        self._sleep, self._clock, self._rng = sleep, clock, rng
        self.stats = ConnectStats()
        self.where = f"{options.server},{options.port}/{options.database}"
        if self._kind is CredentialKind.SQL:
            # loud for a remote server (Azure SQL should use Entra tokens); quiet for the
            # emulator and a local SQL Server, where it is the expected set-up
            local = options.server.lower() in ("localhost", "127.0.0.1", "::1", "(local)", ".")
            log.log(logging.INFO if local else logging.WARNING,
                    "connections to %s use SQL authentication: meant for local SQL Server "
                    "and the emulator only; use an Entra credential kind for Azure SQL",
                    self.where)

    def name_load(self, load_id: str) -> None:
        """Name the load in every connection opened from now on (the ``load`` audit fact,
        first: see :attr:`ConnectionOptions.audit`)."""
        facts = {"load": load_id, **{k: v for k, v in self.options.audit.items() if k != "load"}}
        self.options = dataclasses.replace(self.options, audit=facts)

    # -- driver ---------------------------------------------------------------------------
    def _driver(self) -> str:
        if self._odbc_driver is None:
            from engine import native_shim  # type: ignore[attr-defined,unused-ignore]
            from engine.driver import find_driver

            real = find_driver(self.options.driver_path)
            native_shim.prepare_environment(real.path)
            self._odbc_driver = str(native_shim.shim_path())
        return self._odbc_driver

    # -- connect --------------------------------------------------------------------------
    def connect(self) -> Connection:
        """Open a connection, retrying transient failures within the retry policy.

        :raises ConnectError: a terminal failure (with cause and remedy), or transient
            failures that outlasted the policy.
        :raises CredentialError: no token could be obtained.
        """
        policy = self.options.retry
        started = self._clock()
        token = self.token_provider.get_token() if self.token_provider else None
        attempt = 0
        while True:
            attempt += 1
            diagnostics = self._probe_server() or self._attempt(token)
            if isinstance(diagnostics, Connection):
                diagnostics = self._named(diagnostics, attempt)
            if isinstance(diagnostics, Connection):
                return diagnostics
            disposition = classify(diagnostics)
            log.info("connect to %s: attempt %d failed (%s): %s", self.where, attempt,
                     disposition, describe(diagnostics))
            if disposition is Disposition.TERMINAL:
                raise self._terminal(diagnostics, token, attempt)
            elapsed = self._clock() - started
            if disposition is Disposition.TOKEN_EXPIRED:
                if self.token_provider is None:
                    raise self._terminal(diagnostics, token, attempt)
                token = self._refresh(token, diagnostics, attempt)
                delay = 0.0
            else:
                delay = policy.backoff(attempt, self._rng)
            if attempt >= policy.attempts or elapsed + delay > policy.total_seconds:
                raise self._exhausted(diagnostics, disposition, attempt, elapsed)
            self.stats.retries += 1
            if delay:
                self._sleep(delay)
            if disposition is Disposition.TRANSIENT and self.token_provider is not None:
                token = self.token_provider.get_token()

    def _named(self, conn: Connection, attempt: int) -> Connection | list[Diagnostic]:
        """``conn`` with its SESSION_CONTEXT set, or a transient failure's diagnostics."""
        pairs = session_context(self.options.application_name, self.options.audit)
        failure = set_session_context(conn, pairs) if pairs else None
        diagnostics = scrubbed_diagnostics(failure) if failure else []
        if diagnostics and classify(diagnostics) is not Disposition.TERMINAL:
            close_quietly(conn)
            return diagnostics
        if diagnostics:  # e.g. an old server: the application name still names the load
            log.warning("could not set the session context: %s", describe(diagnostics))
        conn.attempts = attempt
        self.stats.connects += 1
        return conn

    def _probe_server(self) -> list[Diagnostic] | None:
        """None when the port accepts TCP (or there is no probe); else the failure.

        :raises ConnectError: the server name does not resolve (terminal: a typo or a
            missing DNS record for a private endpoint does not fix itself).
        """
        host = self.options.server
        if self._probe is None or is_named_instance(host):
            return None
        try:
            self._probe(host, self.options.port, float(min(self.options.login_timeout, 15)))
            return None
        except socket.gaierror as exc:
            raise ConnectError(
                f"cannot connect to {self.where}: the server name {host!r} does not resolve "
                f"({exc.strerror}). What to do: check the server name (Azure SQL: "
                "<server>.database.windows.net; a private endpoint needs its DNS record)",
                diagnostics=[Diagnostic("08001", 0, f"cannot resolve {host!r}",
                                        component="azsql-bulk")],
                disposition=Disposition.TERMINAL, phase="connect", attempts=1) from None
        except OSError as exc:
            return _probe_failure(host, self.options.port, exc)

    def _attempt(self, token: AccessToken | None) -> Connection | list[Diagnostic]:
        """One login; returns the connection, or the scrubbed diagnostics of the failure.

        The connection string exists only inside this frame and the connect call, so no
        traceback we raise later can show it, and the ODBC error is dropped here.
        """
        attrs = connection_attributes(self.options, self._driver())
        secret: Secret
        if token is not None:
            secret = token.token
            attrs.append(("AccessToken", secret.reveal()))
        else:
            user, secret = sql_login(self.options.credential)
            attrs += [("UID", user), ("PWD", secret.reveal())]
        text = build_connection_string(attrs)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("connecting: %s", redact(text))
        failure: str | None = None
        try:
            raw = self._connect_fn(text, self.options.turbodbc_options)
        except Exception as exc:  # turbodbc, pyodbc, the shim: all become diagnostics
            failure = error_text(exc)
        finally:
            del text, attrs
        if failure is None:
            return Connection(raw, token_expires_at=token.expires_on if token else None,
                              where=self.where)
        secrets = [secret.reveal()]
        return scrubbed_diagnostics(failure, secrets)

    def _refresh(self, token: AccessToken | None, diagnostics: Sequence[Diagnostic],
                 attempt: int) -> AccessToken:
        assert self.token_provider is not None
        problem: str | None = None
        try:
            fresh = self.token_provider.force_refresh(rejected=token)
        except CredentialError as exc:
            problem = str(exc)
        if problem is not None:
            raise ConnectError(
                f"cannot connect to {self.where}: the server refused the access token as "
                f"expired ({describe(diagnostics)}), and no new token could be obtained: "
                f"{problem}", diagnostics=diagnostics, disposition=Disposition.TERMINAL,
                phase="connect", attempts=attempt)
        self.stats.token_refreshes += 1
        log.info("connect to %s: token expired at login; retrying with a new token", self.where)
        return fresh

    # -- messages -------------------------------------------------------------------------
    def _terminal(self, diagnostics: Sequence[Diagnostic], token: AccessToken | None,
                  attempts: int) -> ConnectError:
        cause, advice = login_diagnosis(diagnostics, token, self.options)
        text = f"cannot connect to {self.where} ({self._kind} credential): {cause}"
        text += f"; server said: {describe(diagnostics)}"
        if advice:
            text += f". What to do: {advice}"
        return ConnectError(text, diagnostics=diagnostics, disposition=Disposition.TERMINAL,
                            phase="connect", attempts=attempts)

    def _exhausted(self, diagnostics: Sequence[Diagnostic], disposition: Disposition,
                   attempts: int, elapsed: float) -> ConnectError:
        advice = remedy(diagnostics)
        text = (f"cannot connect to {self.where}: still failing after {attempts} attempt(s) in "
                f"{elapsed:.1f} s; last error: {describe(diagnostics)}")
        if advice:
            text += f". What to do: {advice}"
        text += (". The failure looked transient; if the database is expected back, allow more "
                 "attempts (--connect-attempts; Python: ConnectionOptions.retry)")
        return ConnectError(text, diagnostics=diagnostics, disposition=disposition,
                            phase="connect", attempts=attempts)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Release the token provider if this factory built it."""
        if self._own_provider and self.token_provider is not None:
            self.token_provider.close()

    def __enter__(self) -> ConnectionFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ConnectionFactory {self.where} encrypt={self.options.encrypt} {self._kind}>"


_NO_TRANSACTION = "3903"  # "The ROLLBACK TRANSACTION request has no corresponding BEGIN..."
def rollback_quietly(conn: Any) -> None:
    """Roll back; a broken link needs none (the server rolls back an open transaction).

    After error 3903 (the server had already ended the transaction) the driver still
    believes one is open, and turbodbc's close would print its raw "Error during rollback
    ... 3903" to stderr: a transaction begun here gives that last rollback one to end.
    """
    try:
        conn.rollback()
        return
    except Exception as exc:  # a broken link: the server rolls back the open transaction itself
        gone = _NO_TRANSACTION in error_text(exc)
        log.debug("rollback failed%s", " (no transaction left)" if gone else
                  " on a broken connection", exc_info=False)
    if gone:
        try:
            conn.cursor().execute("IF @@TRANCOUNT = 0 BEGIN TRANSACTION")
        except Exception:  # the link went too: nothing is left to roll back
            log.debug("could not realign the driver's transaction state", exc_info=False)


def close_quietly(conn: Any) -> None:
    """Close; closing a dead connection may fail, and nothing is left to release."""
    try:
        conn.close()
    except Exception:  # closing a dead connection may fail; nothing is left to release
        log.debug("close failed on a broken connection", exc_info=False)
