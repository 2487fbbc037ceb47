"""Fault scenarios shared by the reliability tests (small, a few seeds) and ``scripts/soak.py``
(larger, 20+ runs each). Each one loads a known source into the emulator while a fault
happens, then counts what the table holds against the source: rows expected, found,
duplicated, lost and wrong. Nothing here mocks the database: the loader is the engine
(turbodbc over Microsoft's driver), the server is the emulator in its own process, and
rows are read back with pyodbc.

Every scenario takes ``transport`` (``parameter-arrays`` or ``bulk-copy``, passed to the
engine explicitly) and notes the transport the load's result reports, plus ``bulk_rows``:
the rows the emulator received in bulk loads meanwhile (its ``bulk_rows`` counter), so a
bulk-copy run that silently fell back to parameter arrays shows as one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from loads import connection_options, rows_table
from support import inject_fault, odbc_string

from azsql_emulator.process import EmulatorProcess
from engine.credentials import CredentialOptions
from engine.errors import TransferError
from engine.options import Target, TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer

HERE = Path(__file__).parent
LOAD_CHILD = HERE.parent / "integration" / "engine" / "load_child.py"  # rows_per_batch 2,500
CHILD_BATCH = 2_500
PROXY = HERE / "cutting_proxy.py"
TRANSIENT_NUMBERS = (40613, 40197, 40501, 49918, 10928)
FAST_RETRY = {"retry_base_delay": 0.05, "retry_max_delay": 1.0}
PARAMETER_ARRAYS, BULK_COPY = "parameter-arrays", "bulk-copy"
TRANSPORTS = (PARAMETER_ARRAYS, BULK_COPY)


@dataclass
class Outcome:
    """What one run left in the table, against its source."""

    scenario: str
    expected: int
    found: int
    duplicates: int
    lost: int
    wrong: int  # rows present whose values differ from the source
    seconds: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return (self.found, self.duplicates, self.lost, self.wrong) == (self.expected, 0, 0, 0)


def count_rows(conn: Any, table: str, n: int, rng: random.Random) -> tuple[int, int, int, int]:
    """``(found, duplicates, lost, wrong)`` for a table that should hold ``rows_table(n)``.

    Every row's ``amount`` is checked against its id; 20 random ids are compared whole.
    """
    found, distinct, in_range, bad_amount = conn.execute(
        f"SELECT COUNT(*), COUNT(DISTINCT id), "
        f"COUNT(DISTINCT CASE WHEN id >= 0 AND id < ? THEN id END), "
        f"COALESCE(SUM(CASE WHEN amount = id * 0.25 THEN 0 ELSE 1 END), 0) FROM {table}",
        n).fetchone()
    probes = sorted(rng.sample(range(n), min(n, 20))) if n else []
    wrong = bad_amount
    for i in probes:
        got = conn.execute(f"SELECT id, amount, name FROM {table} WHERE id = ?", i).fetchall()
        if got and tuple(got[0]) != (i, i * 0.25, f"row-{i:06d}"):
            wrong += 1
    return found, found - distinct, n - in_range, int(wrong)


def outcome(name: str, lab: Lab, table: str, n: int, started: float, rng: random.Random,
            **notes: Any) -> Outcome:
    found, dups, lost, wrong = count_rows(lab.reader, table, n, rng)
    return Outcome(name, n, found, dups, lost, wrong, time.monotonic() - started, notes)


def transport_problem(o: Outcome, transport: str) -> str | None:
    """Why the rows of run ``o`` did not travel by ``transport`` as asked, or None: the
    load's result must name it, and the emulator's bulk-loaded rows must agree (none for
    parameter arrays; for bulk copy at least the source's rows, or for a loader child
    killed before it could report, at least the rows of the batches it committed)."""
    notes = o.notes
    if notes.get("transport") != transport:
        return f"the load reports transport {notes.get('transport')!r}, not {transport!r}"
    if notes.get("child_transport") and notes["child_transport"] != transport:
        return f"the loader child reports transport {notes['child_transport']!r}"
    bulk = transport == BULK_COPY
    if "bulk_rows" in notes:
        if bulk and notes["bulk_rows"] < o.expected:
            return f"only {notes['bulk_rows']} of {o.expected} rows came in bulk loads"
        if not bulk and notes["bulk_rows"]:
            return f"{notes['bulk_rows']} rows came in bulk loads"
    if "child_bulk_rows" in notes:
        committed = notes.get("killed_after", notes.get("crashed_after")) or 0
        if bulk and notes["child_bulk_rows"] < max(1, committed * CHILD_BATCH):
            return (f"the loader child committed {committed} batches but only "
                    f"{notes['child_bulk_rows']} rows came in bulk loads")
        if not bulk and notes["child_bulk_rows"]:
            return f"the loader child sent {notes['child_bulk_rows']} rows in bulk loads"
    return None


def bulk_rows(emu: Any) -> int:
    """The emulator's count of rows received in bulk loads (BULK_LOAD messages) so far."""
    count: int = emu.metrics().get("bulk_rows", 0)
    return count


