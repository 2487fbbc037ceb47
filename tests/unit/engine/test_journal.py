"""The journal's keys and ids, and transfer options' validation (no database here)."""

from __future__ import annotations

import hashlib
import re

import pytest

from engine.connection import ConnectionOptions
from engine.errors import ConfigurationError
from engine.journal import (
    JOURNAL_SCHEMA,
    JOURNAL_TABLE,
    Journal,
    batch_key,
    create_journal_sql,
    default_load_id,
    forget_load_sql,
)
from engine.options import CreatePolicy, Mode, Target, TransferOptions
from engine.results import TransferResult, WorkerStats
from engine.sources import SourceOptions


def test_batch_key_is_the_sha256_of_the_id():
    batch_id = "data/part-0.parquet#3:20000"
    assert batch_key(batch_id) == hashlib.sha256(batch_id.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", batch_key("é" * 5000))
    assert batch_key("mem:0") != batch_key("mem:10")


def test_default_load_id_depends_on_source_and_target():
    one = default_load_id("fp", "srv,1433/db/dbo.t")
    assert re.fullmatch(r"[0-9a-f]{32}", one)
    assert one == default_load_id("fp", "srv,1433/db/dbo.t")
    assert one != default_load_id("fp2", "srv,1433/db/dbo.t")
    assert one != default_load_id("fp", "srv,1433/db/dbo.u")


def test_journal_ddl_has_the_documented_key_and_columns():
    ddl = create_journal_sql()
    assert ddl.startswith(f"CREATE TABLE [{JOURNAL_SCHEMA}].[{JOURNAL_TABLE}]")
    for column in ("[load_id] nvarchar(128) NOT NULL", "[batch_key] char(64) NOT NULL",
                   "[batch_id] nvarchar(max) NOT NULL", "[rows] bigint NOT NULL",
                   "[committed_at] datetime2(3) NOT NULL"):
        assert column in ddl
    assert "PRIMARY KEY ([load_id], [batch_key])" in ddl
    assert forget_load_sql().count("?") == 1


def test_journal_statements_take_parameters_not_values():
    journal = Journal("x'); DROP TABLE t; --", "dbo.t")
    for sql in (journal.record_sql, journal.keys_sql, journal.contains_sql):
        assert "DROP" not in sql and "?" in sql
    assert journal.record_sql.count("?") == 5


@pytest.mark.parametrize("load_id", ["", "x" * 129])
def test_load_id_length_is_checked(load_id):
    with pytest.raises(ConfigurationError, match="load_id must be"):
        Journal(load_id, "dbo.t")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mode", "upsert", "needs keys"),
    ("keys", ("id",), "only used by mode='upsert'"),
    ("mode", "overwrite", "mode must be one of"),
    ("create", "replace_schema", "only goes with mode='replace'"),
    ("max_memory_bytes", 0, "max_memory_bytes must be positive"),
    ("create", "sometimes", "create must be one of"),
    ("workers", 0, "workers must be at least 1"),
    ("max_retries", -1, "max_retries"),
])
def test_options_are_checked(field, value, message):
    with pytest.raises(ConfigurationError, match=message):
        TransferOptions(**{field: value})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("rows_per_batch", 0, "rows_per_batch must be at least 1"),
    ("columns", (), "columns is empty"),
    ("columns", ("a", "b", "a"), "names a column twice"),
    ("rename", {"a": " "}, "non-empty names"),
    ("rename", {"a": "x", "b": "X"}, r"same name: \['X', 'x'\]"),
])
def test_source_options_are_checked(field, value, message):
    with pytest.raises(ConfigurationError, match=message):
        SourceOptions(**{field: value})


def test_columns_and_rename_are_normalised_and_frozen():
    source_options = SourceOptions(columns=["b", "a"], rename={"a": "z"})
    assert source_options.columns == ("b", "a") and dict(source_options.rename) == {"a": "z"}
    with pytest.raises(TypeError):
        source_options.rename["b"] = "y"  # type: ignore[index]


def test_modes_and_create_policies_are_enums_that_take_their_text():
    options = TransferOptions(mode="upsert", keys=("id",), create="never")
    assert options.mode is Mode.UPSERT and options.create is CreatePolicy.NEVER
    assert options.mode == "upsert" and str(options.create) == "never"


def test_option_defaults():
    options = TransferOptions()
    assert (options.workers, SourceOptions().rows_per_batch, options.mode, options.create) == (
        4, 50_000, "append", "if_missing")
    assert options.resume and options.token_refresh_margin == 300 and options.max_retries == 5
    assert not options.nan_as_null and options.load_id is None
    assert options.max_memory_bytes == 512 * 2**20


def test_target_names():
    target = Target(ConnectionOptions("srv", "db"), "[my schema].[odd.name]")
    assert (target.table.schema, target.table.name) == ("my schema", "odd.name")
    assert target.describe() == "srv,1433/db/my schema.odd.name"
    assert Target(ConnectionOptions("srv", "db"), "t").qualified == "dbo.t"
    with pytest.raises(ConfigurationError):
        Target(ConnectionOptions("srv", "db"), "a.b.c")


def test_result_to_dict_is_json_able():
    import json

    result = TransferResult("dbo.t", "abc", 1000, 2_000_000, 4.0, 3, 1, 2, 1, 1, True,
                            (WorkerStats(0, rows=600), WorkerStats(1, rows=400)))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["rows_per_second"] == 250.0 and data["mb_per_second"] == 0.5
    assert [w["rows"] for w in data["workers"]] == [600, 400]
    assert data["load_id"] == "abc" and data["batches_skipped"] == 1


def test_the_default_load_id_covers_what_the_load_writes():
    where = "srv,1433/db/dbo.t"
    base = default_load_id("files", where)
    assert base == default_load_id("files", where, options=TransferOptions(),
                                   source_options=SourceOptions())  # ids of old appends stay
    variants = [
        default_load_id("files", where, options=TransferOptions(mode="upsert", keys=("id",))),
        default_load_id("files", where, options=TransferOptions(mode="upsert", keys=("k",))),
        default_load_id("files", where, options=TransferOptions(mode="replace")),
        default_load_id("files", where, options=TransferOptions(sql_types={"a": "int"})),
        default_load_id("files", where, source_options=SourceOptions(columns=["a"])),
        default_load_id("files", where, source_options=SourceOptions(rename={"a": "b"})),
    ]
    assert len({base, *variants}) == len(variants) + 1
