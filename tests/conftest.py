"""Shared fixtures: the emulator in-process, and ODBC connection helpers for real clients."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from engine.driver import find_driver

# Hypothesis: the same examples on every run, and nothing that depends on how busy the
# machine is (CI runs on a loaded 2-core box). Loaded here, before any test module is
# imported, so every @settings(...) in tests/ inherits it; max_examples stays per test.
# HYPOTHESIS_PROFILE=dev picks random examples (and the example database) for exploring.
_LOAD_DEPENDENT = [HealthCheck.too_slow, HealthCheck.data_too_large,
                   HealthCheck.filter_too_much, HealthCheck.large_base_example]
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=_LOAD_DEPENDENT)
settings.register_profile("dev", derandomize=False, deadline=None, print_blob=True,
                          suppress_health_check=_LOAD_DEPENDENT)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
