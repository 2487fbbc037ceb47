"""``make demo``: a real load, end to end, on this machine.

1. start the Azure SQL emulator in a child process (state in a temporary directory) with
   short-lived access tokens and sessions that end when their token expires;
2. generate the demo's Parquet orders, or find them cached (``scripts/demo_data.py``);
3. run ``azsql-bulk load`` with 4 workers and ``--auth managed-identity``, the token
   coming from the emulator's managed-identity endpoint (only environment variables
   point azure-identity there; no secret is on any command line);
4. check the table against the Parquet with ``azsql-bulk verify`` as another login (the
   emulator's SQL login): the row count, non-null counts, exact sums, rows per value of
   the low-cardinality columns and a sample of whole rows looked up by ``order_id``;
5. print a summary and stop the emulator (also on Ctrl-C or a failure).

Exit status: 0 when the load succeeded and verified, 1 when it failed or did not verify,
2 when the machine is not set up, 130 on Ctrl-C.

    .venv/bin/python scripts/demo.py              # 2,000,000 rows
    .venv/bin/python scripts/demo.py --rows 20000 --cache-dir /tmp/demo-cache
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import demo_data  # the sibling module, found through the line above

TABLE = "dbo.orders"  # the queries below spell it out
DEFAULT_ROWS = 2_000_000
# Tokens live 30 s and a session ends when its token does, so any load longer than that
# (the default one takes minutes) must renew: a worker reconnects with a fresh token at a
# batch boundary once the token it logged in with has less than the margin left. The
# margin outlasts a batch (a 10,000-row batch takes a few seconds here).
TOKEN_LIFETIME = 30
TOKEN_REFRESH_MARGIN = 10
SAMPLE_ROWS = 500
# Variables that would steer azure-identity or the CLI away from the emulator.
_FOREIGN_ENV_PREFIXES = ("AZURE_", "IDENTITY_", "MSI_", "AZSQL_BULK_")
_KEPT_ENV = ("AZSQL_BULK_ODBC_DRIVER", "AZSQL_BULK_CACHE")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # terminal control sequences (CSI)
_ANSI_BYTES = re.compile(rb"(?:\x1b\[[0-?]*[ -/]*[@-~])*")


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, text: str) -> None:
    say(f"\n[{number}/5] {text}")


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# -- 1. the emulator --------------------------------------------------------------------------

def start_emulator(token_lifetime: int) -> Any:
    """The emulator in a child process with short tokens, state in a temporary directory."""
    from azsql_emulator.process import EmulatorProcess

    emu = EmulatorProcess(args=["--token-lifetime", str(token_lifetime), "--expire-sessions"])
    try:
        emu.start()
    except BaseException:
        emu.close()  # removes the temporary state directory
        raise
    return emu


def load_environment(emu: Any) -> dict[str, str]:
    """This process's environment without Azure or azsql-bulk settings, plus the emulator's
    managed-identity endpoint and its CA (for azure-identity's HTTPS calls)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_FOREIGN_ENV_PREFIXES) or k in _KEPT_ENV}
    env.update({k: str(v) for k, v in emu.env.items()})
    env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = emu.ca_cert
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- 3. the load, through the CLI -------------------------------------------------------------

def cli_path() -> str:
    """The ``azsql-bulk`` console script next to this Python, else the one on PATH."""
    beside = Path(sys.executable).parent / "azsql-bulk"
    if beside.exists():
        return str(beside)
    found = shutil.which("azsql-bulk")
    if not found:
        raise DemoError("the azsql-bulk command is not installed; run `make setup` first", 2)
    return found


def check_load_command(cli: str) -> None:
    """Fail early, and say why, when this checkout's CLI has no ``load`` command."""
    probe = subprocess.run([cli, "load", "--help"], capture_output=True, text=True,
                           timeout=120, check=False)
    if probe.returncode != 0:
        raise DemoError("`azsql-bulk load` is not available in this checkout (`azsql-bulk load "
                        f"--help` exited {probe.returncode}: "
                        f"{(probe.stderr or probe.stdout).strip()[-300:]}); update the "
                        "checkout and run `make setup`", 2)


def load_command(cli: str, emu: Any, files: Sequence[Path], *, workers: int,
                 rows_per_batch: int, token_refresh_margin: float) -> list[str]:
    """The ``azsql-bulk load`` command line: facts only, no secret."""
    return [cli, "load", *map(str, files),
            "--server", f"{emu.tds_host},{emu.tds_port}", "--database", emu.database,
            "--table", TABLE, "--auth", "managed-identity",
            "--workers", str(workers), "--rows-per-batch", str(rows_per_batch),
            "--mode", "append", "--token-refresh-margin", f"{token_refresh_margin:g}",
            "--encrypt", "strict", "--server-certificate", emu.server_cert,
            "--host-name-in-certificate", "localhost",
            "--progress-interval", "5", "--json"]


def run_load(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run the CLI, showing its progress; return the JSON object of its last stdout line.

    On a terminal the CLI's stdout is a pseudo-terminal, so it draws its live display
    (which it only does on a terminal); otherwise it writes progress lines to stderr.
    """
    say("  $ " + " ".join(_shown(command)))
    on_terminal = sys.stdout.isatty() and hasattr(os, "openpty")
    proc, read_fd = _spawn_on_pty(command, env) if on_terminal else _spawn_piped(command, env)
    captured = bytearray()
    held = b""
    try:
        while True:
            try:
                chunk = os.read(read_fd, 65536)
            except OSError:  # EIO: the pseudo-terminal's last writer closed it
                chunk = b""
            if not chunk:
                break
            captured += chunk
            held = _pass_through(held + chunk)
        code = proc.wait()
    except BaseException:
        _stop_child(proc)
        raise
    finally:
        os.close(read_fd)
    result = _json_result(captured.decode("utf-8", "replace"))
    if result is None:
        tail = _ANSI.sub("", captured.decode("utf-8", "replace")).strip()[-300:]
        raise DemoError(f"azsql-bulk load exited {code} without a JSON result line "
                        f"(its output ended: {tail!r})")
    if code != 0:
        raise DemoError(f"azsql-bulk load exited {code}: "
                        f"{result.get('error') or result.get('message') or result}")
    return result


def _json_result(text: str) -> dict[str, Any] | None:
    """The last line that is one JSON object (terminal control sequences removed)."""
    for line in reversed(_ANSI.sub("", text).replace("\r", "\n").splitlines()):
        if line.strip().startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _spawn_piped(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    fd = os.dup(proc.stdout.fileno())  # read with os.read, like the pseudo-terminal
    proc.stdout.close()
    return proc, fd


def _spawn_on_pty(command: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    import fcntl
    import termios

    primary, secondary = os.openpty()
    try:  # the same size as this terminal, so the display fits
        size = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, size)
    except OSError:
        pass
    try:
        # stderr too, so its lines keep their place between the display's redraws
        proc = subprocess.Popen(command, env=env, stdout=secondary, stderr=secondary)
    except BaseException:
        os.close(primary)
        raise
    finally:
        os.close(secondary)
    return proc, primary


def _pass_through(data: bytes) -> bytes:
    """Copy the CLI's output to ours, except its JSON result line; return what is held
    back (the start of a line that may be that JSON line)."""
    out = sys.stdout.buffer
    *complete, rest = data.split(b"\n")
    for line in complete:
        if not _is_json_start(line):
            out.write(line + b"\n")
        elif line.startswith(b"\x1b"):  # keep the control sequences (cursor shown again)
            prefix = _ANSI_BYTES.match(line)
            out.write(prefix.group(0) if prefix else b"")
    if rest and not _is_json_start(rest):
        out.write(rest)
        rest = b""
    out.flush()
    return rest


def _is_json_start(line: bytes) -> bool:
    return _ANSI_BYTES.sub(b"", line).lstrip(b"\r").startswith(b"{")


def _shown(command: list[str]) -> list[str]:
    """The command for display: long file lists shortened, paths relative when shorter."""
    out = []
    for part in command:
        if part.endswith(".parquet"):
            part = str(Path(part).parent / "*.parquet")
            if out and out[-1] == part:
                continue
        out.append(part)
    return out


def _stop_child(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (the CLI stops at a batch boundary), then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- 4. verification: azsql-bulk verify, with another login -------------------------------

@dataclass
class Check:
    """One comparison of an expected value with what was found."""

    name: str
    expected: Any
    actual: Any

    @property
    def ok(self) -> bool:
        return bool(self.expected == self.actual)


def verify_command(cli: str, emu: Any, files: Sequence[Path]) -> list[str]:
    """``azsql-bulk verify``: the same files against the table, as the emulator's SQL login
    (not the loader's managed identity); the password comes from the environment."""
    return [cli, "verify", *map(str, files), "--table", TABLE, "--key", "order_id",
            "--sample-rows", str(SAMPLE_ROWS),
            "--server", f"{emu.tds_host},{emu.tds_port}", "--database", emu.database,
            "--auth", "sql", "--sql-user", emu.credentials.sql_login,
            "--encrypt", "strict", "--server-certificate", emu.server_cert,
            "--host-name-in-certificate", "localhost", "--json"]


def verify_environment(emu: Any) -> dict[str, str]:
    """This process's environment without Azure or azsql-bulk settings, plus the SQL
    login's password (never on the command line)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_FOREIGN_ENV_PREFIXES) or k in _KEPT_ENV}
    env["AZSQL_BULK_SQL_PASSWORD"] = emu.credentials.sql_password
    return env


def run_verify(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``azsql-bulk verify``; return its JSON report (exit 0: equal, 1: differences)."""
    say("  $ " + " ".join(_shown(command)))
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600,
                          check=False)
    report = _json_result(proc.stdout)
    if report is None or proc.returncode not in (0, 1) or "differences" not in report:
        detail = (report or {}).get("error") or proc.stderr.strip()[-300:]
        raise DemoError(f"azsql-bulk verify exited {proc.returncode}: {detail}")
    return report


# -- the whole demo ---------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    cli = cli_path()
    check_load_command(cli)
    emu = None
    try:
        step(1, f"starting the Azure SQL emulator (tokens live {args.token_lifetime} s; "
                "a session ends when its token expires)")
        t0 = time.monotonic()
        emu = start_emulator(args.token_lifetime)
        say(f"  TDS on {emu.tds_host}:{emu.tds_port}, database {emu.database}, "
            f"managed-identity endpoint {emu.env['IDENTITY_ENDPOINT']} "
            f"({time.monotonic() - t0:.1f} s)")

        step(2, f"dataset: {args.rows:,} orders as Parquet")
        t0 = time.monotonic()
        cache = Path(args.cache_dir) if args.cache_dir else demo_data.default_cache_dir()
        files = demo_data.ensure_dataset(cache, args.rows, log=say)
        size = sum(f.stat().st_size for f in files)
        say(f"  {len(files)} files, {size / 1e6:.1f} MB in {files[0].parent} "
            f"({time.monotonic() - t0:.1f} s)")

        step(3, f"azsql-bulk load: {args.workers} workers, managed identity from the "
                "emulator's endpoint")
        command = load_command(cli, emu, files, workers=args.workers,
                               rows_per_batch=args.rows_per_batch,
                               token_refresh_margin=args.token_refresh_margin)
        result = run_load(command, load_environment(emu))

        step(4, "azsql-bulk verify: counts, sums, rows per value and sample rows against "
                "the Parquet, as another login")
        t0 = time.monotonic()
        report = run_verify(verify_command(cli, emu, files), verify_environment(emu))
        checks = [Check(f"{report['checks']:,} checks of the table against the Parquet "
                        f"({report['rows']:,} source rows, {report['sampled']:,} sample rows)",
                        True, bool(report["ok"]))]
        renewals = int(result.get("token_renewals", 0))
        outlived = float(result.get("seconds", 0)) > args.token_lifetime
        if outlived:
            # the load outlived the tokens its workers logged in with: they must have renewed
            checks.append(Check("token renewals during the load > 0", True, renewals > 0))
        for check in checks:
            say(f"  {'OK  ' if check.ok else 'FAIL'} {check.name}")
        for d in report["differences"]:
            say(f"  FAIL {d['column'] or 'table'}: {d['what']}: expected {d['expected']}, "
                f"found {d['found']}")
        for note in report.get("notes", []):
            say(f"  note: {note}")
        if not outlived:
            say(f"  --   token renewals: {renewals} (the load was shorter than one "
                f"{args.token_lifetime} s token, so none were needed)")
        say(f"  ({time.monotonic() - t0:.1f} s)")
        verified = all(c.ok for c in checks)
    finally:
        step(5, "stopping the emulator")
        if emu is not None:
            emu.close()

    print_summary(result, args.rows, verified, time.monotonic() - started)
    return 0 if verified else 1


def print_summary(result: dict[str, Any], rows: int, verified: bool, wall: float) -> None:
    mb = result.get("bytes", 0) / 1e6
    lines = [
        ("rows loaded", f"{result.get('rows', 0):,} of {rows:,}"),
        ("data", f"{mb:,.1f} MB (Arrow)"),
        ("load time", f"{result.get('seconds', 0):.1f} s"),
        ("throughput", f"{result.get('rows_per_second', 0):,.0f} rows/s, "
                       f"{result.get('mb_per_second', 0):.2f} MB/s"),
        ("transport", str(result.get("transport", "?"))
                      + (f" ({result['transport_reason']})" if result.get("transport_reason")
                         else "")),
        ("token renewals", f"{result.get('token_renewals', 0)}"),
        ("retries", f"{result.get('retries', 0)} (reconnects {result.get('reconnects', 0)})"),
        ("load id", str(result.get("load_id", "?"))),
        ("demo wall time", f"{wall:.1f} s"),
        ("verification", "OK" if verified else "FAILED"),
    ]
    say("\nsummary")
    for name, value in lines:
        say(f"  {name:<16}{value}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Load demo orders into the Azure SQL emulator with azsql-bulk, then "
                    "verify them through another client.")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS,
                        help=f"orders to generate and load (default {DEFAULT_ROWS:,})")
    parser.add_argument("--cache-dir", default=None,
                        help=f"dataset cache (default {demo_data.default_cache_dir()})")
    parser.add_argument("--workers", type=int, default=4, help="parallel connections (4)")
    parser.add_argument("--rows-per-batch", type=int, default=10_000,
                        help="rows per INSERT transaction (10000)")
    parser.add_argument("--token-lifetime", type=int, default=TOKEN_LIFETIME,
                        help=f"emulator access-token lifetime in seconds ({TOKEN_LIFETIME})")
    parser.add_argument("--token-refresh-margin", type=float, default=TOKEN_REFRESH_MARGIN,
                        help="the loader reconnects when its token has fewer seconds left "
                             f"({TOKEN_REFRESH_MARGIN})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.rows < 1:
        say("demo: --rows must be at least 1")
        return 2
    # SIGTERM (e.g. from make being stopped) unwinds like Ctrl-C, so the emulator stops.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return run(args)
    except DemoError as exc:
        say(f"\ndemo FAILED: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        say("\ndemo interrupted; the emulator was stopped")
        return 130


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
