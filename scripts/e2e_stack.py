"""The processes of ``make e2e-airflow``: PostgreSQL, Redis, the emulator and Airflow.

Everything lives under one temporary directory and runs as a child process in its own
process group, so :meth:`Stack.close` stops each part together with whatever it forked (a
Celery worker's pool, a task's supervisor and task process), also after a failure or
Ctrl-C. Nothing here is shared with another run on the same machine: every part listens on
a free loopback port of its own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "airflow_integration" / "example_dags"
VENV_BIN = Path(sys.executable).parent
# variables that would point a part at another identity, Airflow or database than ours
_FOREIGN_ENV = ("AZURE_", "IDENTITY_", "MSI_", "AIRFLOW", "SSL_CERT_", "REQUESTS_CA_BUNDLE",
                "PG", "CELERY")


class StackError(Exception):
    """A part would not start or answer; the message says which, and where its log is."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on loopback (held open together while chosen)."""
    held = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def wait_for(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None,
             alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds or when ``alive`` fails.

    :param what: what is awaited (for the message).
    :param check: the condition.
    :param timeout: seconds.
    :param log: the log file to point at in the message.
    :param alive: False once the awaited process died (no point waiting on).
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        where = f"; see {log}" if log else ""
        if not alive():
            raise StackError(f"{what}: the process exited{where}")
        if time.monotonic() > deadline:
            raise StackError(f"{what}: not ready after {timeout:.0f} s{where}")
        time.sleep(0.5)


def _postgres_bindir() -> Path:
    """Debian's PostgreSQL binaries (the newest installed major version)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    if versions:
        return versions[-1].parent
    found = shutil.which("postgres") or shutil.which("initdb")
    if found:
        return Path(found).parent
    raise StackError("PostgreSQL is not installed: apt-get install postgresql "
                     "(make e2e-airflow installs it)")


@dataclass
class Part:
    """One started process: its name, handle, log file and how it is asked to stop."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class Stack:
    """The started parts, stopped in reverse order by :meth:`close`.

    :param root: the temporary directory that holds every part's files.
    """

    root: Path
    parts: list[Part] = field(default_factory=list)
    emulator: Any = None
    ports: dict[str, int] = field(default_factory=dict)
    # secret values this run made up (the scan looks for them); never printed
    made_up: dict[str, str] = field(default_factory=dict)

    # -- processes ------------------------------------------------------------------------
    def spawn(self, name: str, cmd: list[str], env: dict[str, str], *,
              user: str | None = None, stop_signal: int = signal.SIGTERM) -> Part:
        """Start ``cmd`` in its own process group, output to ``<root>/logs/<name>.log``."""
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    user=user, cwd=self.root)
        part = Part(name, proc, log, stop_signal)
        self.parts.append(part)
        return part

    def run(self, name: str, cmd: list[str], env: dict[str, str], timeout: float = 300, *,
            user: str | None = None) -> str:
        """Run ``cmd`` to its end; its output goes to the log and is returned.

        :raises StackError: it failed (the message has its last lines).
        """
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                              user=user, cwd=self.root, check=False)
        with open(log, "a") as out:
            out.write(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise StackError(f"{name} exited {done.returncode} ({' '.join(cmd[:4])} ...): "
                             f"{tail}; see {log}")
        return done.stdout

    def close(self) -> None:
        """Stop every part (its whole process group), newest first; then the emulator."""
        for part in reversed(self.parts):
            _stop_group(part)
        self.parts.clear()
        if self.emulator is not None:
            self.emulator.close()
            self.emulator = None

    def pids(self) -> set[int]:
        """The processes of the stack: the parts and all their descendants."""
        roots = {p.proc.pid for p in self.parts if p.alive()}
        if self.emulator is not None and self.emulator._proc is not None:
            roots.add(self.emulator._proc.pid)
        return _descendants(roots)

    # -- the parts ------------------------------------------------------------------------
    def start_postgres(self) -> str:
        """An initdb'd cluster of its own on a free port; returns the SQLAlchemy URL."""
        bindir = _postgres_bindir()
        data = self.root / "pg" / "data"
        data.parent.mkdir(parents=True)
        user = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            user = "postgres"
            entry = pwd.getpwnam(user)
            # postgres must reach its data directory inside this (root-owned) directory
            os.chmod(self.root, 0o711)  # noqa: S103 (traverse only, nothing readable)
            os.chown(data.parent, entry.pw_uid, entry.pw_gid)
        self.run("initdb", [str(bindir / "initdb"), "-D", str(data), "-U", "airflow",
                            "--auth=trust", "-E", "UTF8", "--no-sync"], _clean_env(), user=user)
        port = self.ports["postgres"]
        part = self.spawn("postgres", [
            str(bindir / "postgres"), "-D", str(data), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={data.parent}",
            "-c", "max_connections=200", "-c", "fsync=off", "-c", "shared_buffers=64MB"],
            _clean_env(), user=user, stop_signal=signal.SIGINT)  # SIGINT: fast shutdown
        wait_for("PostgreSQL", lambda: self._pg_ready(bindir, port, "postgres"), 60,
                 part.log, part.alive)
        self.run("createdb", [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                              "-U", "airflow", "airflow"], _clean_env())
        return f"postgresql+psycopg2://airflow@127.0.0.1:{port}/airflow"

    @staticmethod
    def _pg_ready(bindir: Path, port: int, db: str) -> bool:
        return subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port),
                               "-d", db, "-U", "airflow"], capture_output=True,
                              check=False).returncode == 0

    def start_redis(self) -> str:
        """Redis on a free port, nothing persisted; returns the broker URL."""
        server = shutil.which("redis-server")
        if not server:
            raise StackError("redis-server is not installed: apt-get install redis-server "
                             "(make e2e-airflow installs it)")
        port = self.ports["redis"]
        (self.root / "redis").mkdir()
        part = self.spawn("redis", [server, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no",
                                    "--dir", str(self.root / "redis")], _clean_env())

        def ping() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        wait_for("Redis", ping, 30, part.log, part.alive)
        return f"redis://127.0.0.1:{port}/0"

    def start_emulator(self) -> Any:
        """The Azure SQL emulator (state under the root), its facts on ``self.emulator``."""
        from azsql_emulator.process import EmulatorProcess

        self.emulator = EmulatorProcess(state_dir=self.root / "emulator")
        self.emulator.start()
        return self.emulator

    def airflow_env(self, home: str, pg_url: str, broker: str) -> dict[str, str]:
        """The variables every Airflow part shares, with its own ``AIRFLOW_HOME``."""
        if not self.made_up:
            from cryptography.fernet import Fernet

            self.made_up = {"jwt_secret": secrets.token_urlsafe(32),
                            "api_secret_key": secrets.token_urlsafe(32),
                            "fernet_key": Fernet.generate_key().decode()}
        api = self.ports["api"]
        airflow_home = self.root / "homes" / home
        airflow_home.mkdir(parents=True, exist_ok=True)
        env = _clean_env()
        env.update({
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": self.made_up["fernet_key"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url,
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "21600",
            "AIRFLOW__API_AUTH__JWT_SECRET": self.made_up["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": self.made_up["api_secret_key"],
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api}",
            # runs only when triggered: no scheduled run of the example's @daily schedule
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def worker_env(self, base: dict[str, str], name: str, log_port: int) -> dict[str, str]:
        """A Celery worker's variables: its host name, log-server port, the connection and
        the managed identity (the endpoint and its CA; no client secret)."""
        emu = self.emulator
        site = self.root / "site"
        site.mkdir(exist_ok=True)
        # Airflow records the worker's host name on each task instance; two workers on
        # one machine would share it, so each names itself as its own machine would
        (site / "e2e_hostname.py").write_text(
            "import os\n\n\ndef hostname() -> str:\n"
            "    return os.environ['E2E_WORKER_HOSTNAME']\n")
        env = dict(base)
        env.update({
            "E2E_WORKER_HOSTNAME": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "e2e_hostname.hostname",
            "PYTHONPATH": str(site),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            "AIRFLOW_CONN_AZURE_SQL": connection_json(emu),
        })
        env.update(managed_identity_env(emu))
        return env


def connection_json(emu: Any) -> str:
    """The ``azure_sql`` connection for the emulator: managed identity, TLS strict."""
    return json.dumps({
        "conn_type": "azure_sql_bulk", "host": emu.tds_host, "port": emu.tds_port,
        "schema": emu.database,
        "extra": {"auth": "managed_identity", "encrypt": "strict",
                  "server_certificate": emu.server_cert,
                  "host_name_in_certificate": "localhost", "login_timeout": 15}})


def managed_identity_env(emu: Any) -> dict[str, str]:
    """What a worker needs for the emulator's managed identity: its endpoint and header,
    and trust in the emulator's CA for those HTTPS calls; no service principal secret.

    The emulator's own ``env`` is that when it hands out one identity's variables (its
    ``--env-identity``, default managed-identity); an older emulator's ``env`` held every
    identity's, so only the managed identity's are taken from it.
    """
    env = {k: str(v) for k, v in emu.env.items()}
    if "AZURE_CLIENT_SECRET" in env or "AZSQL_BULK_AUTH" not in env:
        env = {k: env[k] for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
        env["REQUESTS_CA_BUNDLE"] = env["SSL_CERT_FILE"] = str(emu.ca_cert)
    return env


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop_group(part: Part, grace: float = 20) -> None:
    """Signal the part's process group, wait, then SIGKILL whatever is left of it."""
    pgid = part.proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, part.stop_signal)
    try:
        part.proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        part.proc.wait(10)


def _descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


def command_lines(pids: set[int]) -> Iterator[tuple[int, str]]:
    """``(pid, command line)`` of each of ``pids`` still running."""
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            yield pid, raw.replace(b"\0", b" ").decode("utf-8", "replace")


def http_ok(url: str) -> bool:
    """True when ``url`` (loopback) answers 200."""
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback http)
        return bool(resp.status == 200)


def jwt_claims(text: str) -> dict[str, Any] | None:
    """The payload of a JWT, or None when ``text`` is not one."""
    try:
        body = text.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return None
    return claims if isinstance(claims, dict) else None
