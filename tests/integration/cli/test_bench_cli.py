"""`azsql-bulk bench` (issue 21) as a real subprocess against the emulator.

The emulator's throttle (``POST /faults {"kind": "throttle"}``) is its log-rate cap: it
answers ``sys.dm_user_db_resource_governance`` with it and ``sys.dm_db_resource_stats``
with the share of it the admitted request bytes used, every 0.5 s here. The
recommendation is checked against the steps' own figures in the JSON, computed here
independently; nothing depends on how fast the machine is (the throttle is what every
step meets, and a step's length is in rows or a few seconds, never asserted on).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import uuid
from pathlib import Path

import pytest
from integration.cli.cli_env import SCRIPT, clean_env, last_json, run_cli, write_parquet
from support import HANG_SECONDS, inject_fault, wait_until

pytest.importorskip("turbodbc")
pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

THROTTLE = 1_500_000  # bytes per second: the emulator's "log-rate cap"
JOURNAL = "[azsql_bulk].[load_journal]"


@pytest.fixture
def throttled(emu_proc):
    """The emulator with a log-rate cap and a resource-stats row every 0.5 s; both reset
    afterwards (the emulator is shared by the session's tests)."""
    inject_fault(emu_proc, kind="throttle", bytes_per_second=THROTTLE)
    inject_fault(emu_proc, kind="resource_stats", interval_seconds=0.5)
    yield emu_proc
    inject_fault(emu_proc, kind="throttle", bytes_per_second=0)
    inject_fault(emu_proc, kind="resource_stats", interval_seconds=15)


@pytest.fixture
def fast_stats(emu_proc):
    """A resource-stats row every 0.5 s (reset afterwards): a step's wait for the row that
    closes its window is then short (at the default 15 s, as on Azure, it is up to 15 s)."""
    inject_fault(emu_proc, kind="resource_stats", interval_seconds=0.5)
    yield emu_proc
    inject_fault(emu_proc, kind="resource_stats", interval_seconds=15)


@pytest.fixture
def schema() -> str:
    """A scratch schema no other test uses."""
    return f"bench_{uuid.uuid4().hex[:8]}"


def scratch_tables(reader, schema: str) -> list[str]:
    rows = reader.execute("SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE "
                          "TABLE_SCHEMA = ?", schema).fetchall()
    return sorted(r[0] for r in rows)


def schema_exists(reader, schema: str) -> bool:
    return reader.execute("SELECT COUNT(*) FROM sys.schemas WHERE name = ?",
                          schema).fetchone()[0] == 1


def journal_rows(reader, run: str) -> int:
    (exists,) = reader.execute("SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE "
                               "TABLE_SCHEMA = 'azsql_bulk' AND TABLE_NAME = 'load_journal'"
                               ).fetchone()
    if not exists:
        return 0
    return int(reader.execute(f"SELECT COUNT(*) FROM {JOURNAL} WHERE load_id LIKE ?",
                              f"bench-{run}-%").fetchone()[0])


def app_args(emu, app) -> tuple[list[str], dict[str, str]]:
    """Connection arguments and environment of a client-secret app of the emulator."""
    env = clean_env(SSL_CERT_FILE=emu.ca_cert, REQUESTS_CA_BUNDLE=emu.ca_cert,
                    AZURE_CLIENT_SECRET=app.client_secret or "")
    return ["--server", f"{emu.tds_host},{emu.tds_port}", "--database", emu.database,
            "--encrypt", "strict", "--server-certificate", emu.server_cert,
            "--host-name-in-certificate", "localhost", "--auth", "service-principal",
            "--client-id", app.client_id, "--tenant-id", emu.tenant_id,
            "--authority-host", emu.authority_host], env


def test_recommends_the_fewest_workers_that_reach_the_cap(throttled, conn_args, sql_env,
                                                          reader, schema, tmp_path):
    chart, page = tmp_path / "bench.png", tmp_path / "bench.html"
    proc = run_cli(["bench", *conn_args, "--schema", schema, "--workers", "1,2,4",
                    "--rows-per-batch", "2000", "--transport", "bulk-copy", "--duration", "4",
                    "--progress", "off", "--json", "--chart", str(chart), "--html", str(page)],
                   sql_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    assert result["status"] == "ok"
    assert result["server"]["log_rate_cap_bytes_per_second"] == THROTTLE
    assert result["server"]["slo_name"] == "Emulator" and result["server"]["unseen"] == []
    steps = result["steps"]
    assert [s["workers"] for s in steps] == [1, 2, 4]
    assert all(s["status"] == "ok" and s["rows"] > 0 for s in steps)
    assert all(s["transport_used"] == "bulk-copy" for s in steps)
    assert all(s["server"]["intervals"] > 0 and s["server"]["log_rate_waits"] is not None
               for s in steps)
    # independently of the command: the fewest workers whose step reached 90 % of the cap
    reaching = sorted(s["workers"] for s in steps
                      if s["server"]["log_write_percent"] is not None
                      and s["server"]["log_write_percent"] >= 90)
    assert reaching, [s["server"] for s in steps]
    answer = result["recommendation"]
    assert answer["basis"] == "log-rate cap"
    assert (answer["workers"], answer["rows_per_batch"], answer["transport"]) == (
        reaching[0], 2000, "bulk-copy")
    picked = next(s for s in steps if s["number"] == answer["step"])
    assert picked["workers"] == reaching[0]
    # log MiB/s is the percentage of the cap
    assert answer["log_mib_per_second"] == pytest.approx(
        picked["server"]["log_write_percent"] / 100 * THROTTLE / 2**20)
    words = f"{reaching[0]} worker{'s' if reaching[0] > 1 else ''}, 2,000 rows per batch, bulk copy"
    assert answer["reason"].startswith(words) and "of the cap" in answer["reason"]
    assert f"Recommendation: {words}" in proc.stderr  # the table and words go to stderr
    # the scratch tables, the schema and the steps' journal rows are gone
    assert scratch_tables(reader, schema) == [] and not schema_exists(reader, schema)
    assert journal_rows(reader, result["settings"]["run"]) == 0
    assert chart.read_bytes().startswith(b"\x89PNG")
    html = page.read_text()
    assert "data:image/png;base64," in html and words in html
    assert sql_env["AZSQL_BULK_SQL_PASSWORD"] not in proc.stdout + proc.stderr + html


def test_without_view_database_state_it_says_what_it_could_not_see(emu_proc, reader, schema):
    loader = emu_proc.credentials.loader_app
    args, env = app_args(emu_proc, loader)
    proc = run_cli(["bench", *args, "--schema", schema, "--workers", "1,2",
                    "--rows-per-batch", "5000", "--rows", "10000", "--progress", "off",
                    "--no-chart", "--json"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    assert [(s["status"], s["rows"]) for s in result["steps"]] == [("ok", 10000)] * 2
    unseen = {u["view"]: u for u in result["server"]["unseen"]}
    assert set(unseen) == {"sys.dm_user_db_resource_governance", "sys.dm_db_resource_stats",
                           "sys.dm_db_wait_stats"}
    grant = f"GRANT VIEW DATABASE STATE TO [{loader.display_name}]"
    for u in unseen.values():
        assert "VIEW DATABASE STATE" in u["why"] and u["fix"] == grant
    assert all(s["server"]["log_write_percent"] is None for s in result["steps"])
    assert result["recommendation"]["basis"] == "throughput"
    assert "could not see the database's log-rate cap" in result["recommendation"]["reason"]
    assert "could not see" in proc.stderr and grant in proc.stderr
    assert scratch_tables(reader, schema) == []
    assert (loader.client_secret or "unset") not in proc.stdout + proc.stderr


def test_refuses_without_ddl_naming_the_grant(emu_proc, reader, schema):
    writer = emu_proc.credentials.writer_app
    args, env = app_args(emu_proc, writer)
    proc = run_cli(["bench", *args, "--schema", schema, "--rows", "1000", "--json"], env)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    assert result["status"] == "permission_denied"
    assert "missing CREATE SCHEMA" in result["error"]
    assert f"ALTER ROLE db_ddladmin ADD MEMBER [{writer.display_name}]" in result["error"]
    assert "refusing to run" in proc.stderr
    assert not schema_exists(reader, schema)


def test_keep_leaves_the_scratch_tables_and_journal_rows(fast_stats, conn_args, sql_env, reader,
                                                         schema):
    proc = run_cli(["bench", *conn_args, "--schema", schema, "--workers", "1,2",
                    "--rows-per-batch", "2500", "--rows", "5000", "--keep", "--progress",
                    "off", "--no-chart", "--json"], sql_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    run = result["settings"]["run"]
    try:
        tables = scratch_tables(reader, schema)
        assert tables == [f"step_{run}_01", f"step_{run}_02"]
        for table in tables:
            assert reader.execute(f"SELECT COUNT(*) FROM [{schema}].[{table}]"
                                  ).fetchone()[0] == 5000
        assert journal_rows(reader, run) == 4  # two batches a step
        assert any("kept (--keep)" in note for note in result["notes"])
    finally:
        for table in scratch_tables(reader, schema):
            reader.execute(f"DROP TABLE [{schema}].[{table}]")
        reader.execute(f"DELETE FROM {JOURNAL} WHERE load_id LIKE ?", f"bench-{run}-%")
        reader.execute(f"DROP SCHEMA [{schema}]")


def test_ctrl_c_stops_the_step_and_drops_the_scratch_tables(fast_stats, conn_args, sql_env,
                                                            reader, schema):
    proc = subprocess.Popen([SCRIPT, "bench", *conn_args, "--schema", schema, "--workers",
                             "1,2", "--rows-per-batch", "2000", "--duration", "600",
                             "--progress", "log", "--progress-interval", "0.2", "--no-chart",
                             "--json"], env=sql_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []  # stderr, as it comes
    out: list[str] = []
    readers = [threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                                daemon=True),
               threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, "")),
                                daemon=True)]
    for reader_thread in readers:
        reader_thread.start()
    try:
        def loading() -> bool:  # step 1's table holds rows (step 0 is the permission probe)
            tables = [t for t in scratch_tables(reader, schema) if t.endswith("_01")]
            return bool(tables) and reader.execute(
                f"SELECT COUNT(*) FROM [{schema}].[{tables[0]}]").fetchone()[0] > 0
        assert wait_until(loading), "".join(lines)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=HANG_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for reader_thread in readers:
        reader_thread.join(HANG_SECONDS)
    stdout = "".join(out)
    assert proc.returncode == 130, stdout[-2000:] + "".join(lines)[-3000:]
    result = json.loads([line for line in stdout.splitlines() if line.strip()][-1])
    assert result["status"] == "stopped" and result["exit_code"] == 130
    assert [s["status"] for s in result["steps"]] == ["stopped"]  # the second never started
    assert result["steps"][0]["rows"] > 0
    assert scratch_tables(reader, schema) == [] and not schema_exists(reader, schema)
    assert journal_rows(reader, result["settings"]["run"]) == 0
    assert any("SIGINT: stopping the step" in line for line in lines)
    # the stopped step loaded rows: it is reported as such, not as "no step loaded a row"
    said = "".join(lines)
    assert "No step loaded a row" not in said and result["recommendation"] is None
    rows = f"{result['steps'][0]['rows']:,}"
    assert f"the run was stopped during step 1 (stopped after {rows} rows" in said, said[-2000:]
    assert any(f"stopped after {rows} rows" in note for note in result["notes"])


def test_a_missing_matplotlib_is_explained_not_fatal(fast_stats, conn_args, sql_env, schema,
                                                     tmp_path):
    # a sitecustomize that hides matplotlib, as if the bench extra were not installed
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nsys.modules['matplotlib'] = None\n")
    env = dict(sql_env, PYTHONPATH=str(hide))
    proc = run_cli(["bench", *conn_args, "--schema", schema, "--workers", "1",
                    "--rows-per-batch", "1000", "--rows", "1000", "--progress", "off",
                    "--chart", str(tmp_path / "c.png"), "--json"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    assert result["chart"] is None and not Path(tmp_path / "c.png").exists()
    assert any("pip install 'azsql-bulk[bench]'" in note for note in result["notes"])
    assert "pip install 'azsql-bulk[bench]'" in proc.stderr


def test_a_sample_of_your_own_files(fast_stats, conn_args, sql_env, reader, schema, tmp_path):
    write_parquet(tmp_path / "data", files=2, rows_per_file=1500)
    proc = run_cli(["bench", *conn_args, "--schema", schema, "--source",
                    str(tmp_path / "data"), "--workers", "1", "--rows-per-batch", "1000",
                    "--rows", "4000", "--progress", "off", "--no-chart", "--json"], sql_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    assert result["settings"]["source"] == [str(tmp_path / "data")]
    assert result["settings"]["dataset"] is None
    # 3,000 rows in the files, dealt around again to make the step's 4,000
    assert [(s["status"], s["rows"]) for s in result["steps"]] == [("ok", 4000)]
    assert "3,000 rows of your files" in proc.stderr
    assert scratch_tables(reader, schema) == []
    both = run_cli(["bench", *conn_args, "--source", str(tmp_path / "data"), "--dataset",
                    "wide", "--rows", "10"], sql_env)
    assert both.returncode == 2 and "give --source or --dataset, not both" in both.stderr


def test_each_rate_a_step_shows_is_labelled_and_matches_the_table(fast_stats, conn_args,
                                                                   sql_env, schema):
    # the review's run: step 1 (1 worker, 4 commits) has a loading window, step 2 (2 workers,
    # 4 commits) has not, so the table compares both over the whole step
    proc = run_cli(["bench", *conn_args, "--schema", schema, "--workers", "1,2",
                    "--rows", "20000", "--rows-per-batch", "5000", "--sample-rows", "5000",
                    "--no-chart", "--progress", "log", "--json"], sql_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    steps = result["steps"]
    assert [s["rates_over"] for s in steps] == ["whole step", "whole step"]
    for s in steps:
        line = next(x for x in proc.stderr.splitlines()
                    if f"azsql-bulk bench: step {s['number']} ok:" in x)
        # the table's figure is in the step's line, named as what it is over
        table_figure = (f"{s['rows_per_second']:,.0f} rows/s, {s['mb_per_second']:,.2f} MB/s "
                        "over the whole step, set-up included")
        assert table_figure in line, line
        row = re.compile(rf"^\s*{s['number']}\s+{s['workers']}\s+5,000\s.*\s"
                         rf"{s['rows_per_second']:,.0f}\s+{s['mb_per_second']:,.2f}\s")
        assert any(row.match(x) for x in proc.stderr.splitlines()), proc.stderr[-3000:]
    assert "rows/s and MB/s: over each whole step, set-up included" in proc.stderr
    progress_ends = [x for x in proc.stderr.splitlines() if "rows/s average" in x]
    assert progress_ends and all("averages over the whole step, set-up included" in x
                                 for x in progress_ends), progress_ends


def test_a_known_cap_is_never_called_missing(emu_proc, conn_args, sql_env, schema):
    # a cap, and Azure's 15-second stats rows: a one-second step most likely gets none
    inject_fault(emu_proc, kind="throttle", bytes_per_second=THROTTLE)
    try:
        proc = run_cli(["bench", *conn_args, "--schema", schema, "--workers", "1",
                        "--rows", "3000", "--rows-per-batch", "1000", "--no-chart",
                        "--progress", "off", "--json"], sql_env)
    finally:
        inject_fault(emu_proc, kind="throttle", bytes_per_second=0)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = last_json(proc.stdout)
    assert result["server"]["log_rate_cap_bytes_per_second"] == THROTTLE
    (only,) = result["steps"]
    reason = result["recommendation"]["reason"]
    assert "no log-rate cap" not in reason
    if only["server"]["log_write_percent"] is None:  # the usual case: no row in the window
        assert only["server"]["missing"] and "no row" in proc.stderr
        assert "the log-rate cap is 1.4 MiB/s, but the server showed no resource-stats row " \
            "in any step's window" in reason and "--duration" in reason
        assert result["recommendation"]["no_server_figures"] == [1]
    else:  # a row happened to fall inside the step: judged against the cap
        assert "of the cap" in reason or "no step reached 90% of the log-rate cap" in reason


def test_an_existing_schema_gets_a_note_and_keeps_its_tables(fast_stats, conn_args, sql_env,
                                                             reader):
    keep = f"mine_{uuid.uuid4().hex[:8]}"
    reader.execute(f"CREATE TABLE dbo.[{keep}] (id int)")
    try:
        proc = run_cli(["bench", *conn_args, "--schema", "dbo", "--workers", "1", "--rows",
                        "1000", "--rows-per-batch", "1000", "--no-chart", "--progress", "off",
                        "--json"], sql_env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        result = last_json(proc.stdout)
        run = result["settings"]["run"]
        assert any(n.startswith("--schema dbo already exists, so the scratch tables "
                                f"[dbo].[step_{run}_NN] go next to the tables in it")
                   for n in result["notes"]), result["notes"]
        assert "note: --schema dbo already exists" in proc.stderr
        tables = scratch_tables(reader, "dbo")
        assert keep in tables and not [t for t in tables if t.startswith(f"step_{run}_")]
        assert schema_exists(reader, "dbo")
    finally:
        reader.execute(f"DROP TABLE dbo.[{keep}]")
