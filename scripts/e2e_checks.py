"""What ``make e2e-airflow`` watches and checks: Airflow's metadata database, the table, the
faults it injects, and the scan for tokens and secrets (``scripts/e2e_airflow.py``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from e2e_stack import Stack, StackError, command_lines, jwt_claims

# a JWT: header and payload are base64url JSON objects, so both start with "eyJ"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*")
_SESSION_APP = re.compile(r"load=(\w+) .*task=load\[(\d+)\]")


@dataclass
class Checks:
    """Named comparisons of what was expected with what was seen."""

    items: list[tuple[str, Any, Any]] = field(default_factory=list)

    def add(self, name: str, expected: Any, actual: Any) -> None:
        self.items.append((name, expected, actual))

    def holds(self, name: str, condition: bool, seen: Any) -> None:
        """A check that is a condition on ``seen`` (shown as it is)."""
        self.items.append((name, seen if condition else "(a different value)", seen))

    @property
    def ok(self) -> bool:
        return all(e == a for _, e, a in self.items)

    def lines(self) -> Iterator[str]:
        for name, expected, actual in self.items:
            if expected == actual:
                yield f"ok    {name}: {_short(actual)}"
            else:
                yield f"FAIL  {name}: expected {_short(expected)}, saw {_short(actual)}"


def _short(value: Any, limit: int = 160) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- Airflow's metadata database --------------------------------------------------------------

class MetaDb:
    """Reads of Airflow's metadata database (PostgreSQL, psycopg2).

    :param url: Airflow's SQLAlchemy URL.
    """

    def __init__(self, url: str) -> None:
        self.dsn = url.replace("postgresql+psycopg2://", "postgresql://")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.dsn)) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def dag_ready(self, dag_id: str) -> bool:
        """True once the DAG is serialized; a DAG file that failed to import raises."""
        errors = self.query("SELECT filename, stacktrace FROM import_error")
        for filename, stack in errors:
            if "example_dags" in str(filename):
                raise StackError(f"the example DAG does not import ({filename}): "
                                 f"{str(stack)[-600:]}")
        return bool(self.query("SELECT 1 FROM serialized_dag WHERE dag_id = %s", dag_id))

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s",
                          dag_id, run_id)
        return str(rows[0][0]) if rows else None

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every try of ``task_id`` in the run: earlier tries (history) and the last one."""
        columns = "map_index, try_number, state, hostname, start_date, end_date"
        rows = self.query(
            f"SELECT {columns}, id::text FROM task_instance WHERE dag_id = %s AND run_id = %s "  # noqa: S608
            f"AND task_id = %s UNION ALL SELECT {columns}, NULL FROM task_instance_history "
            "WHERE dag_id = %s AND run_id = %s AND task_id = %s ORDER BY 1, 2",
            dag_id, run_id, task_id, dag_id, run_id, task_id)
        keys = ("map_index", "try", "state", "hostname", "start", "end", "id")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def xcoms(self, dag_id: str, run_id: str) -> list[tuple[str, int, str, Any]]:
        """``(task_id, map_index, key, value)`` of every XCom of the run."""
        return self.query("SELECT task_id, map_index, key, value FROM xcom "
                          "WHERE dag_id = %s AND run_id = %s ORDER BY 1, 2", dag_id, run_id)


# -- the table, through another client --------------------------------------------------------