def killed_receiving(emu: Any, how: str = "killed") -> dict[str, int]:
    """Sessions that ended while a request was still arriving, by packet type
    (``killed_receiving_0x07``: a bulk load cut short by kill_sessions; ``_0x03``: an RPC);
    ``how="dropped"``: the link broke by other causes (a cut, an expired token)."""
    injected = pending_faults(emu)["injected"]
    return {k: int(v) for k, v in injected.items() if k.startswith(f"{how}_receiving_")}


def transfer_options(transport: str, **options: Any) -> TransferOptions:
    """The scenarios' options: ``transport`` always explicit, fast retries."""
    return TransferOptions(transport=transport, **{**FAST_RETRY, **options})


# -- the emulator, a read-back client, targets ----------------------------------------------

class Lab:
    """An emulator, a pyodbc read-back connection (SQL login) and targets on fresh tables.

    :param emu: an :class:`EmulatorProcess` (started).
    :param driver: the path of Microsoft's ODBC driver.
    :param credential: how the loader logs in (default: the emulator's SQL login; its
        password must be in ``$AZSQL_BULK_SQL_PASSWORD``).
    """

    def __init__(self, emu: EmulatorProcess, driver: str,
                 credential: CredentialOptions | None = None) -> None:
        self.emu = emu
        self.driver = driver
        self.credential = credential or CredentialOptions(
            kind="sql", sql_user=emu.credentials.sql_login)
        self._reader: Any = None

    @property
    def reader(self) -> Any:
        if self._reader is None:
            import pyodbc

            creds = self.emu.credentials
            self._reader = pyodbc.connect(odbc_string(self.emu, self.driver,
                                                      UID=creds.sql_login,
                                                      PWD=creds.sql_password),
                                          autocommit=True)
        return self._reader

    def drop_reader(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except Exception:  # the server may be gone already
                pass
            self._reader = None

    def target(self, prefix: str, port: int | None = None) -> Target:
        options = connection_options(self.emu, self.credential)
        if port is not None:
            options = dataclasses.replace(options, port=port)
        return Target(options, f"dbo.{prefix}_{uuid.uuid4().hex[:8]}")

    def close(self) -> None:
        self.drop_reader()


def pending_faults(emu: Any) -> dict[str, Any]:
    """``GET /faults`` (loopback only)."""
    url = emu.control_url + "/faults"
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=30) as response:  # loopback, checked above
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class RestartableEmulator(EmulatorProcess):
    """An emulator on a fixed TDS port whose process can be killed and started again over
    the same state directory (its DuckDB files, keys and certificates persist there)."""

    def __init__(self, state_dir: str | Path, args: list[str] | None = None) -> None:
        self.fixed_port = free_port()
        super().__init__(state_dir=state_dir,
                         args=[*(args or []), "--port", str(self.fixed_port)])

    def crash(self) -> None:
        """SIGKILL the emulator: no shutdown, no flush beyond what commits already wrote."""
        proc = self._proc
        assert proc is not None and proc.poll() is None, "the emulator is not running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if proc.stdout:
            proc.stdout.close()
        self._proc = None


