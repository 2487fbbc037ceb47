"""Rejected rows (max_errors) against the emulator: real turbodbc, Driver 18, both transports.

A load with a few bad rows (NULLs into a NOT NULL column, text too long for an existing
nvarchar(20) column) sets them aside, loads every other row exactly once, and records
each reject once, with its source row, column and server error, in
``[azsql_bulk].[rejected_rows]`` (and the reject file) — also after a cancelled load is
resumed. One reject too many stops the load as without rejects.
"""

from __future__ import annotations

import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loads import journal_rows, rows_table

from engine.errors import TransferCancelled, TransferError
from engine.options import TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

TRANSPORTS = ["parameter-arrays", "bulk-copy"]
#: the bad rows (fractions of the source, so smaller variants keep them spread out):
#: NULL ids (515) and names over nvarchar(20) (2628, or the driver's 22001 in bulk copy);
#: two in one batch, and two next to each other
NULL_AT = (0.2123, 0.3, 0.9999)  # none in the first batch, which the plan checks
LONG_AT = (0.1, 0.5555, 0.77)


def bad_rows(n: int) -> tuple[pa.Table, dict[int, str]]:
    """``rows_table(n)`` with 7 bad rows; returns it and row -> the column at fault."""
    source = rows_table(n)
    ids = source.column("id").to_pylist()
    names = source.column("name").to_pylist()
    bad: dict[int, str] = {}
    nulls = [int(n * f) for f in NULL_AT] + [int(n * 0.3) + 1]  # two next to each other
    for at in nulls:
        ids[at] = None
        bad[at] = "id"
    for f in LONG_AT:
        names[int(n * f)] = "é" * 21  # 21 characters into nvarchar(20)
        bad[int(n * f)] = "name"
    assert len(bad) == 7
    source = source.set_column(0, "id", pa.array(ids, pa.int64()))
    return source.set_column(2, "name", pa.array(names, pa.string())), bad


def create(reader, target) -> None:
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(20) NULL)")


def rejected(reader, load_id: str) -> list[tuple]:
    return [tuple(r) for r in reader.execute(
        "SELECT source_row, column_name, error_number, sqlstate FROM "
        "[azsql_bulk].[rejected_rows] WHERE load_id = ? ORDER BY source_row", load_id)]


def check_loaded(reader, target, n: int, bad: dict[int, str], load_id: str) -> None:
    """Every good row exactly once, none of the bad ones; the journal agrees."""
    good = [i for i in range(n) if i not in bad]
    count, distinct, total = reader.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM {target.table}").fetchone()
    assert (count, distinct, total) == (len(good), len(good), sum(good))
    (longs,) = reader.execute(f"SELECT COUNT(*) FROM {target.table} "
                              "WHERE name <> CONCAT('row-', RIGHT(CONCAT('00000', id), 6))"
                              ).fetchone()
    assert longs == 0
    _, rows = journal_rows(reader, load_id)
    assert rows == len(good)


def check_rejects(reader, load_id: str, bad: dict[int, str], transport: str) -> None:
    got = rejected(reader, load_id)
    assert [r[0] for r in got] == sorted(bad)  # each bad row once, located
    for row, column, number, state in got:
        if bad[row] == "id":
            assert (column, number) == ("id", 515)
        elif transport == "bulk-copy":  # the driver refuses it before sending
            assert (column, state) == ("name", "22001")
        else:
            assert (column, number) == ("name", 2628)


@pytest.mark.parametrize(("transport", "n"), [("parameter-arrays", 20_000),
                                              ("bulk-copy", 100_000)])
