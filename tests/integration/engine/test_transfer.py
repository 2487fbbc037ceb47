"""Append-mode transfers against the emulator: real turbodbc, Microsoft's driver, real sockets.

The emulator runs in a child process (turbodbc holds the GIL during ODBC calls). Rows
are read back through a different client (pyodbc) and compared exactly.
"""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pytest
from loads import AZURE_VARS, CA_VARS, check_exact, connection_options, journal_rows, rows_table
from support import inject_fault

from azsql_emulator.process import EmulatorProcess
from engine.credentials import CredentialOptions
from engine.errors import ConfigurationError, TransferError
from engine.options import Target, TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def test_append_50k_rows_with_4_workers(sql_target, reader):
    target = sql_target("append")
    progress = []
    result = transfer(rows_table(50_000), target,
                      TransferOptions(workers=4, progress=progress.append),
                      source_options=SourceOptions(rows_per_batch=5_000))
    assert result.rows == 50_000 and result.batches == 10 and result.batches_skipped == 0
    assert result.created_table and result.retries == 0
    # the first snapshot comes before any batch and names the load (the CLI's heading)
    assert progress[0].rows == 0 and progress[0].load_id == result.load_id
    assert sum(w.rows for w in result.workers) == 50_000 and len(result.workers) == 4
    assert result.rows_per_second > 0 and result.bytes > 0
    check_exact(reader, target.table, 50_000)
    assert journal_rows(reader, result.load_id) == (10, 50_000)
    assert progress and progress[-1].rows == 50_000 and progress[-1].total_rows == 50_000
    json.dumps(result.to_dict())


def test_columns_are_projected_and_renamed(sql_target, reader):
    target = sql_target("projected")
    source = rows_table(3_000).append_column("unwanted", pa.array(["x"] * 3_000))
    # order given by `columns`, not the source's; `ident` is the renamed `id`
    options = TransferOptions(workers=2, sql_types={"name": "nvarchar(20)"})
    source_options = SourceOptions(rows_per_batch=1_000, columns=("name", "id", "amount"),
                                   rename={"id": "ident"})
    result = transfer(source, target, options, source_options=source_options)
    assert (result.rows, result.batches) == (3_000, 3)
    described = reader.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_MAXIMUM_LENGTH FROM INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_NAME = ? ORDER BY ORDINAL_POSITION", target.table.name).fetchall()
    assert [tuple(r) for r in described] == [("name", "nvarchar", 20), ("ident", "bigint", None),
                                             ("amount", "float", None)]
    got = reader.execute(f"SELECT COUNT(*), SUM(ident), MIN(name), MAX(name) "
                         f"FROM {target.table}").fetchone()
    assert tuple(got) == (3_000, sum(range(3_000)), "row-000000", "row-002999")


def test_an_unknown_projected_column_is_refused_before_connecting(sql_target):
    target = sql_target("projected_bad")
    with pytest.raises(Exception, match="nope") as info:
        transfer(rows_table(10), target, TransferOptions(),
                 source_options=SourceOptions(columns=("id", "nope")))
    assert "id" in str(info.value)


def test_resume_with_the_same_load_id_sends_nothing(sql_target, reader):
    target = sql_target("resume")
    source = rows_table(20_000)
    options = TransferOptions(workers=2)
    source_options = SourceOptions(rows_per_batch=2_000)
    first = transfer(source, target, options, source_options=source_options)
    second = transfer(source, target, options, source_options=source_options)
    assert first.load_id == second.load_id  # the default id: same source, same target
    assert (first.rows, first.batches) == (20_000, 10)
    assert (second.rows, second.batches, second.batches_skipped) == (0, 0, 10)
    assert not second.created_table
    check_exact(reader, target.table, 20_000)


def test_an_existing_load_id_without_resume_is_refused(sql_target, reader):
    target = sql_target("noresume")
    transfer(rows_table(100), target, TransferOptions(workers=1, load_id="fixed-1"))
    with pytest.raises(Exception, match="already has 1 batch"):
        transfer(rows_table(100), target, TransferOptions(workers=1, load_id="fixed-1",
                                                          resume=False))
    check_exact(reader, target.table, 100)


def test_injected_40613_mid_load_is_replayed_exactly_once(emu_proc, sql_target, reader):
    target = sql_target("transient")
    # Parameter arrays cost one RPC per row: the fault lands inside the load's first batches.
    inject_fault(emu_proc, kind="error", number=40613, after_rpc_calls=3_000, count=1)
    try:
        result = transfer(rows_table(20_000), target,
                          TransferOptions(workers=2, retry_base_delay=0.05),
                          source_options=SourceOptions(rows_per_batch=1_000))
    finally:
        inject_fault(emu_proc, kind="clear")
    assert result.retries >= 1 and result.reconnects >= 1
    assert result.rows + 1_000 * result.batches_skipped == 20_000
    check_exact(reader, target.table, 20_000)
    assert journal_rows(reader, result.load_id) == (20, 20_000)


