"""Fixtures of the engine's integration tests (defined in tests/loads.py)."""

from loads import reader, sql_target

__all__ = ["reader", "sql_target"]
