"""Fixtures for the Airflow integration tests: Parquet files and a pyodbc reader."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from integration.airflow.airflow_env import FILES, ROWS_PER_FILE, rows_table
from loads import reader  # a pyodbc connection to read tables back with another client

__all__ = ["parquet_dir", "reader"]

# Airflow reads its configuration at first import: keep its files out of ~/airflow.
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="azsql-airflow-home-")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory) -> Path:
    """FILES Parquet files of ROWS_PER_FILE rows (ids 0..TOTAL_ROWS-1), 2 row groups each."""
    root = tmp_path_factory.mktemp("parquet")
    for f in range(FILES):
        pq.write_table(rows_table(ROWS_PER_FILE, f * ROWS_PER_FILE), root / f"part-{f}.parquet",
                       row_group_size=ROWS_PER_FILE // 2)
    return root