class Reader:
    """pyodbc on Microsoft's ODBC driver with the emulator's SQL login: not the loader's
    client (turbodbc, token) nor its identity.

    :param emu: the running emulator.
    """

    def __init__(self, emu: Any) -> None:
        import pyodbc

        from engine import build_connection_string, find_driver

        creds = emu.credentials
        self.conn = pyodbc.connect(build_connection_string({
            "Driver": str(find_driver().path), "Server": f"tcp:{emu.tds_host},{emu.tds_port}",
            "Database": emu.database, "Encrypt": "strict",
            "ServerCertificate": emu.server_cert, "HostNameInCertificate": "localhost",
            "LoginTimeout": 15, "UID": creds.sql_login, "PWD": creds.sql_password}),
            autocommit=True)

    def drop_orders(self) -> None:
        self.conn.execute("IF OBJECT_ID('dbo.orders') IS NOT NULL DROP TABLE dbo.orders")

    def journal_batches(self, load_id: str) -> int:
        """Batches the journal holds for ``load_id`` (0 before the journal exists)."""
        with contextlib.suppress(Exception):
            row = self.conn.execute("SELECT COUNT(*) FROM azsql_bulk.load_journal "
                                    "WHERE load_id = ?", load_id).fetchone()
            return int(row[0])
        return 0

    def facts(self) -> dict[str, Any]:
        """The table's count, sums, ranges and rows per country."""
        cur = self.conn.cursor()
        rows, distinct, total, amount, countries, first, last = cur.execute(
            "SELECT COUNT_BIG(*), COUNT(DISTINCT order_id), SUM(order_id), SUM(amount), "
            "COUNT(country), MIN(ordered_at), MAX(ordered_at) FROM dbo.orders").fetchone()
        per = cur.execute("SELECT country, COUNT_BIG(*) FROM dbo.orders GROUP BY country"
                          ).fetchall()
        return {"rows": rows, "distinct order_id": distinct, "sum(order_id)": total,
                "sum(amount)": None if amount is None else Decimal(amount),
                "count(country)": countries,
                "min/max(ordered_at)": (first, last),
                "rows per country": sorted(((c or "NULL"), n) for c, n in per)}

    def close(self) -> None:
        self.conn.close()


def expected_facts(files: Sequence[Path]) -> dict[str, Any]:
    """The same facts computed with pyarrow from the Parquet files."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table([str(f) for f in files])
    first, last = (v.as_py() for v in pc.min_max(table.column("ordered_at")).values())
    counts = pc.value_counts(table.column("country")).to_pylist()
    return {"rows": table.num_rows,
            "distinct order_id": pc.count_distinct(table.column("order_id")).as_py(),
            "sum(order_id)": pc.sum(table.column("order_id")).as_py(),
            "sum(amount)": pc.sum(table.column("amount")).as_py(),
            "count(country)": pc.count(table.column("country")).as_py(),
            "min/max(ordered_at)": (first, last),
            "rows per country": sorted((c["values"] or "NULL", c["counts"]) for c in counts)}


def check_table(reader: Reader, expected: dict[str, Any], checks: Checks) -> None:
    """The table's facts, read here, against pyarrow's."""
    actual = reader.facts()
    for name, value in expected.items():
        checks.add(f"table {name}", value, actual.get(name))


def check_verify(emu: Any, files: Sequence[Path], checks: Checks,
                 say: Callable[[str], None]) -> None:
    """``azsql-bulk verify`` of the files against the table as the emulator's SQL login
    (not the loaders' identity): counts, sums, rows per value and sample rows."""
    cli = str(Path(sys.executable).parent / "azsql-bulk")
    command = [cli, "verify", *map(str, files), "--table", "dbo.orders", "--key", "order_id",
               "--server", f"{emu.tds_host},{emu.tds_port}", "--database", emu.database,
               "--auth", "sql", "--sql-user", emu.credentials.sql_login,
               "--encrypt", "strict", "--server-certificate", emu.server_cert,
               "--host-name-in-certificate", "localhost", "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZSQL_BULK_"))}
    env["AZSQL_BULK_SQL_PASSWORD"] = emu.credentials.sql_password  # never on a command line
    say(f"  $ azsql-bulk verify {Path(files[0]).parent}/*.parquet --table dbo.orders "
        "--key order_id --auth sql ...")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"error": done.stderr.strip()[-300:]}
    checks.add("azsql-bulk verify: differences", [], report.get("differences", report))
    say(f"  verify: {report.get('rows')} rows, {report.get('checks')} facts and "
        f"{report.get('sampled')} sample rows compared, exit {done.returncode}")


# -- watching the run, and the faults ---------------------------------------------------------

