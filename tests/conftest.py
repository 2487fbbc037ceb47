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
    from emulator.app import Emulator

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
    from emulator.process import EmulatorProcess

    with EmulatorProcess(args=__import__("os").environ.get("EMU_ARGS", "").split()) as emu:
        yield emu