# -- scenarios --------------------------------------------------------------------------------

def kill_sessions(lab: Lab, rng: random.Random, rows: int, *, workers: int = 4,
                  rows_per_batch: int = 1_000, kills: int | None = None,
                  transport: str = PARAMETER_ARRAYS) -> Outcome:
    """Drop sessions' sockets (all of them, or a random few) at random moments of a load."""
    target = lab.target("rel_kill")
    batches = math.ceil(rows / rows_per_batch)
    kills = kills or rng.randint(1, 3)
    thresholds = sorted(rng.sample(range(1, max(2, batches - 1)), min(kills, batches - 2)))
    plan = [(rng.uniform(0, 0.05), rng.choice([None, rng.randint(1, workers)]))
            for _ in thresholds]
    due = threading.Semaphore(0)
    lock, stop, killed = threading.Lock(), threading.Event(), []

    def progress(p: Any) -> None:
        with lock:
            while thresholds and p.batches >= thresholds[0]:
                thresholds.pop(0)
                due.release()

    def injector() -> None:
        for delay, how_many in plan:
            while not due.acquire(timeout=0.05):
                if stop.is_set():
                    return
            time.sleep(delay)  # somewhere inside the next batches, not at a boundary
            body: dict[str, Any] = {"kind": "kill_sessions"}
            if how_many:
                body["random"] = how_many
            killed.append(inject_fault(lab.emu, **body)["killed"])

    thread = threading.Thread(target=injector, daemon=True)
    bulk_before = bulk_rows(lab.emu)
    cut_before = killed_receiving(lab.emu)
    started = time.monotonic()
    thread.start()
    try:
        result = transfer(rows_table(rows), target, transfer_options(
            transport, workers=workers, load_id=f"rel-{uuid.uuid4().hex}",
            progress=progress),
                          source_options=SourceOptions(rows_per_batch=rows_per_batch))
    finally:
        stop.set()
        thread.join(30)
    cut = {k: n - cut_before.get(k, 0) for k, n in killed_receiving(lab.emu).items()}
    return outcome("kill_sessions", lab, target.table, rows, started, rng,
                   sessions_killed=sum(killed), kill_events=len(killed),
                   killed_mid_request=sum(cut.values()),
                   killed_mid_bulk_load=cut.get("killed_receiving_0x07", 0),
                   retries=result.retries, reconnects=result.reconnects,
                   transport=result.transport, bulk_rows=bulk_rows(lab.emu) - bulk_before)