class Watch:
    """Polls the run until it ends; collects command lines; injects the faults.

    :param stack: the running parts.
    :param db: Airflow's metadata database.
    :param reader: the table's reader (for the journal).
    :param dag_id: the DAG.
    :param run_id: the run.
    :param faults: SIGKILL one load mid-load and ``kill_sessions`` during the run.
    """

    def __init__(self, stack: Stack, db: MetaDb, reader: Reader, dag_id: str, run_id: str, *,
                 faults: bool) -> None:
        self.stack, self.db, self.reader = stack, db, reader
        self.dag_id, self.run_id, self.faults = dag_id, run_id, faults
        self.command_lines: dict[str, int] = {}
        self.notes: list[str] = []
        self.killed: dict[str, Any] | None = None
        self._shard_batches: dict[int, int] = {}
        self.sessions_killed: int | None = None

    def until_done(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.db.run_state(self.dag_id, self.run_id)
            for _, line in command_lines(self.stack.pids()):
                self.command_lines[line] = self.command_lines.get(line, 0) + 1
            if state in ("success", "failed"):
                return state
            if self.faults:
                try:
                    self._inject()
                except Exception as exc:  # a busy part: try again at the next poll
                    problem = f"fault injection: {type(exc).__name__}: {exc}"[:200]
                    if problem not in self.notes:
                        self.notes.append(problem)
            time.sleep(0.5 if self.faults else 1.0)
        return f"not finished after {timeout:.0f} s"

    def _inject(self) -> None:
        loads = self.db.tries(self.dag_id, self.run_id, "load")
        running = [t for t in loads if t["id"] and t["state"] == "running"]
        on_wire = self._loads_on_wire()
        if self.killed is None:
            self._kill_one_mid_load(running, on_wire)
        busy = sum(b for _, _, b in on_wire.values())
        if self.sessions_killed is None and len(on_wire) >= 2 and busy >= 1:
            answer = _post_fault(self.stack.emulator, {"kind": "kill_sessions"})
            self.sessions_killed = _killed_count(answer)
            self.notes.append(f"fault: kill_sessions while {len(on_wire)} loads had sessions "
                              f"open ({busy} in a transaction or sending): "
                              f"{self.sessions_killed} session(s) ended")

    def _loads_on_wire(self) -> dict[int, tuple[str, int, int]]:
        """map index -> (load id, sessions, sessions in a transaction or sending) of this
        run's loads, from the emulator's sessions (their application name names the load)."""
        out: dict[int, tuple[str, int, int]] = {}
        for session in self.stack.emulator.sessions():
            app = str(session.get("app_name", ""))
            found = _SESSION_APP.search(app)
            if found and f"run={self.run_id}"[:20] in app:
                index = int(found.group(2))
                _, count, busy = out.get(index, ("", 0, 0))
                active = bool(session.get("in_transaction") or session.get("receiving"))
                out[index] = (found.group(1), count + 1, busy + active)
        return out

    def _kill_one_mid_load(self, running: list[dict[str, Any]],
                           on_wire: dict[int, tuple[str, int, int]]) -> None:
        """SIGKILL the task process of a first try whose load has committed at least one
        batch and at most half of its shard's, so its retry has something to resume."""
        first_tries = {t["map_index"]: t for t in running if t["try"] == 1}
        if not self._shard_batches:
            self._shard_batches = shard_batches(self.db, self.dag_id, self.run_id)
        for index in [i for i in on_wire if i in first_tries][:3]:
            ti, load_id = first_tries[index], on_wire[index][0]
            batches = self.reader.journal_batches(load_id)
            if not 1 <= batches <= self._shard_batches.get(index, 0) // 2:
                continue
            for pid, line in command_lines(self.stack.pids()):
                if line.startswith(f"airflow worker -- {ti['id']}"):
                    os.kill(pid, signal.SIGKILL)
                    self.killed = {"map_index": index, "worker": ti["hostname"],
                                   "batches_before": batches, "load_id": load_id}
                    self.notes.append(
                        f"fault: SIGKILL of load[{index}]'s task process (pid {pid}, on "
                        f"{ti['hostname']}) after {batches} of its "
                        f"{self._shard_batches[index]} batches")
                    return

    def check_faults(self, checks: Checks, results: dict[int, dict[str, Any]]) -> None:
        """The killed load's retry resumed it; kill_sessions ended sessions."""
        checks.holds("a load task's process was SIGKILLed mid-load", self.killed is not None,
                     self.killed and f"load[{self.killed['map_index']}] after "
                     f"{self.killed['batches_before']} batch(es)")
        if self.killed is not None:
            final = results.get(self.killed["map_index"], {})
            sent = final.get("rows_this_try", final.get("rows"))
            checks.holds("its retry resumed the load: skipped the committed batches, sent "
                         "only the rest",
                         int(final.get("batches_skipped") or 0) >= 1
                         and int(final.get("try") or 1) >= 2
                         and 0 < int(sent or 0) < int(final.get("rows") or 0),
                         f"try {final.get('try')}, {final.get('batches_skipped')} batches "
                         f"skipped, {sent} of {final.get('rows')} rows sent")
        checks.holds("kill_sessions ended sessions of running loads",
                     (self.sessions_killed or 0) >= 2, self.sessions_killed)
        # how the loads got over it (a figure, not a check: a try that fails anyway is
        # retried by Airflow, and every load's success and the table are checked above)
        engine = sum(int(r.get("reconnects") or 0) + int(r.get("retries") or 0)
                     for r in results.values())
        self.notes.append(f"recovery: {engine} engine reconnect(s) and batch replay(s) in "
                          "the loads' XCom")


def shard_batches(db: MetaDb, dag_id: str, run_id: str,
                  rows_per_batch: int = 10_000) -> dict[int, int]:
    """map index -> batches of each shard (its parts' rows in the example's 10,000-row
    batches), from the ``shards`` task's XCom; empty until it has run."""
    for task_id, _, key, value in db.xcoms(dag_id, run_id):
        if task_id == "shards" and key == "return_value" and isinstance(value, list):
            return {i: sum(-(-int(p.get("rows") or 0) // rows_per_batch)
                           for p in shard.get("parts", []))
                    for i, shard in enumerate(value) if isinstance(shard, dict)}
    return {}


def _post_fault(emu: Any, body: dict[str, Any]) -> Any:
    url = emu.control_url + "/faults"
    if not url.startswith("http://127."):
        raise ValueError(f"refusing a non-loopback control URL {url!r}")
    request = urllib.request.Request(url, data=json.dumps(body).encode(),  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def _killed_count(answer: Any) -> int:
    """How many sessions a ``kill_sessions`` answer says it ended (its ``killed``)."""
    killed = answer.get("killed") if isinstance(answer, dict) else None
    return killed if isinstance(killed, int) else 0


# -- the loads: where, when, how many rows ----------------------------------------------------

def describe(shard: Any) -> str:
    """A shard in a few words: file names, with row-group ranges when a file is cut."""
    if isinstance(shard, dict) and "parts" in shard:
        out = []
        for part in shard["parts"]:
            name = Path(str(part.get("path", "?"))).name
            groups = part.get("row_groups")
            out.append(f"{name}[rg {groups[0]}-{groups[1] - 1}]" if groups else name)
        return ", ".join(out)
    if isinstance(shard, list):
        return ", ".join(Path(str(p)).name for p in shard)
    return Path(str(shard)).name


def _time(value: dt.datetime | None) -> str:
    return value.strftime("%H:%M:%S.%f")[:-3] if value else "-"


def report_loads(db: MetaDb, dag_id: str, run_id: str, checks: Checks,
                 say: Callable[[str], None]) -> dict[int, dict[str, Any]]:
    """Print every load try (shard, worker, start, end, rows); check both workers loaded
    and loads overlapped in time; return each map index's final XCom result and try."""
    xcoms = db.xcoms(dag_id, run_id)
    shards: list[Any] = next((v for t, _, k, v in xcoms
                              if t == "shards" and k == "return_value"), [])
    results = {int(m): dict(v) for t, m, k, v in xcoms
               if t == "load" and k == "return_value" and isinstance(v, dict)}
    tries = db.tries(dag_id, run_id, "load")
    say(f"  {'shard':<5} {'files / row groups':<40} {'worker':<13} {'start':<12} "
        f"{'end':<12} {'try':>3} {'state':<8} {'rows held/sent':>15}")
    for t in tries:
        final = t["id"] is not None
        xcom = results.get(t["map_index"], {}) if final else {}
        rows = f"{xcom['rows']}/{xcom.get('rows_this_try', xcom['rows'])}" \
            if "rows" in xcom else None
        shard = shards[t["map_index"]] if t["map_index"] < len(shards) else None
        say(f"  {t['map_index']:<5} {_short(describe(shard), 40):<40} "
            f"{t['hostname'] or '-':<13} {_time(t['start']):<12} {_time(t['end']):<12} "
            f"{t['try']:>3} {t['state'] or '-':<8} {rows or '-':>15}")
        if final:
            results.setdefault(t["map_index"], {})["try"] = t["try"]
    checks.add("mapped loads (one per shard)", len(shards), len(results))
    checks.add("loads that succeeded", len(shards),
               sum(1 for t in tries if t["id"] and t["state"] == "success"))
    workers = sorted({t["hostname"] for t in tries if t["hostname"]})
    checks.add("workers that ran loads", ["e2e-worker-1", "e2e-worker-2"], workers)
    pairs = [(a["map_index"], b["map_index"]) for a in tries for b in tries
             if a["hostname"] and b["hostname"] and a["hostname"] < b["hostname"]
             and a["start"] and b["start"] and a["end"] and b["end"]
             and a["start"] < b["end"] and b["start"] < a["end"]]
    checks.holds("loads on different workers overlapped in time", bool(pairs),
                 f"{len(pairs)} overlapping pair(s)")
    return results


def task_errors(stack: Stack, dag_id: str, run_id: str, most: int = 3) -> list[str]:
    """The distinct exceptions the run's failed tries logged (their task logs, on the
    workers), for the report: ``task[map index] try N: type: message``."""
    out: dict[str, str] = {}
    pattern = f"homes/*/logs/dag_id={dag_id}/run_id={run_id}/task_id=*/map_index=*/attempt=*.log"
    for path in sorted(stack.root.glob(pattern)):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError, IndexError):
                record = json.loads(line)
                if record.get("level") != "error" or not record.get("error_detail"):
                    continue
                detail = record["error_detail"][0]
                message = f"{detail['exc_type']}: {detail['exc_value']}"[:300]
                where = (f"{path.parent.parent.name.removeprefix('task_id=')}"
                         f"[{path.parent.name.removeprefix('map_index=')}] "
                         f"{path.stem.replace('=', ' ')}")
                out.setdefault(message, where)
    return [f"{where}: {message}" for message, where in list(out.items())[:most]]


# -- no token, no secret ----------------------------------------------------------------------

def check_no_secrets(stack: Stack, db: MetaDb, dag_id: str, run_id: str,
                     lines: dict[str, int], checks: Checks) -> None:
    """No log file, XCom value or command line of the run holds a secret of the emulator
    (client secret, SQL password, managed-identity header), one this run made up (JWT
    secret, Fernet key) or a JWT (an access token)."""
    emu = stack.emulator
    creds = emu.credentials
    secrets = {"the service principal's client secret": creds.service_principal.client_secret,
               "the SQL login's password": creds.sql_password,
               "the managed-identity header": emu.env.get("IDENTITY_HEADER", ""),
               **{f"this run's {k}": v for k, v in stack.made_up.items()}}
    secrets = {k: v for k, v in secrets.items() if v and len(v) >= 8}
    found: list[str] = []

    def scan(where: str, text: str) -> None:
        found.extend(f"{name} in {where}" for name, value in secrets.items() if value in text)
        for token in _JWT.findall(text):
            claims = jwt_claims(token) or {}
            found.append(f"a token (aud {claims.get('aud')!r}) in {where}")

    # the scan must see what it looks for: a secret and a token the emulator just issued
    before = len(found)
    scan("the self-test", f"x {next(iter(secrets.values()))} {emu.issue_token()} x")
    checks.add("the scan finds a secret and a token in a test text", before + 2, len(found))
    del found[before:]
    logs = [p for p in stack.root.rglob("*") if p.is_file() and _is_log(p, stack.root)]
    for path in logs:
        scan(str(path.relative_to(stack.root)), path.read_text(errors="replace"))
    xcoms = db.xcoms(dag_id, run_id)
    for task_id, index, key, value in xcoms:
        scan(f"XCom {task_id}[{index}].{key}", json.dumps(value, default=str))
    for line in lines:
        scan("a command line", line)
    # the workers sign in with the managed identity: no secret in any process's environment
    environs = 0
    for pid in stack.pids():
        with contextlib.suppress(OSError):
            text = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
            environs += 1
            found.extend(f"{name} in the environment of pid {pid}"
                         for name, value in secrets.items()
                         if value in text and name.startswith(("the service", "the SQL")))
    checks.holds(f"no token or secret in {len(logs)} log files, {len(xcoms)} XComs, "
                 f"{len(lines)} command lines (nor a client secret or password in "
                 f"{environs} process environments)", not found, found[:5] or "none found")


def _is_log(path: Path, root: Path) -> bool:
    """Logs of the parts and the tasks; not the emulator's state (it holds its own keys)
    nor the data."""
    top = path.relative_to(root).parts[0]
    return top in ("logs", "homes") and path.suffix in (".log", "") and "site" not in path.parts
