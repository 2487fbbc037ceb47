"""An Airflow connection's fields -> the engine's :class:`~engine.ConnectionOptions`.

Pure mapping, no Airflow import: it takes anything shaped like an Airflow ``Connection``
(``host``, ``port``, ``schema``, ``login``, ``password``, ``extra_dejson``), so it is
tested without a metadata database and the hook stays a few lines.

Field use: host = server, schema = database, port = port (default 1433), password =
a service principal's client secret (so Airflow's secrets backends, e.g. Azure Key
Vault, hold it), login = the service principal's client id when the ``client_id``
extra is empty. Extras (plain keys, or the UI's ``extra__azure_sql_bulk__<name>``):

=============================  =============================================================
``auth``                       ``managed_identity`` (default), ``workload_identity``,
                               ``service_principal``, ``azure_cli``, ``default``
``managed_identity_client_id`` a user-assigned managed identity
``tenant_id``, ``client_id``   service principal / workload identity
``certificate_path``           service principal with a certificate instead of a secret
``encrypt``                    ``yes`` (default), ``strict`` (TDS 8.0) or ``no``
``server_certificate``         ``strict`` only: the PEM the server's certificate must equal
``host_name_in_certificate``   the name in the server's certificate, when not the host
``cloud``                      ``public`` (default), ``usgov``, ``china``
``authority_host``             a private Entra authority (with ``disable_instance_discovery``)
``login_timeout``              seconds
``azure_conn_id``              take the identity from an Airflow ``azure`` connection
=============================  =============================================================

The secret never becomes a field of an options object: the engine gets a function that
returns it (``CredentialOptions.secret_store``), which is left out of reprs and equality.

>>> class Conn:
...     host, port, schema, login, password = "srv.database.windows.net", None, "sales", None, None
...     extra_dejson = {"auth": "managed_identity"}
>>> options = connection_options(Conn())
>>> options.server, options.port, options.database, options.credential.kind.value
('srv.database.windows.net', 1433, 'sales', 'managed-identity')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from engine.connection import ConnectionOptions
from engine.credentials import CredentialKind, CredentialOptions
from engine.errors import ConfigurationError

__all__ = ["AUTH_KINDS", "CONN_TYPE", "AirflowConnectionLike", "connection_options",
           "credential_from_azure_connection", "extra_value"]

CONN_TYPE = "azure_sql_bulk"

#: the credential kinds a connection offers, in the extras' spelling (``managed_identity``;
#: the CLI's ``managed-identity`` is accepted too). ``access-token`` and ``sql`` are left
#: out: a stored token goes stale, and SQL logins are for local testing only.
AUTH_KINDS: tuple[str, ...] = tuple(kind.extra_name for kind in (
    CredentialKind.MANAGED_IDENTITY, CredentialKind.WORKLOAD_IDENTITY,
    CredentialKind.SERVICE_PRINCIPAL, CredentialKind.AZURE_CLI, CredentialKind.DEFAULT))
DEFAULT_AUTH = CredentialKind.MANAGED_IDENTITY
_TRUE = {"true", "1", "yes", "on"}


class AirflowConnectionLike(Protocol):
    """The parts of ``airflow.sdk.Connection`` the mapping reads."""

    host: str | None
    port: int | None
    schema: str | None
    login: str | None
    password: str | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


def extra_value(extra: Mapping[str, Any], name: str, prefix: str = CONN_TYPE) -> Any:
    """An extra by its plain name, else by the UI form's ``extra__<type>__<name>`` key.

    Empty strings count as missing (the UI stores untouched fields as ``""``).

    >>> extra_value({"extra__azure_sql_bulk__tenant_id": "t"}, "tenant_id")
    't'
    """
    for key in (name, f"extra__{prefix}__{name}"):
        value = extra.get(key)
        if value is not None and value != "":
            return value
    return None


def _flag(value: Any) -> bool:
    return value is True or str(value).strip().lower() in _TRUE


def _auth(value: Any) -> CredentialKind:
    try:
        kind = CredentialKind(str(value or DEFAULT_AUTH))
    except ValueError:
        kind = None
    if kind is None or kind.extra_name not in AUTH_KINDS:
        raise ConfigurationError(
            f"connection extra auth={value!r} is not supported; use one of "
            f"{', '.join(AUTH_KINDS)}")
    return kind


def _secret_reader(password: str | None) -> Callable[[], str] | None:
    if not password:
        return None

    def read() -> str:
        return password
    return read


def credential_from_azure_connection(conn: AirflowConnectionLike) -> CredentialOptions:
    """The identity of an Airflow ``azure`` connection (the Microsoft Azure provider's).

    Client id in login and secret in password -> service principal (tenant from the
    ``tenantId``/``tenant_id`` extra); otherwise DefaultAzureCredential, with the
    ``managed_identity_client_id`` extra for a user-assigned identity. Certificate-based
    ``azure`` connections are not read (give ``certificate_path`` on this connection).

    :param conn: the ``azure`` connection.
    """
    extra = conn.extra_dejson or {}

    def pick(*names: str) -> Any:
        for name in names:
            value = extra_value(extra, name, prefix="azure")
            if value is not None:
                return value
        return None

    tenant = pick("tenantId", "tenant_id", "workload_identity_tenant_id")
    if conn.login and conn.password:
        return CredentialOptions(kind=CredentialKind.SERVICE_PRINCIPAL, client_id=conn.login,
                                 tenant_id=tenant, secret_store=_secret_reader(conn.password))
    return CredentialOptions(kind=CredentialKind.DEFAULT,
                             client_id=pick("managed_identity_client_id"), tenant_id=tenant)


def _credential(conn: AirflowConnectionLike, extra: Mapping[str, Any],
                azure_conn: AirflowConnectionLike | None) -> CredentialOptions:
    common: dict[str, Any] = {}
    if (cloud := extra_value(extra, "cloud")) is not None:
        common["cloud"] = str(cloud).lower()
    if (authority := extra_value(extra, "authority_host")) is not None:
        common["authority_host"] = str(authority)
    if _flag(extra_value(extra, "disable_instance_discovery")):
        common["disable_instance_discovery"] = True
    if azure_conn is not None:
        base = credential_from_azure_connection(azure_conn)
        return CredentialOptions(kind=base.kind, client_id=base.client_id,
                                 tenant_id=base.tenant_id, secret_store=base.secret_store,
                                 **common)
    kind = _auth(extra_value(extra, "auth"))
    tenant = extra_value(extra, "tenant_id")
    if kind is CredentialKind.MANAGED_IDENTITY:
        return CredentialOptions(kind=kind, client_id=extra_value(
            extra, "managed_identity_client_id"), **common)
    if kind is CredentialKind.DEFAULT:
        return CredentialOptions(kind=kind, client_id=extra_value(
            extra, "managed_identity_client_id"), tenant_id=tenant, **common)
    if kind is CredentialKind.AZURE_CLI:
        return CredentialOptions(kind=kind, tenant_id=tenant, **common)
    client = extra_value(extra, "client_id") or conn.login or None
    if kind is CredentialKind.WORKLOAD_IDENTITY:
        return CredentialOptions(kind=kind, client_id=client, tenant_id=tenant, **common)
    certificate = extra_value(extra, "certificate_path")
    if certificate is None and not conn.password:
        raise ConfigurationError(
            "auth=service_principal needs the client secret in the connection's password "
            "field (keep it in a secrets backend such as Azure Key Vault) or a "
            "certificate_path extra")
    return CredentialOptions(kind=kind, client_id=client, tenant_id=tenant,
                             certificate_path=certificate,
                             secret_store=None if certificate else _secret_reader(conn.password),
                             **common)


def connection_options(conn: AirflowConnectionLike,
                       azure_conn: AirflowConnectionLike | None = None) -> ConnectionOptions:
    """Build the engine's connection options from an Airflow connection.

    :param conn: an ``azure_sql_bulk`` connection.
    :param azure_conn: the connection named by its ``azure_conn_id`` extra, already looked
        up (the hook does that), whose identity replaces this connection's ``auth``.
    :raises ConfigurationError: no host or database, or an unusable auth setting.
    """
    extra = conn.extra_dejson or {}
    if not conn.host:
        raise ConfigurationError("the connection has no host; set it to the server, e.g. "
                                 "myserver.database.windows.net")
    if not conn.schema:
        raise ConfigurationError("the connection has no schema; set it to the database name")
    settings: dict[str, Any] = {}
    for name in ("encrypt", "server_certificate", "host_name_in_certificate"):
        if (value := extra_value(extra, name)) is not None:
            settings[name] = value
    if (timeout := extra_value(extra, "login_timeout")) is not None:
        settings["login_timeout"] = int(timeout)
    if conn.port:
        settings["port"] = int(conn.port)
    return ConnectionOptions(server=conn.host, database=conn.schema,
                             credential=_credential(conn, extra, azure_conn), **settings)
