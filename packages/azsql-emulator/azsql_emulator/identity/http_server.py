"""HTTPS front end: a threading ``http.server`` on a background thread, TLS by the emulator CA.

The TLS handshake runs on each connection's worker thread (not in ``accept``),
so one slow or hostile client cannot stall the listener. Request lines are
logged at DEBUG without query strings; bodies and headers are never logged.

Example::

    server = HttpsServer(endpoints.handle, server_ssl_context(files))
    server.start()
    print(server.base_url)  # https://127.0.0.1:54321
    server.close()
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from azsql_emulator.identity.endpoints import HttpRequest, HttpResponse

__all__ = ["HttpsServer"]

_LOG = logging.getLogger(__name__)
_MAX_BODY = 1 << 20  # token requests are a few KiB; refuse anything absurd
_HANDSHAKE_TIMEOUT = 10.0
_IO_TIMEOUT = 30.0

Handler = Callable[[HttpRequest], HttpResponse]


class _TlsThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: Handler, context: ssl.SSLContext) -> None:
        self.app = handler
        self.ssl_context = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _RequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(_HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            # Typically a client that does not trust the CA: it aborts the handshake.
            _LOG.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            tls.settimeout(_IO_TIMEOUT)
            _RequestHandler(tls, client_address, self)
        except (ssl.SSLError, OSError) as exc:
            _LOG.debug("connection from %s ended: %s", client_address, exc)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        _LOG.exception("identity provider: error serving %s", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _TlsThreadingServer
    server_version = "azsql-emulator-identity"
    sys_version = ""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > _MAX_BODY:
            self._send(
                HttpResponse(
                    413,
                    {"error": "invalid_request", "error_description": "Request body too large."},
                )
            )
            return
        body = self.rfile.read(length) if length else b""
        request = HttpRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        try:
            response = self.server.app(request)
        except Exception:  # the client must get an answer, the log gets the traceback
            _LOG.exception("identity provider: %s %s failed", self.command, url.path)
            response = HttpResponse(
                500, {"error": "server_error", "error_description": "Internal emulator error."}
            )
        self._send(response)

    def _send(self, response: HttpResponse) -> None:
        body = response.body()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # The query may carry client ids; keep only the path, and only at DEBUG.
        _LOG.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("identity http: " + format, *args)


class HttpsServer:
    """Serve ``handler`` over HTTPS on a background thread.

    :param handler: turns an :class:`HttpRequest` into an :class:`HttpResponse`.
    :param context: the TLS server context.
    :param host: address to listen on.
    :param port: port, 0 for an ephemeral one.
    """

    def __init__(
        self, handler: Handler, context: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._handler = handler
        self._context = context
        self.host = host
        self._requested_port = port
        self._server: _TlsThreadingServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("HttpsServer is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``https://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def start(self) -> None:
        """Bind and start serving on a daemon thread."""
        if self._server is not None:
            return
        self._server = _TlsThreadingServer(
            (self.host, self._requested_port), self._handler, self._context
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"identity-https-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __repr__(self) -> str:
        state = self.base_url if self._server is not None else "stopped"
        return f"HttpsServer({state})"
