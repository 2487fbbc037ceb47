"""The token shim under AddressSanitizer/UBSan/LeakSanitizer through a connect/close loop.

The shim's sources are compiled here with the sanitizers (into a temporary directory,
not the installed library), and a small C program (`shim_connect_loop.c`) logs in through
unixODBC, queries and disconnects. Microsoft's driver itself is not instrumented; a
valgrind run covers its reads of the shim's token buffer (see native/README.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import odbc_string

from engine.native_shim import ENV_SHIM_TARGET

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SHIM_SOURCES = sorted((ROOT / "native" / "odbc_shim").glob("*.c"))
LOOP_SOURCE = Path(__file__).with_name("shim_connect_loop.c")
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-O1"]
ITERATIONS = 100


def _cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (make setup installs build-essential)")
    return cc


def _build(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def asan_build(tmp_path_factory) -> tuple[Path, Path]:
    cc, out = _cc(), tmp_path_factory.mktemp("asan")
    shim, loop = out / "libazsql_odbc_shim.so", out / "connect_loop"
    _build([cc, "-std=c11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", *SANITIZE,
            "-o", str(shim), *map(str, SHIM_SOURCES), "-lpthread", "-ldl"])
    _build([cc, "-std=c11", "-Wall", "-Wextra", *SANITIZE, "-o", str(loop), str(LOOP_SOURCE),
            "-lodbc"])
    return shim, loop


def test_connect_close_loop_is_clean_under_asan(emu_proc, driver_path, asan_build):
    shim, loop = asan_build
    env = dict(os.environ,
               **{ENV_SHIM_TARGET: driver_path,
                  "LOOP_CONN_STR": odbc_string(emu_proc, str(shim),
                                               AccessToken=emu_proc.issue_token()),
                  "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0",
                  "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    before = emu_proc.metrics()["logins_ok"]
    proc = subprocess.run([str(loop), str(ITERATIONS)], env=env, capture_output=True,
                          text=True, timeout=240)
    report = proc.stdout + proc.stderr
    assert "Sanitizer" not in report and "runtime error" not in report, report[-4000:]
    assert proc.returncode == 0, report[-4000:]
    assert f"{ITERATIONS}/{ITERATIONS} connections" in proc.stdout
    assert emu_proc.metrics()["logins_ok"] >= before + ITERATIONS

