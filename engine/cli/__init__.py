"""The ``azsql-bulk`` command line, one module per concern.

- :mod:`engine.cli.app`: the commands (built-in and plug-ins), the parser, ``main``
- :mod:`engine.cli.arguments`: options that can also come from ``AZSQL_BULK_*``, value
  parsers, exit codes
- :mod:`engine.cli.secret_guard`: secrets refused on the command line, scrubbed from output
- :mod:`engine.cli.connection_args`: the connection options ``load`` and ``doctor`` share
- :mod:`engine.cli.load`, :mod:`engine.cli.load_args`, :mod:`engine.cli.dry_run`,
  :mod:`engine.cli.resume`, :mod:`engine.cli.console`: ``azsql-bulk load``
- :mod:`engine.cli.doctor`: ``azsql-bulk doctor``

The console script is ``engine.cli:main``. The command owns its process, so before a
command runs it turns transparent huge pages off for it
(:func:`engine.pipeline.disable_transparent_huge_pages`): with them on, pyarrow's
allocator kept memory past the bound ``max_memory_bytes`` documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint

from engine import pipeline
from engine.cli import app

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, *,
         plugins: Iterable[EntryPoint] | None = None) -> int:
    """Entry point of the ``azsql-bulk`` console script; returns the exit code.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    :param plugins: the plug-in commands' entry points (default: the installed ones).
    """
    pipeline.disable_transparent_huge_pages()
    return app.main(argv, plugins=plugins)
