"""azsql-bulk against its peers (issue 9): one dataset, one emulator, each tool in its own process.

Every tool loads the same cached Parquet file into its own freshly created table (the
DDL azsql-bulk would create, so all tools meet the same column types), logging in the
way its users normally would against Azure SQL: an Entra access token from
azure-identity's ``ManagedIdentityCredential`` (the emulator serves it), passed as
``SQL_COPT_SS_ACCESS_TOKEN`` (pyodbc, pandas through pyodbc, mssql-python), as
``access_token_callable`` (python-tds), or through azsql-bulk's token shim (azsql-bulk,
raw turbodbc).

Tools (``--tools``):

- ``azsql-bulk-wN``: ``engine.transfer(path, target, TransferOptions(workers=N))``;
- ``turbodbc``: raw turbodbc ``executemanycolumns`` of R-row slices of the table read and
  pre-cast with ``engine.binder.cast_batch`` BEFORE the clock starts (our lower bound);
- ``pyodbc``: ``cursor.fast_executemany = True``, ``executemany`` of R rows, commit;
- ``pandas``: ``DataFrame.to_sql`` (SQLAlchemy ``mssql+pyodbc``, ``fast_executemany``,
  ``chunksize=R``) of the file read with ``pandas.read_parquet``;
- ``mssql-python``: ``executemany`` of R rows, commit;
- ``mssql-python-bulkcopy``: ``cursor.bulkcopy`` (TDS bulk load) of R rows at a time,
  logged in with the emulator's SQL login: its bulk-copy connection does not carry the
  ``attrs_before`` token (the token login fails with 18456 there);
- ``python-tds``: ``cursor.copy_to(data=rows)`` (TDS bulk load) of R rows at a time.

Each child reports wall seconds, client CPU seconds (``time.process_time``: user+sys of
that process, all threads), and peak RSS (``VmHWM``). Imports happen before the clock
starts. The clock covers what a user of each tool runs for a load: fetching the token and
logging in (part of every tool's load; azsql-bulk logs in once per worker), reading the
file and converting it to what the tool takes (except ``turbodbc``, read and cast before
the clock: our lower bound), sending and committing.

Every tool runs ``--rounds`` times, in an order rotated each round (alternated A/B, so a
slow phase of the shared machine does not land on one tool); each tool's ratio to
azsql-bulk with one worker is computed per round (the two ran in the same round) and the
median of those ratios is reported, with the medians of the figures themselves. The
emulator's ``/metrics`` deltas give logins, distinct tokens, request bytes per row and
its own busy seconds.

The emulator's ``--sink discard`` drops parameter-array rows after parsing them, but TDS
bulk loads (``bulkcopy``, ``copy_to``) are stored in DuckDB: those two tools pay the
emulator's storage cost and the others do not. Their wall time is not comparable; their
client CPU is.

Run: ``.venv/bin/python benchmarks/peers.py --dataset narrow --rows 100000`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness

from engine.sources import SourceOptions

TOOLS = ("azsql-bulk-w1", "azsql-bulk-w2", "azsql-bulk-w4", "azsql-bulk-w8", "turbodbc",
         "pyodbc", "pandas", "mssql-python", "mssql-python-bulkcopy", "python-tds")
SQL_COPT_SS_ACCESS_TOKEN = 1256
SCOPE = "https://database.windows.net/.default"


# -- child: one tool, one load -----------------------------------------------------------
def _token(info: dict[str, Any]) -> str:
    from azure.identity import ManagedIdentityCredential

    harness.connection_options(info)  # sets the emulator's identity variables
    return ManagedIdentityCredential().get_token(SCOPE).token


def _token_struct(token: str) -> bytes:
    raw = token.encode("utf-16-le")
    return struct.pack("<I", len(raw)) + raw


def _odbc_string(info: dict[str, Any], driver: str | None) -> str:
    from engine.connection_string import build_connection_string

    attrs: dict[str, object] = {
        "Server": f"tcp:{info['tds_host']},{info['tds_port']}", "Database": info["database"],
        "Encrypt": "strict", "ServerCertificate": info["server_cert"],
        "HostNameInCertificate": "localhost"}
    if driver is not None:
        attrs = {"Driver": driver, **attrs}
    else:  # mssql-python refuses ServerCertificate together with HostNameInCertificate
        del attrs["HostNameInCertificate"]
    return build_connection_string(attrs)


def _rows(path: str, rows_per_batch: int) -> Iterator[list[tuple[Any, ...]]]:
    """The file as lists of Python row tuples, ``rows_per_batch`` at a time."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows_per_batch):
        yield list(zip(*(c.to_pylist() for c in batch.columns), strict=True))


