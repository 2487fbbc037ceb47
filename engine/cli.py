"""The ``azsql-bulk`` command line: the parser, environment-backed options, secret refusal.

Every option of ``load`` and of ``doctor``'s connectivity check can also be set in the
environment as ``AZSQL_BULK_<NAME>`` (``--rows-per-batch`` -> ``AZSQL_BULK_ROWS_PER_BATCH``);
an argument wins over the environment. Secrets are never arguments: a secret-looking
option or value is refused (exit 2) before anything else runs, without echoing it.

Commands from other installed packages plug in through the ``azsql_bulk.commands``
entry-point group (the emulator adds ``azsql-bulk emulator ...`` that way), so the
engine never imports them.

>>> refuse_secrets(["load", "x.parquet", "--password", "hunter2"]).splitlines()[-1]
'Put it in $AZSQL_BULK_SQL_PASSWORD (with --auth sql) instead.'
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from engine.errors import ConfigurationError

COMMAND_GROUP = "azsql_bulk.commands"
ENV_PREFIX = "AZSQL_BULK_"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3

# -- secrets --------------------------------------------------------------------------------

_SQL_PASSWORD_ENV = "AZSQL_BULK_SQL_PASSWORD"  # noqa: S105 (a name, not a secret)
_ACCESS_TOKEN_ENV = "AZSQL_BULK_ACCESS_TOKEN"  # noqa: S105 (a name, not a secret)
_CLIENT_SECRET_ENV = "AZURE_CLIENT_SECRET"  # noqa: S105 (a name, not a secret)
_CERT_PASSWORD_ENV = "AZURE_CLIENT_CERTIFICATE_PASSWORD"  # noqa: S105 (a name, not a secret)

#: secret-looking option names -> where that secret belongs instead
SECRET_OPTIONS: Mapping[str, str] = {
    "password": f"${_SQL_PASSWORD_ENV} (with --auth sql)",
    "pwd": f"${_SQL_PASSWORD_ENV} (with --auth sql)",
    "sql-password": f"${_SQL_PASSWORD_ENV} (with --auth sql)",
    "client-secret": f"${_CLIENT_SECRET_ENV} (with --auth service-principal)",
    "secret": f"${_CLIENT_SECRET_ENV} (with --auth service-principal)",
    "access-token": f"${_ACCESS_TOKEN_ENV}, or a file named by --access-token-file "
                    "(with --auth access-token)",
    "token": f"${_ACCESS_TOKEN_ENV}, or a file named by --access-token-file "
             "(with --auth access-token)",
    "certificate-password": f"${_CERT_PASSWORD_ENV}",
}
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")
_PASSWORD_KEYWORD = re.compile(r"(?i)(?:^|[;\s])(pwd|password|client_secret|accesstoken)\s*=")
_WHY = ("secrets are never taken from the command line (arguments show up in shell "
        "history, `ps` output and CI logs)")


def refuse_secrets(argv: Sequence[str]) -> str | None:
    """Why ``argv`` must be refused (a secret-looking option or value), else None.

    The message names the option or the argument's position and where the secret belongs,
    and never repeats the value.

    :param argv: the arguments after the program name.

    >>> refuse_secrets(["load", "--server", "eyJhbGciOiJSUzI1NiJ9.e30.sig"]).splitlines()[1]
    'argument 3 (after --server) looks like an access token (a JWT, eyJ...).'
    >>> refuse_secrets(["load", "a.parquet", "--table", "dbo.t"]) is None
    True
    """
    for position, arg in enumerate(argv, start=1):
        if arg == "--":
            continue
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0].lower()
            if name in SECRET_OPTIONS:
                return (f"azsql-bulk: refusing --{name}: {_WHY}.\n"
                        f"Put it in {SECRET_OPTIONS[name]} instead.")
        after = argv[position - 2] if position > 1 and argv[position - 2].startswith("-") \
            else None
        where = f"argument {position}" + (f" (after {after.split('=', 1)[0]})" if after else "")
        if _JWT.search(arg):
            return (f"azsql-bulk: refusing the command line: {_WHY}.\n"
                    f"{where} looks like an access token (a JWT, eyJ...).\n"
                    f"Put the token in ${_ACCESS_TOKEN_ENV} (or a file, --access-token-file) "
                    "and use --auth access-token.")
        match = _PASSWORD_KEYWORD.search(arg)
        if match:
            keyword = match.group(1)
            home = {"client_secret": f"${_CLIENT_SECRET_ENV}",
                    "accesstoken": f"${_ACCESS_TOKEN_ENV}"}.get(keyword.lower(),
                                                               f"${_SQL_PASSWORD_ENV}")
            return (f"azsql-bulk: refusing the command line: {_WHY}.\n"
                    f"{where} holds a {keyword}= setting.\n"
                    f"Put the secret in {home} instead, and give the server and database "
                    "with --server and --database.")
    return None


# -- environment-backed options ---------------------------------------------------------------

class UsageError(ConfigurationError):
    """A bad argument or environment variable: exit code 2."""


@dataclass(frozen=True)
class Opt:
    """One option that can also come from ``AZSQL_BULK_<NAME>``.

    :param flag: ``--rows-per-batch``.
    :param help: what it does (the environment variable and default are appended).
    :param type: parses the text (argument or environment value); raise ValueError.
    :param default: used when neither the argument nor the environment gives one.
    :param choices: the allowed values.
    :param metavar: the value's name in the help.
    :param action: ``value``, ``flag`` (a switch) or ``append`` (repeatable; in the
        environment a comma-separated list).
    """

    flag: str
    help: str
    type: Callable[[str], Any] = str
    default: Any = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    action: str = "value"

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def add_options(group: Any, options: Iterable[Opt]) -> None:
    """Add ``options`` to an argparse parser or group, each defaulting to None (unset).

    :param group: the parser or argument group.
    :param options: the options.
    """
    for opt in options:
        extra = f"[env {opt.env}" + ("" if opt.default in (None, False, ())
                                     else f"; default {opt.default}") + "]"
        text = f"{opt.help} {extra}".replace("%", "%%")
        if opt.action == "flag":
            group.add_argument(opt.flag, dest=opt.dest, action="store_true", default=None,
                               help=text)
        elif opt.action == "append":
            group.add_argument(opt.flag, dest=opt.dest, action="append", default=None,
                               metavar=opt.metavar, help=text)
        else:
            group.add_argument(opt.flag, dest=opt.dest, default=None, metavar=opt.metavar
                               or (None if opt.choices else opt.dest.upper()),
                               choices=opt.choices, help=text)


def _convert(opt: Opt, text: str, origin: str) -> Any:
    try:
        value = opt.type(text)
    except (ValueError, TypeError, ConfigurationError) as exc:
        raise UsageError(f"{origin}: {exc}") from None
    if opt.choices is not None and value not in opt.choices:
        raise UsageError(f"{origin}: {text!r} is not one of {', '.join(opt.choices)}")
    return value


def resolve(args: argparse.Namespace, options: Iterable[Opt],
            environ: Mapping[str, str] | None = None) -> None:
    """Fill every unset option from ``AZSQL_BULK_<NAME>``, else its default; parse values.

    :param args: parsed arguments (unset options are None); updated in place.
    :param options: the options to resolve.
    :param environ: the environment (default ``os.environ``).
    :raises UsageError: a value that does not parse, naming the option or the variable.
    """
    env = os.environ if environ is None else environ
    for opt in options:
        given = getattr(args, opt.dest, None)
        if opt.action == "flag":
            if given is None:
                raw = env.get(opt.env)
                if raw is None:
                    given = bool(opt.default)
                elif raw.strip().lower() in _TRUE | _FALSE:
                    given = raw.strip().lower() in _TRUE
                else:
                    raise UsageError(f"${opt.env}: expected 1/0, true/false, yes/no or on/off")
            setattr(args, opt.dest, given)
            continue
        if opt.action == "append":
            if given is None:
                raw = env.get(opt.env)
                texts = split_list(raw) if raw else []
                origin = f"${opt.env}"
            else:
                texts, origin = list(given), opt.flag
            values = [_convert(opt, t, origin) for t in texts]
            setattr(args, opt.dest, tuple(values) if values else tuple(opt.default or ()))
            continue
        if given is not None:
            setattr(args, opt.dest, _convert(opt, given, opt.flag))
        elif env.get(opt.env, "").strip():
            setattr(args, opt.dest, _convert(opt, env[opt.env].strip(), f"${opt.env}"))
        else:
            setattr(args, opt.dest, opt.default)


def split_list(text: str) -> list[str]:
    """Split an environment list on commas outside parentheses.

    >>> split_list("price=decimal(18,2), qty=int")
    ['price=decimal(18,2)', 'qty=int']
    """
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth <= 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def positive_int(text: str) -> int:
    """An integer of at least 1 (``10_000`` and ``10,000`` are fine too).

    >>> positive_int("10_000")
    10000
    """
    value = int(text.replace(",", "").replace("_", ""))
    if value < 1:
        raise ValueError(f"expected a whole number of at least 1, not {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A number of at least 0."""
    value = float(text)
    if not value >= 0:
        raise ValueError(f"expected a number of at least 0, not {text!r}")
    return value


