"""The ``azsql-bulk`` program: its commands, the parser, and ``main``.

Every command registers the same way: a function ``register(subparsers)`` adds the
command's subparser and sets its ``handler`` (parsed arguments -> exit code). This
distribution's commands (``load``, ``doctor``, ``journal``, ``verify``, ``bench``, ``split``)
are listed in :data:`BUILTIN_COMMANDS`;
other installed distributions add theirs through the ``azsql_bulk.commands`` entry-point
group (the azsql-emulator distribution adds ``emulator``), so the engine never imports
them. A command that is known but not installed says what to install (exit 2).

Exit codes: 0 success, 1 failure, 2 usage or configuration error, 3 partial load that
can be resumed (``load``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from engine.cli.arguments import EXIT_USAGE, UsageError
from engine.cli.secret_guard import refuse_secrets

__all__ = ["BUILTIN_COMMANDS", "COMMAND_GROUP", "KNOWN_PLUGINS", "Commands", "build_parser",
           "find_commands", "main"]

COMMAND_GROUP = "azsql_bulk.commands"
BUILTIN_COMMANDS: tuple[EntryPoint, ...] = (
    EntryPoint("load", "engine.cli.load:register", COMMAND_GROUP),
    EntryPoint("doctor", "engine.cli.doctor:register", COMMAND_GROUP),
    EntryPoint("journal", "engine.cli.journal:register", COMMAND_GROUP),
    EntryPoint("verify", "engine.cli.verify:register", COMMAND_GROUP),
    EntryPoint("bench", "engine.cli.bench:register", COMMAND_GROUP),
    EntryPoint("split", "engine.cli.split:register", COMMAND_GROUP),
)
#: commands other distributions of this repository add -> (distribution, how to install it)
KNOWN_PLUGINS: Mapping[str, tuple[str, str]] = {
    "emulator": ("azsql-emulator",
                 "pip install -e packages/azsql-emulator (or `make setup`, which installs it "
                 "for development, tests and the demo)"),
}
Register = Callable[[Any], None]


@dataclass
class Commands:
    """The commands found: their register functions, and those that cannot be offered.

    :param registers: command name -> its ``register(subparsers)``.
    :param plugins: the commands that came from other distributions -> the distribution's
        name (None when unknown).
    :param unavailable: command name -> why it cannot run and what to install.
    """

    registers: dict[str, Register] = field(default_factory=dict)
    plugins: dict[str, str | None] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def _install_hint(name: str, dist: str | None, problem: str) -> str:
    known = KNOWN_PLUGINS.get(name)
    if known is not None:
        dist, how = known[0], known[1]
    else:
        how = f"reinstall {dist}" if dist else "reinstall the package that provides it"
    source = f"the {dist} distribution, which" if dist else "another distribution, which"
    return f"azsql-bulk: the {name!r} command comes from {source} {problem}. Install it with: {how}"


def find_commands(plugins: Iterable[EntryPoint] | None = None) -> Commands:
    """The built-in commands, then every installed plug-in command.

    :param plugins: the plug-in entry points (default: the installed ones in
        :data:`COMMAND_GROUP`).
    """
    found = Commands()
    for ep in BUILTIN_COMMANDS:
        found.registers[ep.name] = ep.load()
    installed = entry_points(group=COMMAND_GROUP) if plugins is None else plugins
    for ep in installed:
        if ep.name in found.registers:
            continue  # a built-in name is never taken over
        dist = ep.dist.name if ep.dist is not None else None
        try:
            found.registers[ep.name] = ep.load()
            found.plugins[ep.name] = dist
        except ImportError as exc:  # a broken optional plug-in must not break the CLI
            found.unavailable[ep.name] = _install_hint(
                ep.name, dist, f"is installed but does not import ({exc})")
    for name in KNOWN_PLUGINS:
        if name not in found.registers and name not in found.unavailable:
            found.unavailable[name] = _install_hint(name, None, "is not installed")
    return found


def build_parser(commands: Commands | None = None) -> argparse.ArgumentParser:
    """The ``azsql-bulk`` parser with every available command."""
    commands = commands if commands is not None else find_commands()
    parser = argparse.ArgumentParser(
        prog="azsql-bulk", allow_abbrev=False,
        description="Bulk-load Arrow data into Azure SQL Database with Entra access tokens.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in commands.registers.values():
        register(sub)
    return parser


def _refuse(arguments: Sequence[str]) -> int | None:
    refusal = refuse_secrets(arguments)
    if refusal is None:
        return None
    print(refusal, file=sys.stderr)
    if "--json" in arguments:
        print(json.dumps({"status": "usage_error", "exit_code": EXIT_USAGE,
                          "error": refusal.replace("\n", " ")}))
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None, *,
         plugins: Iterable[EntryPoint] | None = None) -> int:
    """Entry point of the ``azsql-bulk`` console script; returns the exit code.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :param plugins: the plug-in commands' entry points (default: the installed ones).
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    refused = _refuse(arguments)
    if refused is not None:
        return refused
    commands = find_commands(plugins)
    typed = next((a for a in arguments if not a.startswith("-")), None)
    if typed in commands.unavailable:
        print(commands.unavailable[typed], file=sys.stderr)
        return EXIT_USAGE
    args = build_parser(commands).parse_args(arguments)
    args.argv = arguments
    try:
        result: int = args.handler(args)
    except UsageError as exc:
        print(f"azsql-bulk {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        if args.command not in commands.plugins:
            raise
        print(_install_hint(args.command, commands.plugins[args.command],
                            f"is missing a module it needs ({exc})"), file=sys.stderr)
        return EXIT_USAGE
    return result
