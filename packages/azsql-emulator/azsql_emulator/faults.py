"""Fault injection (``POST /faults``): the failures a loader meets against Azure, on demand.

Every fault is logged and counted; ``GET /faults`` shows what is pending. Body shapes:

- ``{"kind": "error", "number": 40613, "at": "rpc", "after_rpc_calls": N, "count": k}``:
  after N more RPC calls (server-wide), the next k RPC requests fail with that error.
  Connection-fatal numbers (class 20+: 40613, 40197, 40501, 10928, 10929) end the
  session after the ERROR token, as Azure drops the link; the others (class 16: 49918-
  49920, 37396) fail the request and keep the session. ``"at": "login"`` fails the next
  k logins instead. A bulk load (BULK_LOAD message) counts each of its rows as one call
  and is answered with the error as a whole (nothing of it is stored).
- ``{"kind": "kill_sessions"}``: drop every session's socket (or ``"session_ids": [...]``,
  or ``"random": n`` of them).
- ``{"kind": "expire_tokens"}``: every token issued so far counts as expired: at login,
  and for live sessions when the emulator runs with ``--expire-sessions``.
- ``{"kind": "revoke", "principal": "<name, oid or appid>"}``: later logins fail (18456).
- ``{"kind": "throttle", "bytes_per_second": B}``: request bytes are admitted at B per
  second at most (Azure's log-rate governance slows ingest; it does not fail it).
  ``{"kind": "throttle", "bytes_per_second": 0}`` lifts it.
- ``{"kind": "clear"}``: forget every pending fault, revocation, expiry and throttle.
- ``{"kind": "resource_stats", "interval_seconds": S}``: write a ``sys.dm_db_resource_stats``
  row every S seconds (S > 0, fractional allowed; the default is Azure's 15). Not a fault,
  but set at run time the same way (see ``resource_stats.py``); ``clear`` leaves it alone.

Every kind applies to bulk loads (Driver 18's bulk copy, ``INSERT BULK`` + BULK_LOAD) as to
parameter arrays: a killed or expired session drops its socket even while a bulk load is
still streaming in (``GET /sessions`` shows such a request as ``receiving``: its packet type,
0x07 for a bulk load, and the bytes so far; ``injected`` counts such kills as
``killed_receiving_0x07``, and a session whose link broke mid-request by other causes as
``dropped_receiving_0x07``), and nothing of that load is kept; the throttle
admits a BULK_LOAD message by its bytes like any request
(tests/integration/emulator/test_bulk_faults.py).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from azsql_emulator.errors import SqlError

log = logging.getLogger("azsql_emulator.faults")

# (class, message) SQL Server / Azure SQL send with these numbers.
ERRORS: dict[int, tuple[int, str]] = {
    40613: (20, "Database '{db}' on server 'azsql-emulator' is not currently available. "
                "Please retry the connection later."),
    40501: (20, "The service is currently busy. Retry the request after 10 seconds."),
    40197: (20, "The service has encountered an error processing your request. "
                "Please try again. Error code 4815."),
    10928: (20, "Resource ID : 1. The request limit for the database is 200 and has been "
                "reached."),
    10929: (20, "Resource ID : 1. The request limit for the database is 200 and has been "
                "reached. However, the server is currently too busy."),
    49918: (16, "Cannot process request. Not enough resources to process request."),
    49919: (16, "Cannot process create or update request. Too many create or update "
                "operations in progress."),
    49920: (16, "Cannot process request. Too many operations in progress."),
    37396: (16, "The database '{db}' is not currently available. Please retry later."),
}
FATAL_SEVERITY = 20


@dataclass
class _ErrorFault:
    number: int
    after: int  # RPC calls still to let through
    remaining: int


class FaultPlan:
    """Pending faults, consumed by sessions; thread-safe.

    :param kill: called with ``(session_ids | None, random_n | None)``; returns how many
        sessions it dropped.
    """

    def __init__(self, kill: Any = None) -> None:
        self._lock = threading.Lock()
        self._kill = kill
        self._login_errors: list[int] = []
        self._rpc_errors: list[_ErrorFault] = []
        self.tokens_expired_before: float | None = None
        self.revoked: set[str] = set()
        self._rate = 0.0
        self._bucket_time = time.monotonic()
        self._bucket_debt = 0.0
        self.throttled_seconds = 0.0  # time requests waited for the throttle, all sessions
        self.throttle_waits = 0  # requests that waited (LOG_RATE_GOVERNOR waiting_tasks_count)
        self.throttle_max_wait = 0.0  # the longest single wait, seconds
        self.admitted_bytes = 0  # request bytes let through, all sessions ("log bytes")
        self.on_stats_interval: Any = None  # set by ResourceStats: takes the new interval
        self.counts: Counter[str] = Counter()

    # -- configuration ---------------------------------------------------------------------
    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Apply one ``POST /faults`` body; returns what is pending.

        :raises ValueError: an unknown kind, field or error number (answered with 400).
        """
        kind = body.get("kind")
        allowed = {"error": {"number", "at", "after_rpc_calls", "count"},
                   "kill_sessions": {"session_ids", "random"}, "expire_tokens": set(),
                   "revoke": {"principal"}, "throttle": {"bytes_per_second"}, "clear": set(),
                   "resource_stats": {"interval_seconds"}}
        if kind not in allowed:
            raise ValueError(f"unknown fault kind {kind!r}; one of {sorted(allowed)}")
        extra = set(body) - allowed[kind] - {"kind"}
        if extra:
            raise ValueError(f"fault {kind!r} takes {sorted(allowed[kind])}, not {sorted(extra)}")
        if kind == "resource_stats":
            return self._stats_interval(body.get("interval_seconds"))
        log.warning("fault injected: %s", body)
        result: dict[str, Any] = {}
        with self._lock:
            self.counts[kind] += 1
            if kind == "error":
                number = int(body.get("number", 0))
                if number not in ERRORS:
                    raise ValueError(f"error number {number} is not one of {sorted(ERRORS)}")
                count = int(body.get("count", 1))
                if body.get("at", "rpc") == "login":
                    self._login_errors.extend([number] * count)
                elif body.get("at", "rpc") == "rpc":
                    self._rpc_errors.append(
                        _ErrorFault(number, int(body.get("after_rpc_calls", 0)), count))
                else:
                    raise ValueError("'at' must be 'login' or 'rpc'")
            elif kind == "expire_tokens":
                self.tokens_expired_before = time.time()
            elif kind == "revoke":
                principal = str(body.get("principal") or "").strip()
                if not principal:
                    raise ValueError("revoke needs 'principal' (a name, oid or appid)")
                self.revoked.add(principal.lower())
            elif kind == "throttle":
                self._rate = float(body.get("bytes_per_second", 0))
                self._bucket_time, self._bucket_debt = time.monotonic(), 0.0
            elif kind == "clear":
                self._login_errors.clear()
                self._rpc_errors.clear()
                self.tokens_expired_before = None
                self.revoked.clear()
                self._rate = 0.0
        if kind == "kill_sessions":
            result["killed"] = self._kill(body.get("session_ids"), body.get("random"))
        return {**self.pending(), **result}

    def _stats_interval(self, raw: object) -> dict[str, Any]:
        try:
            seconds = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            seconds = float("nan")
        if not seconds > 0 or seconds == float("inf"):
            raise ValueError(f"resource_stats needs 'interval_seconds' > 0 (e.g. 0.5 or 15), "
                             f"not {raw!r}")
        if self.on_stats_interval is None:
            raise ValueError("resource_stats: this emulator keeps no resource statistics")
        self.on_stats_interval(seconds)
        log.info("resource stats interval set to %s s", seconds)
        return {**self.pending(), "resource_stats_interval_seconds": seconds}

    def log_rate(self) -> float | None:
        """The throttle's bytes per second, or None when no throttle is set."""
        with self._lock:
            return self._rate or None

    def log_counters(self) -> tuple[int, int, float, float]:
        """(bytes admitted, requests that waited, seconds waited, longest wait in seconds),
        all sessions, since start."""
        with self._lock:
            return (self.admitted_bytes, self.throttle_waits, self.throttled_seconds,
                    self.throttle_max_wait)

    def pending(self) -> dict[str, Any]:
        with self._lock:
            return {
                "login_errors": list(self._login_errors),
                "rpc_errors": [vars(f).copy() for f in self._rpc_errors],
                "tokens_expired_before": self.tokens_expired_before,
                "revoked": sorted(self.revoked),
                "throttle_bytes_per_second": self._rate or None,
                "throttled_seconds": round(self.throttled_seconds, 3),
                "injected": dict(self.counts),
            }

    # -- consumption by sessions -----------------------------------------------------------
    @staticmethod
    def error(number: int, database: str) -> SqlError:
        severity, text = ERRORS[number]
        return SqlError(number, text.format(db=database), severity)

    def take_login_error(self, database: str) -> SqlError | None:
        """The next injected login error, if any (consumed)."""
        with self._lock:
            if not self._login_errors:
                return None
            number = self._login_errors.pop(0)
            self.counts[f"login_error_{number}"] += 1
        return self.error(number, database)

    def take_rpc_error(self, calls: int, database: str) -> SqlError | None:
        """Count ``calls`` RPC calls; the error to answer this request with, if one is due."""
        with self._lock:
            if not self._rpc_errors:
                return None
            fault = self._rpc_errors[0]
            if fault.after > 0:
                fault.after -= calls
                if fault.after > 0:
                    return None
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._rpc_errors.pop(0)
            self.counts[f"rpc_error_{fault.number}"] += 1
            number = fault.number
        return self.error(number, database)

    def killed_receiving(self, packet_type: int) -> None:
        """Count a session dropped while a request of ``packet_type`` was still arriving
        (``injected`` then shows ``killed_receiving_0x07`` for a bulk load cut short)."""
        with self._lock:
            self.counts[f"killed_receiving_0x{packet_type:02x}"] += 1

    def dropped_receiving(self, packet_type: int) -> None:
        """Count a session that ended, not by a fault of this plan, while a request of
        ``packet_type`` was still arriving: its link broke or its client left mid-request,
        or its token expired (``--expire-sessions``); ``dropped_receiving_0x07`` for a bulk
        load."""
        with self._lock:
            self.counts[f"dropped_receiving_0x{packet_type:02x}"] += 1

    def token_revoked(self, issued_at: float, keys: tuple[str, ...]) -> str | None:
        """Why a token (by issue time and identity keys) may no longer log in, or None."""
        with self._lock:
            cutoff = self.tokens_expired_before
            if cutoff is not None and issued_at <= cutoff:
                return "expired"
            if any(k.lower() in self.revoked for k in keys if k):
                return "revoked"
        return None

    def admit(self, nbytes: int) -> None:
        """Block until ``nbytes`` fit under the throttle (a shared token bucket)."""
        with self._lock:
            rate = self._rate
            if rate <= 0:
                self.admitted_bytes += nbytes
                return
            now = time.monotonic()
            self._bucket_debt = max(0.0, self._bucket_debt - (now - self._bucket_time) * rate)
            self._bucket_time = now
            self._bucket_debt += nbytes
            wait = min(self._bucket_debt / rate - 1.0, 30.0)  # one second of burst allowed
            if wait > 0:
                self.throttled_seconds += wait
                self.throttle_waits += 1
                self.throttle_max_wait = max(self.throttle_max_wait, wait)
        if wait > 0:
            time.sleep(wait)
        with self._lock:
            self.admitted_bytes += nbytes


def pick_random(ids: list[int], n: int) -> list[int]:
    """``n`` distinct session ids chosen at random (all when fewer)."""
    return random.sample(ids, min(n, len(ids)))
