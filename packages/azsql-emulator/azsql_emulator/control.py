"""The emulator's control API: JSON over HTTP on loopback (metrics, sessions, faults later)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[[], Any]
PostRoute = Callable[[dict[str, Any]], Any]
MAX_BODY = 1 << 20


class ControlServer:
    """Serve ``GET`` routes that return JSON documents.

    :param routes: GET path -> function returning a JSON-able object.
    :param post_routes: POST path -> function of the JSON body returning a JSON-able object;
        a ValueError it raises becomes a 400 answer.
    :param host: bind address (loopback).
    :param port: 0 for an ephemeral port.
    """

    def __init__(self, routes: dict[str, Route], post_routes: dict[str, PostRoute] | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes = routes
        self._post_routes = post_routes or {}
        handler = self._handler_class()
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="emulator-control",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        routes = self._routes
        post_routes = self._post_routes

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                route = post_routes.get(self.path.split("?", 1)[0].rstrip("/"))
                if route is None:
                    self._send(404, {"error": f"no such endpoint {self.path}",
                                     "endpoints": sorted(post_routes)})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._send(413, {"error": "body too large"})
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                    if not isinstance(body, dict):
                        raise ValueError("the body must be a JSON object")
                    self._send(200, route(body))
                except ValueError as exc:
                    self._send(400, {"error": str(exc)})
                except Exception as exc:  # report, keep serving
                    self._send(500, {"error": f"{type(exc).__name__}: {exc}"})

            def do_GET(self) -> None:
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

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the control API is polled by tests; keep stderr quiet

        return Handler
