"""Byte transports under a TDS session: plain TCP, TLS first (TDS 8.0), TLS inside PRELOGIN.

TDS 7.x tunnels the TLS handshake inside PRELOGIN packets (MS-TDS 2.2.6.5); once the
handshake is done, TLS records travel bare on the socket. With login-only encryption
the session drops back to clear text after the LOGIN7 message.
"""

from __future__ import annotations

import socket
import ssl
import struct

from azsql_emulator.tds.constants import PacketStatus, PacketType
from azsql_emulator.tds.packet import HEADER_SIZE, ProtocolError

_HEADER = struct.Struct(">BBHHBB")
_RECV = 65536


class PlainTransport:
    """Clear-text TCP."""

    encrypted = False

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv(self) -> bytes:
        """Return the next bytes from the peer; b"" when it closed."""
        return self.sock.recv(_RECV)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class TlsSocketTransport(PlainTransport):
    """TLS from the first byte (TDS 8.0 strict): an ``ssl.SSLSocket``."""

    encrypted = True

    def __init__(self, sock: ssl.SSLSocket) -> None:
        super().__init__(sock)

    def close(self) -> None:
        try:
            self.sock.settimeout(0.5)
            self.sock.unwrap()  # type: ignore[attr-defined]
        except (OSError, ValueError, ssl.SSLError):
            pass
        super().close()


class TunnelledTls(PlainTransport):
    """TLS whose handshake rode inside PRELOGIN packets, then runs bare on the socket.

    :param sock: the TCP socket.
    :param context: server-side context (TLS 1.2 at most: see the wire notes).
    :param pending: bytes already read from the socket after the PRELOGIN reply.
    """

    encrypted = True

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        super().__init__(sock)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self._raw = bytearray()  # bytes read from the socket, not yet consumed

    # -- handshake inside PRELOGIN packets -------------------------------------------------
    def _read_packet(self) -> tuple[int, bytes]:
        while len(self._raw) < HEADER_SIZE:
            self._fill()
        ptype, _status, length, *_ = _HEADER.unpack_from(self._raw, 0)
        if length < HEADER_SIZE:
            raise ProtocolError(f"bad packet length {length} during the TLS handshake")
        while len(self._raw) < length:
            self._fill()
        body = bytes(self._raw[HEADER_SIZE:length])
        del self._raw[:length]
        return ptype, body

    def _fill(self) -> None:
        chunk = self.sock.recv(_RECV)
        if not chunk:
            raise ConnectionError("client closed the connection during the TLS handshake")
        self._raw += chunk

    def handshake(self) -> None:
        """Run the server side of the handshake, reading and writing 0x12 packets."""
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush_wrapped()
                if self._raw and self._raw[0] != PacketType.PRELOGIN:
                    # Some clients send their last flight bare (TLS 1.3 does; we cap at
                    # 1.2, but be lenient): feed raw bytes straight in.
                    self._in.write(bytes(self._raw))
                    self._raw.clear()
                    continue
                ptype, body = self._read_packet()
                if ptype != PacketType.PRELOGIN:
                    raise ProtocolError(f"packet type 0x{ptype:02x} during the TLS handshake; "
                                        "expected PRELOGIN (0x12)") from None
                self._in.write(body)
        self._flush_wrapped()

    def _flush_wrapped(self) -> None:
        data = self._out.read()
        if data:
            header = _HEADER.pack(PacketType.PRELOGIN, PacketStatus.EOM,
                                  HEADER_SIZE + len(data), 0, 0, 0)
            self.sock.sendall(header + data)

    # -- after the handshake: bare TLS records ---------------------------------------------
    def recv(self) -> bytes:
        while True:
            try:
                return self._tls.read(_RECV)
            except ssl.SSLWantReadError:
                if self._raw:
                    self._in.write(bytes(self._raw))
                    self._raw.clear()
                    continue
                chunk = self.sock.recv(_RECV)
                if not chunk:
                    return b""
                self._in.write(chunk)
            except ssl.SSLZeroReturnError:
                return b""

    def send(self, data: bytes) -> None:
        self._tls.write(data)
        out = self._out.read()
        if out:
            self.sock.sendall(out)

    def leftover_plain(self) -> bytes:
        """Bytes after the TLS stream, for login-only encryption: clear text that followed."""
        left = bytes(self._raw)
        self._raw.clear()
        return left


def server_context(cert_file: str, key_file: str, *, alpn: str | None,
                   max_version: ssl.TLSVersion | None) -> ssl.SSLContext:
    """A server-side TLS context with the emulator's certificate.

    :param alpn: protocol to require by ALPN (``tds/8.0`` for strict), or None.
    :param max_version: cap (TLS 1.2 on the tunnelled TDS 7.x path), or None.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if max_version is not None:
        ctx.maximum_version = max_version
    ctx.load_cert_chain(cert_file, key_file)
    # No TLS 1.3 session tickets: with them, Driver 18 (through turbodbc) hung in
    # close() after a prepared statement, waiting on the socket (seen here); tickets
    # buy nothing for a TDS server, whose clients never resume sessions.
    ctx.num_tickets = 0
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx
