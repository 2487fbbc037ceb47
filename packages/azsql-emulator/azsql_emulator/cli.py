"""``azsql-bulk emulator start``: run the emulator in the foreground."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``emulator`` command to the azsql-bulk CLI (entry point ``azsql_bulk.commands``)."""
    emu = subparsers.add_parser("emulator", help="run the local Azure SQL emulator")
    sub = emu.add_subparsers(dest="emulator_command", metavar="ACTION")
    sub.required = True
    start = sub.add_parser(
        "start", help="start the emulator in the foreground",
        description="Start the emulator. The first stdout line is one JSON object with "
                    "tds_host, tds_port, ca_cert, server_cert, control_url, tenant_id, "
                    "database and env. Ctrl-C or SIGTERM stops it.")
    start.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    start.add_argument("--port", type=int, default=0, help="TDS port (0 = any free port)")
    start.add_argument("--state-dir", default=None,
                       help="directory for certificates, keys and DuckDB files (default: "
                            "in memory, nothing kept)")
    start.add_argument("--database", default="appdb", help="user database name")
    start.add_argument("--tls", choices=("default", "strict", "off"), default="default",
                       help="default: strict or TDS 7.4 fully encrypted; strict: TDS 8.0 only; "
                            "off: also unencrypted and login-only encryption")
    start.add_argument("--token-lifetime", type=int, default=3600, metavar="S",
                       help="lifetime of issued access tokens in seconds")
    start.add_argument("--expire-sessions", action="store_true",
                       help="end a session when its login token expires")
    start.add_argument("--principals", default=None, metavar="FILE",
                       help="JSON file mapping identities to database users and roles")
    start.add_argument("--sink", choices=("duckdb", "discard"), default="duckdb",
                       help="discard: parse and count parameter-array rows, store nothing "
                            "(benchmarks)")
    start.add_argument("--env-identity", default="managed-identity",
                       choices=("managed-identity", "service-principal", "certificate",
                                "workload-identity", "all"),
                       help="whose variables the facts line's env holds: one identity's (the "
                            "managed identity's has no secret) with the emulator's CA scoped to "
                            "requests and azsql-bulk's driver; all: every identity and "
                            "SSL_CERT_FILE at once (tests only)")
    start.add_argument("--log-level", default="WARNING", help="Python logging level")
    start.set_defaults(handler=start_command)


# import name -> distribution of the emulator's own dependencies (its pyproject.toml)
DEPENDENCIES = {"duckdb": "duckdb", "sqlglot": "sqlglot", "cryptography": "cryptography",
                "jwt": "PyJWT", "pyarrow": "pyarrow", "numpy": "numpy"}
EXIT_USAGE = 2


def missing_dependency(exc: ImportError) -> str | None:
    """The distribution whose absence ``exc`` reports, if it is one the emulator needs.

    >>> missing_dependency(ModuleNotFoundError("No module named 'duckdb'", name="duckdb"))
    'duckdb'
    >>> missing_dependency(ImportError("cannot import name 'x'", name="azsql_emulator.app"))
    """
    top = (exc.name or "").partition(".")[0]
    return DEPENDENCIES.get(top)


def start_command(args: argparse.Namespace) -> int:
    try:
        # duckdb, sqlglot, cryptography and PyJWT load here, not when the command registers
        from azsql_emulator.app import Emulator
    except ImportError as exc:
        needed = missing_dependency(exc)
        if needed is None:  # a bug in the emulator itself: keep the traceback
            raise
        print(f"emulator: cannot start: the emulator needs {needed}: pip install azsql-emulator "
              "(in this repository: make setup)", file=sys.stderr)
        return EXIT_USAGE

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        emu = Emulator(host=args.host, port=args.port, state_dir=args.state_dir,
                       database=args.database, tls=args.tls, token_lifetime=args.token_lifetime,
                       expire_sessions=args.expire_sessions, principals_file=args.principals,
                       sink=args.sink, env_identity=args.env_identity)
    except (OSError, ValueError) as exc:
        print(f"emulator: cannot start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with emu:
        print(json.dumps(emu.info()), flush=True)
        stop.wait()
    return 0