_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "ki": 2**10, "kib": 2**10, "mi": 2**20,
          "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40, "tib": 2**40}


def byte_size(text: str) -> int:
    """A size in bytes: ``512MiB``, ``2GB``, ``1000000``.

    >>> byte_size("512MiB"), byte_size("2GB")
    (536870912, 2000000000)
    """
    match = _SIZE.match(text)
    unit = (match.group(2) or "").lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"expected a size such as 512MiB or 2GB, not {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


# -- connection options (load and doctor) -----------------------------------------------------

AUTH_KINDS = ("managed-identity", "workload-identity", "service-principal", "azure-cli",
              "default", "access-token", "sql")

CONNECTION_OPTIONS: tuple[Opt, ...] = (
    Opt("--server", "server host name, optionally with ,PORT "
        "(myserver.database.windows.net or 127.0.0.1,14330)", metavar="HOST[,PORT]"),
    Opt("--database", "database name", metavar="DB"),
    Opt("--auth", "how to get the access token (sql: user and password, for a local SQL "
        "Server or the emulator only)", choices=AUTH_KINDS, default="default"),
    Opt("--client-id", "user-assigned managed identity, service principal or workload "
        "identity app id", metavar="ID"),
    Opt("--tenant-id", "tenant of the service principal or workload identity", metavar="ID"),
    Opt("--certificate", "service principal certificate (PEM or PKCS12; its password comes "
        "from $AZURE_CLIENT_CERTIFICATE_PASSWORD)", metavar="PATH"),
    Opt("--access-token-file", "--auth access-token: a file holding the token (re-read when "
        "it goes stale; default: the token in $AZSQL_BULK_ACCESS_TOKEN)", metavar="PATH"),
    Opt("--sql-user", "--auth sql: the login name (the password comes from "
        "$AZSQL_BULK_SQL_PASSWORD)", metavar="USER"),
    Opt("--cloud", "Azure cloud: picks the token scope and authority",
        choices=("public", "usgov", "china"), default="public"),
    Opt("--authority-host", "a custom Entra authority (private clouds)", metavar="URL"),
    Opt("--encrypt", "TLS: strict (TDS 8.0), yes (certificate checked against the system's "
        "CAs or $SSL_CERT_FILE) or no (unencrypted: local testing only)",
        choices=("strict", "yes", "no"), default="yes"),
    Opt("--server-certificate", "--encrypt strict: a PEM the server's certificate must equal",
        metavar="PATH"),
    Opt("--host-name-in-certificate", "the name to expect in the server's certificate when "
        "it differs from --server", metavar="NAME"),
    Opt("--login-timeout", "seconds to wait for one login", type=positive_int, default=30,
        metavar="S"),
    Opt("--connect-attempts", "login attempts on transient failures before giving up",
        type=positive_int, default=6, metavar="N"),
)