@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_kill_sessions_mid_load_is_survived(emu_proc, sql_target, reader, transport):
    target = sql_target("killed")
    killed = []

    def kill_once(progress):
        if progress.batches == 3 and not killed:
            killed.append(inject_fault(emu_proc, kind="kill_sessions"))

    result = transfer(rows_table(20_000), target,
                      TransferOptions(workers=2, retry_base_delay=0.05, progress=kill_once,
                                      transport=transport),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert killed and result.transport == transport
    check_exact(reader, target.table, 20_000)
    assert journal_rows(reader, result.load_id) == (20, 20_000)


@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_not_null_violation_stops_the_load_naming_table_batch_and_rows(sql_target, reader,
                                                                       transport):
    """A bulk batch fails as a whole, like a parameter-array batch: same message, same
    culprit row, nothing of it kept, and the fixed load resumes exactly."""
    target = sql_target("notnull")
    load_id = f"notnull-{transport}"
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(20) NULL)")
    bad = rows_table(6_000)
    ids = bad.column("id").to_pylist()
    ids[4_321] = None
    bad = bad.set_column(0, "id", pa.array(ids, pa.int64()))
    with pytest.raises(TransferError) as info:
        transfer(bad, target, TransferOptions(workers=2, create="never", load_id=load_id,
                                              transport=transport),
                 source_options=SourceOptions(rows_per_batch=1_000))
    error = info.value
    text = str(error)
    assert error.native_error == 515 and error.batch_id == "mem:4000"
    assert target.qualified in text and "batch mem:4000" in text and "rows 4000-4999" in text
    assert "the first NULL in column 'id' is at mem, row 4321" in text  # the server says column
    assert "same load_id to resume" in text
    # committed batches stay, whole; the failed one left nothing
    batches, rows = journal_rows(reader, load_id)
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == rows == batches * 1_000
    (in_failed,) = reader.execute(f"SELECT COUNT(*) FROM {target.table} "
                                  "WHERE id BETWEEN 4000 AND 4999").fetchone()
    assert in_failed == 0
    # fixed data, same load id: the resumed load ends exact
    result = transfer(rows_table(6_000), target,
                      TransferOptions(workers=2, create="never", load_id=load_id,
                                      transport=transport),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.batches_skipped == batches and result.rows == 6_000 - rows
    assert result.transport == transport
    check_exact(reader, target.table, 6_000)


def _with_long_names(n: int, longs: dict[int, str]) -> pa.Table:
    source = rows_table(n)
    names = source.column("name").to_pylist()
    for at, text in longs.items():
        names[at] = text  # a created table is sized from the first batch
    return source.set_column(2, "name", pa.array(names, pa.string()))


def column_type(conn, table: str, column: str) -> tuple:
    schema, name = str(table).split(".")
    return tuple(conn.execute(
        "SELECT DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, IS_NULLABLE FROM INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
        schema, name, column).fetchone())


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_a_created_table_widens_a_column_for_longer_values(sql_target, reader, mode):
    target = sql_target(f"widen{mode[:3]}")
    # 300 'é' need nvarchar(1024) (sized 16 from the first batch); 2,000 emoji are 4,000
    # UTF-16 units and travel in pieces; both batches are in the middle of the load
    source = _with_long_names(4_000, {1_500: "é" * 300, 2_700: "😀" * 2_000})
    result = transfer(source, target, TransferOptions(mode=mode, workers=2),
                      source_options=SourceOptions(rows_per_batch=500))
    assert result.rows == 4_000 and result.created_table
    assert result.widened_columns == {"name": "nvarchar(4000)"}  # whichever batch came first
    assert column_type(reader, target.table, "name") == ("nvarchar", 4000, "YES")
    names = dict(reader.execute(f"SELECT id, name FROM {target.table}").fetchall())
    assert names == dict(zip(source.column("id").to_pylist(),
                             source.column("name").to_pylist(), strict=True))


@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_a_value_longer_than_an_existing_column_is_terminal(sql_target, reader, transport):
    """The server refuses it (2628, naming the column); Driver 18's bulk copy refuses it
    before sending (SQLSTATE 22001, naming none): either way the message names the column
    and the source row."""
    target = sql_target("toolong")
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(20) NULL, note nvarchar(400) NULL)")
    source = _with_long_names(3_000, {2_500: "x" * 300})
    # a longer value in a column wide enough for it must not be mistaken for the culprit
    source = source.append_column("note", pa.array(["y" * 300] * 3_000))
    with pytest.raises(TransferError) as info:
        transfer(source, target, TransferOptions(workers=1, transport=transport),
                 source_options=SourceOptions(rows_per_batch=1_000))
    if transport == "bulk-copy":
        assert info.value.error.sqlstate == "22001"
    else:
        assert info.value.native_error == 2628
    assert info.value.batch_id == "mem:2000"
    assert target.qualified in str(info.value) and "rows 2000-2999" in str(info.value)
    assert ("the first value longer than 20 characters in column 'name' is at mem, row 2500"
            in str(info.value))
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == 2_000
    assert column_type(reader, target.table, "name") == ("nvarchar", 20, "YES")  # not ours


