"""Shards: every row of a file set in exactly one shard, read back with the whole load's ids."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as paipc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ConfigurationError, ObjectChangedError
from engine.shards import SHARD_VERSION, VERSION_KEY, plan_shards, split_source
from engine.sources import SourceOptions, open_source

FILE_ROWS = 1_000  # ids are file * FILE_ROWS + row in the file


def write_parquet(path: Path, file: int, groups: list[int]) -> None:
    """One row group per entry of ``groups`` (its row count); no entries: an empty file."""
    schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        first = 0
        for rows in groups:
            ids = list(range(file * FILE_ROWS + first, file * FILE_ROWS + first + rows))
            writer.write_table(pa.table({"id": ids, "name": [f"n{i}" for i in ids]},
                                        schema=schema), row_group_size=max(rows, 1))
            first += rows


def read(source, rows_per_batch: int) -> dict[str, list[int]]:
    """batch id -> the ids of its rows; checks that locations name the file and its rows."""
    out: dict[str, list[int]] = {}
    for batch in open_source(source, SourceOptions(rows_per_batch=rows_per_batch)).batches():
        ids = batch.data.column("id").to_pylist()
        assert batch.batch_id not in out
        out[batch.batch_id] = ids
        # row numbers are the file's, not the shard's
        assert batch.location.first_row == ids[0] % FILE_ROWS
        assert Path(batch.location.source).stem == f"f{ids[0] // FILE_ROWS}"
    return out


def write_csv(path: Path, file: int, rows: int) -> None:
    ids = list(range(file * FILE_ROWS, file * FILE_ROWS + rows))
    pacsv.write_csv(pa.table({"id": ids, "name": [f"n{i}" for i in ids]}), path)


def assert_partition(shards: list[dict], files: dict[str, int | None]) -> None:
    """The shards' ranges cover each Parquet file's row groups once, without overlap;
    every other file (count None) is one whole part of one shard."""
    ranges: dict[str, list[tuple[int, int]]] = {path: [] for path in files}
    for shard in shards:
        for part in shard["parts"]:
            ranges[part["path"]].append(tuple(part.get("row_groups", (0, 0))))
    for path, count in files.items():
        spans = sorted(ranges[path])
        if count is None:
            assert spans == [(0, 0)]  # whole, no row_groups
            continue
        if count == 0:
            assert spans == [(0, 0)]
            continue
        assert all(a < b for a, b in spans), spans
        assert spans[0][0] == 0 and spans[-1][1] == count, spans
        assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1)), spans


file_sets = st.lists(st.lists(st.integers(min_value=1, max_value=40), max_size=6),
                     min_size=1, max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(file_sets, st.lists(st.integers(min_value=1, max_value=30), max_size=2),
       st.integers(min_value=1, max_value=10), st.integers(min_value=1, max_value=9))
def test_every_row_is_in_exactly_one_shard(groups, csvs, n, rows_per_batch):
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"f{i}.parquet") for i in range(len(groups))]
        for i, (path, sizes) in enumerate(zip(paths, groups, strict=True)):
            write_parquet(Path(path), i, sizes)
        texts = [os.path.join(tmp, f"f{len(groups) + j}.csv") for j in range(len(csvs))]
        for j, (path, rows) in enumerate(zip(texts, csvs, strict=True)):
            write_csv(Path(path), len(groups) + j, rows)
        shards = split_source(tmp, n)  # the directory: Parquet and CSV files
        assert json.loads(json.dumps(shards)) == shards  # plain JSON, unchanged by a round trip
        # as many shards as asked for, unless there are fewer row groups and whole files
        assert len(shards) == min(n, sum(max(1, len(g)) for g in groups) + len(csvs))
        assert [s["index"] for s in shards] == list(range(len(shards)))
        assert all(s["parts"] and s[VERSION_KEY] == SHARD_VERSION for s in shards)
        assert_partition(shards, {**dict(zip(paths, map(len, groups), strict=True)),
                                  **dict.fromkeys(texts)})

        whole = read(paths + texts, rows_per_batch)
        by_shard = [read(s, rows_per_batch) for s in shards]
        ids = Counter(i for batches in by_shard for rows in batches.values() for i in rows)
        expected = [f * FILE_ROWS + r for f, rows in enumerate([*map(sum, groups), *csvs])
                    for r in range(rows)]
        assert sorted(ids.elements()) == expected and set(ids.values()) <= {1}
        # the same batches under the same ids as loading the whole source
        merged = {k: v for batches in by_shard for k, v in batches.items()}
        assert merged == whole and sum(map(len, by_shard)) == len(whole)
        # each shard its own load (fingerprint), the same when opened again
        prints = [open_source(s).fingerprint for s in shards]
        assert len(set(prints)) == len(prints)
        assert prints == [open_source(s).fingerprint for s in shards]


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(st.integers(min_value=0, max_value=10_000), max_size=30), min_size=1,
                max_size=12), st.integers(min_value=1, max_value=40))
def test_plans_cover_every_unit_once_and_stay_balanced(files, n):
    dealt = plan_shards(files, n)
    assert len(dealt) == min(n, sum(max(1, len(units)) for units in files)) and all(dealt)
    seen = sorted((i, a, b) for shard in dealt for i, a, b in shard)
    for i, units in enumerate(files):
        spans = [(a, b) for f, a, b in seen if f == i]
        covered = [u for a, b in spans for u in range(a, b)]
        assert covered == list(range(len(units))) if units else spans == [(0, 0)]
    loads = [sum(sum(files[i][a:b]) for i, a, b in shard) for shard in dealt]
    total = sum(map(sum, files))
    biggest = max((u for units in files for u in units), default=0)
    # no shard carries more than twice its share plus one unit
    assert max(loads) * len(dealt) <= 2 * total + len(dealt) * biggest


def test_one_big_file_spreads_over_every_shard(tmp_path):
    write_parquet(tmp_path / "f0.parquet", 0, [50] * 16)
    shards = split_source(str(tmp_path / "f0.parquet"), 4)
    assert [s["parts"] for s in shards] == [[{
        "path": str(tmp_path / "f0.parquet"), "format": "parquet", "row_groups": [a, a + 4],
        "rows": 200, "file_bytes": os.path.getsize(tmp_path / "f0.parquet"),
        "file_row_groups": 16, "mtime_ns": os.stat(tmp_path / "f0.parquet").st_mtime_ns}]
        for a in (0, 4, 8, 12)]
    assert len(split_source(str(tmp_path / "f0.parquet"), 40)) == 16  # one row group each


def test_a_huge_file_is_cut_and_small_files_stay_whole(tmp_path):
    write_parquet(tmp_path / "f0.parquet", 0, [100] * 12)
    for i in range(1, 5):
        write_parquet(tmp_path / f"f{i}.parquet", i, [10, 10])
    shards = split_source(str(tmp_path / "*.parquet"), 4)
    assert len(shards) == 4
    big = [p for s in shards for p in s["parts"] if p["path"].endswith("f0.parquet")]
    assert len(big) >= 3  # the huge file feeds most shards
    small = [p for s in shards for p in s["parts"] if not p["path"].endswith("f0.parquet")]
    assert len(small) == 4 and all(p["row_groups"] == [0, 2] for p in small)
    loads = sorted(s["bytes"] for s in shards)
    biggest_group = max(s["bytes"] for s in split_source(str(tmp_path / "f0.parquet"), 12))
    assert loads[-1] - loads[0] <= biggest_group


def test_csv_and_ipc_files_are_whole_parts(tmp_path):
    pacsv.write_csv(pa.table({"id": [0, 1, 2]}), tmp_path / "a.csv")
    with paipc.new_file(tmp_path / "b.arrow", pa.schema([("id", pa.int64())])) as writer:
        writer.write_table(pa.table({"id": [3, 4]}))
    shards = split_source([str(tmp_path / "a.csv"), str(tmp_path / "b.arrow")], 5)
    assert len(shards) == 2
    parts = [p for s in shards for p in s["parts"]]
    assert {p["format"] for p in parts} == {"csv", "ipc"}
    assert all("row_groups" not in p for p in parts)
    rows = sorted(i for s in shards for b in open_source(s).batches()
                  for i in b.data.column("id").to_pylist())
    assert rows == [0, 1, 2, 3, 4]


def test_an_unknown_shard_version_is_refused(tmp_path):
    write_parquet(tmp_path / "f0.parquet", 0, [5, 5])
    shard = split_source(str(tmp_path / "f0.parquet"), 1)[0]
    with pytest.raises(ConfigurationError, match=r"format version 2.*reads version 1"):
        open_source({**shard, VERSION_KEY: 2})
    with pytest.raises(ConfigurationError, match="must be a shard written by `azsql-bulk split`"):
        open_source({"parts": shard["parts"]})
    broken = {**shard, "parts": [{**shard["parts"][0], "row_groups": [1]}]}
    with pytest.raises(ConfigurationError, match="no valid \"row_groups\""):
        open_source(broken)
    with pytest.raises(ConfigurationError, match="already a shard"):
        split_source(shard, 2)


@pytest.mark.parametrize("rewrite", [[5, 5, 5], [4, 6], [5, 5, 1]],
                         ids=["more row groups", "same count, other rows", "appended"])
def test_a_file_changed_since_the_split_is_refused(tmp_path, rewrite):
    path = tmp_path / "f0.parquet"
    write_parquet(path, 0, [5, 5])
    shards = split_source(str(path), 2)
    write_parquet(path, 0, rewrite)
    with pytest.raises(ObjectChangedError, match=r"f0.parquet \(shard 1/2, part 0\) changed "
                                                 r"since the source was split \(.* was .*, is"):
        open_source(shards[1])


def test_a_deleted_file_is_refused(tmp_path):
    write_parquet(tmp_path / "f0.parquet", 0, [5])
    shard = split_source(str(tmp_path / "f0.parquet"), 1)[0]
    os.remove(tmp_path / "f0.parquet")
    with pytest.raises(ObjectChangedError, match="is gone since the source was split"):
        open_source(shard)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigurationError, match="at least 1"):
        split_source(str(tmp_path), 0)
    with pytest.raises(ConfigurationError, match="only files can be split"):
        split_source(pa.table({"x": [1]}), 2)
    with pytest.raises(ConfigurationError, match="no files match"):
        split_source(str(tmp_path / "*.parquet"), 2)


def test_the_cli_writes_shard_files_that_open_as_sources(tmp_path, capsys):
    from engine.cli.app import main

    write_parquet(tmp_path / "f0.parquet", 0, [20] * 6)
    out = tmp_path / "shards"
    assert main(["split", str(tmp_path / "*.parquet"), "--shards", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / f"shard-00{i}.json") for i in range(3)]
    ids = sorted(i for path in printed for b in open_source(path).batches()
                 for i in b.data.column("id").to_pylist())
    assert ids == list(range(120))
    # without --out: one shard per line, the same as the files hold
    assert main(["split", str(tmp_path / "f0.parquet"), "--shards", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(Path(p).read_text())
                                                    for p in printed]
    assert main(["split", str(tmp_path / "none-*.parquet"), "--shards", "2"]) == 2
    assert "no files match" in capsys.readouterr().err
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match="holds a JSON list, not a shard"):
        open_source(str(tmp_path / "list.json"))


def test_an_opened_shard_lists_its_parts(tmp_path):
    write_parquet(tmp_path / "f0.parquet", 0, [10] * 4)
    shard = split_source(str(tmp_path / "f0.parquet"), 2)[1]
    opened = open_source(shard)
    assert [(p.path, p.fmt, p.row_groups) for p in opened.parts] == [
        (str(tmp_path / "f0.parquet"), "parquet", (2, 4))]
    assert opened.files == [str(tmp_path / "f0.parquet")] and opened.total_rows == 20
    # what error messages say: the file, its row group, rows counted in the file
    where = [b.location.describe(3) for b in opened.batches()]
    assert where == [f"{tmp_path / 'f0.parquet'}, unit 2, row 23",
                     f"{tmp_path / 'f0.parquet'}, unit 3, row 33"]
    assert [p.row_groups for p in open_source(str(tmp_path / "f0.parquet")).parts] == [None]


def test_local_paths_are_recorded_absolute(tmp_path, monkeypatch):
    write_parquet(tmp_path / "f0.parquet", 0, [3])
    monkeypatch.chdir(tmp_path)
    (shard,) = split_source("f0.parquet", 1)
    assert shard["parts"][0]["path"] == str(tmp_path / "f0.parquet")
    monkeypatch.chdir(tmp_path.parent)  # a task running elsewhere still finds the file
    assert open_source(shard).total_rows == 3


# -- review findings: overlapping inputs, mtimes and load ids, messages --------------------------

def test_overlapping_inputs_are_split_once(tmp_path):
    """big.parquet named directly and by a glob (and small files beside it): every row in
    exactly one shard, every shard's batch ids distinct from the others'."""
    write_parquet(tmp_path / "f0.parquet", 0, [10] * 10)
    write_parquet(tmp_path / "f1.parquet", 1, [10] * 5)
    named = [str(tmp_path / "f0.parquet"), str(tmp_path / "*.parquet"), str(tmp_path)]
    shards = split_source(named, 3)
    assert_partition(shards, {str(tmp_path / "f0.parquet"): 10, str(tmp_path / "f1.parquet"): 5})
    ids = Counter(i for shard in shards for rows in read(shard, 4).values() for i in rows)
    assert sorted(ids) == list(range(100)) + list(range(1000, 1050))
    assert set(ids.values()) == {1}


def test_a_shard_load_id_comes_from_what_the_split_recorded(tmp_path):
    """A copy of a shard file elsewhere gives the same default load id (it resumes); the
    id does not read the file's live state, and a changed modification time is refused."""
    path = tmp_path / "f0.parquet"
    write_parquet(path, 0, [5, 5])
    shard = split_source(str(path), 2)[1]
    assert shard["parts"][0]["mtime_ns"] == os.stat(path).st_mtime_ns
    for name in ("a/shard-001.json", "b/copied.json"):
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_text(json.dumps(shard))
    fingerprints = {open_source(s).fingerprint
                    for s in (shard, str(tmp_path / "a/shard-001.json"),
                              str(tmp_path / "b/copied.json"))}
    assert len(fingerprints) == 1
    assert split_source(str(path), 2)[0] != shard  # the other shard ...
    assert open_source(split_source(str(path), 2)[0]).fingerprint not in fingerprints  # ... id
    st_ = os.stat(path)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))  # a `touch`
    with pytest.raises(ObjectChangedError, match=r"f0.parquet \(shard 1/2, part 0\) changed "
                                                 r"since the source was split \(mtime_ns was "
                                                 r"\d+, is \d+\) - only its modification time"):
        open_source(shard)
    # a shard without a recorded time (an older split) is not timed, and its id is still
    # the recorded facts', not the live file's
    untimed = {**shard, "parts": [{k: v for k, v in shard["parts"][0].items()
                                   if k != "mtime_ns"}]}
    before = open_source(untimed).fingerprint
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 2_000_000_000))
    assert open_source(untimed).fingerprint == before


