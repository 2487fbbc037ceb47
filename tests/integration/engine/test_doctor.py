"""`azsql-bulk doctor` on this machine, through the installed console script."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _console_script() -> str:
    script = Path(sys.executable).with_name("azsql-bulk")
    return str(script) if script.exists() else shutil.which("azsql-bulk") or "azsql-bulk"


def test_doctor_passes_after_setup():
    proc = subprocess.run([_console_script(), "doctor"], capture_output=True, text=True,
                          timeout=120)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(line.startswith("OK   TDS PRELOGIN") and "0x12" in line for line in lines)
    assert all(line.startswith("OK") for line in lines[:-1])
    assert lines[-1].startswith("all ") and lines[-1].endswith("checks passed")


def test_doctor_fails_with_a_fix_for_a_bad_driver_path(tmp_path):
    proc = subprocess.run([_console_script(), "doctor", "--driver", str(tmp_path / "nope.so")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    line = next(x for x in proc.stdout.splitlines() if "ODBC driver" in x)
    assert line.startswith("FAIL") and "nope.so" in line and "fix the path" in line