def test_bad_rows_are_set_aside_and_the_rest_loads(sql_target, reader, tmp_path,
                                                   transport, n):
    target = sql_target("rejects")
    create(reader, target)
    source, bad = bad_rows(n)
    path = tmp_path / "rejects.parquet"
    seen: list[int] = []  # the progress snapshots' count (the live display shows it)
    result = transfer(source, target,
                      TransferOptions(workers=2, create="never", transport=transport,
                                      max_errors=10, reject_file=str(path),
                                      progress=lambda p: seen.append(p.rows_rejected)),
                      source_options=SourceOptions(rows_per_batch=n // 10))
    assert result.transport == transport
    assert (result.rows, result.rows_rejected) == (n - 7, 7)
    assert max(seen) == 7
    assert result.to_dict()["rows_rejected"] == 7
    check_loaded(reader, target, n, bad, result.load_id)
    check_rejects(reader, result.load_id, bad, transport)
    written = pq.read_table(path).to_pylist()
    assert [r["source_row"] for r in written] == sorted(bad)
    for r in written:
        assert r["source_file"] == "mem" and r["load_id"] == result.load_id
        assert r["column_name"] == bad[r["source_row"]] and r["error_message"]
        assert r["batch_id"] == f"mem:{r['source_row'] - r['row_in_batch']}"
        if bad[r["source_row"]] == "id":
            assert r["id"] is None and r["name"] == f"row-{r['source_row']:06d}"
        else:
            assert r["id"] == str(r["source_row"]) and r["name"] == "é" * 21


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_cancelled_load_resumes_without_reloading_or_rerejecting(sql_target, reader,
                                                                   tmp_path, transport):
    """Cancelled after a few batches (with rejects among them), then run again with the
    same load id: each good row once, each reject once, the reject file exact."""
    n = 20_000
    target = sql_target("rejresume")
    create(reader, target)
    source, bad = bad_rows(n)
    load_id = f"rejects-resume-{transport}"
    cancel = threading.Event()

    def stop_after_4(progress):
        if progress.batches >= 4:
            cancel.set()

    def options(**extra) -> TransferOptions:
        return TransferOptions(workers=2, create="never", transport=transport, max_errors=10,
                               load_id=load_id, reject_file=str(tmp_path / "r.parquet"),
                               **extra)

    per_batch = SourceOptions(rows_per_batch=1_000)
    with pytest.raises(TransferCancelled):
        transfer(source, target, options(progress=stop_after_4), source_options=per_batch,
                 cancel=cancel)
    batches, rows = journal_rows(reader, load_id)
    assert 4 <= batches < 20
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    first = rejected(reader, load_id)
    assert count == rows and count + len(first) == 1_000 * batches  # whole batches only
    result = transfer(source, target, options(), source_options=per_batch)
    assert result.batches_skipped == batches
    assert result.rows == n - 7 - rows and result.rows_rejected == 7 - len(first)
    check_loaded(reader, target, n, bad, load_id)
    check_rejects(reader, load_id, bad, transport)
    assert sorted(r["source_row"] for r in pq.read_table(tmp_path / "r.parquet").to_pylist()
                  ) == sorted(bad)
    again = transfer(source, target, options(), source_options=per_batch)  # a no-op
    assert (again.rows, again.rows_rejected) == (0, 0)
    check_rejects(reader, load_id, bad, transport)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_reject_too_many_stops_the_load_as_without_rejects(sql_target, reader,
                                                               transport):
    n = 20_000
    target = sql_target("rejlimit")
    create(reader, target)
    source, bad = bad_rows(n)
    load_id = f"rejects-limit-{transport}"
    with pytest.raises(TransferError) as info:
        transfer(source, target,
                 TransferOptions(workers=2, create="never", transport=transport, max_errors=5,
                                 load_id=load_id),
                 source_options=SourceOptions(rows_per_batch=2_000))
    text = str(info.value)
    assert info.value.native_error in (515, 2628) or info.value.error.sqlstate == "22001"
    assert f"loading {target.qualified} stopped at batch" in text
    assert "nothing of the failed batch was kept" in text and "same load_id to resume" in text
    got = rejected(reader, load_id)
    assert len(got) <= 5 and all(r[0] in bad for r in got)
    _, rows = journal_rows(reader, load_id)
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == rows


def test_without_max_errors_nothing_changes(sql_target, reader):
    """max_errors=0 (the default): the first bad row stops the load, no rejects table row."""
    target = sql_target("rejnone")
    create(reader, target)
    source, _ = bad_rows(20_000)
    with pytest.raises(TransferError) as info:
        transfer(source, target, TransferOptions(workers=1, create="never",
                                                 transport="parameter-arrays",
                                                 load_id="rejects-none"),
                 source_options=SourceOptions(rows_per_batch=1_000))
    assert info.value.native_error == 2628 and info.value.batch_id == "mem:2000"
    assert ("the first value longer than 20 characters in column 'name' is at mem, row 2000"
            in str(info.value))
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == 2_000
    (table,) = reader.execute("SELECT OBJECT_ID('azsql_bulk.rejected_rows')").fetchone()
    if table is not None:  # created by another test's load
        assert rejected(reader, "rejects-none") == []


@pytest.mark.parametrize(("mode", "transport"), [("replace", "parameter-arrays"),
                                                 ("upsert", "bulk-copy")])
def test_staged_modes_reject_at_the_staging_insert(sql_target, reader, mode, transport):
    """The staging table has the target's types and nullability, so the same rows are
    refused there; the apply then moves exactly the good rows."""
    n = 10_000
    target = sql_target(f"rej{mode[:3]}")
    create(reader, target)
    reader.execute(f"INSERT INTO {target.table} (id, amount, name) VALUES (-1, 0, 'old')")
    source, bad = bad_rows(n)
    result = transfer(source, target,
                      TransferOptions(workers=2, create="never", transport=transport, mode=mode,
                                      keys=("id",) if mode == "upsert" else (), max_errors=7),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.applied and (result.rows, result.rows_rejected) == (n - 7, 7)
    check_rejects(reader, result.load_id, bad, transport)
    (old,) = reader.execute(f"SELECT COUNT(*) FROM {target.table} WHERE id = -1").fetchone()
    assert old == (1 if mode == "upsert" else 0)  # replace swapped it out
    reader.execute(f"DELETE FROM {target.table} WHERE id = -1")
    good = [i for i in range(n) if i not in bad]
    count, total = reader.execute(f"SELECT COUNT(*), SUM(id) FROM {target.table}").fetchone()
    assert (count, total) == (len(good), sum(good))


def test_a_transient_error_while_splitting_replays_the_batch_exactly_once(emu_proc, sql_target,
                                                                          reader):
    """A 40613 lands while a batch with a bad row is written and split (parameter arrays:
    one RPC per row): the batch is replayed on a new connection and split again; each
    good row and each reject is kept once."""
    from support import inject_fault

    n = 10_000
    target = sql_target("rejfault")
    create(reader, target)
    source, bad = bad_rows(n)
    # batch 0 (1,000 RPCs) commits; batch 1 fails at its bad row 1,000 (row 1,000 is its
    # first) and its probes follow: the fault falls among them
    inject_fault(emu_proc, kind="error", number=40613, after_rpc_calls=1_300, count=1)
    try:
        result = transfer(source, target,
                          TransferOptions(workers=1, create="never", max_errors=7,
                                          transport="parameter-arrays", retry_base_delay=0.05),
                          source_options=SourceOptions(rows_per_batch=1_000))
    finally:
        inject_fault(emu_proc, kind="clear")
    assert result.retries >= 1
    assert result.rows_rejected == 7 and result.rows + 1_000 * result.batches_skipped >= n - 7
    check_loaded(reader, target, n, bad, result.load_id)
    check_rejects(reader, result.load_id, bad, "parameter-arrays")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_duplicate_keys_are_rejected_the_first_occurrence_kept(sql_target, reader, transport):
    """A key already in the table (2627), and a key twice in one batch: each row alone
    loads, together they fail, so the shortest failing prefix names the second one."""
    target = sql_target("rejdup")
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL PRIMARY KEY, "
                   "amount float NULL, name nvarchar(20) NULL)")
    reader.execute(f"INSERT INTO {target.table} (id, amount, name) VALUES (2500, 0, 'old')")
    source = rows_table(4_000)
    ids = source.column("id").to_pylist()
    ids[3_700] = 3_100  # the same batch as 3,100, later
    source = source.set_column(0, "id", pa.array(ids, pa.int64()))
    result = transfer(source, target,
                      TransferOptions(workers=2, create="never", transport=transport,
                                      max_errors=2, load_id=f"rejdup-{transport}"),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert (result.rows, result.rows_rejected) == (3_998, 2)
    got = rejected(reader, result.load_id)
    assert [(r[0], r[2]) for r in got] == [(2_500, 2627), (3_700, 2627)]
    (name,) = reader.execute(f"SELECT name FROM {target.table} WHERE id = 3100").fetchone()
    assert name == "row-003100"  # the first occurrence
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == 3_999


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_cli_killed_mid_load_and_run_again_keeps_each_row_and_reject_once(
        emu_proc, sql_target, reader, tmp_path, transport):
    """``azsql-bulk load --max-errors 10 --reject-file``, SIGKILLed once a few batches are
    journaled (the server slowed down so that it is mid-load), then the same command
    again: exit 0, rows_rejected in the JSON line, each row and each reject once."""
    import os
    import signal
    import subprocess

    from integration.cli.cli_env import SCRIPT, clean_env, last_json
    from support import inject_fault, wait_until

    n = 40_000
    target = sql_target("rejcli")
    create(reader, target)
    source, bad = bad_rows(n)
    data = tmp_path / "data.parquet"
    pq.write_table(source, data, row_group_size=10_000)
    rejects = tmp_path / "rejects.parquet"
    load_id = f"rejects-cli-{transport}-{target.table.name}"
    creds = emu_proc.credentials
    env = clean_env(AZSQL_BULK_SQL_PASSWORD=creds.sql_password)
    argv = [SCRIPT, "load", str(data), "--table", str(target.table), "--create", "never",
            "--transport", transport, "--max-errors", "10", "--reject-file", str(rejects),
            "--load-id", load_id, "--workers", "2", "--rows-per-batch", "1000", "--json",
            "--progress", "off",
            "--server", f"{emu_proc.tds_host},{emu_proc.tds_port}",
            "--database", emu_proc.database, "--auth", "sql", "--sql-user", creds.sql_login,
            "--encrypt", "strict", "--server-certificate", emu_proc.server_cert,
            "--host-name-in-certificate", "localhost", "--login-timeout", "15"]
    inject_fault(emu_proc, kind="throttle", bytes_per_second=200_000)
    try:
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        def journaled_batches() -> int:
            (journal,) = reader.execute("SELECT OBJECT_ID('azsql_bulk.load_journal')").fetchone()
            return journal_rows(reader, load_id)[0] if journal is not None else 0

        journaled = wait_until(lambda: child.poll() is not None or journaled_batches() >= 6)
        child.send_signal(signal.SIGKILL)
        _, stderr = child.communicate(timeout=120)
    finally:
        inject_fault(emu_proc, kind="throttle", bytes_per_second=0)
    assert journaled and child.returncode == -signal.SIGKILL, stderr
    batches, rows = journal_rows(reader, load_id)
    assert 6 <= batches < 40
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == rows and count + len(rejected(reader, load_id)) == 1_000 * batches
    assert not rejects.exists()  # written at the end of the load
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    result = last_json(done.stdout)
    assert result["status"] == "ok" and result["batches_skipped"] == batches
    assert result["rows"] == n - 7 - rows
    assert result["rows_rejected"] == 7 - (1_000 * batches - rows)
    assert "rejected" in done.stderr and str(rejects) in done.stderr  # the warning line
    if result["rows_rejected"]:  # the CLI's own warning and summary, whatever the log level
        assert "(within --max-errors 10); they are in" in done.stderr
        assert "[azsql_bulk].[rejected_rows]" in done.stderr
        assert f"{result['rows_rejected']:,} rows rejected" in done.stderr
    check_loaded(reader, target, n, bad, load_id)
    check_rejects(reader, load_id, bad, transport)
    written = pq.read_table(rejects).to_pylist()
    assert sorted(r["source_row"] for r in written) == sorted(bad)
    assert {r["source_file"] for r in written} == {os.fspath(data)}
    assert {r["unit"] for r in written} <= {0, 1, 2, 3}


def test_a_forgotten_load_run_again_rejects_each_row_once(sql_target, reader):
    """``journal forget`` deletes a load's journal rows, not its rejects: run again under
    the same load id, the load replaces the stale rejects of each batch it commits and
    counts only its own."""
    n = 10_000
    target = sql_target("rejforget")
    create(reader, target)
    source, bad = bad_rows(n)
    load_id = f"rejects-forget-{target.table.name}"
    options = TransferOptions(workers=2, create="never", transport="parameter-arrays",
                              max_errors=7, load_id=load_id)
    per_batch = SourceOptions(rows_per_batch=1_000)
    assert transfer(source, target, options, source_options=per_batch).rows_rejected == 7
    reader.execute("DELETE FROM [azsql_bulk].[load_journal] WHERE load_id = ?", load_id)
    reader.execute(f"DELETE FROM {target.table}")
    result = transfer(source, target, options, source_options=per_batch)  # 7 allowed, not 14
    assert (result.rows, result.rows_rejected, result.batches_skipped) == (n - 7, 7, 0)
    check_loaded(reader, target, n, bad, load_id)
    check_rejects(reader, load_id, bad, "parameter-arrays")


def test_journal_forget_takes_the_loads_rejected_rows_with_it(sql_target, reader):
    from engine.connection import ConnectionFactory
    from engine.journal_admin import JournalAdmin

    target = sql_target("rejadmin")
    create(reader, target)
    source, _ = bad_rows(5_000)
    load_id = f"rejects-admin-{target.table.name}"
    result = transfer(source, target,
                      TransferOptions(workers=1, create="never", transport="parameter-arrays",
                                      max_errors=7, load_id=load_id),
                      source_options=SourceOptions(rows_per_batch=1_000))
    kept = len(rejected(reader, load_id))
    assert result.rows_rejected == kept > 0
    with ConnectionFactory(target.connection) as factory:
        admin = JournalAdmin(factory)
        (listed,) = [s for s in admin.loads() if s.load_id == load_id]
        # journal list's REJECTS; the load is complete: its rows and rejects are the source
        assert (listed.rows, listed.rejects, listed.state) == (5_000 - kept, kept, "complete")
        forgotten = admin.forget(load_id)
    assert forgotten.journal_rows == 5
    assert rejected(reader, load_id) == []
