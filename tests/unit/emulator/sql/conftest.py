"""Fixtures for the SQL engine tests: a real in-memory engine, sessions and a small helper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from azsql_emulator.errors import SqlError
from azsql_emulator.sql import SessionUser, SqlEngine, SqlSession, StatementResult

OWNER = SessionUser("dbo", "app@tenant", frozenset({"db_owner"}), 51)


class Db:
    """Runs batches on one session and asserts on their outcome."""

    def __init__(self, session: SqlSession) -> None:
        self.session = session

    def run(self, sql: str, params: dict | None = None) -> list[StatementResult]:
        """All results of a batch that must not fail."""
        results = self.session.execute(sql, params)
        for r in results:
            assert r.error is None, f"{sql!r}: {r.error!r}"
        return results

    def last(self, sql: str, params: dict | None = None) -> StatementResult:
        """The last result of an error-free batch."""
        return self.run(sql, params)[-1]

    def rows(self, sql: str, params: dict | None = None) -> list[tuple]:
        """The rows of the batch's last result."""
        return self.last(sql, params).rows

    def error(self, sql: str, params: dict | None = None) -> SqlError:
        """The first error a batch reports."""
        errors = [r.error for r in self.session.execute(sql, params) if r.error is not None]
        assert errors, f"{sql!r} raised no error"
        return errors[0]


@pytest.fixture
def engine() -> Iterator[SqlEngine]:
    eng = SqlEngine()
    yield eng
    eng.close()


@pytest.fixture
def session(engine: SqlEngine) -> Iterator[SqlSession]:
    s = engine.open_session("appdb", OWNER)
    yield s
    s.close()


@pytest.fixture
def db(session: SqlSession) -> Db:
    return Db(session)
