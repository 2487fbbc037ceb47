"""The ``azsql-bulk`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``azsql-bulk`` console script; returns the exit code.

    Exit codes: 0 success, 1 failure, 2 usage or configuration error.
    """
    args = _build_parser().parse_args(argv)
    if args.command == "doctor":
        from engine import doctor
        return doctor.main(args.driver)
    return 2


if __name__ == "__main__":
    sys.exit(main())
