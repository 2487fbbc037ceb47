"""Every fault kind bites a bulk load as it bites parameter arrays: Microsoft ODBC Driver 18's
bulk copy (``bcp_stream.c``, driven command by command) against the emulator's fault
injection.

The client stops between commands, so a fault is put where it is meant to land: a session
killed or its token expired while a bulk load is still streaming in (the session's
``receiving`` shows the unfinished BULK_LOAD message), an injected error whose Nth call is
a row inside a bulk load, a throttle holding back one bulk-load message larger than its
one second of burst. What the table holds is read back with pyodbc, another client.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import (
    HANG_SECONDS,
    SQL_COPT_SS_ACCESS_TOKEN,
    inject_fault,
    odbc_string,
    token_struct,
    wait_until,
)

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

SOURCE = Path(__file__).with_name("bcp_stream.c")
BULK_LOAD = 0x07  # the TDS packet type of a bulk load's rows
APP = "bcp-stream"
MID_BULK_LOAD = "killed_receiving_0x07"  # GET /faults: sessions dropped mid bulk load


@pytest.fixture(scope="module")
def stream_exe(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("bcp-stream") / "bcp_stream"
    subprocess.run(["gcc", "-Wall", "-Werror", "-O1", "-o", str(out), str(SOURCE), "-lodbc"],
                   check=True, capture_output=True, text=True, timeout=HANG_SECONDS)
    return out


@dataclass
class Answer:
    ok: bool
    value: int | None
    errors: list[str]  # "ERROR <sqlstate> <native> <message>" lines

    @property
    def text(self) -> str:
        return "\n".join(self.errors)


class Client:
    """``bcp_stream`` in a child process: one command at a time, each answer awaited."""

    def __init__(self, exe: Path, conn_str: str, table: str, token: str | None = None) -> None:
        env = dict(os.environ)
        env.pop("BCP_STREAM_TOKEN", None)
        if token:
            env["BCP_STREAM_TOKEN"] = token
        self.proc = subprocess.Popen([str(exe), conn_str, table], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.connected = self._answer()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _answer(self) -> Answer:
        ok, value, errors = False, None, []
        while True:
            line = self.lines.get(timeout=HANG_SECONDS)  # a hung driver fails the test
            assert line is not None, f"bcp_stream exited (code {self.proc.poll()})"
            if line == "END":
                return Answer(ok, value, errors)
            words = line.split()
            if words[0] == "OK":
                ok, value = True, int(words[2]) if len(words) > 2 else None
            elif words[0] == "ERROR":
                errors.append(line)

    def ask(self, command: str) -> Answer:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(HANG_SECONDS)
        if self.proc.stdout:
            self.proc.stdout.close()


def sql_conn_str(emu, driver: str) -> str:
    creds = emu.identity.credentials
    # ConnectRetryCount=0, as the engine sets it: the driver must not re-login behind the
    # client's back after the server drops the link
    return odbc_string(emu, driver, UID=creds.sql_login, PWD=creds.sql_password,
                       ConnectRetryCount=0, APP=APP)


@pytest.fixture
def reader(emu, driver_path):
    conn = pyodbc.connect(sql_conn_str(emu, driver_path), autocommit=True)
    yield conn
    conn.close()


@pytest.fixture
def clean(emu):
    yield emu
    inject_fault(emu, kind="clear")
    inject_fault(emu, kind="throttle", bytes_per_second=0)


def new_table(conn) -> str:
    name = f"dbo.bulk_fault_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE TABLE {name} (id bigint NOT NULL, s nvarchar(20))")
    return name


@pytest.fixture
def client(stream_exe, emu, driver_path) -> Iterator:
    clients: list[Client] = []

    def make(table: str, *, target=None, token: str | None = None) -> Client:
        server = target or emu
        conn_str = (odbc_string(server, driver_path, ConnectRetryCount=0, APP=APP) if token
                    else sql_conn_str(server, driver_path))
        c = Client(stream_exe, conn_str, table, token)
        clients.append(c)
        assert c.connected.ok, c.connected.text
        return c
    yield make
    for c in clients:
        c.close()


def streaming_bulk_load(emu) -> int | None:
    """The spid of this module's client while a bulk load of it is arriving, else None."""
    for s in emu.tds.sessions_info():
        receiving = s.get("receiving")
        if s["app_name"] == APP and receiving and receiving["type"] == BULK_LOAD \
                and receiving["bytes"] > 0:
            return int(s["spid"])
    return None


def link_dropped(*answers: Answer) -> bool:
    """One of the answers failed with a communication link failure (08S01)."""
    return any(not a.ok and "ERROR 08S01" in a.text for a in answers)


