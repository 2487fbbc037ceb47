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
