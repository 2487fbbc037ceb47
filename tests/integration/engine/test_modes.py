"""replace and upsert modes, create=replace_schema, cancel and the memory ceiling, against the
emulator with real turbodbc; results are read back through pyodbc and compared exactly."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from loads import check_exact, journal_rows, rows_table

from engine.errors import ConfigurationError, DuplicateKeyError, TransferCancelled, TransferError
from engine.options import Target, TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


def tables_like(conn, prefix: str) -> list[str]:
    return sorted(r[0] for r in conn.execute(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME LIKE ?",
        prefix + "%").fetchall())


def columns_of(conn, table: str) -> list[tuple[str, str]]:
    schema, name = str(table).split(".")
    return [(r[0], r[1]) for r in conn.execute(
        "SELECT COLUMN_NAME, DATA_TYPE FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? "
        "AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", schema, name).fetchall()]


# -- replace --------------------------------------------------------------------------------

def test_replace_swaps_all_rows_and_keeps_the_table_definition(sql_target, reader):
    target = sql_target("replace")
    name = target.table.name
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL PRIMARY KEY, "
                   "amount float NULL, name nvarchar(40) NULL, note nvarchar(10) NULL "
                   "DEFAULT 'kept')")
    transfer(rows_table(3_000, start=900_000), target, TransferOptions(workers=2),
             source_options=SourceOptions(rows_per_batch=500))
    result = transfer(rows_table(12_000), target,
                      TransferOptions(mode="replace", workers=3),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.mode == "replace" and result.applied and result.rows == 12_000
    assert not result.created_table
    check_exact(reader, target.table, 12_000)  # the old 3,000 rows are gone
    # the existing definition stays (the default on the column the source lacks applied)
    assert [c for c, _ in columns_of(reader, target.table)] == ["id", "amount", "name", "note"]
    (kept,) = reader.execute(f"SELECT COUNT(*) FROM {target.table} WHERE note = 'kept'").fetchone()
    assert kept == 12_000
    assert tables_like(reader, name) == [name]  # the staging table is gone
    # 12 batches and the finish row
    assert journal_rows(reader, result.load_id) == (13, 24_000)


def test_replace_of_a_missing_table_renames_the_stage_into_place(sql_target, reader):
    target = sql_target("replnew")
    name = target.table.name
    result = transfer(rows_table(5_000), target,
                      TransferOptions(mode="replace", workers=2),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.created_table and result.applied
    check_exact(reader, target.table, 5_000)
    assert tables_like(reader, name) == [name]


def test_replace_schema_recreates_the_table_from_the_source(sql_target, reader):
    target = sql_target("replschema")
    reader.execute(f"CREATE TABLE {target.table} (id int NOT NULL, legacy varchar(5) NULL)")
    reader.execute(f"INSERT INTO {target.table} VALUES (1, 'old')")
    result = transfer(rows_table(4_000), target,
                      TransferOptions(mode="replace", create="replace_schema", workers=2),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.applied
    assert columns_of(reader, target.table) == [("id", "bigint"), ("amount", "float"),
                                                 ("name", "nvarchar")]
    check_exact(reader, target.table, 4_000)


def test_replace_into_an_incompatible_table_is_refused_before_any_row(sql_target, reader):
    target = sql_target("replbad")
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(3) NULL)")
    reader.execute(f"INSERT INTO {target.table} VALUES (7, 1.0, 'abc')")
    with pytest.raises(ConfigurationError, match="name"):
        transfer(rows_table(100), target, TransferOptions(mode="replace", workers=1))
    assert reader.execute(f"SELECT id FROM {target.table}").fetchall()[0][0] == 7


def test_replace_is_atomic_under_a_concurrent_reader(emu_proc, sql_target, reader, driver_path):
    from support import odbc_string, wait_until

    target = sql_target("replatomic")
    transfer(rows_table(2_000, start=500_000), target, TransferOptions(workers=2),
             source_options=SourceOptions(rows_per_batch=500))
    old = (2_000, sum(range(500_000, 502_000)))
    new = (20_000, sum(range(20_000)))
    creds = emu_proc.credentials
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def watch() -> None:
        conn = pyodbc.connect(odbc_string(emu_proc, driver_path, UID=creds.sql_login,
                                          PWD=creds.sql_password), autocommit=True)
        try:
            while not done.is_set():
                count, total = conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(id), 0) FROM {target.table}").fetchone()
                seen.append((count, total))
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    during: list[tuple[int, int]] = []  # what a read wholly inside the staging saw
    lock = threading.Lock()

    def staged(progress) -> None:
        """After the first batch is staged, hold this worker (so the swap cannot happen)
        until a read that started after that moment has finished, however slow things are."""
        with lock:
            if progress.batches < 1 or during:
                return
            n = len(seen)
            wait_until(lambda: len(seen) >= n + 2 or errors or not watcher.is_alive())
            during.append(seen[-1] if len(seen) >= n + 2 else (-1, -1))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        transfer(rows_table(20_000), target,
                 TransferOptions(mode="replace", workers=2, progress=staged),
                 source_options=SourceOptions(rows_per_batch=2_000))
        for _ in range(3):  # a few reads after the commit as well
            check_exact(reader, target.table, 20_000)
    finally:
        done.set()
        watcher.join()
    assert not errors
    assert seen and set(seen) <= {old, new}, set(seen) - {old, new}
    assert during == [old]  # a reader during the staging sees the old rows, whole


def test_interrupted_replace_resumes_and_applies_once(sql_target, reader):
    target = sql_target("replresume")
    transfer(rows_table(1_000, start=700_000), target, TransferOptions(workers=1))
    cancel = threading.Event()

    def stop_after_three(progress):
        if progress.batches >= 3:
            cancel.set()

    options = TransferOptions(mode="replace", workers=2, load_id="replace-resume")
    source_options = SourceOptions(rows_per_batch=1_000)
    with pytest.raises(TransferCancelled) as info:
        transfer(rows_table(10_000), target,
                 TransferOptions(mode="replace", workers=2, load_id="replace-resume",
                                 progress=stop_after_three),
                 cancel=cancel, source_options=SourceOptions(rows_per_batch=1_000))
    assert info.value.resumable and info.value.load_id == "replace-resume"
    staged = info.value.batches_committed
    assert 3 <= staged < 10
    check_exact(reader, target.table, 1_000, start=700_000)  # the target is untouched
    result = transfer(rows_table(10_000), target, options, source_options=source_options)
    assert result.batches_skipped == staged and result.applied
    check_exact(reader, target.table, 10_000)
    again = transfer(rows_table(10_000), target, options,
                     source_options=source_options)  # finished: a no-op
    assert (again.rows, again.applied, again.batches_skipped) == (0, False, 10)
    check_exact(reader, target.table, 10_000)


# -- upsert ---------------------------------------------------------------------------------

def test_upsert_updates_matches_and_inserts_the_rest(sql_target, reader):
    target = sql_target("upsert")
    transfer(rows_table(6_000), target, TransferOptions(workers=2),
             source_options=SourceOptions(rows_per_batch=1_000))
    # ids 4000-9999: 2,000 updates (new names and amounts), 4,000 inserts
    ids = list(range(4_000, 10_000))
    changed = pa.table({"id": pa.array(ids, pa.int64()),
                        "amount": pa.array([i * 0.25 for i in ids], pa.float64()),
                        "name": pa.array([f"new-{i:06d}" for i in ids], pa.string())})
    result = transfer(changed, target, TransferOptions(mode="upsert", keys=("id",), workers=2),
                      source_options=SourceOptions(rows_per_batch=1_500))
    assert result.applied and result.rows == 6_000
    count, distinct, total = reader.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT id), SUM(id) FROM {target.table}").fetchone()
    assert (count, distinct, total) == (10_000, 10_000, sum(range(10_000)))
    rows = dict(reader.execute(f"SELECT id, name FROM {target.table} "
                               "WHERE id IN (0, 3999, 4000, 5999, 6000, 9999)").fetchall())
    assert rows == {0: "row-000000", 3999: "row-003999", 4000: "new-004000",
                    5999: "new-005999", 6000: "new-006000", 9999: "new-009999"}
    name = target.table.name
    assert tables_like(reader, name) == [name]


def test_upsert_with_duplicate_source_keys_is_refused_and_changes_nothing(sql_target, reader):
    target = sql_target("upsdup")
    transfer(rows_table(1_000), target, TransferOptions(workers=1))
    source = pa.concat_tables([rows_table(2_000, start=500), rows_table(3, start=1_200),
                               rows_table(1, start=1_700)])
    with pytest.raises(DuplicateKeyError) as info:
        transfer(source, target, TransferOptions(mode="upsert", keys=("id",), workers=2,
                                                 load_id="ups-dup"),
                 source_options=SourceOptions(rows_per_batch=700))
    text = str(info.value)
    assert "duplicate keys" in text and "id=1200 (2 rows)" in text and "id=1700" in text
    assert info.value.keys[:2] == [(1200,), (1201,)]
    check_exact(reader, target.table, 1_000)  # unchanged
    name = target.table.name
    assert tables_like(reader, name) == [name]  # the stage was dropped
    assert journal_rows(reader, "ups-dup") == (0, 0)  # and the load forgotten


def test_upsert_keys_must_be_source_columns(sql_target):
    target = sql_target("upskeys")
    with pytest.raises(ConfigurationError, match=r"keys \['order_id'\] are not columns"):
        transfer(rows_table(10), target, TransferOptions(mode="upsert", keys=("order_id",)))


def test_upsert_into_a_missing_table_creates_it(sql_target, reader):
    target = sql_target("upsnew")
    result = transfer(rows_table(2_500), target,
                      TransferOptions(mode="upsert", keys=("id",), workers=2),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.created_table and result.applied
    check_exact(reader, target.table, 2_500)


# -- cancel and memory ----------------------------------------------------------------------

def test_cancelled_append_resumes_exactly(sql_target, reader):
    target = sql_target("cancel")
    cancel = threading.Event()

    def stop_soon(progress):
        if progress.batches >= 2:
            cancel.set()

    with pytest.raises(TransferCancelled) as info:
        transfer(rows_table(20_000), target,
                 TransferOptions(workers=2, load_id="cancel-1", progress=stop_soon), cancel=cancel,
                 source_options=SourceOptions(rows_per_batch=1_000))
    error = info.value
    assert isinstance(error, TransferError) and error.resumable
    assert 2 <= error.batches_committed < 20
    assert "cancel-1" in str(error) and "resume" in str(error)
    result = transfer(rows_table(20_000), target,
                      TransferOptions(workers=2, load_id="cancel-1"),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.batches_skipped == error.batches_committed
    check_exact(reader, target.table, 20_000)


def test_memory_ceiling_keeps_read_ahead_small(sql_target, reader):
    target = sql_target("memcap")
    source = rows_table(20_000)
    batch_bytes = source.slice(0, 1_000).nbytes
    seen: list[int] = []
    result = transfer(source, target,
                      TransferOptions(workers=2, max_memory_bytes=batch_bytes * 2,
                                      progress=lambda p: seen.append(p.workers_busy)),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.rows == 20_000 and max(seen) <= 2
    check_exact(reader, target.table, 20_000)


def test_source_failure_mid_load_is_a_resumable_transfer_error(sql_target, reader):
    target = sql_target("srcfail")
    schema = rows_table(1).schema

    def batches():
        for b in range(5):
            yield from rows_table(1_000, start=b * 1_000).to_batches()
        raise OSError("disk went away")

    with pytest.raises(TransferError) as info:
        transfer(pa.RecordBatchReader.from_batches(schema, batches()), target,
                 TransferOptions(workers=1, load_id="src-fail"),
                 source_options=SourceOptions(rows_per_batch=1_000))
    assert "disk went away" in str(info.value) and info.value.resumable
    assert info.value.batch_id is None


# -- long text ------------------------------------------------------------------------------

def test_long_text_travels_in_pieces_and_round_trips(sql_target, reader):
    target = sql_target("longtext")
    # 5,000 characters (past the driver's one-parameter limit), astral ones included,
    # next to short values, empty strings and NULLs, in every batch
    long_a = ("😀中é" * 1_700)[:5_000]
    long_b = "x" * 12_345
    values = [long_a, "", None, long_b, "short"] * 40
    source = pa.table({"id": pa.array(range(len(values)), pa.int64()),
                       "doc": pa.array(values, pa.string())})
    result = transfer(source, target, TransferOptions(workers=2),
                      source_options=SourceOptions(rows_per_batch=50))
    assert result.rows == 200
    got = dict(reader.execute(f"SELECT id, doc FROM {target.table}").fetchall())
    assert got == dict(enumerate(values))


def test_text_of_1600_utf16_units_travels_whole(sql_target, reader):
    """The most one parameter carries through Driver 18 under turbodbc (1,700 'x' fail
    with HY104): batches whose values all fit go without pieces, mixed with ones that
    need them."""
    target = sql_target("fulltext")
    values = ["x" * 1_600, "😀" * 800, "é中" * 800, "", None] * 20 + ["y" * 1_601, "z"] * 5
    source = pa.table({"id": pa.array(range(len(values)), pa.int64()),
                       "doc": pa.array(values, pa.string())})
    result = transfer(source, target, TransferOptions(workers=1),
                      source_options=SourceOptions(rows_per_batch=25))
    assert result.rows == len(values) and result.batches == 5
    got = dict(reader.execute(f"SELECT id, doc FROM {target.table}").fetchall())
    assert got == dict(enumerate(values))


def test_losing_the_create_table_race_validates_and_loads(sql_target, reader, monkeypatch):
    """Parallel loads (e.g. mapped Airflow shards) into a missing table all try CREATE
    TABLE; the losers get 2714 from the server and must carry on into the winner's table."""
    import engine.prepare as prepare_module

    target = sql_target("race")
    reader.execute(f"CREATE TABLE {target.table} (id bigint NULL, amount float NULL, "
                   "name nvarchar(50) NULL)")  # the winner's table
    real = prepare_module.read_columns
    calls = []

    def missing_at_first(cursor, table):
        calls.append(table)
        return [] if len(calls) == 1 else real(cursor, table)  # the check ran too early

    monkeypatch.setattr(prepare_module, "read_columns", missing_at_first)
    result = transfer(rows_table(3_000), target, TransferOptions(workers=2),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert not result.created_table and len(calls) == 2
    check_exact(reader, target.table, 3_000)


# -- timestamps bound natively or as text, per batch ------------------------------------------

def test_timestamps_bind_natively_in_range_and_as_text_outside_exactly(sql_target, reader):
    import datetime as dt

    target = sql_target("tsnative")
    base = dt.datetime(2024, 2, 29, 23, 59, 59, 999_999)
    values = [base - dt.timedelta(microseconds=7 * i) for i in range(3_000)]
    values[1_500] = dt.datetime(1300, 1, 1, 0, 0, 0, 1)  # before 1400: its batch goes as text
    values[2_100] = None
    values[2_999] = dt.datetime(9999, 12, 31, 23, 59, 59, 999_999)
    source = pa.table({"id": pa.array(range(3_000), pa.int64()),
                       "at": pa.array(values, pa.timestamp("us"))})
    from engine.binder import native_timestamp_columns
    from engine.plan import plan_table

    plan = plan_table(source.schema, sample=source.slice(0, 500))
    kinds = [native_timestamp_columns(plan, source.slice(k, 500)) for k in range(0, 3_000, 500)]
    assert kinds == [{"at"}, {"at"}, {"at"}, set(), {"at"}, {"at"}]  # batch 3 holds 1300
    result = transfer(source, target, TransferOptions(workers=2),
                      source_options=SourceOptions(rows_per_batch=500))
    assert result.rows == 3_000
    got = dict(reader.execute(f"SELECT id, at FROM {target.table}").fetchall())
    assert got == dict(enumerate(values))


# -- text longer than the first batch's -------------------------------------------------

def _late_long_names(n: int, at: int, length: int) -> pa.Table:
    table = rows_table(n)
    names = table.column("name").to_pylist()
    names[at] = "é" * length  # the plan is sized from the first batch only
    return table.set_column(2, "name", pa.array(names, pa.string()))


@pytest.mark.parametrize("mode", ["replace", "upsert"])
def test_staging_into_an_existing_table_takes_its_column_sizes(sql_target, reader, mode):
    target = sql_target(f"stwide{mode[:3]}")
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL PRIMARY KEY, "
                   "amount float NULL, name nvarchar(500) NULL)")
    source = _late_long_names(3_000, at=2_500, length=300)
    result = transfer(source, target, TransferOptions(
        mode=mode, keys=("id",) if mode == "upsert" else (), workers=2),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.rows == 3_000 and result.applied
    names = dict(reader.execute(f"SELECT id, name FROM {target.table}").fetchall())
    assert names == dict(zip(source.column("id").to_pylist(),
                             source.column("name").to_pylist(), strict=True))


# -- regressions: a schema holding '.', and the mode in the default load id ---------------

@pytest.mark.parametrize("mode", ["replace", "upsert"])
def test_staged_modes_into_a_schema_whose_name_holds_a_dot(sql_target, reader, mode):
    """The staging name was split again on '.', so a schema like [sales.eu] broke staged
    modes; the table name is a value now and its schema stays one part."""
    base = sql_target(f"dotted_{mode}")
    schema = f"sales.{base.table.name}"
    reader.execute(f"CREATE SCHEMA [{schema}]")
    target = Target(base.connection, f"[{schema}].[{base.table.name}]")
    options = TransferOptions(mode=mode, workers=2, keys=("id",) if mode == "upsert" else ())
    result = transfer(rows_table(3_000), target, options,
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.applied and result.rows == 3_000
    check_exact(reader, target.table.quoted, 3_000)
    assert tables_like(reader, f"{base.table.name}__azsql_stage%") == []


def test_an_upsert_after_an_append_of_the_same_file_is_a_new_load(sql_target, reader, tmp_path):
    """The default load id ignored the mode: an upsert after an append of the same file
    reused the append's id and stopped on its journal rows ("... no longer exists")."""
    import pyarrow.parquet as pq

    target = sql_target("append_then_upsert")
    path = tmp_path / "t.parquet"
    pq.write_table(rows_table(2_000), path)
    first = transfer(str(path), target, TransferOptions(workers=2),
                     source_options=SourceOptions(rows_per_batch=500))
    second = transfer(str(path), target, TransferOptions(mode="upsert", keys=("id",), workers=2),
                      source_options=SourceOptions(rows_per_batch=500))
    assert first.load_id != second.load_id
    assert (first.source_files, first.source_rows) == (1, 2_000)  # the CLI's JSON shows them
    assert (second.rows, second.batches_skipped, second.applied) == (2_000, 0, True)
    check_exact(reader, target.table, 2_000)  # upserted onto the same keys: no duplicates


# -- the staging table by bulk copy ----------------------------------------------------------

@pytest.mark.parametrize("mode", ["replace", "upsert"])
def test_the_staging_table_is_written_by_bulk_copy(emu_proc, sql_target, reader, mode):
    target = sql_target(f"bcpstage{mode[:3]}")
    transfer(rows_table(2_000, start=50_000), target,
             TransferOptions(workers=1, transport="parameter-arrays"),
             source_options=SourceOptions(rows_per_batch=1_000))
    before = emu_proc.metrics()["bulk_rows"]
    keys = ("id",) if mode == "upsert" else ()
    result = transfer(rows_table(9_000), target,
                      TransferOptions(mode=mode, keys=keys, workers=2, transport="bulk-copy"),
                      source_options=SourceOptions(rows_per_batch=1_500))
    assert result.transport == "bulk-copy" and result.transport_reason is None
    assert result.applied and result.rows == 9_000
    # every row reached the staging table as bulk-load rows (plus the probe's one row,
    # rolled back); the apply is one statement on the server
    assert 9_000 <= emu_proc.metrics()["bulk_rows"] - before <= 9_001
    expected = 9_000 if mode == "replace" else 11_000
    (count,) = reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    assert count == expected
    if mode == "replace":
        check_exact(reader, target.table, 9_000)
    name = target.table.name
    assert tables_like(reader, name) == [name]
