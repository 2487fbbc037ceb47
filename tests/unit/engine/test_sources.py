"""Sources: formats, projection, renaming, re-slicing, deterministic ids, clear errors."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ConfigurationError, SourceError
from engine.sources import SourceOptions, open_source


def sample(n: int) -> pa.Table:
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "name": pa.array([f"n{i}" for i in range(n)]),
        "when": pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i) for i in range(n)],
                         pa.timestamp("us")),
    })


def collect(source) -> tuple[pa.Table, list[str]]:
    batches = list(source.batches())
    table = pa.Table.from_batches([b.data for b in batches], schema=source.schema)
    return table, [b.batch_id for b in batches]


def test_parquet_row_groups_are_sliced_without_crossing(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(sample(25), path, row_group_size=10)
    src = open_source(str(path), SourceOptions(rows_per_batch=4))
    table, ids = collect(src)
    assert table.equals(sample(25))
    assert src.total_rows == 25
    assert ids[:4] == [f"{path}#0:0", f"{path}#0:4", f"{path}#0:8", f"{path}#1:0"]
    sizes = [b.data.num_rows for b in src.batches()]
    assert sizes == [4, 4, 2, 4, 4, 2, 4, 1]  # row groups of 10, 10, 5


def test_ids_are_stable_across_runs_and_depend_on_rows_per_batch(tmp_path):
    pq.write_table(sample(30), tmp_path / "a.parquet", row_group_size=7)
    first = collect(open_source(str(tmp_path / "a.parquet"), SourceOptions(rows_per_batch=5)))[1]
    again = collect(open_source(str(tmp_path / "a.parquet"), SourceOptions(rows_per_batch=5)))[1]
    other = collect(open_source(str(tmp_path / "a.parquet"), SourceOptions(rows_per_batch=6)))[1]
    assert first == again and len(set(first)) == len(first)
    assert first != other


def test_locations_name_file_unit_and_rows(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(sample(12), path, row_group_size=5)
    batches = list(open_source(str(path), SourceOptions(rows_per_batch=3)).batches())
    loc = batches[2].location  # row group 1 (after 3+2 rows of group 0): file rows 5-7
    assert (loc.source, loc.unit, loc.first_row, loc.rows) == (str(path), 1, 5, 3)
    assert loc.describe(row_in_batch=2) == f"{path}, unit 1, row 7"


def test_directory_and_glob_in_sorted_order(tmp_path):
    for i in range(3):
        pq.write_table(sample(4).slice(0, 4), tmp_path / f"part-{i}.parquet")
    by_dir = open_source(str(tmp_path), SourceOptions(rows_per_batch=100))
    by_glob = open_source(str(tmp_path / "part-*.parquet"), SourceOptions(rows_per_batch=100))
    assert by_dir.files == by_glob.files == sorted(by_dir.files)
    assert collect(by_dir)[0].num_rows == 12


def test_projection_and_renaming(tmp_path):
    pq.write_table(sample(6), tmp_path / "a.parquet")
    src = open_source(str(tmp_path / "a.parquet"), SourceOptions(
        columns=["name", "id"], rename={"name": "customer"}, rows_per_batch=4))
    table, _ = collect(src)
    assert src.schema.names == ["customer", "id"]
    assert table.column("customer").to_pylist() == [f"n{i}" for i in range(6)]


def test_unknown_column_lists_what_exists(tmp_path):
    pq.write_table(sample(2), tmp_path / "a.parquet")
    with pytest.raises(ConfigurationError, match=r"columns not in the source: \['nope'\].*'id'"):
        open_source(str(tmp_path / "a.parquet"), SourceOptions(columns=["id", "nope"]))


def test_csv_inferred_and_explicit_schema(tmp_path):
    path = tmp_path / "a.csv"
    pacsv.write_csv(sample(9), path)
    inferred, _ = collect(open_source(str(path), SourceOptions(rows_per_batch=4)))
    assert inferred.column("id").to_pylist() == list(range(9))
    schema = pa.schema([("id", pa.int32()), ("name", pa.string()), ("when", pa.string())])
    explicit = open_source(str(path), SourceOptions(csv_schema=schema, rows_per_batch=4))
    assert explicit.schema.field("id").type == pa.int32()
    assert collect(explicit)[0].num_rows == 9


def test_csv_row_that_does_not_parse_names_the_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("id,name\n1,a\n2,b\nthree,c\n")
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    with pytest.raises(SourceError, match=r"bad\.csv") as info:
        list(open_source(str(path), SourceOptions(csv_schema=schema)).batches())
    assert "three" in str(info.value)


def test_truncated_parquet_is_a_clear_error(tmp_path):
    path = tmp_path / "cut.parquet"
    pq.write_table(sample(100), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut\.parquet.*complete"):
        open_source(str(path))


def test_arrow_ipc_file_and_stream(tmp_path):
    feather.write_feather(sample(7), tmp_path / "a.feather", chunksize=3)
    src = open_source(str(tmp_path / "a.feather"), SourceOptions(rows_per_batch=2))
    table, ids = collect(src)
    assert table.equals(sample(7)) and src.total_rows == 7
    assert ids[0].endswith("#0:0")
    with pa.OSFile(str(tmp_path / "s.arrows"), "wb") as sink, \
            pa.ipc.new_stream(sink, sample(5).schema) as writer:
        writer.write_table(sample(5))
    assert collect(open_source(str(tmp_path / "s.arrows"),
                               SourceOptions(rows_per_batch=2)))[0].num_rows == 5


def test_pyarrow_dataset(tmp_path):
    pq.write_table(sample(8), tmp_path / "a.parquet")
    src = open_source(pads.dataset(str(tmp_path), format="parquet"),
                      SourceOptions(rows_per_batch=3))
    assert collect(src)[0].num_rows == 8


def test_polars_dataframe_and_lazyframe_stream():
    df = pl.DataFrame({"a": list(range(10)), "b": [str(i) for i in range(10)]})
    eager, _ = collect(open_source(df, SourceOptions(rows_per_batch=4)))
    lazy_src = open_source(df.lazy().filter(pl.col("a") >= 3), SourceOptions(rows_per_batch=4))
    lazy, ids = collect(lazy_src)
    assert eager.column("a").to_pylist() == list(range(10))
    assert lazy.column("a").to_pylist() == list(range(3, 10))
    assert lazy_src.total_rows is None  # a LazyFrame is never materialised to count it
    assert ids == ["mem:0", "mem:4"]


def test_record_batch_reader_is_streamed():
    reader = pa.RecordBatchReader.from_batches(sample(1).schema, sample(11).to_batches(3))
    table, ids = collect(open_source(reader, SourceOptions(rows_per_batch=5)))
    assert table.num_rows == 11 and ids == ["mem:0", "mem:5", "mem:10"]


def test_missing_path_and_empty_glob(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist"):
        open_source(str(tmp_path / "nope.parquet"))
    with pytest.raises(ConfigurationError, match="no files match"):
        open_source(str(tmp_path / "*.parquet"))


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(sample(3), path)
    before = open_source(str(path)).fingerprint
    pq.write_table(sample(4), path)
    assert open_source(str(path)).fingerprint != before


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 17), min_size=1, max_size=8),
       rows_per_batch=st.integers(1, 9))
def test_reslicing_keeps_every_row_once_in_order(sizes, rows_per_batch):
    table = sample(sum(sizes))
    pieces, start = [], 0
    for s in sizes:
        pieces.extend(table.slice(start, s).to_batches())
        start += s
    reader = pa.RecordBatchReader.from_batches(table.schema, pieces)
    batches = list(open_source(reader, SourceOptions(rows_per_batch=rows_per_batch)).batches())
    assert all(0 < b.data.num_rows <= rows_per_batch for b in batches)
    assert all(b.data.num_rows == rows_per_batch for b in batches[:-1])
    got = pa.Table.from_batches([b.data for b in batches], schema=table.schema)
    assert got.equals(table)


def test_in_memory_tables_of_the_same_shape_get_different_fingerprints():
    a = pa.table({"id": [1, 2, 3]})
    b = pa.table({"id": [1, 2, 4]})
    assert open_source(a).fingerprint == open_source(pa.table({"id": [1, 2, 3]})).fingerprint
    assert open_source(a).fingerprint != open_source(b).fingerprint


def test_streams_get_a_fresh_fingerprint_every_time():
    def reader():
        return pa.RecordBatchReader.from_batches(pa.schema([("id", pa.int64())]),
                                                 iter([pa.record_batch({"id": [1]})]))
    assert open_source(reader()).fingerprint != open_source(reader()).fingerprint


def test_a_rename_onto_a_loaded_column_is_refused():
    table = pa.table({"a": [1], "B": [2]})
    with pytest.raises(ConfigurationError, match=r"\['b', 'B'\]|\['B', 'b'\]"):
        open_source(table, SourceOptions(rename={"a": "b"}))
    assert open_source(table, SourceOptions(columns=["a"], rename={"a": "b"})).schema.names == ["b"]


@pytest.mark.parametrize("bad_row", [5, 3_000])  # in the first block, and in a later one
def test_a_csv_value_that_does_not_convert_is_located(tmp_path, monkeypatch, bad_row):
    from engine import source_files

    monkeypatch.setattr(source_files, "CSV_BLOCK_SIZE", 4096)  # many blocks in a small file
    path = tmp_path / "orders.csv"
    lines = ["id,amount"] + [f"{i},{i * 0.5}" for i in range(4_000)]
    lines[bad_row + 1] = f"{bad_row},12..5"
    path.write_text("\n".join(lines) + "\n")
    schema = pa.schema([("id", pa.int64()), ("amount", pa.float64())])
    with pytest.raises(SourceError) as info:
        for _ in open_source(str(path), SourceOptions(csv_schema=schema,
                                                      rows_per_batch=1_000)).batches():
            pass
    message = str(info.value)
    assert str(path) in message and "invalid value '12..5'" in message
    assert f"column 'amount', data row {bad_row}, line {bad_row + 2}" in message


# -- review findings: a file named twice, Spark/Hive marker files, messages ------------------

def test_a_file_named_twice_is_read_once(tmp_path):
    """big.parquet named directly, by a glob, by its directory and through a symlink: its
    rows are read once, in the place it is first named."""
    data = tmp_path / "data"
    data.mkdir()
    pq.write_table(sample(30), data / "big.parquet", row_group_size=10)
    pq.write_table(sample(5), data / "small.parquet")
    (tmp_path / "link.parquet").symlink_to(data / "big.parquet")
    named = [str(data / "big.parquet"), str(data / "*.parquet"), str(data),
             str(tmp_path / "link.parquet")]
    src = open_source(named, SourceOptions(rows_per_batch=7))
    table, ids = collect(src)
    assert src.files == [str(data / "big.parquet"), str(data / "small.parquet")]
    assert table.num_rows == src.total_rows == 35 and len(set(ids)) == len(ids)
    assert table.column("id").to_pylist() == list(range(30)) + list(range(5))


def test_spark_markers_and_hidden_files_are_skipped_in_directories_and_globs(tmp_path):
    pq.write_table(sample(4), tmp_path / "part-0.parquet")
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / ".part-0.parquet.crc").write_bytes(b"crc")
    (tmp_path / "_temporary" / "0").mkdir(parents=True)
    (tmp_path / "_temporary" / "0" / "part-9.parquet").write_bytes(b"half written")
    for named in (str(tmp_path), str(tmp_path / "*"), str(tmp_path / "**" / "*")):
        src = open_source(named)
        assert src.files == [str(tmp_path / "part-0.parquet")], named
        assert collect(src)[0].num_rows == 4
    pq.write_table(sample(3), tmp_path / "_explicit.parquet")  # named explicitly: read
    assert open_source(str(tmp_path / "_explicit.parquet")).total_rows == 3
    with pytest.raises(ConfigurationError, match=r"only 2 skipped file\(s\) whose names start "
                                                 r"with '_' or '\.'.*name such a file explicitly"):
        open_source(str(tmp_path / "_*"))


def test_format_errors_name_the_option_not_a_parameter(tmp_path):
    (tmp_path / "x.data").write_text("a\n1\n")
    with pytest.raises(ConfigurationError) as info:
        open_source(str(tmp_path / "x.data"))
    assert "--format" in str(info.value) and "fmt=" not in str(info.value)
    for name in ("s0.json", "s1.json"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(ConfigurationError, match="load one shard per command"):
        open_source([str(tmp_path / "s0.json"), str(tmp_path / "s1.json")])
    with pytest.raises(ConfigurationError, match="load one shard per command"):
        open_source(str(tmp_path / "*.json"))
