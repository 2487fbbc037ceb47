"""`azsql-bulk doctor`: check that this machine can run loads, one line per check."""

from __future__ import annotations

import importlib
import importlib.metadata
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from engine.connection_string import build_connection_string
from engine.driver import (
    DriverInfo,
    check_driver_loads,
    check_system_libraries,
    find_driver,
)
from engine.errors import AzsqlBulkError

PRELOGIN = 0x12  # MS-TDS 2.2.3.1.1 packet type of the first client message


@dataclass(frozen=True)
class Check:
    """One doctor line: what was checked, whether it passed, and the detail or the fix."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def _version_check(dist: str, module: str, fix: str) -> Check:
    try:
        importlib.import_module(module)
        return Check(dist, True, importlib.metadata.version(dist))
    except Exception as exc:  # any import failure is the finding itself
        return Check(dist, False, f"{type(exc).__name__}: {exc}; fix: {fix}")


def capture_first_packet(driver: DriverInfo, timeout: float = 10.0) -> bytes:
    """Connect turbodbc through the driver to a throw-away local socket; return what arrived.

    The listener reads one TDS packet and hangs up, so the login itself fails; only
    what the driver sent matters.

    :raises AzsqlBulkError: nothing arrived within ``timeout`` seconds.
    """
    import turbodbc

    received = bytearray()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(timeout)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(timeout)
                try:
                    while len(received) < 8 or len(received) < int.from_bytes(received[2:4], "big"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        received.extend(chunk)
                except OSError:
                    pass

        thread = threading.Thread(target=serve, name="doctor-listener", daemon=True)
        thread.start()
        conn_str = build_connection_string({
            "Driver": str(driver.path), "Server": f"tcp:127.0.0.1,{port}",
            "Encrypt": "yes", "LoginTimeout": int(timeout),
        })
        try:
            turbodbc.connect(connection_string=conn_str).close()
        except turbodbc.Error:
            pass  # expected: the listener is not a server
        thread.join(timeout)
    if not received:
        raise AzsqlBulkError(f"the driver sent nothing to 127.0.0.1:{port} within {timeout:.0f} s")
    return bytes(received)


def run_checks(driver_path: str | None = None) -> list[Check]:
    """Run every check, in order; later checks are skipped when what they need failed."""
    checks = [Check("python", sys.version_info >= (3, 11), sys.version.split()[0]
                    + ("" if sys.version_info >= (3, 11) else "; fix: use Python 3.11 or newer"))]
    for dist, module in (("pyarrow", "pyarrow"), ("polars", "polars"),
                         ("azure-identity", "azure.identity")):
        checks.append(_version_check(dist, module, "run `make setup`"))
    turbodbc_check = _version_check(
        "turbodbc", "turbodbc", "run `make setup` (builds turbodbc from source against pyarrow)")
    checks.append(turbodbc_check)

    problems = check_system_libraries()
    checks.append(Check("unixODBC and driver libraries", not problems,
                        "; ".join(problems) or "libodbc.so.2, libltdl.so.7, libgssapi_krb5.so.2"))
    try:
        driver = find_driver(driver_path)
        checks.append(Check("ODBC driver", True, f"{driver.path} (version {driver.version}, "
                                                  f"from {driver.source})"))
    except AzsqlBulkError as exc:
        checks.append(Check("ODBC driver", False, str(exc)))
        return checks
    try:
        check_driver_loads(driver)
        checks.append(Check("ODBC driver loads", True, "dlopen ok"))
    except AzsqlBulkError as exc:
        checks.append(Check("ODBC driver loads", False, str(exc)))
        return checks
    if not turbodbc_check.ok:
        checks.append(Check("TDS PRELOGIN", False, "skipped: turbodbc does not import"))
        return checks
    try:
        packet = capture_first_packet(driver)
        ok = packet[0] == PRELOGIN
        checks.append(Check(
            "TDS PRELOGIN", ok,
            f"turbodbc -> driver -> 127.0.0.1 sent packet type 0x{packet[0]:02x}, "
            f"{len(packet)} bytes"
            + ("" if ok else "; expected 0x12: reinstall mssql-python-odbc")))
    except Exception as exc:
        checks.append(Check("TDS PRELOGIN", False, f"{type(exc).__name__}: {exc}"))
    return checks


def main(driver_path: str | None = None, out: Callable[[str], None] = print) -> int:
    """Print the checks; return 0 only when every check passed."""
    checks = run_checks(driver_path)
    for check in checks:
        out(check.line())
    failed = sum(not c.ok for c in checks)
    if failed:
        out(f"{len(checks) - failed} passed, {failed} failed")
    else:
        out(f"all {len(checks)} checks passed")
    return 1 if failed else 0
