"""The load operator's Airflow surface: arguments, templating, load ids, mapping, lineage."""

from __future__ import annotations

import datetime
import importlib.util

import pytest

from engine.connection import ConnectionOptions
from engine.errors import ConfigurationError
from engine.options import Target

sdk = pytest.importorskip("airflow.sdk")

from airflow_integration.lineage import input_dataset, operator_lineage, output_dataset  # noqa: E402
from airflow_integration.operators import AzureSqlBulkLoadOperator, task_load_id  # noqa: E402

TARGET = Target(ConnectionOptions("srv.database.windows.net", "sales"), "dbo.orders")
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def test_template_fields():
    assert tuple(AzureSqlBulkLoadOperator.template_fields) == ("source", "table", "keys",
                                                              "load_id")


def test_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        AzureSqlBulkLoadOperator("data/*.parquet", "dbo.orders", task_id="load")  # type: ignore[misc]
    op = AzureSqlBulkLoadOperator(task_id="load", source="data/*.parquet", table="dbo.orders")
    assert op.conn_id == "azure_sql_bulk_default" and op.workers == 4 and op.mode == "append"


def test_templated_source_table_and_load_id_render():
    op = AzureSqlBulkLoadOperator(task_id="load", source="/data/{{ ds }}/*.parquet",
                                  table="dbo.orders_{{ params.suffix }}",
                                  load_id="{{ run_id }}-x")
    context = {"ds": "2024-01-02", "params": {"suffix": "eu"}, "run_id": "manual_1"}
    op.render_template_fields(context)  # type: ignore[arg-type]
    assert (op.source, op.table, op.load_id) == ("/data/2024-01-02/*.parquet", "dbo.orders_eu",
                                                 "manual_1-x")


def test_default_load_id_covers_what_the_load_writes():
    from engine.options import TransferOptions
    from engine.sources import SourceOptions

    plain = task_load_id("dag", "load", "run", -1, TARGET)
    assert plain == task_load_id("dag", "load", "run", -1, TARGET, options=TransferOptions(),
                                 source_options=SourceOptions())
    upsert = task_load_id("dag", "load", "run", -1, TARGET,
                          options=TransferOptions(mode="upsert", keys=("id",)))
    renamed = task_load_id("dag", "load", "run", -1, TARGET,
                           source_options=SourceOptions(rename={"a": "b"}))
    assert len({plain, upsert, renamed}) == 3


def test_default_load_id_is_the_same_for_every_try_of_a_task_instance():
    first = task_load_id("dag", "load", "scheduled__2024-01-01", -1, TARGET)
    assert first == task_load_id("dag", "load", "scheduled__2024-01-01", -1, TARGET)
    assert len(first) == 32 and int(first, 16) >= 0
    others = {task_load_id("dag", "load", "scheduled__2024-01-01", 0, TARGET),
              task_load_id("dag", "load", "scheduled__2024-01-01", 1, TARGET),
              task_load_id("dag", "load", "scheduled__2024-01-02", -1, TARGET),
              task_load_id("dag", "other", "scheduled__2024-01-01", -1, TARGET),
              task_load_id("dag2", "load", "scheduled__2024-01-01", -1, TARGET),
              task_load_id("dag", "load", "scheduled__2024-01-01", -1,
                           Target(TARGET.connection, "dbo.other"))}
    assert first not in others and len(others) == 6


def test_transfer_options_follow_the_arguments():
    op = AzureSqlBulkLoadOperator(task_id="load", source="x.parquet", table="dbo.t",
                                  mode="upsert", keys=["order_id"], workers=2,
                                  rows_per_batch=500, max_retries=1,
                                  sql_types={"price": "decimal(18,2)"},
                                  columns=["order_id", "price"], rename={"price": "amount"})
    options, read = op.transfer_options("abc"), op.source_options()
    assert read.columns == ("order_id", "price") and dict(read.rename) == {"price": "amount"}
    assert (options.mode, options.keys, options.workers, read.rows_per_batch) == (
        "upsert", ("order_id",), 2, 500)
    assert options.load_id == "abc" and options.resume and options.max_retries == 1
    assert dict(options.sql_types) == {"price": "decimal(18,2)"}
    bad = AzureSqlBulkLoadOperator(task_id="bad", source="x.parquet", table="dbo.t",
                                   mode="upsert")
    with pytest.raises(ConfigurationError, match="needs keys"):
        bad.transfer_options("abc")