def count(conn, table: str) -> tuple[int, int]:
    """(rows, distinct ids) in ``table``."""
    rows, ids = conn.execute(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM {table}").fetchone()
    return rows, ids


def gone(emu, spid: int) -> bool:
    return spid not in {s["spid"] for s in emu.tds.sessions_info()}


# -- kill_sessions ---------------------------------------------------------------------------

def test_kill_sessions_while_a_bulk_load_streams_in_keeps_nothing_of_it(clean, client, reader):
    emu = clean
    table = new_table(reader)
    loader = client(table)
    assert loader.ask("init").ok
    assert loader.ask("rows 3000").ok  # about 100 kB: the driver has sent packets of it
    assert wait_until(lambda: streaming_bulk_load(emu) is not None)
    spid = streaming_bulk_load(emu)
    loads_before = emu.metrics()["bulk_loads"]
    cut_short = inject_fault(emu, kind="clear")["injected"].get(MID_BULK_LOAD, 0)
    killed = inject_fault(emu, kind="kill_sessions", session_ids=[spid])
    assert killed["killed"] == 1 and killed["injected"][MID_BULK_LOAD] == cut_short + 1
    more, done = loader.ask("rows 3000"), loader.ask("done")
    assert link_dropped(more, done), (more, done)
    assert wait_until(lambda: gone(emu, spid))
    assert emu.metrics()["bulk_loads"] == loads_before  # the message never completed
    assert count(reader, table) == (0, 0)
    # the emulator is none the worse: the same load on a new connection lands whole
    again = client(table)
    assert again.ask("init").ok and again.ask("rows 6000").ok
    assert again.ask("done").value == 6000 and again.ask("commit").ok
    assert count(reader, table) == (6000, 6000)


# -- error after N calls (a bulk load's rows count as calls) ---------------------------------

@pytest.mark.parametrize(("number", "fatal"), [(40613, True), (49918, False)])
def test_error_after_n_calls_fails_the_bulk_load_its_nth_row_is_in(clean, client, reader,
                                                                    number, fatal):
    emu = clean
    table = new_table(reader)
    loader = client(table)
    # the first bulk load (1,000 rows) passes; the 1,500th call is a row of the second
    inject_fault(emu, kind="error", number=number, after_rpc_calls=1_500, count=1)
    assert loader.ask("init").ok and loader.ask("rows 1000").ok
    assert loader.ask("done").value == 1000
    assert loader.ask("init").ok and loader.ask("rows 1000").ok
    failed = loader.ask("done")
    assert not failed.ok and f" {number} " in failed.text, failed
    assert inject_fault(emu, kind="clear")["rpc_errors"] == []  # consumed by this load
    if fatal:  # the link is dropped after the error, the transaction rolled back with it
        assert not loader.ask("commit").ok
        assert count(reader, table) == (0, 0)
    else:  # class 16: the load is refused whole; the session and its transaction go on
        assert loader.ask("init").ok and loader.ask("rows 1000").ok
        assert loader.ask("done").value == 1000 and loader.ask("commit").ok
        assert count(reader, table) == (2000, 2000)
        ids = reader.execute(f"SELECT MIN(id), MAX(id) FROM {table} WHERE id >= 1000"
                             ).fetchone()
        assert tuple(ids) == (2000, 2999)  # none of the refused load's rows (1000-1999)


# -- expire_tokens with --expire-sessions ----------------------------------------------------

@pytest.fixture(scope="module")
def expiring():
    """An emulator that ends a session when its token expires (``--expire-sessions``)."""
    from azsql_emulator.app import Emulator

    with Emulator(expire_sessions=True) as emu:
        yield emu


def test_expire_tokens_while_a_bulk_load_streams_in_ends_the_session(expiring, client,
                                                                     driver_path):
    emu = expiring
    token = emu.identity.issue_token()
    with closing(pyodbc.connect(odbc_string(emu, driver_path),
                                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)},
                                autocommit=True)) as reader:
        table = new_table(reader)
    loader = client(table, target=emu, token=emu.identity.issue_token())
    assert loader.ask("init").ok and loader.ask("rows 3000").ok
    assert wait_until(lambda: streaming_bulk_load(emu) is not None)
    spid = streaming_bulk_load(emu)
    try:
        assert inject_fault(emu, kind="expire_tokens")["killed"] >= 1
        # (counted as the sessions go, after the answer's summary was taken)
        assert emu.tds.faults.pending()["injected"][MID_BULK_LOAD] >= 1
        more, done = loader.ask("rows 3000"), loader.ask("done")
        assert link_dropped(more, done), (more, done)
        assert wait_until(lambda: gone(emu, spid))
    finally:
        inject_fault(emu, kind="clear")  # tokens issued before now work again
    with closing(pyodbc.connect(odbc_string(emu, driver_path),
                                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)},
                                autocommit=True)) as reader:
        assert count(reader, table) == (0, 0)


# -- throttle --------------------------------------------------------------------------------

def test_throttle_holds_back_a_bulk_load_by_its_bytes(clean, client, reader):
    """One bulk-load message of 10,000 rows (over 300 kB) against 100 kB/s with one second
    of burst: admitting that message alone costs over 2 s of waiting, however fast or slow
    the machine (the emulator's own accounting, not a clock in the test)."""
    emu = clean
    table = new_table(reader)
    loader = client(table)
    rate = 100_000
    waited_before = inject_fault(emu, kind="throttle", bytes_per_second=rate)[
        "throttled_seconds"]
    received_before = emu.metrics()["bytes_received"]
    assert loader.ask("init").ok and loader.ask("rows 10000").ok
    assert loader.ask("done").value == 10_000
    received = emu.metrics()["bytes_received"] - received_before
    waited = inject_fault(emu, kind="throttle", bytes_per_second=0)["throttled_seconds"]
    assert loader.ask("commit").ok
    assert count(reader, table) == (10_000, 10_000)
    assert received > 300_000
    assert waited - waited_before >= 2.0
