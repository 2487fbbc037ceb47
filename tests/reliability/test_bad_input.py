"""Bad input: each refusal names what failed and where (table, column, batch, source file and
row), keeps what was committed, and shows nothing partial. Real loads into the emulator,
read back with pyodbc.

Covered elsewhere, not repeated: NULL into NOT NULL (515) and a value longer than a column
sized from the first batch (2628) in tests/integration/engine/test_transfer.py; duplicate
and NULL upsert keys and replace into an incompatible table in test_modes.py; a missing
table with create='never' in test_transfer.py.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loads import AZURE_VARS, CA_VARS, check_exact, connection_options, journal_rows, rows_table

from engine.credentials import CredentialOptions
from engine.errors import (
    AzsqlBulkError,
    DatabaseError,
    SchemaMismatchError,
    SourceError,
    TransferError,
)
from engine.options import Target, TransferOptions
from engine.sources import SourceOptions, open_source
from engine.transfer import transfer

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = [pytest.mark.integration, pytest.mark.reliability]

TABLE_DDL = "(id bigint NOT NULL, amount float NULL, name nvarchar(20) NULL)"


def count(reader, table: str) -> int:
    (n,) = reader.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    return int(n)


def journaled(reader, load_id: str) -> tuple[int, int]:
    """The load's journal rows; (0, 0) also when no load has created the journal yet."""
    exists = reader.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE "
                            "TABLE_SCHEMA = 'azsql_bulk' AND TABLE_NAME = 'load_journal'") \
        .fetchone()[0]
    return journal_rows(reader, load_id) if exists else (0, 0)


def with_value(table: pa.Table, column: str, row: int, value: object) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pa.array(values, table.schema.field(column).type))


def test_incompatible_existing_table_lists_every_mismatched_column(sql_target, reader):
    target = sql_target("mismatch")
    reader.execute(f"CREATE TABLE {target.table} (id nvarchar(5) NOT NULL, amount bit NULL, "
                   "name int NULL, extra int NOT NULL)")
    with pytest.raises(SchemaMismatchError) as info:
        transfer(rows_table(100), target, TransferOptions(workers=1, load_id="mismatch-1"))
    text = str(info.value)
    assert target.qualified in text and "4 column(s)" in text and "nothing was sent" in text
    for column in ("id", "amount", "name", "extra"):
        assert f"column '{column}'" in text
    assert count(reader, target.table) == 0 and journaled(reader, "mismatch-1") == (0, 0)


def test_value_overflowing_an_accepted_narrower_type_stops_at_its_batch(sql_target, reader):
    target = sql_target("overflow")
    reader.execute(f"CREATE TABLE {target.table} (id int NOT NULL, amount float NULL, "
                   "name nvarchar(20) NULL)")
    source = with_value(rows_table(3_000), "id", 2_345, 2**40)
    options = TransferOptions(workers=1, create="never", sql_types={"id": "int"},
                              load_id=f"ovf-{uuid.uuid4().hex}")
    source_options = SourceOptions(rows_per_batch=1_000)
    with pytest.raises(AzsqlBulkError) as info:
        transfer(source, target, options, source_options=source_options)
    text = str(info.value)
    assert target.qualified in text and "mem:2000" in text and "rows 2000-2999" in text, text
    assert "'id'" in text or "id" in text.split("column", 1)[-1], text
    # the two batches before it are committed whole; nothing of the failed one is visible
    assert count(reader, target.table) == 2_000
    assert journal_rows(reader, options.load_id) == (2, 2_000)
    (in_failed,) = reader.execute(f"SELECT COUNT(*) FROM {target.table} WHERE id >= 2000") \
        .fetchone()
    assert in_failed == 0