def _insert(table: str, names: list[str]) -> str:
    cols = ", ".join(f"[{n}]" for n in names)
    return f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(names))})"


def load(tool: str, info: dict[str, Any], path: str, table: str, rows_per_batch: int) -> int:
    """Load ``path`` into ``table`` with ``tool``; returns rows sent."""
    import pyarrow.parquet as pq

    names = pq.ParquetFile(path).schema_arrow.names
    if tool.startswith("azsql-bulk-w"):
        from engine import Target, TransferOptions, transfer

        result = transfer(path, Target(harness.connection_options(info), table),
                          TransferOptions(workers=int(tool.rsplit("w", 1)[1]), create="never",
                                          load_id=uuid.uuid4().hex),
                          source_options=SourceOptions(rows_per_batch=rows_per_batch))
        return result.rows
    if tool == "pyodbc":
        import pyodbc

        from engine.driver import find_driver

        conn = pyodbc.connect(_odbc_string(info, str(find_driver().path)),
                              attrs_before={SQL_COPT_SS_ACCESS_TOKEN: _token_struct(_token(info))})
        cursor = conn.cursor()
        cursor.fast_executemany = True
        sent = 0
        for rows in _rows(path, rows_per_batch):
            cursor.executemany(_insert(table, names), rows)
            conn.commit()
            sent += len(rows)
        conn.close()
        return sent
    if tool == "pandas":
        import pandas as pd
        import pyodbc
        import sqlalchemy as sa

        from engine.driver import find_driver

        token = _token_struct(_token(info))
        text = _odbc_string(info, str(find_driver().path))
        engine = sa.create_engine(
            "mssql+pyodbc://", fast_executemany=True,
            creator=lambda: pyodbc.connect(text, attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token}))
        # The emulator has no sys.objects, which SQLAlchemy's has_table queries (to_sql
        # asks before inserting); the table exists, so answer for it. Nothing else changes.
        engine.dialect.has_table = lambda *a, **k: True  # type: ignore[method-assign]
        frame = pd.read_parquet(path)
        schema, name = table.split(".", 1)
        frame.to_sql(name, engine, schema=schema, if_exists="append", index=False,
                     chunksize=rows_per_batch)
        engine.dispose()
        return len(frame)
    if tool in ("mssql-python", "mssql-python-bulkcopy"):
        import mssql_python

        bulk = tool.endswith("bulkcopy")
        if bulk:
            # mssql-python 1.16's bulkcopy opens its own connection from the connection
            # string and does not carry attrs_before's token (seen: 18456 "no credentials
            # were presented"), so it logs in with the emulator's SQL login instead
            conn = mssql_python.connect(
                _odbc_string(info, None) + f";UID={info['sql_login']};"
                f"PWD={{{info['sql_password']}}}", autocommit=True)
        else:
            conn = mssql_python.connect(
                _odbc_string(info, None), autocommit=False,
                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: _token_struct(_token(info))})
        cursor = conn.cursor()
        sent = 0
        for rows in _rows(path, rows_per_batch):
            if bulk:
                cursor.bulkcopy(table, rows, batch_size=len(rows))
            else:
                cursor.executemany(_insert(table, names), rows)
                conn.commit()
            sent += len(rows)
        conn.close()
        return sent
    if tool == "python-tds":
        import pytds

        token = _token(info)
        # pytds' host-name check needs an X509 API pyOpenSSL removed; the chain is verified
        conn = pytds.connect(dsn=info["tds_host"], port=info["tds_port"],
                             database=info["database"], access_token_callable=lambda: token,
                             cafile=info["ca_cert"], validate_host=False, autocommit=True)
        cursor = conn.cursor()
        schema, name = table.split(".", 1)
        sent = 0
        for rows in _rows(path, rows_per_batch):
            # copy_to types every column as text unless given pytds Column types; its
            # users feed it text (a tab-separated file), so send each value's str()
            text = [tuple(None if v is None else str(v) for v in row) for row in rows]
            cursor.copy_to(data=text, table_or_view=name, schema=schema)
            sent += len(rows)
        conn.close()
        return sent
    if tool == "turbodbc":
        raise AssertionError("turbodbc is measured by load_turbodbc")
    raise ValueError(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")


def load_turbodbc(info: dict[str, Any], path: str, table: str,
                  rows_per_batch: int) -> tuple[harness.Meter, int]:
    """Raw turbodbc on the pre-cast table (read and cast before the clock starts)."""
    import pyarrow.parquet as pq

    from engine import ConnectionFactory
    from engine.binder import cast_batch, insert_sql, native_timestamp_columns
    from engine.plan import plan_table

    data = pq.read_table(path)
    plan = plan_table(data.schema, sample=data.slice(0, rows_per_batch))
    native = native_timestamp_columns(plan, data)  # bound as the engine binds it
    cast = cast_batch(plan, data, native=native)
    sql = insert_sql(plan, table, native=native)
    with harness.Meter() as meter:
        factory = ConnectionFactory(harness.connection_options(info))
        conn = factory.connect()
        cursor = conn.cursor()
        for start in range(0, cast.num_rows, rows_per_batch):
            cursor.executemanycolumns(sql, cast.slice(start, rows_per_batch))
            conn.commit()
        conn.close()
        factory.close()
    return meter, cast.num_rows


def prepare(tool: str) -> None:
    """Import what ``tool`` needs before the clock starts (imports are not part of a load)."""
    import pyarrow.parquet  # noqa: F401  (every tool reads the file with it)

    modules = {"pyodbc": ["pyodbc", "engine.driver", "azure.identity"],
               "pandas": ["pandas", "pyodbc", "sqlalchemy", "sqlalchemy.dialects.mssql.pyodbc",
                          "engine.driver", "azure.identity"],
               "mssql-python": ["mssql_python", "azure.identity"],
               "mssql-python-bulkcopy": ["mssql_python"],
               "python-tds": ["pytds", "azure.identity"],
               "turbodbc": ["turbodbc", "engine"]}
    import importlib

    for name in modules.get(tool, ["engine", "engine.transfer", "turbodbc", "azure.identity"]):
        importlib.import_module(name)
    importlib.import_module("engine.connection_string")


def child(args: argparse.Namespace) -> None:
    info = json.loads(Path(args.facts).read_text())
    prepare(args.tool)
    if args.tool == "turbodbc":
        meter, rows = load_turbodbc(info, args.path, args.table, args.rows_per_batch)
    else:
        with harness.Meter() as meter:
            rows = load(args.tool, info, args.path, args.table, args.rows_per_batch)
    print(json.dumps({"tool": args.tool, "rows": rows, "wall_seconds": meter.wall,
                      "cpu_seconds": meter.cpu, "peak_rss_mib": round(harness.peak_rss_mib(), 1)}))


# -- parent: the comparison --------------------------------------------------------------
def create_table(info: dict[str, Any], path: str, table: str) -> None:
    """The table azsql-bulk would create for the file (sized from its first 100,000 rows)."""
    import pyarrow.parquet as pq

    from engine import ConnectionFactory
    from engine.plan import create_table_sql, plan_table

    pf = pq.ParquetFile(path)
    sample = next(pf.iter_batches(batch_size=100_000))
    factory = ConnectionFactory(harness.connection_options(info))
    with factory.connect() as conn:
        conn.cursor().execute(create_table_sql(plan_table(pf.schema_arrow, sample=sample),
                                               table))
        conn.commit()
    factory.close()


def _run_once(tool: str, info: dict[str, Any], facts_file: Path, path: str,
              rows_per_batch: int, arrow_bytes: int) -> dict[str, Any]:
    """One load by ``tool`` in a fresh child process, with the emulator's view of it."""
    table = f"dbo.bench_{tool.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
    create_table(info, path, table)
    before = harness.metrics(info)
    try:
        run = harness.run_child("peers.py", [
            "--child", "--tool", tool, "--facts", str(facts_file), "--path", path,
            "--table", table, "--rows-per-batch", str(rows_per_batch)])
    except RuntimeError as exc:
        return {"tool": tool, "error": str(exc).splitlines()[-1][:300]}
    after = harness.metrics(info)
    meter = harness.Meter(wall=run["wall_seconds"], cpu=run["cpu_seconds"])
    return {"tool": tool, **harness.figures(meter, run["rows"], arrow_bytes),
            "peak_rss_mib": run["peak_rss_mib"],
            **harness.server_delta(before, after, run["rows"])}


def summarize(tool: str, runs: list[dict[str, Any]], base_runs: list[dict[str, Any]]
              ) -> dict[str, Any]:
    """Medians over rounds, and the median of each round's ratio to the base tool."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"tool": tool, "error": runs[0]["error"], "rounds": len(runs)}
    med = harness.median
    out: dict[str, Any] = {"tool": tool, "rounds": len(ok), "failed_rounds": len(runs) - len(ok),
                           "rows": ok[0]["rows"]}
    for key in ("rows_per_second", "mb_per_second", "cpu_seconds_per_million_rows",
                "peak_rss_mib", "wire_bytes_per_row", "server_seconds", "wall_seconds",
                "cpu_seconds"):
        out[key] = round(med([r[key] for r in ok]), 3)
    for key in ("logins", "tokens", "commits", "rpc_calls"):
        out[key] = ok[-1][key]
    # the same round's azsql-bulk w1 run: both ran minutes apart at most, on the same emulator
    pairs = [(r, b) for r, b in zip(runs, base_runs, strict=True)
             if "error" not in r and "error" not in b]
    if pairs:
        out["ratio_rows_per_second"] = round(med(
            [r["rows_per_second"] / b["rows_per_second"] for r, b in pairs]), 3)
        out["ratio_cpu"] = round(med(
            [r["cpu_seconds_per_million_rows"] / b["cpu_seconds_per_million_rows"]
             for r, b in pairs]), 3)
        out["ratio_cpu_per_round"] = [round(r["cpu_seconds_per_million_rows"]
                                            / b["cpu_seconds_per_million_rows"], 3)
                                      for r, b in pairs]
    out["per_round"] = [{k: r.get(k) for k in ("rows_per_second", "cpu_seconds_per_million_rows",
                                               "peak_rss_mib", "error")} for r in runs]
    return out


def compare(dataset: str, rows: int, tools: list[str], rows_per_batch: int, rounds: int = 3,
            base: str = "azsql-bulk-w1", emulator_args: list[str] | None = None
            ) -> dict[str, Any]:
    """Every tool, ``rounds`` times, order rotated each round, on one emulator."""
    made = subprocess.run([sys.executable, str(harness.HERE / "bench_data.py"), "--dataset",
                           dataset, "--rows", str(rows)], capture_output=True, text=True,
                          check=True)
    path = made.stdout.strip().splitlines()[-1]
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    arrow_bytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if base not in tools:
        tools = [base, *tools]
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    started = time.monotonic()
    with harness.emulator(emulator_args or ["--sink", "discard"]) as emu, \
            tempfile.TemporaryDirectory(prefix="azsql-bench-") as tmp:
        info = harness.facts(emu)
        facts_file = Path(tmp) / "facts.json"
        facts_file.touch(0o600)  # holds the emulator's test-only SQL login
        facts_file.write_text(json.dumps(info))
        for k in range(rounds):
            # round k starts k tools further on: no tool always runs first or after the
            # same neighbour, so slow phases of the shared machine spread over all tools
            order = tools[k % len(tools):] + tools[:k % len(tools)]
            for tool in order:
                runs[tool].append(_run_once(tool, info, facts_file, path, rows_per_batch,
                                            arrow_bytes))
                time.sleep(0.2)
    results = [summarize(t, runs[t], runs[base]) for t in tools]
    return {"dataset": dataset, "rows": rows, "rows_per_batch": rows_per_batch,
            "rounds": rounds, "base": base, "file": Path(path).name,
            "file_mib": round(Path(path).stat().st_size / 2**20, 1),
            "arrow_bytes": arrow_bytes, "seconds": round(time.monotonic() - started, 1),
            "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="narrow")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rows-per-batch", type=int, default=10_000)
    parser.add_argument("--tools", nargs="+", default=list(TOOLS))
    parser.add_argument("--rounds", type=int, default=3,
                        help="every tool once per round, order rotated; medians reported")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tool", help=argparse.SUPPRESS)
    parser.add_argument("--facts", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--table", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    report = compare(args.dataset, args.rows, args.tools, args.rows_per_batch, args.rounds)
    print(json.dumps({"benchmark": "peers", "command": harness.command_line(), **report,
                      "machine": harness.machine()}))


if __name__ == "__main__":
    main()
