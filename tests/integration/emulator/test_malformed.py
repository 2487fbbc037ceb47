"""Malformed TDS from raw sockets: the emulator drops that connection and nothing else.

Every byte here is written by hand from MS-TDS (no emulator codec is reused), so a
codec bug cannot cancel out. After each case, a pyodbc session opened beforehand must
still answer, and a new connection must still log in.
"""

from __future__ import annotations

import socket
import struct
from contextlib import closing

import pytest
from support import HANG_SECONDS, SQL_COPT_SS_ACCESS_TOKEN, odbc_string, token_struct, wait_until

pyodbc = pytest.importorskip("pyodbc")
pytestmark = pytest.mark.integration

PRELOGIN, LOGIN7, SQL_BATCH, REPLY = 0x12, 0x10, 0x01, 0x04
EOM = 0x01
LOGINACK = 0xAD
ERROR_TOKEN = 0xAA


# -- hand-built messages (MS-TDS 2.2.3.1, 2.2.6.4, 2.2.6.5, 2.2.6.7) --------------------------

def packet(ptype: int, payload: bytes, *, status: int = EOM, length: int | None = None,
           packet_id: int = 1) -> bytes:
    size = 8 + len(payload) if length is None else length
    return struct.pack(">BBHHBB", ptype, status, size, 0, packet_id, 0) + payload


def prelogin_payload(encryption: int = 0x02) -> bytes:
    """VERSION and ENCRYPTION options; 0x02 = ENCRYPT_NOT_SUP."""
    options = [(0x00, bytes((18, 0, 0, 0, 0, 0))), (0x01, bytes((encryption,)))]
    offset = 5 * len(options) + 1
    table, data = b"", b""
    for kind, value in options:
        table += struct.pack(">BHH", kind, offset + len(data), len(value))
        data += value
    return table + b"\xff" + data