@pytest.mark.parametrize("transport", ["parameter-arrays", "bulk-copy"])
def test_string_longer_than_an_existing_column_names_table_column_batch_rows(sql_target,
                                                                             reader,
                                                                             transport):
    target = sql_target("toolong")
    reader.execute(f"CREATE TABLE {target.table} (id bigint NOT NULL, amount float NULL, "
                   "name nvarchar(10) NULL)")
    source = with_value(rows_table(3_000), "name", 1_500, "y" * 50)
    load_id = f"long-{uuid.uuid4().hex}"
    options = TransferOptions(workers=1, create="never", load_id=load_id, transport=transport)
    with pytest.raises(TransferError) as info:
        transfer(source, target, options, source_options=SourceOptions(rows_per_batch=1_000))
    error, text = info.value, str(info.value)
    if transport == "parameter-arrays":  # the server refuses the value
        assert error.native_error == 2628
    else:  # Driver 18's bulk copy checks it against the column itself: no server number
        assert isinstance(error.error, DatabaseError) and error.error.sqlstate == "22001"
    assert error.batch_id == "mem:1000" and error.resumable
    assert target.qualified in text and "column 'name'" in text and "rows 1000-1999" in text
    assert count(reader, target.table) == 1_000 and journal_rows(reader, load_id) == (1, 1_000)
    # the fixed source, same load id: the rest goes in, exactly once
    transfer(rows_table(3_000), target, options,
             source_options=SourceOptions(rows_per_batch=1_000))
    check_exact(reader, target.table, 3_000)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_inf_names_column_and_first_row_then_nan_as_null_loads(bad, sql_target,
                                                                      reader):
    target = sql_target("nan")
    source = with_value(with_value(rows_table(3_000), "amount", 2_100, bad),
                        "amount", 2_900, float("nan"))
    load_id = f"nan-{uuid.uuid4().hex}"
    with pytest.raises(TransferError) as info:
        transfer(source, target, TransferOptions(workers=1, load_id=load_id),
                 source_options=SourceOptions(rows_per_batch=1_000))
    text = str(info.value)
    assert target.qualified in text and "mem:2000" in text
    assert "column 'amount', row 2100" in text and "nan_as_null=True" in text
    assert count(reader, target.table) == 2_000  # batches before it, nothing of its own
    result = transfer(source, target, TransferOptions(workers=1, load_id=load_id, nan_as_null=True),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.batches_skipped == 2 and result.rows == 1_000
    rows = reader.execute(f"SELECT id FROM {target.table} WHERE amount IS NULL ORDER BY id") \
        .fetchall()
    assert [r[0] for r in rows] == [2_100, 2_900]
    assert count(reader, target.table) == 3_000


def test_truncated_parquet_among_files_is_named_and_nothing_is_loaded(sql_target, reader,
                                                                     tmp_path):
    for i in range(3):
        pq.write_table(rows_table(2_000, start=i * 2_000), tmp_path / f"part-{i}.parquet")
    broken = tmp_path / "part-1.parquet"
    broken.write_bytes(broken.read_bytes()[:-300])  # the footer is gone
    target = sql_target("cutparquet")
    with pytest.raises(AzsqlBulkError) as info:
        transfer(str(tmp_path), target, TransferOptions(workers=2),
                 source_options=SourceOptions(rows_per_batch=500))
    assert "part-1.parquet" in str(info.value), str(info.value)
    exists = reader.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE "
                            "TABLE_NAME = ?", target.table.name).fetchone()[0]
    assert exists == 0 or count(reader, target.table) == 0


def test_corrupt_parquet_page_is_named_with_its_file(sql_target, reader, tmp_path):
    """The footer is intact but a data page is garbage: the error comes mid-file."""
    path = tmp_path / "bad.parquet"
    pq.write_table(rows_table(4_000), path, row_group_size=1_000, compression="none")
    data = bytearray(path.read_bytes())
    middle = len(data) * 3 // 4  # inside a late row group's pages
    data[middle:middle + 2_000] = b"\xff" * 2_000
    path.write_bytes(bytes(data))
    target = sql_target("badpage")
    load_id = f"page-{uuid.uuid4().hex}"
    try:
        result = transfer(str(path), target, TransferOptions(workers=1, load_id=load_id),
                          source_options=SourceOptions(rows_per_batch=1_000))
    except (TransferError, SourceError) as error:
        assert "bad.parquet" in str(error), str(error)
        batches, rows = journaled(reader, load_id)
        if rows:  # what was committed is whole batches, nothing partial
            assert count(reader, target.table) == rows == batches * 1_000
    else:  # the bytes hit only values: parquet has no checksums by default
        assert result.rows == 4_000
        assert count(reader, target.table) == 4_000


