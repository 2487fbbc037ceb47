"""`azsql-bulk doctor`: check that this machine can run loads, one line per check.

With ``--server`` and ``--database`` (or ``$AZSQL_BULK_SERVER`` and ``$AZSQL_BULK_DATABASE``)
it also checks connectivity: it gets a token for ``--auth``, logs in, shows the principal
(``SUSER_SNAME()``) and, with ``--table``, whether that principal may load the table (read,
insert, create it and the load journal), saying what is missing and how to grant it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.cli.arguments import Opt, UsageError, add_options, resolve
from engine.cli.connection_args import CONNECTION_OPTIONS, connection_options
from engine.connection import (
    ConnectionFactory,
    ConnectionOptions,
    probe_problem,
    probe_server,
    server_address,
)
from engine.connection_string import build_connection_string
from engine.credentials import CredentialKind, TokenProvider, create_token_provider
from engine.driver import (
    DriverInfo,
    check_driver_loads,
    check_system_libraries,
    find_driver,
)
from engine.errors import (
    AzsqlBulkError,
    ConfigurationError,
    CredentialError,
    SqlServerError,
    database_error,
)
from engine.journal import JOURNAL_SCHEMA
from engine.names import TableName, quote_identifier
from engine.options import AUTO_BULK_MIN_ROWS
from engine.transport_choice import bulk_copy_verdict

PRELOGIN = 0x12  # MS-TDS 2.2.3.1.1 packet type of the first client message


@dataclass(frozen=True)
class Check:
    """One doctor line: what was checked, whether it passed, and the detail or the fix."""

    name: str
    ok: bool
    detail: str
    #: a finding that does not stop loads (shown as WARN, not counted as failed)
    advisory: bool = False

    def line(self) -> str:
        mark = "OK  " if self.ok else "WARN" if self.advisory else "FAIL"
        return f"{mark} {self.name}: {self.detail}"


def _version_check(dist: str, module: str, fix: str) -> Check:
    try:
        importlib.import_module(module)
        return Check(dist, True, importlib.metadata.version(dist))
    except Exception as exc:  # any import failure is the finding itself
        return Check(dist, False, f"{type(exc).__name__}: {exc}; fix: {fix}")


def capture_first_packet(driver: DriverInfo, timeout: float = 10.0) -> bytes:
    """Connect turbodbc through the driver to a throw-away local socket; return what arrived.

    The listener reads one TDS packet and hangs up, so the login itself fails; only
    what the driver sent matters.

    :raises AzsqlBulkError: nothing arrived within ``timeout`` seconds.
    """
    import turbodbc

    received = bytearray()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(timeout)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(timeout)
                try:
                    while len(received) < 8 or len(received) < int.from_bytes(received[2:4], "big"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        received.extend(chunk)
                except OSError:
                    pass

        thread = threading.Thread(target=serve, name="doctor-listener", daemon=True)
        thread.start()
        conn_str = build_connection_string({
            "Driver": str(driver.path), "Server": server_address("127.0.0.1", port),
            "Encrypt": "yes", "LoginTimeout": int(timeout),
        })
        try:
            turbodbc.connect(connection_string=conn_str).close()
        except turbodbc.Error:
            pass  # expected: the listener is not a server
        thread.join(timeout)
    if not received:
        raise AzsqlBulkError(f"the driver sent nothing to 127.0.0.1:{port} within {timeout:.0f} s")
    return bytes(received)


def run_checks(driver_path: str | None = None) -> list[Check]:
    """Run every check, in order; later checks are skipped when what they need failed."""
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0]
                    + ("" if sys.version_info >= (3, 11) else "; fix: use Python 3.11 or newer"))]
    for dist, module in (("pyarrow", "pyarrow"), ("polars", "polars"),
                         ("azure-identity", "azure.identity")):
        checks.append(_version_check(dist, module, "run `make setup`"))
    turbodbc_check = _version_check(
        "turbodbc", "turbodbc", "run `make setup` (builds turbodbc from source against pyarrow)")
    checks.append(turbodbc_check)

    problems = check_system_libraries()
    checks.append(Check("unixODBC and driver libraries", not problems,
                        "; ".join(problems) or "libodbc.so.2, libltdl.so.7, libgssapi_krb5.so.2"))
    try:
        driver = find_driver(driver_path)
        checks.append(Check("ODBC driver", True, f"{driver.path} (version {driver.version}, "
                                                  f"from {driver.source})"))
    except AzsqlBulkError as exc:
        checks.append(Check("ODBC driver", False, str(exc)))
        return checks
    try:
        check_driver_loads(driver)
        checks.append(Check("ODBC driver loads", True, "dlopen ok"))
    except AzsqlBulkError as exc:
        checks.append(Check("ODBC driver loads", False, str(exc)))
        return checks
    if not turbodbc_check.ok:
        checks.append(Check("TDS PRELOGIN", False, "skipped: turbodbc does not import"))
        return checks
    try:
        packet = capture_first_packet(driver)
        ok = packet[0] == PRELOGIN
        checks.append(Check(
            "TDS PRELOGIN", ok,
            f"turbodbc -> driver -> 127.0.0.1 sent packet type 0x{packet[0]:02x}, "
            f"{len(packet)} bytes"
            + ("" if ok else "; expected 0x12: reinstall mssql-python-odbc")))
    except Exception as exc:
        checks.append(Check("TDS PRELOGIN", False, f"{type(exc).__name__}: {exc}"))
    return checks


# -- connectivity -------------------------------------------------------------------------------

_DENIED = {SqlServerError.OBJECT_DENIED: "object permission denied",
           SqlServerError.COLUMN_DENIED: "column permission denied",
           SqlServerError.DATABASE_DENIED: "database permission denied",
           SqlServerError.SCHEMA_DENIED: "schema permission denied"}
#: a permission a load needs -> the database role that grants it (named in refusals)
ROLE_FOR = {"SELECT": "db_datareader", "INSERT": "db_datawriter", "CREATE TABLE": "db_ddladmin",
             "CREATE SCHEMA": "db_ddladmin", "ALTER": "db_ddladmin"}
_JOURNAL = ("azsql_bulk", "load_journal")


def _token_check(options: ConnectionOptions) -> tuple[Check, TokenProvider | None]:
    """Get a token (or check the SQL password variable); returns the check and the provider."""
    cred = options.credential
    if cred.kind is CredentialKind.SQL:
        have = bool(os.environ.get(cred.sql_password_env))
        return Check("credential", have,
                     f"SQL authentication as {cred.sql_user!r}, password from "
                     f"${cred.sql_password_env} ({'set' if have else 'NOT set: set it'}); "
                     "for a local SQL Server or the emulator only"), None
    provider = None
    try:
        provider = create_token_provider(cred)
        token = provider.get_token()
    except (CredentialError, ConfigurationError) as exc:
        if provider is not None:
            provider.close()
        return Check("access token", False, f"{cred.kind}: {exc}"), None
    claims = token.claims()
    who = ", ".join(f"{k} {claims[k]}" for k in ("appid", "oid", "upn", "tid") if k in claims)
    minutes = token.seconds_left() / 60
    return Check("access token", True,
                 f"{cred.kind}: token for {claims.get('aud', cred.effective_scope)}"
                 f"{f' ({who})' if who else ''}, expires in {minutes:.0f} min"), provider


def _run_sql(conn: Any, sql: str, params: list[Any] | None = None) -> tuple[list[Any], Any]:
    """(rows, None) or ([], the DatabaseError); rolls the probe back either way."""
    try:
        cursor = conn.cursor()
        cursor.execute(sql, params or [])
        rows = cursor.fetchall() if cursor.description else []
        return rows, None
    except Exception as exc:  # the ODBC client's error, read as diagnostics
        return [], database_error(exc, phase="doctor", where=sql.split(" ", 2)[0])
    finally:
        try:
            conn.rollback()
        except Exception:  # noqa: S110 (a broken link shows in the next probe)
            pass


def denied(error: Any) -> bool:
    """Whether ``error`` (a DatabaseError or None) is a permission refusal."""
    return error is not None and getattr(error, "native_error", None) in _DENIED


def permissions_check(conn: Any, table: str) -> Check:
    """What a load into ``table`` needs, checked by harmless probes rolled back at once.

    fn_my_permissions is not used: it needs VIEW DEFINITION on the object to see anything,
    and some servers (the emulator) lack it; a probe asks the server itself.
    """
    parsed = TableName.parse(table)
    schema, name, qualified = parsed.schema, parsed.name, parsed.quoted
    cols, error = _run_sql(conn, "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE "
                           "TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                           [schema, name])
    if error is not None:
        return Check(f"permissions for {schema}.{name}", False, f"cannot read the catalog: {error}")
    journal_cols, _ = _run_sql(conn, "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE "
                               "TABLE_SCHEMA = ? AND TABLE_NAME = ?", list(_JOURNAL))
    have: list[str] = []
    missing: list[tuple[str, str]] = []

    def probe(what: str, sql: str, on: str) -> None:
        _, err = _run_sql(conn, sql)
        if err is None:
            have.append(f"{what} on {on}")
        elif denied(err):
            missing.append((what, on))
        else:
            missing.append((f"{what} (probe failed: {err})", on))

    def probe_table(tbl: str, first_column: str) -> None:
        col = quote_identifier(first_column)
        probe("SELECT", f"SELECT TOP 0 * FROM {tbl}", tbl)  # noqa: S608 (quoted identifiers)
        probe("INSERT", f"INSERT INTO {tbl} ({col}) SELECT TOP 0 {col} FROM {tbl}", tbl)  # noqa: S608

    scratch = quote_identifier(f"azsql_bulk_doctor_{uuid.uuid4().hex[:8]}")
    if cols:
        probe_table(qualified, cols[0][0])
        state = f"{schema}.{name} exists ({len(cols)} columns)"
    else:
        probe("CREATE TABLE", f"CREATE TABLE {quote_identifier(schema)}.{scratch} (x int)",
              f"schema {schema}")
        state = f"{schema}.{name} does not exist yet (the load creates it)"
    if journal_cols:
        probe_table(f"[{_JOURNAL[0]}].[{_JOURNAL[1]}]", "load_id")
    else:
        probe("CREATE SCHEMA", f"CREATE SCHEMA {scratch}", "the database")
        state += "; the load journal [azsql_bulk].[load_journal] does not exist yet"
    user_rows, _ = _run_sql(conn, "SELECT USER_NAME()")
    user = str(user_rows[0][0]) if user_rows else "<user>"
    if missing:
        roles = sorted({ROLE_FOR.get(what.split(" (")[0], "db_ddladmin") for what, _ in missing})
        grants = " ".join(f"ALTER ROLE {r} ADD MEMBER [{user}];" for r in roles)
        text = (f"{state}; missing: " + ", ".join(f"{w} on {on}" for w, on in missing)
                + (f"; has {', '.join(have)}" if have else "")
                + f". What to do: as the database's Microsoft Entra admin run {grants}")
        return Check(f"permissions for {schema}.{name}", False, text)
    return Check(f"permissions for {schema}.{name}", True,
                 f"{state}; has {', '.join(have)} (probes rolled back)")


def connectivity_checks(options: ConnectionOptions, table: str | None = None) -> list[Check]:
    """Reach the server, get a token, log in, show the principal; check ``table``'s needs.

    :param options: where and how to connect.
    :param table: ``schema.table`` to check permissions for, or None.
    """
    where = f"{options.server},{options.port}"
    try:
        probe_server(options.server, options.port, timeout=10)
    except socket.gaierror as exc:
        return [Check("network", False, f"cannot resolve {options.server!r} ({exc.strerror}); "
                                        "check --server")]
    except OSError as exc:
        return [Check("network", False, f"cannot reach {where}: {probe_problem(exc)}; check "
                      "the host and port, that the server runs, and firewall rules (Azure SQL: "
                      "allow this client's IP, or use a private endpoint)")]
    checks = [Check("network", True, f"{where} accepts TCP connections")]
    token_check, provider = _token_check(options)
    checks.append(token_check)
    if not token_check.ok:
        return checks
    try:
        with ConnectionFactory(options, token_provider=provider) as factory:
            started = time.monotonic()
            try:
                conn = factory.connect()
            except AzsqlBulkError as exc:
                checks.append(Check("login", False, str(exc)))
                return checks
            try:
                rows, error = _run_sql(conn, "SELECT SUSER_SNAME(), USER_NAME(), DB_NAME()")
                login, user, db = rows[0] if rows else ("?", "?", options.database)
                checks.append(Check(
                    "login", error is None,
                    f"{where}/{db} as {login} (database user {user}), encrypt "
                    f"{options.encrypt}, login took {(time.monotonic() - started) * 1000:.0f} ms"
                    + (f"; but SELECT SUSER_SNAME() failed: {error}" if error else "")))
                if table:
                    checks.append(permissions_check(conn, table))
            finally:
                conn.close()
            checks.append(_bulk_copy_check(options, provider, table))
    finally:
        if provider is not None:
            provider.close()
    return checks


def _bulk_copy_check(options: ConnectionOptions, provider: TokenProvider | None,
                     table: str | None) -> Check:
    """The verdict ``transport='auto'`` and ``'bulk-copy'`` act on: bulk copy on a
    connection of its own, proven to stay inside the caller's transaction."""
    name = "bulk copy"
    schema = TableName.parse(table).schema if table else "dbo"
    try:
        with ConnectionFactory(dataclasses.replace(options, bulk_copy=True),
                               token_provider=provider) as factory:
            conn = factory.connect()
            try:
                journal = _run_sql(conn, "SELECT 1 FROM sys.schemas WHERE name = ?",
                                   [JOURNAL_SCHEMA])[0]
                why = bulk_copy_verdict(conn, factory,
                                        schema=JOURNAL_SCHEMA if journal else schema)
            finally:
                conn.close()
    except AzsqlBulkError as exc:
        why = f"the probe could not run: {exc}"
    if why is None:
        return Check(name, True,
                     "a bulk-copied row rolled back with its transaction (probe in a scratch "
                     "table, dropped); loads use bulk copy with transport auto (batches of "
                     f"at least {AUTO_BULK_MIN_ROWS:,} rows) or bulk-copy")
    return Check(name, False, f"not used on this server: {why}; loads still run, with "
                              "parameter arrays (slower)", advisory=True)


