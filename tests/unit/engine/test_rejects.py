"""engine.rejects without a database: which errors a row causes, the budget, the
bisection's choices (against an in-memory stand-in for a transport), the reject file,
and the two options on both surfaces."""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.binder import BoundBatch
from engine.errors import ConfigurationError, DatabaseError, Diagnostic, Disposition
from engine.journal import Journal, batch_key
from engine.options import TransferOptions
from engine.rejects import (
    Budget,
    RejectLimitReached,
    Splitter,
    _subset,
    read_rejects,
    row_caused,
    write_reject_file,
)
from engine.sources import SourceBatch, SourceLocation


def error(number: int | None, state: str = "23000", message: str = "refused",
          transient: bool = False) -> DatabaseError:
    return DatabaseError(f"insert failed: {message}",
                         diagnostics=[Diagnostic(state, number, message, "SQL Server")],
                         disposition=Disposition.TRANSIENT if transient else Disposition.TERMINAL)


@pytest.mark.parametrize(("number", "state", "expected"), [
    (515, "23000", True), (2628, "22001", True), (None, "22001", True), (8115, "22003", True),
    (245, "22018", True), (2627, "23000", True), (2601, "23000", True), (547, "23000", True),
    (208, "42S02", False), (229, "42000", False), (0, "08S01", False)])
def test_row_caused_errors(number, state, expected):
    assert row_caused(error(number, state)) is expected


def test_a_transient_error_is_never_row_caused():
    assert not row_caused(error(515, transient=True))
    assert not row_caused(ValueError("515"))


def test_the_budget_is_shared_and_counts_earlier_runs():
    budget = Budget(100, used=40)
    takes = []

    def take():
        takes.extend(budget.take(1) for _ in range(20))

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert takes.count(True) == 60 and takes.count(False) == 20
    assert budget.this_run == 60
    budget.release(5)
    assert budget.take(5) and not budget.take(1)


def test_subset_keeps_the_statement_and_one_chunk_per_column():
    data = pa.Table.from_batches([pa.record_batch({"n": list(range(5))})] * 2)
    bound = BoundBatch(data, "INSERT ...", 10)
    assert _subset(bound, list(range(10))) is bound
    part = _subset(bound, [3, 4, 5, 6])
    assert part.data.column("n").to_pylist() == [3, 4, 0, 1] and part.rows == 4
    picked = _subset(bound, [0, 9, 2])
    assert picked.data.column("n").to_pylist() == [0, 4, 2] and picked.sql == "INSERT ..."
    assert all(c.num_chunks == 1 for c in picked.data.columns)


class FakeTransport:
    """Refuses a write holding a negative value (515), or the same value twice (2627)."""

    name = "fake"

    def __init__(self) -> None:
        self.writes: list[list[int]] = []

    def write(self, conn, cursor, bound):
        values = bound.data.column("n").to_pylist()
        self.writes.append(values)
        if any(v < 0 for v in values):
            raise error(515, message="Cannot insert the value NULL into column 'n'")
        if len(set(values)) < len(values):
            raise error(2627, message="Violation of PRIMARY KEY constraint")
        conn.pending = values


class FakeConnection:
    def __init__(self) -> None:
        self.statements: list[tuple[str, list]] = []
        self.pending: list[int] = []
        self.committed: list[list[int]] = []
        self.rollbacks = 0

    def cursor(self):
        return self

    def execute(self, sql, params=None):
        self.statements.append((sql, list(params or [])))

    def commit(self):
        self.committed.append(self.pending)

    def rollback(self):
        self.rollbacks += 1
        self.pending = []


def split(values: list[int], limit: int = 10):
    batch = pa.record_batch({"n": pa.array(values, pa.int64())})
    item = SourceBatch("f.parquet#2:100", batch, SourceLocation("f.parquet", 2, 1_100,
                                                                len(values)))
    bound = BoundBatch(pa.Table.from_batches([batch]), "INSERT", len(values))
    journal = Journal("load-1", "dbo.t")
    budget = Budget(limit)
    conn, transport = FakeConnection(), FakeTransport()
    splitter = Splitter(journal, transport, budget, lambda name: None)
    outcome = splitter.commit(conn, item, bound, error(515), "batch 1")
    return outcome, conn, budget


def rejected_rows(conn) -> list[list]:
    return [params for sql, params in conn.statements
            if "rejected_rows" in sql and sql.startswith("INSERT")]


def test_bisection_rejects_the_bad_rows_and_commits_the_rest_with_the_journal_row():
    values = list(range(64))
    for at in (5, 6, 40):
        values[at] = -1
    (kept, rejected), conn, budget = split(values)
    assert (kept, rejected) == (61, 3) and budget.used == 3
    assert conn.committed == [[v for v in values if v >= 0]]  # one commit: the good rows
    records = rejected_rows(conn)
    assert [r[2] for r in records] == [5, 6, 40]  # row_in_batch
    first = records[0]
    assert first[:8] == ["load-1", batch_key("f.parquet#2:100"), 5, "f.parquet#2:100", "dbo.t",
                         "f.parquet", 2, 1_105]
    assert first[8:11] == ["n", 515, "23000"] and first[12] == '{"n": "-1"}'
    journal = [p for sql, p in conn.statements if "load_journal" in sql]
    assert journal == [["load-1", batch_key("f.parquet#2:100"), "f.parquet#2:100", "dbo.t", 61]]


