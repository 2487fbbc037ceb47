"""turbodbc loads Microsoft's real ODBC driver through unixODBC and speaks TDS to a socket."""

import socket
import struct
import threading

import pytest

from engine.connection_string import build_connection_string
from engine.driver import check_driver_loads, find_driver

turbodbc = pytest.importorskip("turbodbc", reason="turbodbc is built by `make setup`")

pytestmark = pytest.mark.integration


def _read_first_packet(listener: socket.socket, out: dict) -> None:
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(120)  # bounds for a hang only
        data = b""
        while len(data) < 8 or len(data) < struct.unpack(">H", data[2:4])[0]:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        out["packet"] = data


def _prelogin_options(payload: bytes) -> dict[int, bytes]:
    """Decode the PRELOGIN option table (MS-TDS 2.2.6.5) independently of the emulator."""
    options, pos = {}, 0
    while payload[pos] != 0xFF:
        token, offset, length = struct.unpack_from(">BHH", payload, pos)
        options[token] = payload[offset:offset + length]
        pos += 5
    return options


def test_turbodbc_sends_prelogin_through_microsoft_driver():
    driver = find_driver()
    check_driver_loads(driver)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(120)
        got: dict = {}
        thread = threading.Thread(target=_read_first_packet, args=(listener, got))
        thread.start()
        conn_str = build_connection_string({
            "Driver": str(driver.path),
            "Server": f"tcp:127.0.0.1,{listener.getsockname()[1]}",
            "Encrypt": "yes", "LoginTimeout": 10,
        })
        with pytest.raises(turbodbc.Error):
            turbodbc.connect(connection_string=conn_str)
        thread.join(120)
    packet = got["packet"]
    ptype, status, length = struct.unpack(">BBH", packet[:4])
    assert ptype == 0x12, f"first packet type 0x{ptype:02x} is not PRELOGIN"
    assert status & 0x01, "PRELOGIN must be a single, final packet"
    assert length == len(packet)
    options = _prelogin_options(packet[8:])
    assert options[0x00][:2] == bytes([0x12, 0x06]) or len(options[0x00]) == 6  # VERSION
    assert options[0x01] == b"\x01", "Encrypt=yes must ask for encryption ON"
