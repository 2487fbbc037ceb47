"""Fault scenarios, fast versions (``scripts/soak.py`` runs the same ones 20+ times, larger).

Every scenario runs with both transports, each passed explicitly: parameter arrays and
bulk copy. Every run ends with an exact comparison of the table against its source (rows
expected, found, duplicated, lost, wrong values, read back with pyodbc), with a check that
the fault really happened, and with a check that the rows travelled as asked: the load's
result names the transport, and the emulator's count of bulk-loaded rows is 0 for
parameter arrays and at least the source's rows for bulk copy (so a silent fallback to
parameter arrays cannot pass as bulk copy). Here kills and cuts land at random moments
(``scripts/soak.py`` counts how many cut a bulk load short); a kill, a token expiry, an
error and a throttle put exactly inside a streaming bulk load are emulator tests
(tests/integration/emulator/test_bulk_faults.py).
Already covered elsewhere, not repeated here: SIGTERM then the printed resume command
(tests/integration/cli/test_load_cli.py), an Airflow retry resuming a failed try
(tests/integration/airflow/test_dag_runs.py, test_operator_execute.py).
"""

from __future__ import annotations

import random

import pytest
from loads import AZURE_VARS, CA_VARS
from reliability import scenarios
from reliability.scenarios import Lab, RestartableEmulator

from azsql_emulator.process import EmulatorProcess
from engine.credentials import CredentialOptions

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = [pytest.mark.integration, pytest.mark.reliability]


TRANSPORTS = pytest.mark.parametrize("transport", scenarios.TRANSPORTS)


def assert_exact(outcome: scenarios.Outcome, transport: str) -> None:
    """Exactly the source's rows, carried by ``transport`` (the result says so, and the
    emulator's bulk-load counter agrees: no silent fallback)."""
    assert outcome.exact, outcome
    assert scenarios.transport_problem(outcome, transport) is None, outcome


@TRANSPORTS
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_kill_sessions_during_a_4_worker_load(seed, transport, lab):
    outcome = scenarios.kill_sessions(lab, random.Random(seed), 30_000, workers=4,
                                      rows_per_batch=1_000, transport=transport)
    assert_exact(outcome, transport)
    assert outcome.notes["kill_events"] >= 1 and outcome.notes["sessions_killed"] >= 1


@TRANSPORTS
@pytest.mark.parametrize("number", scenarios.TRANSIENT_NUMBERS)
def test_injected_transient_error_is_replayed_exactly_once(number, transport, lab):
    outcome = scenarios.transient_error(lab, random.Random(number), 20_000, number,
                                        transport=transport)
    assert_exact(outcome, transport)
    assert outcome.notes["not_fired"] == 0  # every injected error was answered to the loader
    assert outcome.notes["retries"] >= 1


@TRANSPORTS
def test_connection_fatal_error_on_the_loads_first_call_is_ridden_out(transport, lab):
    """Before the first batch too: the set-up (session context, table check, journal, the
    bulk-copy probe) is retried on a new connection."""
    outcome = scenarios.error_at_start(lab, random.Random(1), 5_000, 40613,
                                       transport=transport)
    assert_exact(outcome, transport)
    assert outcome.notes["not_fired"] == 0


@TRANSPORTS
@pytest.mark.parametrize("seed", [21, 22])
def test_socket_closed_mid_packet_is_replayed_exactly_once(seed, transport, lab):
    outcome = scenarios.cut_mid_packet(lab, random.Random(seed), 20_000, transport=transport)
    assert_exact(outcome, transport)
    assert outcome.notes["cuts"] == outcome.notes["armed"] >= 1
    assert outcome.notes["retries"] >= 1


@pytest.fixture(scope="module")
def short_tokens():
    """An emulator issuing 3-second tokens that ends sessions whose token expired."""
    with EmulatorProcess(args=["--token-lifetime", "3", "--expire-sessions"]) as emu:
        yield emu


@TRANSPORTS
def test_3_second_tokens_with_expire_sessions_over_a_long_load(short_tokens, driver_path,
                                                                 monkeypatch, transport):
    for name in (*CA_VARS, *AZURE_VARS):
        monkeypatch.delenv(name, raising=False)
    for name, value in short_tokens.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SSL_CERT_FILE", short_tokens.ca_cert)
    lab = Lab(short_tokens, driver_path, CredentialOptions(kind="managed-identity"))
    try:
        # about 9 s: three token lifetimes
        outcome = scenarios.token_expiry(lab, random.Random(3), 16_000, seconds=9.0,
                                         transport=transport)
    finally:
        lab.close()
    assert_exact(outcome, transport)
    assert outcome.notes["token_renewals"] >= 2 and outcome.notes["new_tokens"] >= 3


@pytest.fixture(scope="module")
def restartable(tmp_path_factory):
    emu = RestartableEmulator(tmp_path_factory.mktemp("emu-state"))
    emu.start()
    yield emu
    emu.close()


@TRANSPORTS
@pytest.mark.parametrize("seed", [41])
def test_loader_sigkilled_mid_load_then_resumed(seed, transport, lab, tmp_path):
    outcome = scenarios.loader_sigkill(lab, random.Random(seed), 40_000, tmp_path,
                                       transport=transport)
    assert_exact(outcome, transport)
    assert outcome.notes["exit_code"] == -9 and outcome.notes["killed_after"] is not None
    # the resume skipped what the killed loader had committed, and sent the rest
    assert outcome.notes["skipped_on_resume"] == outcome.notes["journaled"] >= 1
    assert outcome.notes["resumed_rows"] > 0


@TRANSPORTS
@pytest.mark.parametrize(("seed", "down"), [(31, "brief"), (32, "with_loader")])
def test_emulator_killed_and_restarted_mid_load_then_resumed(seed, down, transport,
                                                             restartable, driver_path,
                                                             monkeypatch, tmp_path):
    monkeypatch.setenv("AZSQL_BULK_SQL_PASSWORD", restartable.credentials.sql_password)
    lab = Lab(restartable, driver_path)
    try:
        outcome = scenarios.emulator_restart(lab, random.Random(seed), 40_000, tmp_path,
                                             down=down, transport=transport)
    finally:
        lab.close()
    assert_exact(outcome, transport)
    assert outcome.notes["crashed_after"] is not None  # the crash came mid-load
    # the rerun skipped at least what was committed before the crash (it survived on disk)
    assert outcome.notes["skipped_on_resume"] >= outcome.notes["crashed_after"]
    if down == "with_loader":  # the loader died too; the rerun sent the rest
        assert outcome.notes["child_exit"] == -9 and outcome.notes["resumed_rows"] > 0
    else:
        assert outcome.notes["child_exit"] == 0  # the loader's retries outlasted the restart
        assert outcome.notes["child_transport"] == transport


@TRANSPORTS
def test_throttled_server_with_8_workers_no_errors_and_flat_memory(transport, lab):
    outcome = scenarios.throttled(lab, random.Random(4), 24_000,
                                  bytes_per_second=scenarios.THROTTLE_BYTES_PER_SECOND[transport],
                                  workers=8, rows_per_batch=250, transport=transport)
    assert_exact(outcome, transport)
    notes = outcome.notes
    assert notes["retries"] == 0 and notes["reconnects"] == 0
    assert notes["throttled_seconds"] > 0  # the throttle held requests back
    assert notes["rss_growth_mib"] < 32, notes  # 96 batches: a per-batch leak would show