# -- the command ----------------------------------------------------------------------------------

_TABLE = Opt("--table", "check the permissions a load into this table needs",
             metavar="SCHEMA.TABLE")


def register(sub: Any) -> None:
    """Add the ``doctor`` command to the ``azsql-bulk`` parser's subparsers."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "doctor", help="check that this machine can run loads (and reach a database)",
        allow_abbrev=False,
        description="Check this machine (Python packages, ODBC driver, TDS). With --server "
                    "and --database also get a token, log in and show who you are; with "
                    "--table also check the permissions a load needs.")
    parser.add_argument("--driver", metavar="PATH", default=None,
                        help="path of libmsodbcsql-18.*.so (default: $AZSQL_BULK_ODBC_DRIVER, "
                             "else the mssql-python-odbc package)")
    group = parser.add_argument_group("connectivity (optional)")
    add_options(group, (_TABLE, *CONNECTION_OPTIONS))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``azsql-bulk doctor`` with parsed arguments; returns the exit code."""
    resolve(args, (_TABLE, *CONNECTION_OPTIONS))
    if args.table:
        try:
            TableName.parse(args.table)
        except ConfigurationError as exc:
            raise UsageError(f"bad --table: {exc}") from None
    connection = None
    if args.server or args.database:
        try:
            connection = connection_options(
                args, warn=lambda text: print(text, file=sys.stderr))
        except ConfigurationError as exc:
            raise UsageError(str(exc)) from None
    elif args.table:
        raise UsageError("--table needs --server and --database")
    return main(args.driver, connection=connection, table=args.table)


def main(driver_path: str | None = None, out: Callable[[str], None] = print, *,
         connection: ConnectionOptions | None = None, table: str | None = None) -> int:
    """Print the checks; return 0 only when every check passed.

    :param driver_path: Microsoft's driver library (default: found).
    :param out: prints one line.
    :param connection: also check logging in there.
    :param table: with ``connection``: also check the permissions a load into it needs.
    """
    checks = run_checks(driver_path)
    if connection is not None:
        checks.extend(connectivity_checks(connection, table))
    for check in checks:
        out(check.line())
    failed = sum(not c.ok and not c.advisory for c in checks)
    if failed:
        out(f"{len(checks) - failed} passed, {failed} failed")
    else:
        out(f"all {len(checks)} checks passed")
    return 1 if failed else 0