def credential_options(args: argparse.Namespace) -> Any:
    """The :class:`~engine.credentials.CredentialOptions` of ``--auth`` and its options
    (used for the database login and for reading ``abfss://`` sources)."""
    from engine.credentials import CredentialOptions

    return CredentialOptions(
        kind=args.auth, client_id=args.client_id, tenant_id=args.tenant_id,
        certificate_path=args.certificate, access_token_file=args.access_token_file,
        sql_user=args.sql_user, cloud=args.cloud, authority_host=args.authority_host,
        disable_instance_discovery=bool(args.authority_host))


def connection_options(args: argparse.Namespace, *, warn: Callable[[str], None]) -> Any:
    """Build :class:`~engine.connection.ConnectionOptions` from resolved arguments.

    :param args: arguments after :func:`resolve` with :data:`CONNECTION_OPTIONS`.
    :param warn: prints a warning (``--encrypt no``).
    :raises UsageError: a missing server or database.
    :raises ConfigurationError: settings that do not fit together.
    """
    from engine.connection import ConnectionOptions, RetryPolicy

    missing = [f"{flag} (or ${ENV_PREFIX}{flag[2:].upper()})"
               for flag, value in (("--server", args.server), ("--database", args.database))
               if not value]
    if missing:
        raise UsageError(f"missing {' and '.join(missing)}: say which database to connect to")
    if args.auth == "sql" and not args.sql_user:
        raise UsageError("--auth sql needs --sql-user (or $AZSQL_BULK_SQL_USER); the password "
                         "comes from $AZSQL_BULK_SQL_PASSWORD")
    if args.encrypt == "no":
        warn("warning: --encrypt no sends data unencrypted (and a token or password that "
             "anyone on the path can read); Azure SQL Database requires encryption. Use "
             "--encrypt strict or yes outside local testing.")
    server = args.server.strip()
    if server.lower().startswith("tcp:"):
        server = server[4:]
    host, _, port_text = server.partition(",")
    try:
        port = int(port_text) if port_text else 1433
    except ValueError:
        raise UsageError(f"--server {args.server!r}: the port after ',' must be a number, as "
                         "in myserver.database.windows.net,1433") from None
    credential = credential_options(args)
    return ConnectionOptions(
        server=host, port=port, database=args.database, credential=credential,
        encrypt=args.encrypt, server_certificate=args.server_certificate,
        host_name_in_certificate=args.host_name_in_certificate,
        login_timeout=args.login_timeout,
        retry=RetryPolicy(attempts=args.connect_attempts))