def _scramble(password: str) -> bytes:
    return bytes((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in password.encode("utf-16-le"))


def login7_payload(user: str, password: str, database: str) -> bytes:
    """A TDS 7.4 LOGIN7 with SQL authentication and no FeatureExt."""
    fields = [("host", "raw-test"), ("user", user), ("password", password), ("app", "raw"),
              ("server", "localhost"), ("ext", ""), ("library", "raw-tds"), ("language", ""),
              ("database", database)]
    fixed = 94
    pairs, data = b"", b""
    for name, value in fields:
        raw = _scramble(value) if name == "password" else value.encode("utf-16-le")
        pairs += struct.pack("<HH", fixed + len(data) if raw else 0, len(raw) // 2)
        data += raw
    tail = b"\x00" * 6 + struct.pack("<HHHHHHI", 0, 0, 0, 0, 0, 0, 0)
    head = struct.pack("<IIIIIIBBBBiI", fixed + len(data), 0x74000004, 4096, 7, 1, 0,
                       0xE0, 0x03, 0x00, 0x00, 0, 0x0409)
    body = head + pairs + tail + data
    assert len(head + pairs + tail) == fixed
    return body


def sql_batch_payload(text: str) -> bytes:
    all_headers = struct.pack("<IIHQI", 22, 18, 2, 0, 1)  # transaction descriptor header
    return all_headers + text.encode("utf-16-le")


def read_message(sock: socket.socket) -> bytes:
    """Read one whole server message; b"" if the server closed first."""
    out = b""
    while True:
        header = _recv_exact(sock, 8)
        if header is None:
            return b""
        _ptype, status, length, *_ = struct.unpack(">BBHHBB", header)
        body = _recv_exact(sock, length - 8)
        if body is None:
            return b""
        out += body
        if status & EOM:
            return out


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def closed_by_server(sock: socket.socket, timeout: float = HANG_SECONDS) -> bool:
    """True once the server has closed: recv returns b"" or the connection was reset."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


# -- fixtures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bystander(emu_tls_off, driver_path):
    """A pyodbc session opened before any bad input; it must survive all of it."""
    token = emu_tls_off.identity.issue_token()
    conn = pyodbc.connect(odbc_string(emu_tls_off, driver_path, encrypt="no"), autocommit=True,
                          timeout=15, attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})
    with closing(conn):
        yield conn


def raw_connect(emu) -> socket.socket:
    sock = socket.create_connection((emu.tds_host, emu.tds_port), timeout=HANG_SECONDS)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def plain_prelogin(sock: socket.socket) -> None:
    sock.sendall(packet(PRELOGIN, prelogin_payload()))
    reply = read_message(sock)
    assert reply, "no PRELOGIN reply"


def raw_login(emu) -> socket.socket:
    creds = emu.identity.credentials
    sock = raw_connect(emu)
    plain_prelogin(sock)
    sock.sendall(packet(LOGIN7, login7_payload(creds.sql_login, creds.sql_password,
                                               emu.database)))
    reply = read_message(sock)
    assert bytes((LOGINACK,)) in reply and reply[0] != ERROR_TOKEN
    return sock


def assert_survivors(emu, bystander, driver_path):
    assert bystander.cursor().execute("SELECT 1").fetchone()[0] == 1
    token = emu.identity.issue_token()
    with closing(pyodbc.connect(odbc_string(emu, driver_path, encrypt="no"), timeout=15,
                                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})
                 ) as fresh:
        assert fresh.cursor().execute("SELECT 2").fetchone()[0] == 2


def wait_for_protocol_errors(emu, at_least):
    return wait_until(lambda: emu.metrics()["protocol_errors"] >= at_least, interval=0.02)


# -- sanity: the hand-built login works -------------------------------------------------------

def test_raw_login_and_batch_work(emu_tls_off):
    with closing(raw_login(emu_tls_off)) as sock:
        sock.sendall(packet(SQL_BATCH, sql_batch_payload("SELECT 7 AS seven")))
        reply = read_message(sock)
    assert reply[0] == 0x81  # COLMETADATA
    assert struct.pack("<i", 7) in reply and reply[-13] == 0xFD  # ends with DONE


# -- bad input before login: each closes the socket, with a protocol error counted -----------

BAD_OPENINGS = {
    # packet length smaller than the 8-byte header
    "length-below-header": packet(PRELOGIN, b"\x00" * 8, length=4),
    # a SQL batch where PRELOGIN must come first
    "batch-before-prelogin": packet(SQL_BATCH, sql_batch_payload("SELECT 1")),
    # an undefined packet type
    "unknown-type": packet(0x55, b"\x00" * 16),
    # random bytes that are neither TDS nor TLS
    "garbage": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    # PRELOGIN whose option table points past the end of the message
    "prelogin-offset-past-end": packet(PRELOGIN, struct.pack(">BHH", 0x00, 200, 6) + b"\xff"),
    # PRELOGIN option table with no terminator
    "prelogin-no-terminator": packet(PRELOGIN, struct.pack(">BHH", 0x00, 5, 6)),
    # a length longer than the packet size the server allows before login
    "oversized-length": packet(PRELOGIN, b"\x00" * 8, length=65535),
}


@pytest.mark.parametrize("name", sorted(BAD_OPENINGS))
def test_bad_opening_is_dropped(emu_tls_off, bystander, driver_path, name):
    before = emu_tls_off.metrics()["protocol_errors"]
    with closing(raw_connect(emu_tls_off)) as sock:
        sock.sendall(BAD_OPENINGS[name])
        assert closed_by_server(sock)
    assert wait_for_protocol_errors(emu_tls_off, before + 1)
    assert_survivors(emu_tls_off, bystander, driver_path)


@pytest.mark.parametrize("name", ["truncated-header", "length-beyond-data"])
def test_truncated_input_then_close(emu_tls_off, bystander, driver_path, name):
    """The client sends part of a packet and hangs up: the session ends quietly."""
    sessions = emu_tls_off.metrics()["sessions"]
    data = {"truncated-header": b"\x12\x01\x00",
            "length-beyond-data": packet(PRELOGIN, prelogin_payload(), length=400)}[name]
    sock = raw_connect(emu_tls_off)
    sock.sendall(data)
    sock.close()
    assert wait_until(lambda: emu_tls_off.metrics()["sessions"] <= sessions, interval=0.02)
    assert_survivors(emu_tls_off, bystander, driver_path)


def test_garbage_after_prelogin(emu_tls_off, bystander, driver_path):
    before = emu_tls_off.metrics()["protocol_errors"]
    with closing(raw_connect(emu_tls_off)) as sock:
        plain_prelogin(sock)
        sock.sendall(b"\xde\xad\xbe\xef" * 64)
        assert closed_by_server(sock)
    assert wait_for_protocol_errors(emu_tls_off, before + 1)
    assert_survivors(emu_tls_off, bystander, driver_path)


def test_garbage_instead_of_tls_handshake(emu, driver_path):
    """Default policy: after ENCRYPT_REQ the server expects TLS inside PRELOGIN packets."""
    token = emu.identity.issue_token()
    with closing(pyodbc.connect(odbc_string(emu, driver_path), timeout=15,
                                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})
                 ) as other:
        with closing(raw_connect(emu)) as sock:
            sock.sendall(packet(PRELOGIN, prelogin_payload(encryption=0x00)))
            assert read_message(sock)
            sock.sendall(packet(PRELOGIN, b"\x16\x03\x01\x00\x05garbage-not-a-client-hello"))
            assert closed_by_server(sock)
        assert other.cursor().execute("SELECT 1").fetchone()[0] == 1


def test_tls_first_byte_then_garbage(emu, driver_path):
    with closing(raw_connect(emu)) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x10" + b"\x00" * 16)
        assert closed_by_server(sock)
    token = emu.identity.issue_token()
    with closing(pyodbc.connect(odbc_string(emu, driver_path), timeout=15,
                                attrs_before={SQL_COPT_SS_ACCESS_TOKEN: token_struct(token)})
                 ) as fresh:
        assert fresh.cursor().execute("SELECT 1").fetchone()[0] == 1


# -- bad LOGIN7 ---------------------------------------------------------------------------

def _login_with(mutate) -> bytes:
    body = bytearray(login7_payload("azsql_admin", "x", "appdb"))
    mutate(body)
    return bytes(body)


BAD_LOGINS = {
    # UserName offset far past the end of the message
    "offset-past-end": lambda b: struct.pack_into("<H", b, 40, 0x7FF0),
    # Database length running past the end
    "length-past-end": lambda b: struct.pack_into("<H", b, 70, 0x3FFF),
    # the Length field claims more than was sent
    "length-field-too-big": lambda b: struct.pack_into("<I", b, 0, 0xFFFF),
    # shorter than the fixed part
    "truncated-fixed-part": lambda b: b.__delitem__(slice(50, None)),
    # FeatureExt flag set with an extension offset pointing nowhere
    "feature-ext-bogus": lambda b: (b.__setitem__(27, 0x10),
                                    struct.pack_into("<HH", b, 56, 0x7000, 4)),
}


@pytest.mark.parametrize("name", sorted(BAD_LOGINS))
def test_malformed_login7_is_dropped(emu_tls_off, bystander, driver_path, name):
    before = emu_tls_off.metrics()["protocol_errors"]
    with closing(raw_connect(emu_tls_off)) as sock:
        plain_prelogin(sock)
        sock.sendall(packet(LOGIN7, _login_with(BAD_LOGINS[name])))
        reply = b""
        try:
            reply = read_message(sock)
        except ConnectionResetError:
            pass
        assert bytes((LOGINACK,)) not in reply
        assert closed_by_server(sock)
    assert wait_for_protocol_errors(emu_tls_off, before + 1)
    assert_survivors(emu_tls_off, bystander, driver_path)


# -- bad input after a good login ------------------------------------------------------------

BAD_REQUESTS = {
    "unknown-type": packet(0x55, b"\x00" * 8),
    "prelogin-after-login": packet(PRELOGIN, prelogin_payload()),
    "all-headers-longer-than-batch": packet(SQL_BATCH, struct.pack("<I", 5000) + b"\x00" * 20),
    "rpc-garbage": packet(0x03, sql_batch_payload("")[:22] + b"\xff\xff\x0b\x00\x00\x00\xe7"),
    "length-below-header": packet(SQL_BATCH, b"", length=3),
}


@pytest.mark.parametrize("name", sorted(BAD_REQUESTS))
def test_malformed_request_after_login(emu_tls_off, bystander, driver_path, name):
    before = emu_tls_off.metrics()["protocol_errors"]
    with closing(raw_login(emu_tls_off)) as sock:
        sock.sendall(BAD_REQUESTS[name])
        assert closed_by_server(sock)
    assert wait_for_protocol_errors(emu_tls_off, before + 1)
    assert_survivors(emu_tls_off, bystander, driver_path)


def test_many_bad_connections_at_once_leave_server_up(emu_tls_off, bystander, driver_path):
    socks = [raw_connect(emu_tls_off) for _ in range(20)]
    for i, sock in enumerate(socks):
        sock.sendall(list(BAD_OPENINGS.values())[i % len(BAD_OPENINGS)])
    for sock in socks:
        assert closed_by_server(sock)
        sock.close()
    assert_survivors(emu_tls_off, bystander, driver_path)
