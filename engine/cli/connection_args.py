"""The options every command that connects shares: server, database, identity, TLS.

``load`` and ``doctor`` add :data:`CONNECTION_OPTIONS` to their parsers and build the
engine's :class:`~engine.connection.ConnectionOptions` with :func:`connection_options`.

>>> auth_kind("managed_identity")
'managed-identity'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from engine.cli.arguments import ENV_PREFIX, Opt, UsageError, positive_int
from engine.connection import ConnectionOptions, Encryption, RetryPolicy, parse_server_address
from engine.credentials import AzureCloud, CredentialKind, CredentialOptions
from engine.errors import ConfigurationError

__all__ = ["CONNECTION_OPTIONS", "auth_kind", "connection_options", "credential_options"]


def auth_kind(text: str) -> str:
    """The CLI's spelling of a credential kind given in either spelling
    (``managed_identity`` or ``managed-identity``)."""
    return CredentialKind(text).value


CONNECTION_OPTIONS: tuple[Opt, ...] = (
    Opt("--server", "server host name, optionally with ,PORT "
        "(myserver.database.windows.net or 127.0.0.1,14330)", metavar="HOST[,PORT]"),
    Opt("--database", "database name", metavar="DB"),
    Opt("--auth", "how to get the access token (sql: user and password, for a local SQL "
        "Server or the emulator only)", type=auth_kind,
        choices=tuple(kind.value for kind in CredentialKind),
        default=CredentialKind.DEFAULT.value),
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
        choices=tuple(cloud.value for cloud in AzureCloud), default=AzureCloud.PUBLIC.value),
    Opt("--authority-host", "a custom Entra authority (private clouds)", metavar="URL"),
    Opt("--encrypt", "TLS: strict (TDS 8.0), yes (certificate checked against the system's "
        "CAs or $SSL_CERT_FILE) or no (unencrypted: local testing only)",
        choices=tuple(mode.value for mode in Encryption), default=Encryption.YES.value),
    Opt("--server-certificate", "--encrypt strict: a PEM the server's certificate must equal",
        metavar="PATH"),
    Opt("--host-name-in-certificate", "the name to expect in the server's certificate when "
        "it differs from --server", metavar="NAME"),
    Opt("--login-timeout", "seconds to wait for one login", type=positive_int, default=30,
        metavar="S"),
    Opt("--connect-attempts", "login attempts on transient failures before giving up",
        type=positive_int, default=6, metavar="N"),
)


def credential_options(args: argparse.Namespace) -> CredentialOptions:
    """The :class:`~engine.credentials.CredentialOptions` of ``--auth`` and its options
    (used for the database login and for reading ``abfss://`` sources)."""
    return CredentialOptions(
        kind=args.auth, client_id=args.client_id, tenant_id=args.tenant_id,
        certificate_path=args.certificate, access_token_file=args.access_token_file,
        sql_user=args.sql_user, cloud=args.cloud, authority_host=args.authority_host,
        disable_instance_discovery=bool(args.authority_host))


def connection_options(args: argparse.Namespace, *,
                       warn: Callable[[str], None]) -> ConnectionOptions:
    """Build :class:`~engine.connection.ConnectionOptions` from resolved arguments.

    :param args: arguments after :func:`~engine.cli.arguments.resolve` with
        :data:`CONNECTION_OPTIONS`.
    :param warn: prints a warning (``--encrypt no``).
    :raises UsageError: a missing server or database, or a malformed ``--server``.
    :raises ConfigurationError: settings that do not fit together.
    """
    missing = [f"{flag} (or ${ENV_PREFIX}{flag[2:].upper()})"
               for flag, value in (("--server", args.server), ("--database", args.database))
               if not value]
    if missing:
        raise UsageError(f"missing {' and '.join(missing)}: say which database to connect to")
    if args.auth == CredentialKind.SQL and not args.sql_user:
        raise UsageError("--auth sql needs --sql-user (or $AZSQL_BULK_SQL_USER); the password "
                         "comes from $AZSQL_BULK_SQL_PASSWORD")
    if args.encrypt == "no":
        warn("warning: --encrypt no sends data unencrypted (and a token or password that "
             "anyone on the path can read); Azure SQL Database requires encryption. Use "
             "--encrypt strict or yes outside local testing.")
    try:
        host, port = parse_server_address(args.server)
    except ConfigurationError as exc:
        raise UsageError(f"--server: {exc}") from None
    return ConnectionOptions(
        server=host, port=port, database=args.database, credential=credential_options(args),
        encrypt=args.encrypt, server_certificate=args.server_certificate,
        host_name_in_certificate=args.host_name_in_certificate,
        login_timeout=args.login_timeout,
        retry=RetryPolicy(attempts=args.connect_attempts))
