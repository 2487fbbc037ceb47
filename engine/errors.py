"""The engine's error hierarchy: one root, and one place that decides transient vs terminal."""

from __future__ import annotations


class AzsqlBulkError(Exception):
    """Root of every error azsql-bulk raises on purpose.

    Messages say what failed, where, and what to do about it.
    """


class ConfigurationError(AzsqlBulkError):
    """The user's configuration or environment is wrong; retrying will not help."""


class DriverNotFoundError(ConfigurationError):
    """Microsoft ODBC Driver 18 (or a library it needs) could not be found or loaded."""
