"""The HTTP server under the local stack's loopback services, with the manners of a real front end.

``http.server`` alone answers methods it has no ``do_`` method for with 501, closes the connection without an
answer when a handler raises, never reads chunked bodies, takes any Content-Length it is given, listens with a
backlog of 5 (connections are reset under load) and writes headers and body separately without TCP_NODELAY, which
stalls every answer on a keep-alive connection by the peer's delayed ACK (about 40 ms). Here:

- every request reaches ``RequestHandler.serve()``, whatever its method; by default it calls ``do_<METHOD>`` when
  the subclass has one and answers 404 ``{"message": "Not Found"}`` otherwise;
- ``read_body()`` reads the whole body, by Content-Length or chunked; a malformed length is a 400, a body over
  ``max_body_bytes`` (API Gateway's 10 MB by default) a 413, and both are answered before the connection closes;
- ``respond()`` sends status line, headers and body in one write, on a socket with TCP_NODELAY (``send_head()``
  sends the head alone, for a handler that writes its body itself, then closes the connection after it);
- ``LoopbackServer`` listens with a backlog of 1024 and, when stopped, closes the connections it still holds.

Use::

    class Handler(RequestHandler):
        def do_POST(self) -> None:
            body = self.read_body()  # a bad or oversized body raises HttpError: answered, connection closed
            self.respond(200, body, {"Content-Type": "application/json"})

    with LoopbackServer(Handler) as server:  # 127.0.0.1, a free port; or LoopbackServer(Handler, port=3000)
        print(server.base_url)
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_GATEWAY_MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit
_MAX_CHUNK_LINE = 4096  # a chunk-size line (hex size and extensions) or a trailer line
_MAX_TRAILERS = 100
LINGER_SECONDS = 2.0


class HttpError(Exception):
    """A request that cannot be served: answered with ``status`` and ``{"message": message}``.

    ``close`` ends the connection after the answer: set when what follows on the connection cannot be trusted to
    start a new request (a body whose end is unknown, or left unread).
    """

    def __init__(self, status: int, message: str | None = None, *, close: bool = False) -> None:
        self.status = int(status)
        self.message = message or _phrase(self.status)
        self.close = close
        super().__init__(f"{self.status} {self.message}")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class RequestHandler(BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 with keep-alive, each request handed to ``serve()``."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # answers leave at once instead of waiting for the peer's delayed ACK
    timeout = 120  # seconds a connection may sit idle, or a body take to arrive, before it is closed
    max_body_bytes = API_GATEWAY_MAX_BODY
    _body: bytes | None = None  # the body once read, for this request
    _answered = False  # whether this request has had its answer
    _unread_input = False  # the connection closes with input unread: see _linger()

    # -- for subclasses -----------------------------------------------------------------------------------

    def serve(self) -> None:
        """Answer one request. By default ``do_<METHOD>``, or 404 when there is none for this method."""
        method = getattr(self, f"do_{self.command}", None)
        if method is None:
            raise HttpError(HTTPStatus.NOT_FOUND)
        method()

    def read_body(self) -> bytes:
        """The request's whole body (``b""`` when it has none); raises HttpError when it cannot be read."""
        if self._body is None:
            self._body = self._read_body()
        return self._body

    def respond(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        """Send the answer in one write: status line, ``headers``, Content-Length, then ``body`` (none to HEAD).

        A ``Connection: close`` header ends the connection after the answer. A peer that went away meanwhile is
        not an error: there is nobody left to answer.
        """
        head = self._head(status, headers, len(body))
        try:
            self.wfile.write(head if self.command == "HEAD" else head + body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_head(self, status: int, headers: Mapping[str, str] | None, length: int) -> None:
        """Send only the status line and headers (with Content-Length ``length``), for a handler that writes the
        body itself to ``self.wfile`` (slowly, in parts). The connection closes after it: whether the whole body
        went out is the handler's to know. Raises what writing raises, for the handler to see a peer gone."""
        self.close_connection = True
        self.wfile.write(self._head(status, headers, length))

    def _head(self, status: int, headers: Mapping[str, str] | None, length: int) -> bytes:
        lines = [f"{self.protocol_version} {int(status)} {_phrase(int(status))}"]
        given = {name.lower() for name in (headers or {})}
        if "date" not in given:
            lines.append(f"Date: {self.date_time_string()}")
        for name, value in (headers or {}).items():
            if any(c in f"{name}{value}" for c in "\r\n\0") or not name:
                raise ValueError(f"header {name!r} cannot be sent")
            if name.lower() == "content-length":
                continue  # always the length of what is sent
            if name.lower() == "connection" and value.lower() == "close":
                self.close_connection = True
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {length}")
        if self.close_connection and "connection" not in given:
            lines.append("Connection: close")
        self._answered = True
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond_error(self, status: int, message: str) -> None:
        """How refused requests are answered: API Gateway's ``{"message": ...}``. Override for another shape."""
        body = json.dumps({"message": message}).encode()
        self.respond(status, body, {"Content-Type": "application/json"})

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: an access log on every request is noise locally, and query strings can carry secrets."""

    # -- the request cycle --------------------------------------------------------------------------------

    def handle_one_request(self) -> None:
        """``BaseHTTPRequestHandler.handle_one_request``, but every method reaches ``serve()``, every failure is
        answered, and a body the handler left unread is drained so that the connection can carry on."""
        self._body = None
        self._answered = False
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline, self.request_version, self.command = "", "", ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return  # parse_request answered through send_error
            try:
                self.serve()
            except HttpError as refused:
                self._refuse(refused)
            except Exception:  # a fault of the handler: answered as a front end would, and shown
                traceback.print_exc()
                self._refuse(HttpError(HTTPStatus.INTERNAL_SERVER_ERROR, close=True))
            if not self._answered:
                print(f"{type(self).__name__}.serve() sent no answer to {self.requestline!r}", file=sys.stderr)
                self._refuse(HttpError(HTTPStatus.INTERNAL_SERVER_ERROR, close=True))
            if not self.close_connection:
                try:
                    self.read_body()  # what the handler left unread must not be taken for the next request
                except HttpError:
                    self.close_connection = True
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True  # a peer that stalls mid-request, or an idle one: nothing to answer

    def _refuse(self, refused: HttpError) -> None:
        self._unread_input = self._unread_input or refused.close
        if self._answered:  # too late for another answer: end the connection instead
            self.close_connection = True
            return
        self.close_connection = self.close_connection or refused.close
        self.respond_error(refused.status, refused.message)

    def finish(self) -> None:
        super().finish()
        if self._unread_input:
            self._linger()

    def _linger(self) -> None:
        """Close after a refused request without losing its answer: closing a socket with unread input resets
        the connection, and the peer's stack may then discard the answer before its client reads it. So stop
        writing, and read what the peer still sends until it closes (for a few seconds at most)."""
        deadline = time.monotonic() + LINGER_SECONDS
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)
            while (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                if not self.connection.recv(65536):
                    return

    def handle_expect_100(self) -> bool:
        """Refuse a body that will not be accepted before the client sends it, else invite it."""
        try:
            self._declared_length()
        except HttpError as refused:
            self.close_connection = self._unread_input = True
            self.respond_error(refused.status, refused.message)
            return False
        return super().handle_expect_100()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Requests ``http.server`` itself refuses (a malformed request line or headers) get the same JSON answer,
        and the connection closes: nothing after a malformed request can be trusted."""
        self.close_connection = self._unread_input = True
        self.respond_error(code, _phrase(code) or (message or "Bad Request"))

    # -- bodies -------------------------------------------------------------------------------------------

    def _declared_length(self) -> int | None:
        """The Content-Length, or None for a chunked body; 0 for none. Raises HttpError for what is refused."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if lengths:  # both: the message's end is ambiguous, the classic request-smuggling shape
                raise HttpError(HTTPStatus.BAD_REQUEST, close=True)
            if ",".join(encodings).strip().lower() != "chunked":
                raise HttpError(HTTPStatus.NOT_IMPLEMENTED, close=True)
            return None
        values = {value.strip() for line in lengths for value in line.split(",")}
        if not values:
            return 0
        value = values.pop()
        if values or not (value.isascii() and value.isdigit()):
            raise HttpError(HTTPStatus.BAD_REQUEST, close=True)
        length = int(value)
        if length > self.max_body_bytes:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large", close=True)
        return length

    def _read_body(self) -> bytes:
        length = self._declared_length()
        if length is None:
            return self._read_chunked()
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise HttpError(HTTPStatus.BAD_REQUEST, close=True)  # the peer closed before sending it all
        return body

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        size_so_far = 0
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise HttpError(HTTPStatus.BAD_REQUEST, close=True)
            size = int(size_text, 16)
            if size == 0:
                break
            size_so_far += size
            if size_so_far > self.max_body_bytes:
                raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "Request Entity Too Large", close=True)
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                raise HttpError(HTTPStatus.BAD_REQUEST, close=True)
            parts.append(chunk)
        for _ in range(_MAX_TRAILERS):  # trailer fields, up to the empty line that ends the message
            if not self._read_line():
                return b"".join(parts)
        raise HttpError(HTTPStatus.BAD_REQUEST, close=True)

    def _read_line(self) -> bytes:
        line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
        if len(line) > _MAX_CHUNK_LINE or not line.endswith(b"\n"):
            raise HttpError(HTTPStatus.BAD_REQUEST, close=True)
        return line.rstrip(b"\r\n")


class LoopbackServer(ThreadingHTTPServer):
    """A thread per connection on ``host`` (127.0.0.1) and ``port`` (0: a free one).

    ``start()`` serves on a thread of its own; ``stop()`` stops listening and closes the connections still open,
    so that no handler thread outlives it waiting for a request that will never come.
    """

    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: bursts of connections queue instead of being reset

    def __init__(self, handler: type[RequestHandler], *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.server_address[0]!s}:{self.port}"

    def start(self, name: str = "http") -> LoopbackServer:
        # Checked for stop() every 0.1 s (http.server's 0.5 s would make every stop wait that long).
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # OSError: already closed by its peer
                connection.shutdown(socket.SHUT_RDWR)  # wakes the handler thread blocked reading it

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)