def test_a_bad_setting_fails_the_task_without_retries(monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW_CONN_AZSQL_UNIT", '{"conn_type": "azure_sql_bulk", '
                       '"host": "srv", "schema": "db"}')
    op = AzureSqlBulkLoadOperator(task_id="load", source=str(tmp_path / "missing.parquet"),
                                  table="dbo.t", conn_id="azsql_unit", retries=3)

    class TI:
        dag_id, task_id, run_id, map_index, try_number = "d", "load", "r", -1, 1
    with pytest.raises(AirflowFailException, match="does not exist"):
        op.execute({"ti": TI()})  # type: ignore[arg-type]


def test_partial_expand_maps_over_sources():
    with sdk.DAG("mapped", schedule=None, start_date=START) as dag:
        mapped = AzureSqlBulkLoadOperator.partial(
            task_id="load", table="dbo.t", conn_id="c", workers=1).expand(
            source=[["a.parquet"], ["b.parquet"], ["c.parquet"]])
    assert dag.task_dict["load"] is mapped
    assert type(mapped).__name__ == "MappedOperator"
    assert mapped.expand_input.value == {"source": [["a.parquet"], ["b.parquet"],
                                                    ["c.parquet"]]}
    assert mapped.partial_kwargs["table"] == "dbo.t"


def test_lineage_dataset_names():
    assert output_dataset("srv", 1433, "sales", "dbo.orders") == ("mssql://srv:1433",
                                                                  "sales.dbo.orders")
    assert input_dataset("/data/a.parquet") == ("file", "/data/a.parquet")
    assert input_dataset("abfss://raw@acct.dfs.core.windows.net/orders/a.parquet") == (
        "abfss://raw@acct.dfs.core.windows.net", "/orders/a.parquet")


def test_without_the_openlineage_provider_there_are_no_facets_and_no_error(monkeypatch):
    import sys

    # the provider hidden (a None entry makes its import fail), installed or not
    for name in [m for m in sys.modules if m.startswith("airflow.providers.openlineage")] + [
            "airflow.providers.openlineage", "airflow.providers.openlineage.extractors"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert operator_lineage([("file", "/a.parquet")], ("mssql://srv:1433", "db.dbo.t")) is None
    op = AzureSqlBulkLoadOperator(task_id="load", source="a.parquet", table="dbo.t")
    assert op.get_openlineage_facets_on_complete(None) is None
    op._lineage = ([("file", "/a.parquet")], ("mssql://srv:1433", "db.dbo.t"))
    assert op.get_openlineage_facets_on_complete(None) is None


@pytest.mark.skipif(importlib.util.find_spec("airflow.providers.openlineage") is None,
                    reason="the openlineage provider is not installed")
def test_with_the_openlineage_provider_facets_name_inputs_and_output():
    lineage = operator_lineage([("file", "/a.parquet")], ("mssql://srv:1433", "db.dbo.t"))
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", "/a.parquet")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("mssql://srv:1433",
                                                                 "db.dbo.t")]


def test_progress_interval_is_an_argument_with_a_default_and_is_checked():
    from airflow_integration.operators import DEFAULT_PROGRESS_INTERVAL

    op = AzureSqlBulkLoadOperator(task_id="load", source="a.parquet", table="dbo.t")
    assert op.progress_interval == DEFAULT_PROGRESS_INTERVAL > 0
    assert AzureSqlBulkLoadOperator(task_id="quiet", source="a.parquet", table="dbo.t",
                                    progress_interval=None).progress_interval is None
    for bad in (-1, "soon", "-5"):
        with pytest.raises(ConfigurationError, match="progress_interval must be 0 or more"):
            AzureSqlBulkLoadOperator(task_id="bad", source="a.parquet", table="dbo.t",
                                     progress_interval=bad)
    assert AzureSqlBulkLoadOperator(task_id="text", source="a.parquet", table="dbo.t",
                                    progress_interval="15").progress_interval == 15.0


