"""rollback_quietly: a transaction the server already ended leaves turbodbc nothing to
print at close (issue 22: "Error during rollback ... 3903" on stderr)."""

from __future__ import annotations

from engine.connection import rollback_quietly


class FakeCursor:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def execute(self, sql: str) -> None:
        self.log.append(sql)


class FakeConnection:
    """Only the two calls rollback_quietly makes; the failure is turbodbc's text."""

    def __init__(self, failure: str | None) -> None:
        self.failure, self.log = failure, []

    def rollback(self) -> None:
        self.log.append("rollback")
        if self.failure:
            raise RuntimeError(self.failure)

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.log)


def test_a_transaction_the_server_ended_is_realigned_for_the_last_rollback():
    conn = FakeConnection("ODBC error\nstate: 25000\nnative error code: 3903\nmessage: The "
                          "ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.")
    rollback_quietly(conn)
    assert conn.log == ["rollback", "IF @@TRANCOUNT = 0 BEGIN TRANSACTION"]


def test_a_broken_link_or_a_good_rollback_sends_nothing_more():
    for failure in ("ODBC error\nstate: 08S01\nnative error code: 0\nmessage: link", None):
        conn = FakeConnection(failure)
        rollback_quietly(conn)
        assert conn.log == ["rollback"]