def test_shards_and_json_are_refused_by_split_with_what_to_do(tmp_path):
    write_parquet(tmp_path / "f0.parquet", 0, [5, 5])
    (tmp_path / "shard-000.json").write_text(json.dumps(split_source(str(tmp_path), 1)[0]))
    for named in (str(tmp_path / "shard-000.json"), str(tmp_path / "*.json"),
                  [str(tmp_path / "f0.parquet"), str(tmp_path / "shard-000.json")]):
        with pytest.raises(ConfigurationError, match=r"names a shard file \(.json\), not a data "
                                                     "file; split the source files it came "
                                                     "from instead"):
            split_source(named, 2)
    (tmp_path / "bad.json").write_text(json.dumps(
        {VERSION_KEY: SHARD_VERSION, "index": 0, "shards": 1, "parts": [{"path": 1}]}))
    (shard,) = split_source(str(tmp_path / "f0.parquet"), 1)
    twice = {**shard, "parts": [shard["parts"][0], {**shard["parts"][0], "row_groups": [1, 2],
                                                   "rows": 5}]}
    with pytest.raises(ConfigurationError, match=r"parts 0 and 1 both read .*f0.parquet "
                                                 r"\(overlapping row groups\)"):
        open_source(twice)
    apart = {**shard, "parts": [{**shard["parts"][0], "row_groups": [0, 1], "rows": 5},
                                {**shard["parts"][0], "row_groups": [1, 2], "rows": 5}]}
    assert open_source(apart).total_rows == 10  # adjacent ranges of one file do not overlap
    with pytest.raises(ConfigurationError, match=r"bad.json, shard 0/1, part 0 is "
                                                 r"malformed: it needs \"path\""):
        open_source(str(tmp_path / "bad.json"))


