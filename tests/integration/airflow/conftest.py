"""Fixtures for the Airflow integration tests: Parquet files and a pyodbc reader."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from integration.airflow.airflow_env import (
    AZURE_VARS,
    FILES,
    ROWS_PER_FILE,
    conn_json,
    identity_env,
    rows_table,
)
from loads import reader  # a pyodbc connection to read tables back with another client

__all__ = ["azsql_mi", "identity_vars", "parquet_dir", "reader"]

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


@pytest.fixture
def identity_vars(emu_proc, monkeypatch):
    """The emulator's managed-identity endpoint and CA only (no other Azure variable, so
    azure-identity finds no other identity); connections are added by the test."""
    for name in AZURE_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in identity_env(emu_proc).items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.fixture
def azsql_mi(emu_proc, identity_vars) -> str:
    """The connection id ``azsql_mi``: the emulator, logging in with its managed identity."""
    identity_vars.setenv("AIRFLOW_CONN_AZSQL_MI", conn_json(emu_proc, "managed_identity"))
    return "azsql_mi"
