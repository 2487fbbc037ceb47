"""The emulator's control API: JSON over HTTP on loopback (metrics, sessions, faults later)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[[], Any]


class ControlServer:
    """Serve ``GET`` routes that return JSON documents.

    :param routes: path -> function returning a JSON-able object.
    :param host: bind address (loopback).
    :param port: 0 for an ephemeral port.
    """

    def __init__(self, routes: dict[str, Route], host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes = routes
        handler = self._handler_class()
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="emulator-control",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        routes = self._routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                route = routes.get(self.path.split("?", 1)[0].rstrip("/") or "/")
                if route is None:
                    self._send(404, {"error": f"no such endpoint {self.path}",
                                     "endpoints": sorted(routes)})
                    return
                try:
                    self._send(200, route())
                except Exception as exc:  # report, keep serving
                    self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the control API is polled by tests; keep stderr quiet

        return Handler