def test_split_out_never_mixes_two_splits(tmp_path, capsys):
    from engine.cli.app import main

    write_parquet(tmp_path / "f0.parquet", 0, [10] * 6)
    out = tmp_path / "shards"
    split = ["split", str(tmp_path / "f0.parquet"), "--out", str(out), "--shards"]
    assert main([*split, "6"]) == 0
    capsys.readouterr()
    (out / "notes.txt").write_text("mine")
    assert main([*split, "3"]) == 2  # refused: the 6-way split's files are there
    err = capsys.readouterr().err
    assert "already holds 6 shard file(s) of an earlier split (shard-000.json, shard-001.json" \
        in err and "--replace" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] + [f"shard-00{i}.json"
                                                                     for i in range(6)]
    (out / "shard-007.json").write_text("{}")  # not a shard: --replace deletes nothing
    assert main([*split, "3", "--replace"]) == 2
    assert "shard-007.json is not one; move it away" in capsys.readouterr().err
    assert len(list(out.glob("shard-*.json"))) == 7
    (out / "shard-007.json").unlink()
    assert main([*split, "3", "--replace"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] + [f"shard-00{i}.json"
                                                                     for i in range(3)]
    ids = sorted(i for p in sorted(out.glob("*.json")) for b in open_source(str(p)).batches()
                 for i in b.data.column("id").to_pylist())
    assert ids == list(range(60))  # the directory holds one split: every row once
    assert main(["split", str(tmp_path / "f0.parquet"), "--shards", "2", "--out",
                 str(tmp_path / "f0.parquet")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    nowhere = ["split", str(tmp_path / "f0.parquet"), "--shards", "2", "--out",
               str(tmp_path / "f0.parquet" / "sub")]
    assert main(nowhere) == 2
    assert "cannot create the --out directory" in capsys.readouterr().err
    assert main(["split", str(tmp_path / "f0.parquet"), "--shards", "2", "--replace"]) == 2
    assert "--replace works with --out DIR only" in capsys.readouterr().err
