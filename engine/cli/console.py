"""What the CLI prints: messages on stderr, one JSON object on stdout, engine logs; all scrubbed.

>>> import io, contextlib
>>> out = io.StringIO()
>>> with contextlib.redirect_stdout(out):
...     emit_json({"status": "ok"})
>>> out.getvalue()
'{"status": "ok"}\\n'
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from engine.cli.secret_guard import ScrubFilter, scrub_text

__all__ = ["configure_logging", "emit_json", "program_name", "say"]


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is now (the live display redirects it)."""

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str) -> None:
    """Send the engine's log records, scrubbed, to stderr at ``level``."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           "%H:%M:%S"))
    handler.addFilter(ScrubFilter())
    root = logging.getLogger("engine")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.captureWarnings(True)


def say(text: str) -> None:
    """Print a message on stderr (stdout is for results)."""
    print(scrub_text(text), file=sys.stderr, flush=True)


def emit_json(payload: dict[str, Any]) -> None:
    """Print ``payload`` as one JSON line on stdout."""
    print(scrub_text(json.dumps(payload, default=str, sort_keys=True)), flush=True)


def program_name() -> str:
    """How the user invoked us, for commands we print (``azsql-bulk`` when unclear)."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if Path(argv0).name == "azsql-bulk" else "azsql-bulk"
