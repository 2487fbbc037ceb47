"""The emulator's SQL engine: T-SQL in, results out, translated by sqlglot and run in DuckDB."""

from emulator.sql.engine import SqlEngine, SqlSession
from emulator.sql.results import SessionUser, StatementResult

__all__ = ["SessionUser", "SqlEngine", "SqlSession", "StatementResult"]
