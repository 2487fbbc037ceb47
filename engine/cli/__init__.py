"""The ``azsql-bulk`` command line, one module per concern.

- :mod:`engine.cli.app`: the commands (built-in and plug-ins), the parser, ``main``
- :mod:`engine.cli.arguments`: options that can also come from ``AZSQL_BULK_*``, value
  parsers, exit codes
- :mod:`engine.cli.secret_guard`: secrets refused on the command line, scrubbed from output
- :mod:`engine.cli.connection_args`: the connection options ``load`` and ``doctor`` share
- :mod:`engine.cli.load`, :mod:`engine.cli.load_args`, :mod:`engine.cli.dry_run`,
  :mod:`engine.cli.resume`, :mod:`engine.cli.console`: ``azsql-bulk load``
- :mod:`engine.cli.doctor`: ``azsql-bulk doctor``

The console script is ``engine.cli:main``.
"""

from __future__ import annotations

from engine.cli.app import main

__all__ = ["main"]
