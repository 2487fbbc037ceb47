"""What the CLI's integration tests share: the console script, a clean environment, data
and result helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["SCRIPT", "clean_env", "last_json", "managed_identity_env", "run_cli", "table_exists",
           "table_name", "write_parquet"]

SCRIPT = str(Path(sys.executable).with_name("azsql-bulk"))
# variables that would hand the subprocess an identity, a token or a CA the test did not choose
_DROP = ("AZURE_", "AZSQL_BULK_", "IDENTITY_", "MSI_", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without identity/CA variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env.update(extra)
    return env


def managed_identity_env(emu) -> dict[str, str]:
    """Of the emulator's all-identities ``env``, what a managed-identity client alone needs:
    the identity endpoint and header, and the CA for azure-identity's HTTPS (no secret, no
    ``SSL_CERT_FILE``; the driver trusts the server certificate passed explicitly)."""
    return {k: emu.env[k] for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE")}


def table_name(prefix: str) -> str:
    """A table name no other test uses."""
    return f"dbo.cli_{prefix}_{uuid.uuid4().hex[:8]}"


def write_parquet(directory: Path, files: int, rows_per_file: int,
                  row_group_size: int | None = None) -> int:
    """``files`` Parquet files of ids, amounts and names; returns the row count."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        ids = range(f * rows_per_file, (f + 1) * rows_per_file)
        pq.write_table(pa.table({
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array([i * 0.25 for i in ids], pa.float64()),
            "name": pa.array([f"row-{i:06d}" for i in ids], pa.string()),
        }), directory / f"part-{f:04d}.parquet", row_group_size=row_group_size)
    return files * rows_per_file


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) \
        -> subprocess.CompletedProcess[str]:
    """Run the console script to its end."""
    return subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def last_json(stdout: str) -> dict:
    """The JSON object on the last non-empty line of ``stdout``."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "nothing on stdout"
    parsed: dict = json.loads(lines[-1])
    return parsed


def table_exists(conn, table: str) -> bool:
    """Whether ``schema.table`` exists (read through ``conn``)."""
    schema, name = table.split(".")
    return conn.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? "
                        "AND TABLE_NAME = ?", schema, name).fetchone()[0] == 1
