"""The ``azsql-bulk`` command line.

Commands from other installed packages plug in through the ``azsql_bulk.commands``
entry-point group (the emulator adds ``azsql-bulk emulator ...`` that way), so the
engine never imports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

COMMAND_GROUP = "azsql_bulk.commands"


def _doctor(args: argparse.Namespace) -> int:
    from engine import doctor
    return doctor.main(args.driver)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azsql-bulk",
        description="Bulk-load Arrow data into Azure SQL Database with Entra access tokens.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    doctor = sub.add_parser("doctor", help="check that this machine can run loads")
    doctor.add_argument("--driver", metavar="PATH", default=None,
                        help="path of libmsodbcsql-18.*.so (default: $AZSQL_BULK_ODBC_DRIVER, "
                             "else the mssql-python-odbc package)")
    doctor.set_defaults(handler=_doctor)
    for ep in entry_points(group=COMMAND_GROUP):
        try:
            register = ep.load()
        except ImportError as exc:  # a broken optional plug-in must not break the CLI
            print(f"azsql-bulk: command {ep.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        register(sub)  # adds its subparser and sets `handler`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``azsql-bulk`` console script; returns the exit code.

    Exit codes: 0 success, 1 failure, 2 usage or configuration error.
    """
    args = _build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
