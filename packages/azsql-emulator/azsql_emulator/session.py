"""One client connection: PRELOGIN, TLS, LOGIN7, then requests until the client leaves.

Each session runs in its own thread with its own SQL session (its own DuckDB cursor),
so a transaction's writes stay invisible to other sessions until commit.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any

from azsql_emulator.errors import LoginError, SessionClosed, SqlError
from azsql_emulator.reply import Reply
from azsql_emulator.requests_handler import RequestHandler
from azsql_emulator.tds.constants import Encryption, PacketType
from azsql_emulator.tds.login7 import FedAuthFeature, Login7, decode_fedauth_feature, decode_login7
from azsql_emulator.tds.packet import MessageAssembler, ProtocolError, encode_message
from azsql_emulator.tds.prelogin import Prelogin, decode_prelogin, encode_prelogin, encode_version
from azsql_emulator.tls_policy import TlsPolicy
from azsql_emulator.transport import PlainTransport, TlsSocketTransport, TunnelledTls

if TYPE_CHECKING:
    from azsql_emulator.server import TdsServer
    from azsql_emulator.sql.engine import SqlSession
    from azsql_emulator.tds.packet import Message

log = logging.getLogger("azsql_emulator.session")

# What Azure SQL Database reports as its version: 12.0.2000.8.
SERVER_VERSION = encode_version(12, 0, 2000, 8)
FEATURE_FEDAUTH = 0x02
INITIAL_PACKET_SIZE = 4096
DEFAULT_PACKET_SIZE = 8000  # Azure SQL's packet size when the client asks for none


class Session(threading.Thread):
    """Serve one TDS connection.

    :param server: the owning server (policies, identity, SQL engine, metrics).
    :param sock: the accepted socket.
    :param spid: this session's id.
    :param addr: the client's address.
    """

    def __init__(self, server: TdsServer, sock: socket.socket, spid: int, addr: Any) -> None:
        super().__init__(name=f"tds-session-{spid}", daemon=True)
        self.server = server
        self.sock = sock
        self.spid = spid
        self.addr = addr
        self.transport: PlainTransport = PlainTransport(sock)
        self.assembler = MessageAssembler(max_packet_size=INITIAL_PACKET_SIZE * 8)
        self.packet_size = INITIAL_PACKET_SIZE
        self.encryption = "none"
        self.principal_name: str | None = None
        self.login_name: str | None = None
        self.database: str | None = None
        self.app_name = ""
        self.token_expires: float | None = None
        self.token_issued_at: float | None = None
        self.sql: SqlSession | None = None
        self.started = time.time()
        self._pending: list[Message] = []
        self._killed = False

    # -- public ------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What ``GET /sessions`` shows of this session; ``receiving`` is the request the
        client is still sending (packet type and payload bytes so far, e.g. a bulk load
        streaming in), or None between requests."""
        return {
            "spid": self.spid, "client": f"{self.addr[0]}:{self.addr[1]}",
            "encryption": self.encryption, "principal": self.principal_name,
            "login_name": self.login_name, "database": self.database, "app_name": self.app_name,
            "token_expires": self.token_expires,
            "connected_seconds": round(time.time() - self.started, 3),
            "in_transaction": bool(self.sql and self.sql.in_transaction),
            "receiving": self.receiving(),
        }

    def receiving(self) -> dict[str, int] | None:
        """The message arriving (``type``, ``bytes`` of payload so far), or None.

        Read from another thread (the control API's) without a lock: the two fields may be
        one packet apart, which is all fault injection needs to know (that a bulk load, say,
        is on the wire)."""
        assembler = self.assembler
        kind = assembler._type  # the assembler's own state; it offers no public view of it
        if kind is None:
            return None
        return {"type": kind, "bytes": assembler.buffered}

    def kill(self) -> None:
        """Drop the connection at once, as a failover or network fault would (counted by
        the fault plan when a request was still arriving, e.g. a bulk load)."""
        self._killed = True
        receiving = self.receiving()
        if receiving is not None:
            self.server.faults.killed_receiving(receiving["type"])
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self) -> None:
        try:
            self._serve()
        except ProtocolError as exc:
            self.server.metrics.add("protocol_errors")
            log.warning("session %d: protocol error from %s: %s; closing",
                        self.spid, self.addr, exc)
        except (SessionClosed, ConnectionError, ssl.SSLError, OSError) as exc:
            if not self._killed:
                log.info("session %d closed: %s", self.spid, exc)
                receiving = self.receiving()
                if receiving is not None:  # the link went (or the token expired) mid-request
                    self.server.faults.dropped_receiving(receiving["type"])
        except Exception:  # never let one session take the server down
            log.exception("session %d: internal error; closing", self.spid)
        finally:
            if self.sql is not None:
                try:
                    self.sql.close()  # rolls back an open transaction
                except Exception:
                    log.exception("session %d: closing its SQL session failed", self.spid)
            self.transport.close()
            self.server.unregister(self.spid)

    # -- reading and writing -----------------------------------------------------------------
    def next_message(self) -> Message:
        cpu = time.thread_time()  # not wall time: waiting for the client is not work
        try:
            return self._next_message()
        finally:
            self.server.metrics.add("io_seconds", time.thread_time() - cpu)

    def _next_message(self) -> Message:
        while not self._pending:
            if self.token_expires is not None and self.server.expire_sessions:
                remaining = self.token_expires - time.time()
                if remaining <= 0:
                    raise SessionClosed("the login token expired (--expire-sessions)")
                self.sock.settimeout(remaining)
            try:
                data = self.transport.recv()
            except TimeoutError:
                raise SessionClosed("the login token expired (--expire-sessions)") from None
            if not data:
                raise SessionClosed("client closed the connection")
            self.server.metrics.add("bytes_received", len(data))
            self._pending.extend(self.assembler.feed(data))
        return self._pending.pop(0)

    def send(self, payload: bytes, packet_type: int = PacketType.TABULAR_RESULT) -> None:
        cpu = time.thread_time()
        data = encode_message(packet_type, payload, self.packet_size, spid=self.spid)
        self.server.metrics.add("bytes_sent", len(data))
        self.transport.send(data)
        self.server.metrics.add("io_seconds", time.thread_time() - cpu)

    # -- the state machine -------------------------------------------------------------------
    def _serve(self) -> None:
        first = self.sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise SessionClosed("client closed before PRELOGIN")
        if first[0] == 0x16:  # a TLS ClientHello: TDS 8.0 strict
            self._start_strict()
            login_only = False
        elif first[0] == PacketType.PRELOGIN:
            login_only = self._prelogin_tds7()
        else:
            raise ProtocolError(f"first byte 0x{first[0]:02x} is neither PRELOGIN (0x12) "
                                "nor a TLS handshake (0x16)")
        msg = self.next_message()
        if msg.type != PacketType.LOGIN7:
            raise ProtocolError(f"expected LOGIN7 (0x10), got packet type 0x{msg.type:02x}")
        if login_only:
            # Login-only encryption: the reply and everything after it are clear text.
            assert isinstance(self.transport, TunnelledTls)
            leftover = self.transport.leftover_plain()
            self.transport = PlainTransport(self.sock)
            if leftover:
                self._pending.extend(self.assembler.feed(leftover))
        if not self._login(decode_login7(msg.payload)):
            return
        handler = RequestHandler(self)
        while True:
            handler.handle(self.next_message())

    def _start_strict(self) -> None:
        tls = self.server.strict_context.wrap_socket(self.sock, server_side=True)
        if tls.selected_alpn_protocol() != "tds/8.0":
            raise ProtocolError("strict TLS without ALPN tds/8.0")
        self.sock = tls
        self.transport = TlsSocketTransport(tls)
        self.encryption = "strict"
        msg = self.next_message()
        if msg.type != PacketType.PRELOGIN:
            raise ProtocolError(f"expected PRELOGIN inside TLS, got 0x{msg.type:02x}")
        client = decode_prelogin(msg.payload)
        self.send(encode_prelogin(self._prelogin_reply(client, client.encryption or 0)))

    def _prelogin_tds7(self) -> bool:
        """Answer a TDS 7.x PRELOGIN; set up TLS. Returns True for login-only encryption."""
        msg = self.next_message()
        if msg.type != PacketType.PRELOGIN:
            raise ProtocolError(f"expected PRELOGIN (0x12), got 0x{msg.type:02x}")
        client = decode_prelogin(msg.payload)
        policy = self.server.tls
        if policy is TlsPolicy.STRICT:
            raise SessionClosed("TDS 7.x client refused: the emulator runs with --tls strict "
                                "(connect with Encrypt=strict)")
        requested = client.encryption if client.encryption is not None else Encryption.OFF
        if policy is TlsPolicy.OFF:
            answer = {Encryption.OFF: Encryption.OFF, Encryption.NOT_SUP: Encryption.NOT_SUP}.get(
                Encryption(requested), Encryption.ON)
        else:
            # Full encryption required; a client that cannot do TLS is refused after the reply.
            answer = Encryption.ON if requested == Encryption.ON else Encryption.REQ
        self.send(encode_prelogin(self._prelogin_reply(client, answer)))
        if answer == Encryption.NOT_SUP:
            self.encryption = "none"
            return False
        if requested == Encryption.NOT_SUP:
            raise SessionClosed("client does not support encryption; the emulator requires it "
                                "(start it with --tls off to allow unencrypted sessions)")
        tunnel = TunnelledTls(self.sock, self.server.tunnel_context)
        tunnel.handshake()
        self.transport = tunnel
        if answer == Encryption.OFF and requested == Encryption.OFF:
            self.encryption = "login-only"
            return True
        self.encryption = "tds7-full"
        return False

    def _prelogin_reply(self, client: Prelogin, encryption: int) -> Prelogin:
        return Prelogin(
            version=SERVER_VERSION, encryption=encryption, instopt=b"\x00", threadid_empty=True,
            mars=0, fedauth_required=1 if client.fedauth_required is not None else None)

    # -- login ---------------------------------------------------------------------------------
    def _login(self, login: Login7) -> bool:
        """Authenticate and open the SQL session; reply. Returns False when refused."""
        reply = Reply()
        self.app_name = login.appname
        database = login.database or self.server.default_database
        fedauth: FedAuthFeature | None = None
        for feature in login.features:
            if feature.feature_id == FEATURE_FEDAUTH:
                fedauth = decode_fedauth_feature(feature.data)
        try:
            injected = self.server.faults.take_login_error(database)
            if injected is not None:
                raise injected
            try:
                principal = self._authenticate(login, fedauth, database)
            except LoginError as exc:
                # A valid identity asking for a database that does not exist gets 4060,
                # as Azure answers, not "no user in that database".
                if exc.reason == "unknown_principal" and \
                        self.server.sql.find_database(database) is None:
                    raise SqlError(4060, f'Cannot open database "{database}" requested by '
                                         "the login. The login failed.", 11) from None
                raise
            from azsql_emulator.sql.engine import SessionUser

            self.sql = self.server.sql.open_session(database, SessionUser(
                name=principal.name, login_name=principal.login_name,
                roles=frozenset(principal.roles), spid=self.spid, app_name=self.app_name))
        except LoginError as exc:
            self.server.metrics.login_failed(exc.reason)
            log.info("session %d: login refused (%s): %s", self.spid, exc.reason, exc.message)
            reply.error(exc).done(error=True)
            self.send(reply.payload())
            return False
        except SqlError as exc:  # 4060 unknown database, injected faults and the like
            self.server.metrics.login_failed("database" if exc.number == 4060
                                             else f"error_{exc.number}")
            reply.error(exc).done(error=True)
            self.send(reply.payload())
            return False
        self.principal_name, self.login_name, self.database = (
            principal.name, principal.login_name, database)
        requested = login.packet_size or DEFAULT_PACKET_SIZE
        self.packet_size = min(max(requested, 512), 32767)
        self.assembler.max_packet_size = max(self.packet_size, INITIAL_PACKET_SIZE)
        self.server.metrics.add("logins_ok")
        reply.login_ack(database=database, packet_size=self.packet_size,
                        client_features=[f.feature_id for f in login.features])
        self.send(reply.payload())
        return True

    def _authenticate(self, login: Login7, fedauth: FedAuthFeature | None, database: str) -> Any:
        identity = self.server.identity
        if fedauth is not None:
            if not fedauth.token:
                raise LoginError("Login failed: the federated authentication feature carried no "
                                 "access token.", reason="malformed")
            claims = identity.validate(fedauth.token)
            self.server.metrics.token_seen(claims.uti or str(claims.claims.get("jti", "")))
            principal = identity.principals.resolve(claims, database)
            why = self.server.faults.token_revoked(claims.issued_at,
                                                   (*claims.keys, principal.name))
            if why is not None:
                who = principal.login_name
                raise LoginError(f"Login failed for user '{who}'. " + (
                    "The access token has expired." if why == "expired"
                    else "The principal's access has been revoked."), reason=why)
            self.token_expires = float(claims.expires_at)
            self.token_issued_at = float(claims.issued_at)
            return principal
        if not login.username:
            raise LoginError("Login failed: no credentials were presented (use an access token "
                             "or SQL authentication).", reason="malformed")
        principal = identity.check_sql_login(login.username, login.password, database)
        if self.server.faults.token_revoked(float("-inf"), (principal.name,)) == "revoked":
            raise LoginError(f"Login failed for user '{principal.login_name}'.", reason="revoked")
        return principal
