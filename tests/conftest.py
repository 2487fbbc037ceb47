"""Shared fixtures: the emulator in-process, and ODBC connection helpers for real clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.driver import find_driver


@pytest.fixture(scope="session")
def driver_path() -> str:
    return str(find_driver().path)

def _start(tmp: Path | None, **kwargs) -> Iterator:
    from azsql_emulator.app import Emulator

    emu = Emulator(state_dir=tmp, **kwargs)
    with emu:
        yield emu

@pytest.fixture(scope="session")
def emu():
    """An emulator with the default TLS policy, in memory, shared by the session's tests."""
    yield from _start(None)

@pytest.fixture(scope="session")
def emu_tls_off():
    """An emulator started with --tls off (also unencrypted and login-only sessions)."""
    yield from _start(None, tls="off")

@pytest.fixture(scope="session")
def emu_proc():
    """The emulator in a child process: needed by turbodbc, which holds the GIL in close()."""
    from azsql_emulator.process import EmulatorProcess

    with EmulatorProcess(args=__import__("os").environ.get("EMU_ARGS", "").split()) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _engine_logger_restored():
    """The CLI's main() configures the ``engine`` logger (its own handler, no propagation);
    tests that call it in-process must not hide later tests' records from caplog."""
    import logging

    logger = logging.getLogger("engine")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
