"""azsql-bulk: stream Apache Arrow data into Azure SQL Database over token-authenticated ODBC."""

from engine.connection_string import build_connection_string, quote_value, redact
from engine.driver import DriverInfo, find_driver
from engine.errors import AzsqlBulkError, ConfigurationError, DriverNotFoundError

__all__ = [
    "AzsqlBulkError",
    "ConfigurationError",
    "DriverInfo",
    "DriverNotFoundError",
    "build_connection_string",
    "find_driver",
    "quote_value",
    "redact",
]
__version__ = "0.1.0"