def transient_error(lab: Lab, rng: random.Random, rows: int, number: int, *,
                    workers: int = 4, rows_per_batch: int = 500,
                    transport: str = PARAMETER_ARRAYS) -> Outcome:
    """The server answers ``count`` requests with error ``number`` after a random number of
    RPC calls (parameter arrays cost one RPC call per row, and a bulk load counts each of
    its rows as one call, so it lands mid-load with either transport)."""
    after, count = rng.randint(rows // 10, rows * 7 // 10), rng.randint(1, 3)
    return _erring_load(lab, rng, rows, number, f"rel_e{number}", f"error {number}", after,
                        count, workers, rows_per_batch, transport,
                        after_rpc_calls=after, count=count)


def error_at_start(lab: Lab, rng: random.Random, rows: int, number: int, *,
                   workers: int = 4, rows_per_batch: int = 1_000,
                   transport: str = PARAMETER_ARRAYS) -> Outcome:
    """The very first RPC call of the load (its first connection's first statements, before
    any batch) fails with error ``number``, once."""
    return _erring_load(lab, rng, rows, number, f"rel_start{number}", f"error {number} first",
                        0, 1, workers, rows_per_batch, transport)


def _erring_load(lab: Lab, rng: random.Random, rows: int, number: int, table: str, name: str,
                 after: int, times: int, workers: int, rows_per_batch: int, transport: str,
                 **details: Any) -> Outcome:
    """Load ``rows`` rows while ``times`` RPC calls after the first ``after`` fail with
    ``number``; the outcome says how many of those faults never fired."""
    target = lab.target(table)
    inject_fault(lab.emu, kind="error", number=number, after_rpc_calls=after, count=times)
    bulk_before = bulk_rows(lab.emu)
    started = time.monotonic()
    try:
        result = transfer(rows_table(rows), target, transfer_options(
            transport, workers=workers, load_id=f"rel-{uuid.uuid4().hex}"),
                          source_options=SourceOptions(rows_per_batch=rows_per_batch))
        left = pending_faults(lab.emu)["rpc_errors"]
    finally:
        inject_fault(lab.emu, kind="clear")
    return outcome(name, lab, target.table, rows, started, rng, **details,
                   not_fired=len(left), retries=result.retries, reconnects=result.reconnects,
                   transport=result.transport, bulk_rows=bulk_rows(lab.emu) - bulk_before)


class Proxy:
    """:mod:`cutting_proxy` in a child process, in front of the emulator's TDS port."""

    def __init__(self, host: str, port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, str(PROXY), host, str(port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self._ask(None).split()[1])

    def _ask(self, command: str | None) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def cut_after(self, nbytes: int) -> None:
        assert self._ask(f"cut {nbytes}") == "armed"

    def stats(self) -> tuple[int, int, int]:
        """``(client-to-server bytes, cuts made, connections)``."""
        _, nbytes, cuts, conns = self._ask("stats").split()
        return int(nbytes), int(cuts), int(conns)

    def close(self) -> None:
        try:
            self._ask("quit")
        except (BrokenPipeError, ValueError):
            pass
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()


# Client-to-server bytes per row of rows_table() over strict TLS, measured through the
# proxy: about 76-79 as parameter arrays, 42-46 as a bulk load; cuts are placed within
# the first 70 % of that.
UPSTREAM_BYTES_PER_ROW = {PARAMETER_ARRAYS: 80, BULK_COPY: 42}


def cut_mid_packet(lab: Lab, rng: random.Random, rows: int, *, workers: int = 4,
                   rows_per_batch: int = 500, cuts: int | None = None,
                   transport: str = PARAMETER_ARRAYS) -> Outcome:
    """Sockets closed in the middle of a packet (a truncated TLS record carrying TDS): the
    driver reports SQLSTATE 08S01 (communication link failure) and the batch is replayed."""
    proxy = Proxy(lab.emu.tds_host, lab.emu.tds_port)
    bulk_before = bulk_rows(lab.emu)
    cut_before = killed_receiving(lab.emu, "dropped")
    try:
        target = lab.target("rel_cut", port=proxy.port)
        cuts = cuts or rng.randint(1, 3)
        span = int(rows * UPSTREAM_BYTES_PER_ROW[transport] * 0.7)
        for offset in sorted(rng.sample(range(20_000, max(20_001 + cuts, span)), cuts)):
            proxy.cut_after(offset)
        started = time.monotonic()
        result = transfer(rows_table(rows), target, transfer_options(
            transport, workers=workers, load_id=f"rel-{uuid.uuid4().hex}"),
                          source_options=SourceOptions(rows_per_batch=rows_per_batch))
        upstream, made, conns = proxy.stats()
    finally:
        proxy.close()
    cut = {k: n - cut_before.get(k, 0) for k, n in killed_receiving(lab.emu, "dropped").items()}
    return outcome("08S01 cut mid-packet", lab, target.table, rows, started, rng,
                   cuts=made, armed=cuts, upstream_bytes=upstream, connections=conns,
                   cut_mid_request=sum(cut.values()),
                   cut_mid_bulk_load=cut.get("dropped_receiving_0x07", 0),
                   retries=result.retries, reconnects=result.reconnects,
                   transport=result.transport, bulk_rows=bulk_rows(lab.emu) - bulk_before)


def slow_source(rows: int, rows_per_batch: int, pause: float) -> pa.RecordBatchReader:
    """``rows_table(rows)`` as a stream yielding one batch every ``pause`` seconds."""
    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, rows, rows_per_batch):
            time.sleep(pause)
            yield from rows_table(min(rows_per_batch, rows - start), start=start).to_batches()
    return pa.RecordBatchReader.from_batches(rows_table(1).schema, batches())


def token_expiry(lab: Lab, rng: random.Random, rows: int, *, seconds: float,
                 workers: int = 4, rows_per_batch: int = 500,
                 transport: str = PARAMETER_ARRAYS) -> Outcome:
    """A load of about ``seconds`` (randomised) against an emulator issuing short tokens
    with ``--expire-sessions``: sessions whose token expires are dropped by the server, and
    workers must renew before that at batch boundaries. ``lab.credential`` must be a token
    credential (managed identity) and the environment must point at ``lab.emu``."""
    target = lab.target("rel_token")
    batches = math.ceil(rows / rows_per_batch)
    pause = rng.uniform(0.7, 1.3) * seconds / batches
    before = lab.emu.metrics().get("distinct_tokens", 0)
    bulk_before = bulk_rows(lab.emu)
    started = time.monotonic()
    result = transfer(slow_source(rows, rows_per_batch, pause), target,
                      transfer_options(transport, workers=workers,
                                       load_id=f"rel-{uuid.uuid4().hex}",
                                       token_refresh_margin=1.0),
                      source_options=SourceOptions(rows_per_batch=rows_per_batch))
    tokens = lab.emu.metrics().get("distinct_tokens", 0) - before
    return outcome("token expiry (3 s)", lab, target.table, rows, started, rng,
                   token_renewals=result.token_renewals, new_tokens=tokens,
                   retries=result.retries, reconnects=result.reconnects,
                   transport=result.transport, bulk_rows=bulk_rows(lab.emu) - bulk_before)


def write_files(directory: Path, rows: int, rows_per_file: int = 5_000) -> list[str]:
    """``rows_table(rows)`` as Parquet files of two 2,500-row groups each (2 batches)."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for i, start in enumerate(range(0, rows, rows_per_file)):
        path = directory / f"part-{i:04d}.parquet"
        pq.write_table(rows_table(min(rows_per_file, rows - start), start=start), path,
                       row_group_size=CHILD_BATCH)
        files.append(str(path))
    return files


def start_child(emu: Any, table: str, load_id: str, files: list[str],
                transport: str = PARAMETER_ARRAYS) -> subprocess.Popen[str]:
    """``load_child.py``: 4 workers, 2,500-row batches, one ``batches N`` line per commit,
    ``done ROWS TRANSPORT`` at the end."""
    creds = emu.credentials
    env = dict(os.environ, AZSQL_BULK_SQL_USER=creds.sql_login,
               AZSQL_BULK_SQL_PASSWORD=creds.sql_password, LOAD_CHILD_TRANSPORT=transport)
    return subprocess.Popen(
        [sys.executable, str(LOAD_CHILD), emu.tds_host, str(emu.tds_port), emu.database,
         emu.server_cert, table, load_id, *files],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_batches(child: subprocess.Popen[str], at_least: int) -> int | None:
    """Read the child's progress until ``at_least`` batches are committed; the count then,
    or None when it finished (or died) first."""
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("batches ") and int(line.split()[1]) >= at_least:
            return int(line.split()[1])
    return None


def finish_child(child: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    """Wait for the child; ``(exit code, the transport its ``done`` line names or "",
    stderr)``."""
    out, err = child.communicate(timeout=timeout)
    done = [line.split() for line in out.splitlines() if line.startswith("done ")]
    return child.returncode, done[-1][2] if done else "", err


def resume(lab: Lab, files: list[str], target: Target, load_id: str,
           transport: str = PARAMETER_ARRAYS) -> Any:
    return transfer(files, target, transfer_options(transport, workers=4, load_id=load_id),
                    source_options=SourceOptions(rows_per_batch=CHILD_BATCH))


def loader_sigkill(lab: Lab, rng: random.Random, rows: int, directory: Path, *,
                   transport: str = PARAMETER_ARRAYS) -> Outcome:
    """The loader process is SIGKILLed at a random moment (possibly mid-transaction), then
    the same load runs again with its load_id (what ``--resume`` does).

    Notes ``child_bulk_rows``: rows the emulator received in bulk loads before the kill
    (the killed child reports no transport of its own)."""
    files = write_files(directory, rows)
    target = lab.target("rel_sigkill")
    load_id = f"rel-sigkill-{uuid.uuid4().hex}"
    batches = math.ceil(rows / CHILD_BATCH)
    bulk_before = bulk_rows(lab.emu)
    started = time.monotonic()
    child = start_child(lab.emu, str(target.table), load_id, files, transport)
    seen = wait_for_batches(child, rng.randint(1, max(1, batches - 2)))
    time.sleep(rng.uniform(0, 0.05))
    child.send_signal(signal.SIGKILL)
    code, _, _ = finish_child(child)
    child_bulk = bulk_rows(lab.emu) - bulk_before
    (committed,) = lab.reader.execute("SELECT COUNT(*) FROM [azsql_bulk].[load_journal] "
                                      "WHERE load_id = ?", load_id).fetchone()
    (visible,) = lab.reader.execute(f"SELECT COUNT(*) FROM {target.table}").fetchone()
    result = resume(lab, files, target, load_id, transport)
    return outcome("loader SIGKILL + resume", lab, target.table, rows, started, rng,
                   killed_after=seen, exit_code=code, journaled=committed,
                   partial_rows=visible - committed * CHILD_BATCH,  # rows is a multiple
                   skipped_on_resume=result.batches_skipped, resumed_rows=result.rows,
                   transport=result.transport, child_bulk_rows=child_bulk)


def emulator_restart(lab: Lab, rng: random.Random, rows: int, directory: Path,
                     down: str | None = None, *, transport: str = PARAMETER_ARRAYS) -> Outcome:
    """The emulator (``lab.emu``, a :class:`RestartableEmulator`) is SIGKILLed mid-load and
    started again over its state directory; then the load runs again with its load_id.

    :param down: ``brief`` (restarted after a random pause under 1.5 s: the loader child
        rides it out with its retries) or ``with_loader`` (the loader is SIGKILLed too, as
        when the whole host dies, so the rerun has work left); default: chosen at random.
        Waiting for the loader to give up on its own is not a scenario here: with the server
        down, each connect attempt lasts the driver's 15 s login timeout (Driver 18 ignores
        ``LoginTimeout`` for SQL logins) and every batch replay starts a new connect budget,
        so a loader with default options takes minutes to stop.

    Notes ``child_transport`` (what a child that finished reports), ``child_bulk_rows``
    (rows the emulator received in bulk loads before the crash) and ``transport`` (the
    rerun's).
    """
    emu = lab.emu
    assert isinstance(emu, RestartableEmulator)
    down = down or rng.choice(["brief", "with_loader"])
    files = write_files(directory, rows)
    target = lab.target("rel_restart")
    load_id = f"rel-restart-{uuid.uuid4().hex}"
    batches = math.ceil(rows / CHILD_BATCH)
    bulk_before = bulk_rows(emu)
    started = time.monotonic()
    child = start_child(emu, str(target.table), load_id, files, transport)
    seen = wait_for_batches(child, rng.randint(1, max(1, batches - 2)))
    time.sleep(rng.uniform(0, 0.05))
    child_bulk = bulk_rows(emu) - bulk_before  # the process's counters die with it
    lab.drop_reader()
    emu.crash()
    if down == "brief":
        time.sleep(rng.uniform(0, 1.5))
        emu.start()
        code, child_transport, err = finish_child(child)
    else:
        child.send_signal(signal.SIGKILL)
        code, child_transport, err = finish_child(child)
        time.sleep(rng.uniform(0, 1.5))
        emu.start()
    result = resume(lab, files, target, load_id, transport)
    return outcome("emulator SIGKILL + restart", lab, target.table, rows, started, rng,
                   down=down, crashed_after=seen, child_exit=code,
                   child_error=err.strip().splitlines()[-1][:200] if code and err else "",
                   skipped_on_resume=result.batches_skipped, resumed_rows=result.rows,
                   transport=result.transport, child_transport=child_transport,
                   child_bulk_rows=child_bulk)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def stream(rows: int, rows_per_batch: int) -> pa.RecordBatchReader:
    """``rows_table(rows)`` generated batch by batch (the source itself does not grow)."""
    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, rows, rows_per_batch):
            yield from rows_table(min(rows_per_batch, rows - start), start=start).to_batches()
    return pa.RecordBatchReader.from_batches(rows_table(1).schema, batches())


# A request rate well below what 8 workers send the emulator unthrottled in 250-row batches
# (measured on 2 cores: parameter arrays about 0.6-1 MB/s, bulk copy about 430 kB/s, its
# rows being about half the bytes and its batches bound by round trips), so the throttle
# holds either transport back.
THROTTLE_BYTES_PER_SECOND = {PARAMETER_ARRAYS: 400_000, BULK_COPY: 150_000}


def throttled(lab: Lab, rng: random.Random, rows: int, *, bytes_per_second: int,
              workers: int = 8, rows_per_batch: int = 250,
              transport: str = PARAMETER_ARRAYS) -> Outcome:
    """8 workers against a server admitting ``bytes_per_second`` of requests (Azure's log
    rate governance, scaled to the emulator): no error, no retry, and the loader's resident
    memory sampled per committed batch must not grow from the first to the last quarter."""
    target = lab.target("rel_throttle")
    batches = math.ceil(rows / rows_per_batch)
    samples: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(p: Any) -> None:
        with lock:
            samples.append((p.batches, rss_bytes()))

    waited_before = pending_faults(lab.emu)["throttled_seconds"]
    received_before = lab.emu.metrics()["bytes_received"]
    bulk_before = bulk_rows(lab.emu)
    inject_fault(lab.emu, kind="throttle", bytes_per_second=bytes_per_second)
    started = time.monotonic()
    try:
        result = transfer(stream(rows, rows_per_batch), target, transfer_options(
            transport, workers=workers, load_id=f"rel-{uuid.uuid4().hex}",
            progress=progress),
                          source_options=SourceOptions(rows_per_batch=rows_per_batch))
        seconds = time.monotonic() - started
        waited = pending_faults(lab.emu)["throttled_seconds"] - waited_before
        received = lab.emu.metrics()["bytes_received"] - received_before
    finally:
        inject_fault(lab.emu, kind="throttle", bytes_per_second=0)
    quarter = max(1, batches // 4)
    early = max(rss for b, rss in samples if b <= quarter)
    late = max(rss for b, rss in samples if b > batches - quarter)
    return outcome("throttle, 8 workers", lab, target.table, rows, started, rng,
                   retries=result.retries, reconnects=result.reconnects,
                   throttled_seconds=round(waited, 1),
                   rss_early_mib=round(early / 2**20, 1), rss_late_mib=round(late / 2**20, 1),
                   rss_growth_mib=round((late - early) / 2**20, 1),
                   request_bytes_per_second=round(received / seconds),
                   throttle_bytes_per_second=bytes_per_second,
                   transport=result.transport, bulk_rows=bulk_rows(lab.emu) - bulk_before)


ScenarioFn = Callable[..., Outcome]
__all__ = ["BULK_COPY", "PARAMETER_ARRAYS", "THROTTLE_BYTES_PER_SECOND", "TRANSIENT_NUMBERS",
           "TRANSPORTS", "Lab", "Outcome", "RestartableEmulator", "TransferError",
           "cut_mid_packet", "emulator_restart", "error_at_start", "kill_sessions",
           "loader_sigkill",
           "pending_faults", "throttled", "token_expiry", "transient_error",
           "transport_problem"]