def test_csv_row_that_does_not_parse_names_the_file_and_keeps_whole_batches(sql_target,
                                                                            reader, tmp_path):
    path = tmp_path / "people.csv"
    lines = ["id,amount,name"] + [f"{i},{i * 0.25},row-{i:06d}" for i in range(6_000)]
    lines[1 + 4_321] = "not-a-number,1.0,bad"
    path.write_text("\n".join(lines) + "\n")
    target = sql_target("badcsv")
    load_id = f"csv-{uuid.uuid4().hex}"
    # typed columns (inferred, the bad value would only make `id` a text column)
    source = open_source(str(path), SourceOptions(rows_per_batch=1_000,
                                                  csv_schema=rows_table(1).schema))
    with pytest.raises(AzsqlBulkError) as info:
        transfer(source, target, TransferOptions(workers=1, load_id=load_id))
    text = str(info.value)
    assert "people.csv" in text and "not-a-number" in text, text
    # Arrow names the column and the value; the engine finds the row by reading that column
    assert "column 'id', data row 4321, line 4323" in text, text
    _, rows = journaled(reader, load_id)
    exists = reader.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE "
                            "TABLE_NAME = ?", target.table.name).fetchone()[0]
    visible = count(reader, target.table) if exists else 0
    assert visible == rows and rows < 6_000
    if rows:
        (top,) = reader.execute(f"SELECT MAX(id) FROM {target.table}").fetchone()
        assert top < 4_321  # nothing from the bad row on


