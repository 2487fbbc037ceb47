"""Run the emulator in a child process: for clients that hold the GIL while they wait.

turbodbc keeps Python's GIL during some ODBC calls (close, for one). An in-process
emulator then cannot answer, and both sides wait forever. A child process avoids that,
and is also what a user's own test suite would run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from azsql_emulator.identity.clients import DefaultCredentials, load_or_create_default_credentials


class EmulatorProcess:
    """``python -m azsql_emulator start`` as a context manager, with the facts it printed.

    :param state_dir: state directory (default: a temporary one, removed on close).
    :param args: further ``emulator start`` options, e.g. ``["--tls", "off"]``. Without
        ``--env-identity``, ``--env-identity all`` is added: ``env`` then holds every test
        identity's variables, as test suites expect.
    :param startup_timeout: seconds to wait for the JSON line.

    >>> with EmulatorProcess() as emu:  # doctest: +SKIP
    ...     token = emu.issue_token()
    """

    def __init__(self, state_dir: str | Path | None = None, args: list[str] | None = None,
                 startup_timeout: float = 60.0) -> None:
        self._tmp = None if state_dir else tempfile.TemporaryDirectory(prefix="azsql-emu-")
        self.state_dir = Path(state_dir or self._tmp.name)  # type: ignore[union-attr]
        self._args = list(args or [])
        if not any(a.startswith("--env-identity") for a in self._args):
            self._args += ["--env-identity", "all"]
        self._timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def start(self) -> EmulatorProcess:
        cmd = [sys.executable, "-m", "azsql_emulator", "start", "--state-dir", str(self.state_dir),
               *self._args]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                      env=dict(os.environ, PYTHONUNBUFFERED="1"))
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait(self._timeout)
            raise RuntimeError(f"emulator exited with code {code} before printing its facts "
                               f"(command: {' '.join(cmd)})")
        self.info = json.loads(line)
        return self

    def __getattr__(self, name: str) -> Any:
        info = self.__dict__.get("info") or {}
        if name in info:
            return info[name]
        raise AttributeError(name)

    @property
    def credentials(self) -> DefaultCredentials:
        """The default test identities' credentials, read from the state directory."""
        return load_or_create_default_credentials(self.state_dir)

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        url = self.info["control_url"] + path
        if not url.startswith("http://127.") and not url.startswith("http://localhost"):
            raise ValueError(f"refusing a non-loopback control URL {url!r}")
        req = urllib.request.Request(url, data=data,  # noqa: S310 (checked loopback http)
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read())

    def issue_token(self, **fields: Any) -> str:
        """Mint a token through ``POST /token`` (fields: appid, oid, audience, lifetime)."""
        token: str = self._call("/token", fields)["access_token"]
        return token

    def metrics(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("/metrics")
        return result

    def sessions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("/sessions")
        return result

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc is not None and self._proc.stdout:
            self._proc.stdout.close()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
