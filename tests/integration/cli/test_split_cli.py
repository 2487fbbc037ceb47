"""`azsql-bulk split` then `azsql-bulk load SHARD.json`, as real subprocesses against the
emulator (in its own process), for what a review found: inputs that name a file twice,
an ``--out`` directory that already holds a split, and a data file touched after the
split. Rows are read back through pyodbc (another client than the loader's turbodbc).
Nothing here mocks the database.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from integration.cli.cli_env import last_json, run_cli, table_name, write_parquet
from loads import check_exact

pytest.importorskip("turbodbc")
pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Three Parquet files of 2,000 rows, 4 row groups each, next to a Spark ``_SUCCESS``
    marker; ids 0..5,999."""
    directory = tmp_path_factory.mktemp("split") / "data"
    total = write_parquet(directory, files=3, rows_per_file=2_000, row_group_size=500)
    (directory / "_SUCCESS").write_bytes(b"")
    return directory, total


def split(args: list[str], env: dict[str, str]) -> list[str]:
    proc = run_cli(["split", *args], env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def load(source: str, table: str, conn_args: list[str], env: dict[str, str]) -> dict:
    proc = run_cli(["load", source, "--table", table, "--rows-per-batch", "250", "--json",
                    *conn_args], env)
    assert proc.returncode == 0, proc.stderr
    return last_json(proc.stdout)


def test_overlapping_inputs_load_each_row_once(tmp_path, data, sql_env, conn_args, reader):
    directory, total = data
    big = str(directory / "part-0000.parquet")
    overlapping = [big, str(directory / "*"), str(directory)]  # part-0000 named three times
    shards = split([*overlapping, "--shards", "3", "--out", str(tmp_path / "sh")], sql_env)
    assert len(shards) == 3
    table = table_name("split_dup")
    loaded = [load(s, table, conn_args, sql_env) for s in shards]
    assert sum(r["rows"] for r in loaded) == total
    assert len({r["load_id"] for r in loaded}) == 3
    check_exact(reader, table, total)
    # a plain load of the same overlapping inputs: each row once as well
    plain = table_name("load_dup")
    proc = run_cli(["load", *overlapping, "--table", plain, "--json", *conn_args], sql_env)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc.stdout)["rows"] == total
    check_exact(reader, plain, total)


def test_a_shard_resumes_from_a_copy_and_refuses_a_touched_file(tmp_path, data, sql_env,
                                                                 conn_args, reader):
    directory, _ = data
    own = tmp_path / "data"
    shutil.copytree(directory, own)  # this test touches a file: its own copy
    shards = split([str(own), "--shards", "2", "--out", str(tmp_path / "sh")], sql_env)
    table = table_name("split_touch")
    recorded = json.loads(Path(shards[1]).read_text())["parts"]
    rows = sum(part["rows"] for part in recorded)
    first = load(shards[1], table, conn_args, sql_env)
    assert first["rows"] == rows > 0
    copy = tmp_path / "elsewhere" / "shard-001.json"  # the shard file on another worker
    copy.parent.mkdir()
    shutil.copyfile(shards[1], copy)
    again = run_cli(["load", str(copy), "--table", table, "--rows-per-batch", "250",
                     "--json", "--resume", *conn_args], sql_env)
    assert again.returncode == 0, again.stderr
    resumed = last_json(again.stdout)
    assert (resumed["load_id"], resumed["rows"]) == (first["load_id"], 0)
    touched = Path(recorded[-1]["path"])  # a file of shard 1
    st = os.stat(touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    refused = run_cli(["load", shards[1], "--table", table, "--rows-per-batch", "250",
                       *conn_args], sql_env)
    assert refused.returncode != 0
    assert touched.name in refused.stderr and "mtime_ns was" in refused.stderr
    assert "split the source again" in refused.stderr
    count, distinct = reader.execute(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {table}"
                                     ).fetchone()
    assert (count, distinct) == (rows, rows)  # nothing loaded twice


def test_out_refuses_an_earlier_split_and_replace_swaps_it(tmp_path, data, sql_env):
    directory, _ = data
    out = tmp_path / "sh"
    assert len(split([str(directory), "--shards", "6", "--out", str(out)], sql_env)) == 6
    proc = run_cli(["split", str(directory), "--shards", "3", "--out", str(out)], sql_env)
    assert proc.returncode == 2
    assert "already holds 6 shard file(s) of an earlier split" in proc.stderr
    assert len(list(out.glob("*.json"))) == 6
    again = split([str(directory), "--shards", "3", "--out", str(out), "--replace"], sql_env)
    assert sorted(out.glob("*.json")) == sorted(out / os.path.basename(p) for p in again)
    assert len(again) == 3
