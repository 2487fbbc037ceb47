"""Counters the emulator exposes at ``GET /metrics``; thread-safe."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Metrics:
    """Server-wide counters (logins, bytes, RPC calls, transactions)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.logins_ok = 0
        self.logins_failed: Counter[str] = Counter()
        self.bytes_received = 0
        self.bytes_sent = 0
        self.rpc_calls = 0
        self.sql_batches = 0
        self.commits = 0
        self.rollbacks = 0
        self.protocol_errors = 0
        self.rows_discarded = 0
        self.columnar_rows = 0  # parameter-array rows inserted column-wise (column_insert)
        self.bulk_loads = 0  # BULK_LOAD (0x07) messages
        self.bulk_rows = 0  # rows they inserted
        self.bulk_columnar_rows = 0  # of which decoded and inserted column-wise
        self.busy_seconds = 0.0  # time spent handling requests after login, all sessions
        # CPU seconds of the session threads reading, decrypting and reassembling requests
        # and framing, encrypting and sending replies (outside busy_seconds), all sessions
        self.io_seconds = 0.0
        self.tokens_seen: set[str] = set()  # uti/jti of tokens presented at login
        # Rows that took the row-by-row path (checks' converters, one Python object per
        # value) instead of the column-wise one: parameter-array calls and bulk-load rows
        self.row_path_calls = 0
        self.fallbacks: Counter[str] = Counter()  # reason -> how many runs/loads fell back
        self._fallback_shapes: set[tuple[str, str]] = set()  # (statement, reason) logged

    def add(self, name: str, amount: float = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def login_failed(self, reason: str) -> None:
        with self._lock:
            self.logins_failed[reason] += 1

    def fallback(self, statement: str, reason: str, rows: int) -> bool:
        """Count ``rows`` sent down the row path for ``reason``; True the first time this
        statement shape falls back for this reason (the caller then logs it, once).

        :param statement: the statement (or bulk-load target) text, the shape's key.
        :param reason: why, short and without values (a ``fallbacks`` key).
        :param rows: the calls or rows concerned.
        """
        with self._lock:
            self.row_path_calls += rows
            self.fallbacks[reason] += 1
            key = (statement, reason)
            if key in self._fallback_shapes:
                return False
            if len(self._fallback_shapes) < 10_000:  # bounded: a client inventing shapes
                self._fallback_shapes.add(key)
            return True

    def token_seen(self, token_id: str) -> None:
        with self._lock:
            self.tokens_seen.add(token_id)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "logins_ok": self.logins_ok,
                "logins_failed": dict(self.logins_failed),
                "distinct_tokens": len(self.tokens_seen),
                "bytes_received": self.bytes_received,
                "bytes_sent": self.bytes_sent,
                "rpc_calls": self.rpc_calls,
                "sql_batches": self.sql_batches,
                "commits": self.commits,
                "rollbacks": self.rollbacks,
                "protocol_errors": self.protocol_errors,
                "rows_discarded": self.rows_discarded,
                "columnar_rows": self.columnar_rows,
                "bulk_loads": self.bulk_loads,
                "bulk_rows": self.bulk_rows,
                "bulk_columnar_rows": self.bulk_columnar_rows,
                "row_path_calls": self.row_path_calls,
                "fallbacks": dict(self.fallbacks),
                "busy_seconds": round(self.busy_seconds, 6),
                "io_seconds": round(self.io_seconds, 6),
            }