def test_the_progress_display_writes_its_lines_to_the_task_log():
    from airflow_integration.operators import _TaskLogLines
    from engine.progress_display import ProgressDisplay
    from engine.results import Progress

    records: list[str] = []

    class Log:
        def info(self, fmt: str, *args: object) -> None:
            records.append(fmt % args)

    display = ProgressDisplay(table="dbo.t", workers=2, mode="log", interval=0,
                              err=_TaskLogLines(Log()), timestamps=False)
    with display:
        display.update(Progress(2_500, 5, 0, 100_000, 1.0, 10_000, workers_busy=2))
    assert len(records) >= 2 and all("azsql-bulk: dbo.t: " in r for r in records)
    assert records[0].startswith("azsql-bulk: dbo.t: ")  # the task log stamps lines itself
    assert "2,500 / 10,000 rows (25.0%)" in records[0] and "workers busy 2/2" in records[0]


def test_xcom_rows_count_the_whole_load_and_the_try_apart():
    from airflow_integration.operators import xcom_result
    from engine.results import TransferResult

    # a second try that sent 70 of the load's 200 rows (13 batches were journaled before)
    second = TransferResult("dbo.t", "x", 70, 560, 2.0, 7, 13, 0, 0, 0, False,
                            rows_rejected=1)
    out = xcom_result(second, 200, 20, 3)
    assert (out["rows"], out["batches"], out["rows_rejected"]) == (200, 20, 3)
    assert (out["rows_this_try"], out["batches_this_try"],
            out["rows_rejected_this_try"]) == (70, 7, 1)
    assert out["batches_skipped"] == 13 and out["rows_per_second"] == 35.0  # this try's rate


def _shard(tmp_path) -> dict:
    """A real shard of a 4-row-group file, through a JSON round trip (as XCom carries it),
    with an ETag-like string Jinja's native rendering would turn into a number."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.shards import split_source

    path = tmp_path / "big {{ ds }}.parquet"  # braces in a file name: never a template
    pq.write_table(pa.table({"id": range(400)}), path, row_group_size=100)
    shard = json.loads(json.dumps(split_source(str(path), 2)[1]))
    shard["parts"][0]["etag"] = "0x8DD1234"
    return shard


@pytest.mark.parametrize("native", [False, True])
def test_a_shard_source_renders_unchanged(tmp_path, native):
    import copy

    shard = _shard(tmp_path)
    with sdk.DAG("shards", schedule=None, start_date=START,
                 render_template_as_native_obj=native):
        op = AzureSqlBulkLoadOperator(task_id="load", source=shard, table="dbo.t_{{ ds }}")
        listed = AzureSqlBulkLoadOperator(task_id="listed", source=[shard, shard],
                                          table="dbo.t")
    before = copy.deepcopy(shard)
    op.render_template_fields({"ds": "2024-01-02"})  # type: ignore[arg-type]
    listed.render_template_fields({"ds": "2024-01-02"})  # type: ignore[arg-type]
    assert op.source == before and op.table == "dbo.t_2024-01-02"
    assert listed.source == [before, before]


def test_partial_expand_maps_over_shards_and_lineage_names_their_files(tmp_path):
    shard = _shard(tmp_path)
    with sdk.DAG("mapped_shards", schedule=None, start_date=START):
        mapped = AzureSqlBulkLoadOperator.partial(task_id="load", table="dbo.t").expand(
            source=[shard, shard])
    assert mapped.expand_input.value == {"source": [shard, shard]}
    from airflow_integration.lineage import source_datasets

    path = shard["parts"][0]["path"]
    assert source_datasets(shard) == [("file", path)]
    assert source_datasets([shard, "/data/x.parquet"]) == [("file", path),
                                                           ("file", "/data/x.parquet")]


def test_a_shard_is_described_in_the_log_line():
    from airflow_integration.operators import _describe

    shard = {"azsql_bulk_shard": 1, "index": 1, "shards": 2, "bytes": 10, "parts": [
        {"path": "/d/big.parquet", "format": "parquet", "row_groups": [2, 4], "rows": 200}]}
    assert _describe(shard) == "shard 1 of 2 (10 bytes): /d/big.parquet row groups 2-3 (200 rows)"
    assert _describe([shard, shard]) == "2 shard(s)"
