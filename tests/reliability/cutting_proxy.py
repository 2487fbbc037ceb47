"""A TCP proxy that cuts a connection in the middle of a packet, on command.

It runs in its own process (turbodbc holds the GIL in some ODBC calls, so a proxy thread in
the loader's process could stall with it). It forwards bytes both ways between the loader
and the emulator; ``cut N`` on stdin arms a cut: when N more client-to-server bytes have
passed (over all connections), the connection carrying that byte forwards only part of the
chunk it just read and both of its sockets are closed. The server sees a truncated TLS
record (a TDS packet cut short); the client sees its link drop (SQLSTATE 08S01).

Usage: ``python cutting_proxy.py TARGET_HOST TARGET_PORT``; the first stdout line is
``port <N>``. Commands on stdin: ``cut <bytes>``, ``stats`` (answers
``stats <bytes> <cuts> <connections>``), ``quit``.
"""

from __future__ import annotations

import socket
import sys
import threading


class CuttingProxy:
    """Forwards loopback connections to ``target``; cuts them at armed byte offsets."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self.upstream_bytes = 0
        self.cuts = 0
        self.connections = 0
        self._armed: list[int] = []  # absolute upstream offsets still to cut at

    def arm(self, after: int) -> None:
        with self._lock:
            self._armed.append(self.upstream_bytes + after)
            self._armed.sort()

    def serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self.connections += 1
            pair = (client, server)
            threading.Thread(target=self._pump, args=(client, server, pair, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, pair, False),
                             daemon=True).start()

    def _keep(self, chunk: bytes) -> int | None:
        """How much of an upstream ``chunk`` to forward before cutting, or None (all)."""
        with self._lock:
            start = self.upstream_bytes
            self.upstream_bytes += len(chunk)
            if not self._armed or self._armed[0] >= self.upstream_bytes:
                return None
            at = self._armed.pop(0) - start
            self.cuts += 1
        # strictly inside the chunk: the peer gets a partial record, never a whole one
        return max(1, min(len(chunk) - 1, at)) if len(chunk) > 1 else 0

    def _pump(self, src: socket.socket, dst: socket.socket, pair: tuple, upstream: bool) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                keep = self._keep(chunk) if upstream else None
                if keep is not None:
                    if keep:
                        dst.sendall(chunk[:keep])
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def main(argv: list[str]) -> int:
    proxy = CuttingProxy((argv[0], int(argv[1])))
    threading.Thread(target=proxy.serve, daemon=True).start()
    print(f"port {proxy.port}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "cut":
            proxy.arm(int(words[1]))
            print("armed", flush=True)
        elif words[0] == "stats":
            with proxy._lock:
                print(f"stats {proxy.upstream_bytes} {proxy.cuts} {proxy.connections}",
                      flush=True)
        elif words[0] == "quit":
            break
    proxy.listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
