"""Provider metadata for Airflow's providers manager (``apache_airflow_provider`` entry point).

Connection form fields are declared here (Airflow 3.2+ ``conn-fields`` and
``ui-field-behaviour``), so the hook has no Flask or wtforms code and the UI needs no
hook import to draw the form. This module imports nothing from Airflow.

>>> info = get_provider_info()
>>> info["connection-types"][0]["connection-type"]
'azure_sql_bulk'
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]

_HOOK = "airflow_integration.hooks.AzureSqlBulkHook"
_OPERATORS = "airflow_integration.operators"


def _text(label: str, description: str) -> dict[str, Any]:
    return {"label": label, "schema": {"type": ["string", "null"]}, "description": description}


def _choice(label: str, choices: list[str], default: str, description: str) -> dict[str, Any]:
    return {"label": label, "description": description,
            "schema": {"type": ["string", "null"], "enum": choices, "default": default}}


def _conn_fields() -> dict[str, Any]:
    return {
        "auth": _choice(
            "Authentication", ["managed_identity", "workload_identity", "service_principal",
                               "azure_cli", "default"], "managed_identity",
            "How the worker gets its Microsoft Entra token. service_principal reads the client "
            "secret from the Password field."),
        "managed_identity_client_id": _text(
            "Managed identity client ID", "A user-assigned managed identity (empty: the "
            "system-assigned one)."),
        "tenant_id": _text("Tenant ID", "Service principal or workload identity tenant."),
        "client_id": _text("Client ID", "Service principal or workload identity application "
                           "(client) ID; the Login field works too."),
        "certificate_path": _text(
            "Certificate path", "Service principal: a PEM or PKCS12 certificate file on the "
            "workers, used instead of a client secret."),
        "encrypt": _choice("Encrypt", ["yes", "strict", "no"], "yes",
                           "yes: TLS with certificate validation; strict: TDS 8.0."),
        "server_certificate": _text(
            "Server certificate", "encrypt=strict only: path of the PEM the server's "
            "certificate must equal."),
        "host_name_in_certificate": _text(
            "Host name in certificate", "When the server's certificate names another host."),
        "cloud": _choice("Azure cloud", ["public", "usgov", "china"], "public",
                         "Picks the token scope and the authority host."),
        "authority_host": _text("Authority host", "A private Entra authority host."),
        "disable_instance_discovery": {
            "label": "Disable instance discovery",
            "schema": {"type": ["boolean", "null"], "default": False},
            "description": "Needed for authorities Microsoft does not know."},
        "login_timeout": {"label": "Login timeout (s)",
                          "schema": {"type": ["integer", "null"], "default": 30},
                          "description": "Seconds to wait for a login."},
        "azure_conn_id": _text(
            "Azure connection ID", "Take the identity from this Airflow 'azure' connection "
            "instead (its login/password as service principal, else "
            "DefaultAzureCredential)."),
    }


def get_provider_info() -> dict[str, Any]:
    """The provider's description for Airflow: hook, operator and the ``azure_sql_bulk`` type."""
    return {
        "package-name": "azsql-bulk",
        "name": "Azure SQL bulk load (azsql-bulk)",
        "description": "Parallel Arrow bulk loads into Azure SQL Database over Microsoft Entra "
                       "access tokens, exactly once per task instance, resumed by retries.",
        "integrations": [{
            "integration-name": "Azure SQL bulk load",
            "external-doc-url": "https://learn.microsoft.com/azure/azure-sql/database/",
            "tags": ["azure"],
        }],
        "operators": [{"integration-name": "Azure SQL bulk load",
                       "python-modules": [_OPERATORS]}],
        "hooks": [{"integration-name": "Azure SQL bulk load",
                   "python-modules": ["airflow_integration.hooks"]}],
        "connection-types": [{
            "connection-type": "azure_sql_bulk",
            "hook-class-name": _HOOK,
            "hook-name": "Azure SQL Database (azsql-bulk)",
            "conn-fields": _conn_fields(),
            "ui-field-behaviour": {
                "hidden-fields": ["extra"],
                "relabeling": {"host": "Server", "schema": "Database",
                               "login": "Client ID (service principal)",
                               "password": "Client secret (service principal)"},
                "placeholders": {"host": "myserver.database.windows.net", "port": "1433",
                                 "schema": "sales", "auth": "managed_identity",
                                 "encrypt": "yes"},
            },
        }],
    }
