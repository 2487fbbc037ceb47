"""A loader process for the SIGKILL test: loads Parquet files into the emulator and prints
one line per committed batch, so the parent can kill it mid-load.

Usage: python load_child.py HOST PORT DATABASE SERVER_CERT TABLE LOAD_ID FILE...
(the SQL login's password comes from $AZSQL_BULK_SQL_PASSWORD, the user from
$AZSQL_BULK_SQL_USER; the transport from $LOAD_CHILD_TRANSPORT, default parameter-arrays).
Prints ``done ROWS TRANSPORT`` when the load finished.
"""

from __future__ import annotations

import os
import sys
import threading

from engine.connection import ConnectionOptions, RetryPolicy
from engine.credentials import CredentialOptions
from engine.options import Target, TransferOptions
from engine.sources import SourceOptions
from engine.transfer import transfer


def main(argv: list[str]) -> int:
    host, port, database, cert, table, load_id, *files = argv
    credential = CredentialOptions(kind="sql", sql_user=os.environ["AZSQL_BULK_SQL_USER"])
    target = Target(ConnectionOptions(server=host, port=int(port), database=database,
                                      credential=credential, encrypt="strict",
                                      server_certificate=cert,
                                      host_name_in_certificate="localhost",
                                      # reconnects wait up to 2 minutes for a restarted
                                      # server, however slowly it starts on a busy machine
                                      retry=RetryPolicy(attempts=1_000, total_seconds=120,
                                                        base_delay=0.1, max_delay=0.5)), table)

    lock = threading.Lock()

    def report(progress) -> None:  # called from worker threads
        with lock:
            sys.stdout.write(f"batches {progress.batches}\n")
            sys.stdout.flush()

    transport = os.environ.get("LOAD_CHILD_TRANSPORT", "parameter-arrays")
    result = transfer(files, target, TransferOptions(workers=4, load_id=load_id, progress=report,
                                                     transport=transport),
                      source_options=SourceOptions(rows_per_batch=2_500))
    print(f"done {result.rows} {result.transport}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
