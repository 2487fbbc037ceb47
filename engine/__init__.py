"""azsql-bulk: stream Apache Arrow data into Azure SQL Database over token-authenticated ODBC."""

from engine.connection import (
    Connection,
    ConnectionFactory,
    ConnectionOptions,
    Encryption,
    RetryPolicy,
)
from engine.connection_string import build_connection_string, quote_value, redact
from engine.credentials import (
    AccessToken,
    AzureCloud,
    CredentialKind,
    CredentialOptions,
    CredentialTokenProvider,
    Secret,
    StaticTokenProvider,
    TokenProvider,
    build_credential,
    create_token_provider,
)
from engine.driver import DriverInfo, find_driver
from engine.errors import (
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
    parse_diagnostics,
)
from engine.journal import Journal, batch_key, default_load_id
from engine.options import Target, TransferOptions
from engine.staging import DuplicateKeyError
from engine.transfer import (
    LoadAlreadyJournaled,
    Progress,
    TransferCancelled,
    TransferError,
    TransferResult,
    WorkerStats,
    transfer,
)

__all__ = [
    "AccessToken",
    "AzsqlBulkError",
    "AzureCloud",
    "ConfigurationError",
    "ConnectError",
    "Connection",
    "ConnectionFactory",
    "ConnectionOptions",
    "CredentialError",
    "CredentialKind",
    "CredentialOptions",
    "CredentialTokenProvider",
    "DatabaseError",
    "Diagnostic",
    "Disposition",
    "DriverInfo",
    "DriverNotFoundError",
    "DuplicateKeyError",
    "Encryption",
    "Journal",
    "LoadAlreadyJournaled",
    "Progress",
    "RetryPolicy",
    "Secret",
    "StaticTokenProvider",
    "Target",
    "TokenProvider",
    "TransferCancelled",
    "TransferError",
    "TransferOptions",
    "TransferResult",
    "WorkerStats",
    "batch_key",
    "build_connection_string",
    "build_credential",
    "classify",
    "create_token_provider",
    "database_error",
    "default_load_id",
    "find_driver",
    "parse_diagnostics",
    "quote_value",
    "redact",
    "transfer",
]
__version__ = "0.1.0"
