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
    DuplicateKeyError,
    LoadAlreadyJournaled,
    NonFiniteValueError,
    SchemaMismatchError,
    SourceError,
    TransferCancelled,
    TransferError,
    UnsupportedTypeError,
    ValueCastError,
)
from engine.journal import default_load_id
from engine.names import TableName
from engine.options import CreatePolicy, Mode, Target, TransferOptions
from engine.results import Progress, TransferResult, WorkerStats
from engine.shards import split_source
from engine.sources import Source, SourceOptions, open_source
from engine.transfer import transfer
from engine.verify import VerifyReport, verify_table

__all__ = [
    "AccessToken",
    "AzsqlBulkError",
    "AzureCloud",
    "ConfigurationError",
    "ConnectError",
    "Connection",
    "ConnectionFactory",
    "ConnectionOptions",
    "CreatePolicy",
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
    "LoadAlreadyJournaled",
    "Mode",
    "NonFiniteValueError",
    "Progress",
    "RetryPolicy",
    "SchemaMismatchError",
    "Secret",
    "Source",
    "SourceError",
    "SourceOptions",
    "StaticTokenProvider",
    "TableName",
    "Target",
    "TokenProvider",
    "TransferCancelled",
    "TransferError",
    "TransferOptions",
    "TransferResult",
    "UnsupportedTypeError",
    "ValueCastError",
    "VerifyReport",
    "WorkerStats",
    "build_connection_string",
    "build_credential",
    "create_token_provider",
    "default_load_id",
    "find_driver",
    "open_source",
    "quote_value",
    "redact",
    "split_source",
    "transfer",
    "verify_table",
]
__version__ = "0.1.0"