# -- the parser -----------------------------------------------------------------------------

def _doctor(args: argparse.Namespace) -> int:
    from engine import doctor
    return doctor.run(args)


def _load(args: argparse.Namespace) -> int:
    from engine import cli_load
    return cli_load.run(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``azsql-bulk`` parser with every command, plug-ins included."""
    from engine import cli_load, doctor

    parser = argparse.ArgumentParser(
        prog="azsql-bulk", allow_abbrev=False,
        description="Bulk-load Arrow data into Azure SQL Database with Entra access tokens.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    cli_load.add_parser(sub).set_defaults(handler=_load)
    doctor.add_parser(sub).set_defaults(handler=_doctor)
    for ep in entry_points(group=COMMAND_GROUP):
        try:
            register = ep.load()
        except ImportError as exc:  # a broken optional plug-in must not break the CLI
            print(f"azsql-bulk: command {ep.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)  # adds its subparser and sets `handler`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``azsql-bulk`` console script; returns the exit code.

    Exit codes: 0 success, 1 failure, 2 usage or configuration error, 3 partial load
    that can be resumed (``load``).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    refusal = refuse_secrets(arguments)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        if "--json" in arguments:
            import json

            print(json.dumps({"status": "usage_error", "exit_code": EXIT_USAGE,
                              "error": refusal.replace("\n", " ")}))
        return EXIT_USAGE
    args = build_parser().parse_args(arguments)
    args.argv = arguments
    try:
        result: int = args.handler(args)
    except UsageError as exc:
        print(f"azsql-bulk {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return result


if __name__ == "__main__":
    sys.exit(main())
