"""``azsql-bulk emulator start`` when one of the emulator's own dependencies is missing.

The emulator distribution is installed (its entry point is registered) but, say, duckdb is
not importable: the command must say what is missing and how to install it, exit 2, and
never end in a traceback. A ``None`` entry in ``sys.modules`` makes ``import duckdb`` fail
exactly as a missing module does, without touching the environment.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

# Runs the real console entry point (engine.cli.main), which finds the emulator's command
# through the azsql_bulk.commands entry-point group.
_RUN_CLI = """
import sys
sys.modules[sys.argv[1]] = None
from engine.cli import main
sys.exit(main(["emulator", "start", "--port", "0"]))
"""
# What engine.cli does with a plug-in, without the rest of the azsql-bulk CLI.
_RUN_ENTRY_POINT = """
import argparse, sys
from importlib.metadata import entry_points
sys.modules[sys.argv[1]] = None
parser = argparse.ArgumentParser(prog="azsql-bulk")
sub = parser.add_subparsers(dest="command", required=True)
(command,) = [ep for ep in entry_points(group="azsql_bulk.commands") if ep.name == "emulator"]
command.load()(sub)
args = parser.parse_args(["emulator", "start", "--port", "0"])
sys.exit(args.handler(args))
"""
_RUN_MODULE = """
import runpy, sys
sys.modules[sys.argv[1]] = None
sys.argv[1:] = ["start", "--port", "0"]
runpy.run_module("azsql_emulator", run_name="__main__")
"""


def _run(script: str, missing: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, missing], capture_output=True,
                          text=True, timeout=120)


def test_the_emulator_command_is_registered() -> None:
    commands = {ep.name: ep.value for ep in entry_points(group="azsql_bulk.commands")}
    assert commands.get("emulator") == "azsql_emulator.cli:register"


@pytest.mark.parametrize(("missing", "distribution"), [
    ("duckdb", "duckdb"), ("sqlglot", "sqlglot"), ("cryptography", "cryptography"),
    ("jwt", "PyJWT"),
])
def test_start_without_a_dependency_explains_and_exits_2(missing: str,
                                                         distribution: str) -> None:
    result = _run(_RUN_ENTRY_POINT, missing)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert f"the emulator needs {distribution}: pip install azsql-emulator" in result.stderr
    assert "(in this repository: make setup)" in result.stderr
    assert result.stdout == ""  # no facts line: nothing was started


@pytest.mark.parametrize("script", [_RUN_CLI, _RUN_MODULE], ids=["azsql-bulk", "python-m"])
def test_both_commands_report_a_missing_dependency(script: str) -> None:
    result = _run(script, "duckdb")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert "the emulator needs duckdb: pip install azsql-emulator" in result.stderr
