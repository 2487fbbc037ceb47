"""A replayed batch whose first attempt committed after all, while the replay ran.

Seen against the emulator under kill_sessions: the first attempt's COMMIT was in flight
when its link dropped; the replay, on a new connection, found no journal row yet, wrote
the batch again, and its own commit was refused (a duplicate journal key: the first
commit had landed meanwhile). The batch is in exactly once, so the load must go on. The
server is a small in-memory stand-in here so the interleaving is exact; the real races
are covered by tests/reliability.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from engine.batch_writer import BatchWriter
from engine.binder import BoundBatch
from engine.connection import RetryPolicy
from engine.errors import DatabaseError, Diagnostic, Disposition, TransferError
from engine.journal import Journal, batch_key
from engine.results import Tally
from engine.sources import SourceBatch, SourceLocation


class Server:
    """The journal keys committed, and a script of what each COMMIT does."""

    def __init__(self, commits: list[str]) -> None:
        self.journaled: set[str] = set()
        self.commits = commits  # per commit: "ok", "lost-link-but-lands", "duplicate"
        self.connects = 0


class Connection:
    def __init__(self, server: Server) -> None:
        self.server, self.pending, self.result = server, None, [[0]]

    def should_recycle(self, margin: float) -> bool:
        return False

    def cursor(self):
        return self

    def execute(self, sql, params=None):
        if sql.startswith("SELECT COUNT(*)"):
            self.result = [[int(params[1] in self.server.journaled)]]
        elif "INSERT" in sql:
            self.pending = batch_key("mem:0")

    def fetchall(self):
        return self.result

    def commit(self):
        step = self.server.commits.pop(0) if self.server.commits else "ok"
        if step == "duplicate":  # the earlier attempt's commit landed first
            self.server.journaled.add(batch_key("mem:0"))
            raise DatabaseError("commit failed: duplicate key", disposition=Disposition.TERMINAL,
                                diagnostics=[Diagnostic("23000", 2627, "duplicate key")])
        if self.pending:
            if step == "lost-link-but-lands":
                raise DatabaseError("commit failed: link lost",
                                    disposition=Disposition.TRANSIENT,
                                    diagnostics=[Diagnostic("08S01", 0, "link failure")])
            self.server.journaled.add(self.pending)
        self.pending = None

    def rollback(self):
        self.pending = None

    def close(self):
        pass


class Factory:
    def __init__(self, server: Server) -> None:
        self.server = server

    def connect(self):
        self.server.connects += 1
        return Connection(self.server)


class Transport:
    name = "fake"

    def bind(self, data, *, row_offset):
        return BoundBatch(pa.Table.from_batches([data]), "INSERT", data.num_rows)

    def write(self, conn, cursor, bound):
        cursor.execute("INSERT rows")


class NoWidening:
    def needed(self, error, data, done):
        return {}

    def text_limit(self, name):
        return None


def writer(server: Server, tally: Tally) -> BatchWriter:
    return BatchWriter("dbo.t", "load-1", factory=Factory(server),  # type: ignore[arg-type]
                       journal=Journal("load-1", "dbo.t"), transport=Transport(),  # type: ignore[arg-type]
                       widening=NoWidening(), tally=tally, stop=threading.Event(),  # type: ignore[arg-type]
                       max_retries=3, retry=RetryPolicy(attempts=4, base_delay=0, max_delay=0),
                       token_refresh_margin=0)


def item() -> SourceBatch:
    data = pa.record_batch({"n": pa.array([1, 2, 3], pa.int64())})
    return SourceBatch("mem:0", data, SourceLocation("mem", None, 0, 3))


def test_a_replay_refused_because_the_first_attempt_landed_counts_the_batch_once():
    # attempt 1: commit lost (not landed yet); attempt 2: refused, the first one landed
    server = Server(["lost-link-but-lands", "duplicate"])
    tally = Tally(1, 3, None)
    conn = writer(server, tally)(None, item(), tally.stats[0])
    assert conn is not None  # the load goes on, on the connection that checked
    assert server.journaled == {batch_key("mem:0")}
    assert tally.skipped == 1 and tally.rows == 0  # in once, by the first attempt


def test_a_terminal_error_of_a_batch_that_never_landed_still_stops_the_load():
    server = Server(["lost-link-but-lands", "refused"])
    tally = Tally(1, 3, None)

    class Refusing(Transport):
        calls = 0

        def write(self, conn, cursor, bound):
            Refusing.calls += 1
            if Refusing.calls == 2:
                raise DatabaseError("insert failed", disposition=Disposition.TERMINAL,
                                    diagnostics=[Diagnostic("23000", 515, "NULL")])
            super().write(conn, cursor, bound)

    w = writer(server, tally)
    w.transport = Refusing()
    with pytest.raises(TransferError, match="insert failed"):
        w(None, item(), tally.stats[0])
    assert server.journaled == set() and tally.skipped == 0
