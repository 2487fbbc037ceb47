"""The TDS listener: accepts connections on loopback and runs one session thread each."""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
import threading
from typing import TYPE_CHECKING, Any

from azsql_emulator.faults import FaultPlan, pick_random
from azsql_emulator.metrics import Metrics
from azsql_emulator.session import Session
from azsql_emulator.tls_policy import TlsPolicy
from azsql_emulator.transport import server_context

if TYPE_CHECKING:
    from azsql_emulator.identity.service import IdentityService
    from azsql_emulator.sql.engine import SqlEngine

log = logging.getLogger("azsql_emulator.server")

FIRST_SPID = 51  # SQL Server gives user sessions ids from 51 up


class TdsServer:
    """Accept TDS connections and hand each to a :class:`~azsql_emulator.session.Session` thread.

    :param host: address to bind.
    :param port: port (0 = ephemeral).
    :param identity: token validation and principal lookup.
    :param sql: the SQL engine sessions run statements on.
    :param tls: accepted encryption modes.
    :param expire_sessions: end a session when its login token expires.
    :param default_database: database for logins that name none.
    :param sink: ``duckdb`` stores parameter-array rows; ``discard`` parses and counts
        them and stores nothing (for big benchmarks).
    """

    def __init__(self, *, host: str, port: int, identity: IdentityService, sql: SqlEngine,
                 tls: TlsPolicy = TlsPolicy.DEFAULT, expire_sessions: bool = False,
                 default_database: str = "master", sink: str = "duckdb") -> None:
        if sink not in ("duckdb", "discard"):
            raise ValueError(f"sink must be 'duckdb' or 'discard', not {sink!r}")
        self.sink = sink
        self.identity = identity
        self.sql = sql
        self.tls = tls
        self.expire_sessions = expire_sessions
        self.default_database = default_database
        self.metrics = Metrics()
        self.faults = FaultPlan(kill=self._kill_for_fault)
        self._listener = socket.create_server((host, port), backlog=128, reuse_port=False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._sessions: dict[int, Session] = {}
        self._lock = threading.Lock()
        self._spids = itertools.count(FIRST_SPID)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="tds-accept", daemon=True)
        self._strict_ctx: ssl.SSLContext | None = None
        self._tunnel_ctx: ssl.SSLContext | None = None

    # TLS contexts are built lazily: the identity service creates the certificate on start.
    @property
    def strict_context(self) -> ssl.SSLContext:
        if self._strict_ctx is None:
            self._strict_ctx = server_context(
                str(self.identity.server_cert_path), str(self.identity.server_key_path),
                alpn="tds/8.0", max_version=None)
        return self._strict_ctx

    @property
    def tunnel_context(self) -> ssl.SSLContext:
        if self._tunnel_ctx is None:
            # TLS 1.3 inside PRELOGIN packets broke a server in the wire notes: cap at 1.2.
            self._tunnel_ctx = server_context(
                str(self.identity.server_cert_path), str(self.identity.server_key_path),
                alpn=None, max_version=ssl.TLSVersion.TLSv1_2)
        return self._tunnel_ctx

    def start(self) -> None:
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                sock, addr = self._listener.accept()
            except OSError:
                if self._closing.is_set():
                    return
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            spid = next(self._spids)
            session = Session(self, sock, spid, addr)
            with self._lock:
                self._sessions[spid] = session
            session.start()

    def unregister(self, spid: int) -> None:
        with self._lock:
            self._sessions.pop(spid, None)

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def sessions_info(self) -> list[dict[str, Any]]:
        with self._lock:
            sessions = list(self._sessions.values())
        return [s.info() for s in sessions]

    def apply_fault(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /faults``: configure the plan; expire live sessions when asked to."""
        result = self.faults.configure(body)
        if body.get("kind") == "expire_tokens" and self.expire_sessions:
            with self._lock:
                live = [s for s in self._sessions.values() if s.token_issued_at is not None]
            for s in live:
                s.kill()
            result["killed"] = len(live)
        return result

    def _kill_for_fault(self, session_ids: list[int] | None, random_n: int | None) -> int:
        with self._lock:
            ids = list(self._sessions)
        if session_ids is not None:
            ids = [i for i in ids if i in {int(x) for x in session_ids}]
        if random_n is not None:
            ids = pick_random(ids, int(random_n))
        with self._lock:
            chosen = [self._sessions[i] for i in ids if i in self._sessions]
        for s in chosen:
            s.kill()
        return len(chosen)

    def kill_sessions(self) -> int:
        """Drop every session's socket at once (fault injection); return how many."""
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.kill()
        return len(sessions)

    def close(self) -> None:
        self._closing.set()
        try:
            # close() alone does not wake a thread blocked in accept() on Linux: the
            # accept loop then held close() up for its whole 5 s join timeout.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        self.kill_sessions()
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            s.join(5)
        self._thread.join(5)
