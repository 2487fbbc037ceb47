"""Thread-safe counters for the identity provider: tokens issued, refusals by reason.

Example::

    metrics = IdentityMetrics()
    metrics.token_issued("uti-1", grant="client_secret")
    metrics.snapshot()["tokens_issued"]  # 1
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

__all__ = ["IdentityMetrics"]


class IdentityMetrics:
    """Counts what the identity provider did; every method may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued = 0
        self._utis: set[str] = set()
        self._by_grant: Counter[str] = Counter()
        self._validations = 0
        self._logins = 0
        self._failures: Counter[str] = Counter()
        self._endpoint_failures: Counter[str] = Counter()
        self._requests: Counter[str] = Counter()

    def token_issued(self, uti: str, *, grant: str) -> None:
        """Count one issued access token.

        :param uti: its unique token id (distinct ids are counted too).
        :param grant: how it was obtained: ``client_secret``, ``certificate``,
            ``federated``, ``managed_identity`` or ``direct`` (``issue_token``).
        """
        with self._lock:
            self._issued += 1
            self._utis.add(uti)
            self._by_grant[grant] += 1

    def validated(self) -> None:
        """Count one access token that passed validation."""
        with self._lock:
            self._validations += 1

    def logged_in(self) -> None:
        """Count one login that resolved to a database principal."""
        with self._lock:
            self._logins += 1

    def refused(self, reason: str) -> None:
        """Count one refused token or login.

        :param reason: the :class:`~azsql_emulator.errors.LoginError` reason.
        """
        with self._lock:
            self._failures[reason] += 1

    def endpoint_failed(self, code: str) -> None:
        """Count one error answered by an HTTP endpoint.

        :param code: e.g. ``AADSTS7000215`` or ``msi_401``.
        """
        with self._lock:
            self._endpoint_failures[code] += 1

    def request(self, route: str) -> None:
        """Count one HTTP request.

        :param route: the route name (``token``, ``msi``, ``discovery``, ``jwks``...).
        """
        with self._lock:
            self._requests[route] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-able copy of every counter."""
        with self._lock:
            return {
                "tokens_issued": self._issued,
                "distinct_uti": len(self._utis),
                "tokens_issued_by_grant": dict(self._by_grant),
                "tokens_validated": self._validations,
                "logins": self._logins,
                "failures_by_reason": dict(self._failures),
                "endpoint_failures": dict(self._endpoint_failures),
                "http_requests": dict(self._requests),
            }

    def __repr__(self) -> str:
        with self._lock:
            failures = sum(self._failures.values())
            return f"IdentityMetrics(tokens_issued={self._issued}, failures={failures})"