def test_a_value_the_column_cannot_hold_is_named_with_its_row(sql_target, reader):
    target = sql_target("uint64")
    values = list(range(3_000))
    values[1_234] = 2**63 + 7  # over bigint: found on the client, before sending
    source = pa.table({"id": pa.array(values, pa.uint64())})
    with pytest.raises(TransferError) as info:
        transfer(source, target, TransferOptions(workers=1, sql_types={"id": "bigint"}),
                 source_options=SourceOptions(rows_per_batch=1_000))
    text = str(info.value)
    assert info.value.batch_id == "mem:1000" and target.qualified in text
    assert f"row 1234, value {2**63 + 7}" in text and "column 'id'" in text
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == 1_000  # the batch before it is committed, nothing of this one


def test_missing_table_with_create_never_is_a_configuration_error(sql_target):
    target = sql_target("absent")
    with pytest.raises(Exception, match="does not exist and create='never'"):
        transfer(rows_table(10), target, TransferOptions(create="never"))


# -- token renewal --------------------------------------------------------------------------

def slow_source(batches: int, rows: int, pause: float) -> pa.RecordBatchReader:
    """A stream that yields a batch every ``pause`` seconds, so the load outlives tokens."""
    schema = rows_table(1).schema

    def gen():
        for b in range(batches):
            time.sleep(pause)
            yield from rows_table(rows, start=b * rows).to_batches()
    return pa.RecordBatchReader.from_batches(schema, gen())


def test_short_tokens_are_renewed_mid_load(monkeypatch, driver_path):
    with EmulatorProcess(args=["--token-lifetime", "5", "--expire-sessions"]) as short:
        for name in (*CA_VARS, *AZURE_VARS):
            monkeypatch.delenv(name, raising=False)
        for name, value in short.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("SSL_CERT_FILE", short.ca_cert)
        target = Target(connection_options(short, CredentialOptions(kind="managed-identity")),
                        "dbo.renewed")
        # 60 batches, one every 0.15 s: the load spans at least 9 s, past several tokens.
        result = transfer(slow_source(60, 200, 0.15), target,
                          TransferOptions(workers=2, token_refresh_margin=2.0,
                                          retry_base_delay=0.05),
                          source_options=SourceOptions(rows_per_batch=200))
        metrics = short.metrics()
        from support import odbc_string

        creds = short.credentials
        text = odbc_string(short, driver_path, UID=creds.sql_login, PWD=creds.sql_password)
        with pyodbc.connect(text, autocommit=True) as conn:
            check_exact(conn, "dbo.renewed", 12_000)
    assert result.rows == 12_000 and result.token_renewals > 0
    assert metrics["distinct_tokens"] >= 2


def test_unicode_text_survives_with_default_turbodbc_options(sql_target, reader):
    """No turbodbc_options given: non-Latin text, empty strings and NULLs survive exactly."""
    target = sql_target("unicode")
    texts = ["naïve café", "東京 🚀 𝄞", "", None, "Ωmega ☃"]
    source = pa.table({"id": pa.array(range(len(texts)), pa.int64()), "t": texts})
    result = transfer(source, target, TransferOptions(workers=1),
                      source_options=SourceOptions(rows_per_batch=2))
    assert result.rows == len(texts)
    got = reader.cursor().execute(f"SELECT id, t FROM {target.table} ORDER BY id").fetchall()
    assert [r[1] for r in got] == texts


def test_bulk_options_travel_as_hints_and_the_rows_arrive(sql_target, reader):
    """TABLOCK, ORDER, CHECK_CONSTRAINTS and FIRE_TRIGGERS reach the server in the driver's
    ``insert bulk ... with (...)``, which must accept them (the emulator parses them)."""
    target = sql_target("hinted")
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL PRIMARY KEY, "
                   "amount float NULL, name nvarchar(40) NULL)")
    result = transfer(rows_table(8_000), target,
                      TransferOptions(workers=2, create="never", transport="bulk-copy",
                                      table_lock=True, check_constraints=True,
                                      fire_triggers=True, order=("id",)),
                      source_options=SourceOptions(rows_per_batch=2_000))
    assert result.transport == "bulk-copy" and result.rows == 8_000
    check_exact(reader, target.table, 8_000)


def test_an_order_hint_on_a_column_not_loaded_is_refused_before_anything_is_sent(sql_target,
                                                                              reader):
    target = sql_target("badorder")
    with pytest.raises(ConfigurationError, match=r"order columns \['nope'\]"):
        transfer(rows_table(10), target, TransferOptions(transport="bulk-copy", order="nope"))
    (tables,) = reader.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE "
                               "TABLE_NAME = ?", target.table.name).fetchone()
    assert tables == 0  # not even created
