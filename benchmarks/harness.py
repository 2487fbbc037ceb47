"""What every benchmark here shares: the emulator, connection options, meters, the machine.

The emulator always runs in a child process (``EmulatorProcess``), so the client
figures (``time.process_time``, peak RSS from ``VmHWM``) are the client's own: the server's CPU
is never counted against a client. Clients log in the way the engine does by default,
with a managed-identity token the emulator issues (azure-identity over HTTPS).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
from support import environment  # noqa: E402  (tests/support.py)


@contextmanager
def emulator(args: Sequence[str] = ("--sink", "discard")) -> Iterator[Any]:
    """An emulator child process; its managed-identity variables are set in ``os.environ``."""
    from azsql_emulator.process import EmulatorProcess

    with EmulatorProcess(args=list(args)) as emu, environment(emu.env):
        yield emu


def facts(emu: Any) -> dict[str, Any]:
    """What a child process needs to reach ``emu`` (JSON-able; holds test-only secrets)."""
    creds = emu.credentials
    return {**emu.info, "sql_login": creds.sql_login, "sql_password": creds.sql_password}


def connection_options(info: dict[str, Any]) -> Any:
    """Engine connection options for the emulator described by ``info`` (managed identity)."""
    from engine import ConnectionOptions, CredentialOptions

    os.environ.update(info["env"])
    return ConnectionOptions(server=info["tds_host"], port=info["tds_port"],
                             database=info["database"], encrypt="strict",
                             server_certificate=info["server_cert"],
                             host_name_in_certificate="localhost",
                             credential=CredentialOptions(kind="managed-identity"))


def metrics(info: dict[str, Any]) -> dict[str, Any]:
    """``GET /metrics`` of the emulator described by ``info``."""
    return control(info, "/metrics")


def control(info: dict[str, Any], path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the emulator's control API (loopback only)."""
    import urllib.request

    url = info["control_url"] + path
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing a non-loopback control URL {url!r}")
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def server_delta(before: dict[str, Any], after: dict[str, Any], rows: int) -> dict[str, Any]:
    """The emulator's view of one run: logins, tokens, wire bytes per row, server seconds."""
    received = after["bytes_received"] - before["bytes_received"]
    return {
        "logins": after["logins_ok"] - before["logins_ok"],
        "tokens": after["distinct_tokens"] - before["distinct_tokens"],
        "wire_bytes_per_row": round(received / rows, 1) if rows else None,
        "server_seconds": round(after["busy_seconds"] - before["busy_seconds"], 3),
        "rpc_calls": after["rpc_calls"] - before["rpc_calls"],
        "commits": after["commits"] - before["commits"],
    }


@dataclass
class Meter:
    """Wall and client CPU seconds (all threads of this process) of a ``with`` block."""

    wall: float = 0.0
    cpu: float = 0.0
    _start: tuple[float, float] = field(default=(0.0, 0.0), repr=False)

    def __enter__(self) -> Meter:
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._start[0]
        self.cpu = time.process_time() - self._start[1]


def figures(meter: Meter, rows: int, nbytes: int | None = None) -> dict[str, Any]:
    """Rows/s, MB/s and CPU seconds per million rows for one measured run."""
    out: dict[str, Any] = {
        "rows": rows, "wall_seconds": round(meter.wall, 3), "cpu_seconds": round(meter.cpu, 3),
        "rows_per_second": round(rows / meter.wall) if meter.wall > 0 else None,
        "cpu_seconds_per_million_rows": round(meter.cpu / rows * 1e6, 3) if rows else None,
    }
    if nbytes is not None:
        out["mb_per_second"] = round(nbytes / 1e6 / meter.wall, 3) if meter.wall > 0 else None
    return out


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, MiB.

    ``VmHWM`` (the high-water mark of this process's own memory map), not ``ru_maxrss``:
    Linux carries a parent's RSS at fork into the child's ``ru_maxrss`` (seen here: every
    child of a 211 MiB parent reported at least 211 MiB), which would put the
    benchmark's own footprint under every tool's figure.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's current resident set size, MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    """CPU, cores, memory, load, OS and the versions that matter."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    except (OSError, ValueError):
        pass
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for dist in ("pyarrow", "turbodbc", "pyodbc", "mssql-python", "mssql-python-odbc",
                 "python-tds", "pandas", "sqlalchemy", "numpy", "matplotlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "os": platform.platform(), "python": platform.python_version(),
            "versions": versions}


def run_child(script: str, args: Sequence[str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` in a fresh interpreter; its last stdout line is JSON."""
    cmd = [sys.executable, str(HERE / script), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed with code {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def command_line() -> str:
    """This process's command, relative to the repository, for the report."""
    argv = [os.path.relpath(a, REPO) if a.endswith(".py") else a for a in sys.argv]
    return ".venv/bin/python " + " ".join(argv)