def test_rows_that_fail_only_together_reject_the_later_one():
    values = list(range(32))
    values[25] = 3  # fine alone, a duplicate of row 3 with it
    (kept, rejected), conn, _ = split(values)
    assert (kept, rejected) == (31, 1)
    assert [r[2] for r in rejected_rows(conn)] == [25]
    assert rejected_rows(conn)[0][9] == 2627


def test_one_reject_over_the_limit_keeps_nothing_and_gives_the_budget_back():
    values = list(range(16))
    values[2] = values[9] = values[12] = -1
    with pytest.raises(RejectLimitReached):
        split(values, limit=2)
    batch = pa.record_batch({"n": pa.array(values, pa.int64())})
    item = SourceBatch("b", batch, SourceLocation("mem", None, 0, 16))
    budget, conn = Budget(2), FakeConnection()
    with pytest.raises(RejectLimitReached):
        Splitter(Journal("l", "dbo.t"), FakeTransport(), budget, lambda n: None).commit(
            conn, item, BoundBatch(pa.Table.from_batches([batch]), "I", 16), error(515), "b")
    assert budget.used == 0 and conn.committed == []


def test_the_reject_file_has_the_location_the_error_and_the_values_as_text(tmp_path):
    class Rows:
        def execute(self, sql, params):
            assert params == ["load-1"]

        def fetchall(self):
            return [("f.parquet#0:0", "f.parquet", 0, 17, 17, "name", 2628, "22001",
                     "String or binary data would be truncated", '{"id": "17", "name": "xx"}'),
                    ("mem:0", "mem", None, 3, 3, None, 547, "23000", "CHECK", '{"id": null}')]

    records = read_rejects(Rows(), "load-1")
    path = tmp_path / "r.parquet"
    assert write_reject_file(str(path), "load-1", records, ["id", "name", "sqlstate"]) == 2
    table = pq.read_table(path)
    assert table.column_names[:10] == ["load_id", "batch_id", "source_file", "unit",
                                       "source_row", "row_in_batch", "column_name",
                                       "error_number", "sqlstate", "error_message"]
    assert table.column_names[10:] == ["id", "name", "value_sqlstate"]
    rows = table.to_pylist()
    assert rows[0]["source_row"] == 17 and rows[0]["name"] == "xx" and rows[0]["id"] == "17"
    assert rows[1]["unit"] is None and rows[1]["id"] is None and rows[1]["name"] is None


def test_options_validate_max_errors_and_reject_file():
    assert TransferOptions().max_errors == 0 and TransferOptions().reject_file is None
    assert TransferOptions(max_errors=3, reject_file="r.parquet").max_errors == 3
    with pytest.raises(ConfigurationError, match="max_errors must not be negative"):
        TransferOptions(max_errors=-1)
    with pytest.raises(ConfigurationError, match="reject_file needs max_errors"):
        TransferOptions(reject_file="r.parquet")
    remote = "abfss://c@a.dfs.core.windows.net/r.parquet"  # written to storage at the end
    assert TransferOptions(max_errors=1, reject_file=remote).reject_file == remote
    with pytest.raises(ConfigurationError, match="local path or an abfss:// object"):
        TransferOptions(max_errors=1, reject_file="s3://bucket/r.parquet")


def test_the_cli_offers_max_errors_and_reject_file():
    from engine.cli.app import build_parser
    from engine.cli.arguments import resolve
    from engine.cli.connection_args import CONNECTION_OPTIONS
    from engine.cli.load_args import LOAD_OPTIONS, transfer_options

    argv = ["load", "a.parquet", "--max-errors", "10", "--reject-file", "rejects.parquet"]
    args = build_parser().parse_args(argv)
    args.argv = argv
    resolve(args, (*LOAD_OPTIONS, *CONNECTION_OPTIONS), {})
    options = transfer_options(args, None)
    assert (options.max_errors, options.reject_file) == (10, "rejects.parquet")


def test_the_operator_offers_max_errors_and_reject_file():
    pytest.importorskip("airflow.sdk")
    from airflow_integration.operators import AzureSqlBulkLoadOperator

    op = AzureSqlBulkLoadOperator(task_id="t", source="a.parquet", table="dbo.t", max_errors=4,
                                  reject_file="/tmp/r.parquet")
    options = op.transfer_options()
    assert (options.max_errors, options.reject_file) == (4, "/tmp/r.parquet")


def test_a_batch_found_committed_on_replay_counts_its_rejects_again():
    class Count:
        def execute(self, sql, params):
            assert "rejected_rows" in sql and params == ["l", "k" * 64]

        def fetchall(self):
            return [(3,)]

    budget = Budget(5)
    Splitter(Journal("l", "dbo.t"), FakeTransport(), budget, lambda n: None).landed(
        Count(), "k" * 64)
    assert budget.used == 3 and budget.take(2) and not budget.take(1)
