"""The example DAGs parse in Airflow's DagBag and wire the mapped load as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("airflow.sdk")

import airflow_integration

EXAMPLES = Path(airflow_integration.__file__).parent / "example_dags"


def test_example_dags_parse_and_map_the_load():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES), safe_mode=False)
    assert bag.import_errors == {}
    dag = bag.dags["example_azure_sql_bulk_mapped"]
    load = dag.task_dict["load"]
    assert type(load).__name__ == "MappedOperator"
    assert load.partial_kwargs["create"] == "never"
    assert {t.task_id for t in load.upstream_list} == {"shards", "prepare"}
    assert dag.default_args["retries"] >= 1


def _mapped_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags["example_azure_sql_bulk_mapped"]


def _manual_run_context(dag, source: str, shards: int) -> dict:
    """What a run triggered by hand gives the task in Airflow 3: no logical date (so no
    ``ds``), a ``run_after`` time, and the params."""
    import datetime

    return {"params": {"source": source, "shards": shards}, "task": dag.task_dict["shards"],
            "run_after": datetime.datetime(2026, 12, 6, 18, 0, tzinfo=datetime.UTC),
            "logical_date": None}


def test_the_mapped_example_takes_its_path_and_shard_count_from_params():
    dag = _mapped_dag()
    assert dag.params["source"] == "/data/orders/{{ run_after | ds }}/*.parquet"
    assert dag.params["shards"] == 4


def test_a_manual_run_renders_the_path_from_run_after_and_splits_it(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    day = tmp_path / "2026-12-06"
    day.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"order_id": pa.array([i], pa.int64())}),
                       day / f"part-{i}.parquet")
    dag = _mapped_dag()
    context = _manual_run_context(dag, str(tmp_path) + "/{{ run_after | ds }}/*.parquet", 2)
    shards = dag.task_dict["shards"].python_callable(**context)
    assert len(shards) == 2
    # every file is in the shards (plain paths, or shard dicts naming their file)
    text = repr(shards)
    assert all(f"part-{i}.parquet" in text for i in range(3))


def test_no_matching_files_fails_without_retries_and_says_how_to_pass_another_path(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    dag = _mapped_dag()
    context = _manual_run_context(dag, str(tmp_path) + "/{{ run_after | ds }}/*.parquet", 4)
    with pytest.raises(AirflowFailException) as failed:
        dag.task_dict["shards"].python_callable(**context)
    message = str(failed.value)
    assert f"{tmp_path}/2026-12-06/*.parquet" in message  # the path that matched nothing
    assert "--conf" in message and '"source"' in message  # how to pass another
