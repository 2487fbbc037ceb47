"""The emulator's SQL engine: T-SQL in, results out, translated by sqlglot and run in DuckDB."""

from azsql_emulator.sql.engine import SqlEngine, SqlSession
from azsql_emulator.sql.results import SessionUser, StatementResult

__all__ = ["SessionUser", "SqlEngine", "SqlSession", "StatementResult"]
