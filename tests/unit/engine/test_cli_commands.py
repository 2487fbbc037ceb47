"""`azsql-bulk` commands: built-ins and plug-ins register alike; a missing one says what to get."""

from __future__ import annotations

import sys
import types
from importlib.metadata import EntryPoint, entry_points

import pytest

from engine.cli import main
from engine.cli.app import BUILTIN_COMMANDS, COMMAND_GROUP, build_parser, find_commands


def test_built_in_commands_register_like_plug_ins():
    commands = find_commands(plugins=())
    names = ["load", "doctor", "journal", "verify", "bench", "split"]
    assert [(ep.name, ep.group) for ep in BUILTIN_COMMANDS] == [(n, COMMAND_GROUP) for n in names]
    assert list(commands.registers) == names and not commands.plugins
    sub = build_parser(commands)._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert set(sub.choices) == set(names)


def test_emulator_without_its_distribution_says_what_to_install(capsys):
    code = main(["emulator", "start", "--port", "0"], plugins=())
    err = capsys.readouterr().err
    assert code == 2
    assert "azsql-emulator distribution, which is not installed" in err
    assert "pip install -e packages/azsql-emulator" in err and "make setup" in err
    assert "invalid choice" not in err


def test_a_plug_in_that_does_not_import_says_what_to_install(capsys, monkeypatch):
    # the installed emulator's entry point, with its module made unimportable
    installed = [ep for ep in entry_points(group=COMMAND_GROUP) if ep.name == "emulator"]
    if not installed:
        pytest.skip("the azsql-emulator distribution is not installed")
    module = installed[0].value.split(":")[0]
    monkeypatch.setitem(sys.modules, module, None)
    code = main(["emulator", "start"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is installed but does not import" in err and "pip install -e packages/" in err
    with pytest.raises(SystemExit) as info:  # the other commands are unaffected
        main(["doctor", "--help"])
    assert info.value.code == 0


def test_a_plug_in_missing_a_dependency_at_run_time_says_what_to_install(capsys, monkeypatch):
    module = types.ModuleType("fake_azsql_plugin")

    def start(args):
        import a_dependency_that_is_not_installed  # noqa: F401
        return 0

    def register(sub):
        sub.add_parser("emulator").set_defaults(handler=start)

    module.register = register  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_azsql_plugin", module)
    plugin = EntryPoint("emulator", "fake_azsql_plugin:register", COMMAND_GROUP)
    code = main(["emulator"], plugins=[plugin])
    err = capsys.readouterr().err
    assert code == 2
    assert "a_dependency_that_is_not_installed" in err and "make setup" in err


def test_a_built_in_command_is_never_taken_over(monkeypatch):
    module = types.ModuleType("fake_azsql_plugin")
    module.register = lambda sub: pytest.fail("a plug-in replaced a built-in")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_azsql_plugin", module)
    commands = find_commands([EntryPoint("load", "fake_azsql_plugin:register", COMMAND_GROUP)])
    assert commands.registers["load"] is BUILTIN_COMMANDS[0].load()