@pytest.mark.parametrize("create", ["if_missing", "never"])
def test_empty_input_is_zero_rows_and_creates_the_table_if_asked(create, sql_target, reader,
                                                                 tmp_path):
    target = sql_target("empty")
    if create == "never":
        reader.execute(f"CREATE TABLE {target.table} {TABLE_DDL}")
    path = tmp_path / "empty.parquet"
    pq.write_table(rows_table(0), path)
    result = transfer(str(path), target, TransferOptions(workers=2, create=create))
    assert result.rows == 0 and result.batches == 0
    assert result.created_table == (create == "if_missing")
    assert count(reader, target.table) == 0
    columns = reader.execute("SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE "
                             "TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                             target.table.name).fetchall()
    assert [c[0] for c in columns] == ["id", "amount", "name"]
    again = transfer(rows_table(0), target, TransferOptions(workers=1))
    assert again.rows == 0 and not again.created_table


# -- identities ------------------------------------------------------------------------------

@pytest.fixture
def app_env(emu_proc, monkeypatch):
    """Sign in as one of the emulator's apps (client secret from the environment)."""
    for name in (*CA_VARS, *AZURE_VARS):
        monkeypatch.delenv(name, raising=False)
    for name, value in emu_proc.env.items():
        monkeypatch.setenv(name, value)

    def use(app) -> Target:
        monkeypatch.setenv("AZURE_CLIENT_ID", app.client_id)
        monkeypatch.setenv("AZURE_CLIENT_SECRET", app.client_secret)
        credential = CredentialOptions(kind="service-principal", client_id=app.client_id,
                                       tenant_id=emu_proc.tenant_id,
                                       authority_host=emu_proc.authority_host,
                                       disable_instance_discovery=True)
        return Target(connection_options(emu_proc, credential), "dbo.placeholder")
    return use


def test_identity_without_write_permission_is_229_and_changes_nothing(
        emu_proc, sql_target, reader, app_env):
    owned = sql_target("perm")
    transfer(rows_table(1_000), owned, TransferOptions(workers=1))  # owner: table + journal
    target = Target(app_env(emu_proc.credentials.reader_app).connection, owned.table)
    load_id = f"perm-{uuid.uuid4().hex}"
    with pytest.raises(AzsqlBulkError) as info:
        transfer(rows_table(2_000, start=1_000), target,
                 TransferOptions(workers=2, load_id=load_id),
                 source_options=SourceOptions(rows_per_batch=500))
    text = str(info.value)
    assert "229" in text and owned.qualified in text, text
    assert getattr(info.value, "resumable", False) is False or \
        journaled(reader, load_id) == (0, 0)
    check_exact(reader, owned.table, 1_000)  # unchanged


def test_db_datareader_plus_db_datawriter_is_enough_to_append(emu_proc, sql_target, reader,
                                                              app_env):
    owned = sql_target("writer")
    transfer(rows_table(1_000), owned, TransferOptions(workers=1))  # owner: table + journal
    target = Target(app_env(emu_proc.credentials.writer_app).connection, owned.table)
    result = transfer(rows_table(4_000, start=1_000), target,
                      TransferOptions(workers=2, create="never"),
                      source_options=SourceOptions(rows_per_batch=500))
    assert result.rows == 4_000
    check_exact(reader, owned.table, 5_000)


# -- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("evil", [
    "x]; DROP TABLE {canary} --",
    "x'); DROP TABLE {canary}; --",
    "x\"; DROP TABLE {canary} --",
])
def test_table_name_with_injection_is_quoted_and_created_literally(evil, sql_target, reader):
    canary = f"canary_{uuid.uuid4().hex[:8]}"
    reader.execute(f"CREATE TABLE dbo.{canary} (x int)")
    reader.execute(f"INSERT INTO dbo.{canary} VALUES (42)")
    literal = evil.format(canary=f"dbo.{canary}") + uuid.uuid4().hex[:6]
    base = sql_target("unused")
    target = Target(base.connection, "dbo.[" + literal.replace("]", "]]") + "]")
    assert target.table.name == literal
    result = transfer(rows_table(1_500), target, TransferOptions(workers=2),
                      source_options=SourceOptions(rows_per_batch=500))
    assert result.rows == 1_500
    assert reader.execute(f"SELECT x FROM dbo.{canary}").fetchall()[0][0] == 42  # survived
    names = [r[0] for r in reader.execute(
        "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = ?", literal)]
    assert names == [literal]
    check_exact(reader, "dbo.[" + literal.replace("]", "]]") + "]", 1_500)
    # the journal recorded the literal name, and the same load resumes as a no-op
    again = transfer(rows_table(1_500), target, TransferOptions(workers=2),
                     source_options=SourceOptions(rows_per_batch=500))
    assert again.rows == 0 and again.batches_skipped == 3


def test_unicode_and_reserved_words_in_table_and_column_names(sql_target, reader):
    base = sql_target("unused")
    name = f"Sélect 東京 order {uuid.uuid4().hex[:6]}"
    target = Target(base.connection, f"dbo.[{name}]")
    source = pa.table({
        "order": pa.array(range(3_000), pa.int64()),
        "from": [f"é-{i}" for i in range(3_000)],
        "列 naïve": pa.array([i * 0.5 for i in range(3_000)]),
        "select": [i % 2 == 0 for i in range(3_000)],
        "group by": [f"🚀{i}" for i in range(3_000)],
    })
    result = transfer(source, target, TransferOptions(workers=2),
                      source_options=SourceOptions(rows_per_batch=1_000))
    assert result.rows == 3_000 and result.created_table
    got = reader.execute(f"SELECT [order], [from], [列 naïve], [select], [group by] "
                         f"FROM dbo.[{name}] ORDER BY [order]").fetchall()
    assert [tuple(r) for r in got] == list(zip(*[source.column(i).to_pylist()
                                                 for i in range(5)], strict=True))
    columns = [r[0] for r in reader.execute(
        "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = ? "
        "ORDER BY ORDINAL_POSITION", name)]
    assert columns == ["order", "from", "列 naïve", "select", "group by"]
