"""The local API Gateway over real sockets: it answers what API Gateway (HTTP API) answers, and every request
gets an answer, whatever arrives on the wire.

The handler behind it here is a recorder, so each test sees exactly the event a function would receive.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dlrwatch_local.api import LocalApi
from dlrwatch_local.httpserver import LoopbackServer, RequestHandler

HOST = "127.0.0.1"
WAIT = 10.0  # seconds a socket waits for the server: generous, a loaded machine must pass
TEN_MB = 10 * 1024 * 1024


class Recorder:
    """Stands in for the functions: records each event and answers what it saw."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append((function, event))
        body = event.get("body")
        if event.get("isBase64Encoded") and body is not None:
            received = base64.b64decode(body)
        else:
            received = (body or "").encode()
        seen = {"function": function, "route": event["routeKey"], "received": base64.b64encode(received).decode()}
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(seen)}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def api(recorder: Recorder) -> Iterator[LocalApi]:
    local = LocalApi(0, recorder)
    local.start()
    yield local
    local.stop()


def connect(api: LocalApi) -> socket.socket:
    return socket.create_connection((HOST, api.port), timeout=WAIT)


def read_answer(sock: socket.socket, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer from ``sock``; raises if the server closed the connection without one."""
    answer = http.client.HTTPResponse(sock, method=method)
    answer.begin()
    body = answer.read()
    return answer.status, {k.lower(): v for k, v in answer.getheaders()}, body


def exchange(api: LocalApi, raw: bytes, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    with connect(api) as sock:
        sock.sendall(raw)
        return read_answer(sock, method)


def request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def received(body: bytes) -> bytes:
    return base64.b64decode(json.loads(body)["received"])


# -- methods -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "BREW"])
def test_a_method_without_a_route_is_not_found_like_api_gateway(api: LocalApi, recorder: Recorder, method: str) -> None:
    with connect(api) as sock:
        # /messages has POST, GET and DELETE; a message's path has GET only.
        sock.sendall(request(method, "/messages/sevenio/1", {"Content-Length": "2"}, b"{}"))
        status, headers, body = read_answer(sock, method)
        assert (status, json.loads(body)) == (404, {"message": "Not Found"})
        assert headers["content-type"] == "application/json"
        # the connection carries on: the next request on it is served
        sock.sendall(request("GET", "/messages/sevenio/1"))
        assert read_answer(sock)[0] == 200
    assert [function for function, _ in recorder.events] == ["MessagesFunction"]


def test_head_is_not_found_and_gets_no_body(api: LocalApi) -> None:
    with connect(api) as sock:
        sock.sendall(request("HEAD", "/messages/sevenio/1"))
        status, headers, body = read_answer(sock, "HEAD")
        assert (status, body) == (404, b"")
        assert int(headers["content-length"]) == len(json.dumps({"message": "Not Found"}))
        sock.sendall(request("GET", "/messages/sevenio/1"))  # nothing stray was left on the connection
        assert read_answer(sock)[0] == 200


# -- bodies --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["application/json", "text/plain; charset=utf-8"])
def test_a_body_that_is_not_utf8_reaches_the_function_base64_encoded(
    api: LocalApi, recorder: Recorder, content_type: str
) -> None:
    garbage = b'{"data": "\xff\xfe\xc3("}'
    status, _, body = exchange(
        api,
        request(
            "POST",
            "/callbacks/sevenio?token=x",
            {"Content-Type": content_type, "Content-Length": str(len(garbage))},
            garbage,
        ),
    )
    assert status == 200
    assert received(body) == garbage
    (_, event), *_ = recorder.events
    assert event["isBase64Encoded"] is True


@pytest.mark.parametrize(
    ("content_type", "as_text"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("text/plain", True),
        ("application/xml", True),
        ("application/x-www-form-urlencoded", False),  # API Gateway base64-encodes forms too
        ("application/octet-stream", False),
        (None, False),
    ],
)
def test_bodies_are_text_or_base64_as_api_gateway_delivers_them(
    api: LocalApi, recorder: Recorder, content_type: str | None, as_text: bool
) -> None:
    payload = b'{"msg_id": "1"}'
    headers = {"Content-Length": str(len(payload))} | ({"Content-Type": content_type} if content_type else {})
    status, _, body = exchange(api, request("POST", "/callbacks/sevenio?token=x", headers, payload))
    assert (status, received(body)) == (200, payload)
    (_, event), *_ = recorder.events
    assert event["isBase64Encoded"] is not as_text


@pytest.mark.parametrize("length", ["abc", "-1", "+2", "2.0", "0x2", "1, 2", "\u00b2", ""])
def test_a_malformed_content_length_is_a_bad_request(api: LocalApi, recorder: Recorder, length: str) -> None:
    status, headers, body = exchange(api, request("POST", "/messages", {"Content-Length": length}, b"{}"))
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})
    assert headers.get("connection") == "close", "where the body ends is unknown: the connection cannot go on"
    assert recorder.events == []


def test_a_chunked_body_is_read_whole(api: LocalApi) -> None:
    payload = b'{"messages": [{"provider": "sevenio", "message_id": "1"}]}'
    chunks = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (payload[:10], payload[10:]))
    with connect(api) as sock:
        sock.sendall(request("POST", "/messages", {"Transfer-Encoding": "chunked"}) + chunks + b"0\r\n\r\n")
        status, _, body = read_answer(sock, "POST")
        assert (status, received(body)) == (200, payload)
        sock.sendall(request("GET", "/messages/sevenio/1"))  # the chunks were all consumed, none taken for a request
        assert read_answer(sock)[0] == 200


def test_a_body_over_api_gateways_limit_is_refused_before_it_is_sent(api: LocalApi, recorder: Recorder) -> None:
    # Only the headers go out: the server must answer from the declared length, not wait for 10 MB.
    status, headers, body = exchange(api, request("POST", "/messages", {"Content-Length": str(TEN_MB + 1)}))
    assert (status, json.loads(body)) == (413, {"message": "Request Entity Too Large"})
    assert headers.get("connection") == "close"
    assert recorder.events == []


def test_a_chunked_body_over_the_limit_is_refused(api: LocalApi, recorder: Recorder) -> None:
    chunk = b"x" * (1024 * 1024)
    with connect(api) as sock:
        sock.sendall(request("POST", "/messages", {"Transfer-Encoding": "chunked"}))
        try:
            for _ in range(11):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has refused: its answer is already on the way
        status, _, body = read_answer(sock, "POST")
    assert (status, json.loads(body)) == (413, {"message": "Request Entity Too Large"})
    assert recorder.events == []


def test_a_body_just_under_the_limit_is_delivered(api: LocalApi) -> None:
    payload = b"a" * (TEN_MB - 1)
    headers = {"Content-Type": "text/plain", "Content-Length": str(len(payload))}
    status, _, body = exchange(api, request("POST", "/messages", headers, payload), "POST")
    assert (status, len(received(body))) == (200, len(payload))


def test_a_function_that_raises_is_an_internal_server_error(api: LocalApi, recorder: Recorder) -> None:
    def crash(function: str, event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    api.invoke = crash
    status, _, body = exchange(api, request("GET", "/messages/sevenio/1"))
    assert (status, json.loads(body)) == (500, {"message": "Internal Server Error"})


# -- connections ---------------------------------------------------------------------------------------------


def test_a_burst_of_connections_queues_while_the_server_is_busy(recorder: Recorder) -> None:
    """Connections that arrive while nothing accepts them wait in the listen backlog, and are all served."""
    api = LocalApi(0, recorder)  # bound and listening, but not accepting yet: as busy as a server gets
    sockets: list[socket.socket] = []
    started = False
    try:
        for _ in range(200):
            sockets.append(socket.create_connection((HOST, api.port), timeout=WAIT))
        api.start()
        started = True
        for n, sock in enumerate(sockets):
            sock.sendall(request("GET", f"/messages/sevenio/{n}"))
        assert {read_answer(sock)[0] for sock in sockets} == {200}
    finally:
        for sock in sockets:
            sock.close()
        if started:
            api.stop()
        else:
            api.server.server_close()


def test_keep_alive_answers_are_not_held_back_by_delayed_acks(api: LocalApi) -> None:
    """Answers leave in one write with TCP_NODELAY. Headers and body in two writes without it stall every answer
    on a keep-alive connection by the client's delayed ACK: 40 ms or more, each."""
    connection = http.client.HTTPConnection(HOST, api.port, timeout=WAIT)
    durations = []
    for n in range(50):
        started = time.perf_counter()
        connection.request("POST", "/messages", body=json.dumps({"n": n}), headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        durations.append(time.perf_counter() - started)
        assert answer.status == 200
    connection.close()
    assert statistics.median(durations) < 0.025, f"median {statistics.median(durations) * 1000:.1f} ms per request"


# -- the server base, as other loopback services use it ------------------------------------------------------


class GetOnly(RequestHandler):
    def do_GET(self) -> None:
        self.respond(200, b"hello", {"Content-Type": "text/plain"})


def test_the_server_base_serves_its_methods_and_finds_no_other() -> None:
    with LoopbackServer(GetOnly) as server, socket.create_connection((HOST, server.port), timeout=WAIT) as sock:
        sock.sendall(request("DELETE", "/x", {"Content-Length": "3"}, b"abc"))
        status, _, body = read_answer(sock, "DELETE")
        assert (status, json.loads(body)) == (404, {"message": "Not Found"})
        sock.sendall(request("GET", "/x"))  # the unread body was drained, not taken for a request
        assert read_answer(sock)[0::2] == (200, b"hello")


def test_stopping_the_server_closes_the_connections_it_holds() -> None:
    server = LoopbackServer(GetOnly).start()
    with socket.create_connection((HOST, server.port), timeout=WAIT) as sock:
        sock.sendall(request("GET", "/x"))
        assert read_answer(sock)[0] == 200
        server.stop()
        assert sock.recv(1) == b"", "the idle keep-alive connection is closed, not left to a lingering thread"


class InParts(RequestHandler):
    def do_GET(self) -> None:
        self.send_head(200, {"Content-Type": "text/plain"}, len(b"hello world"))
        for part in (b"hello", b" world"):
            self.wfile.write(part)


def test_a_body_written_by_the_handler_itself_follows_its_head_and_ends_the_connection() -> None:
    with LoopbackServer(InParts) as server, socket.create_connection((HOST, server.port), timeout=WAIT) as sock:
        sock.sendall(request("GET", "/x"))
        status, headers, body = read_answer(sock)
        assert (status, body, headers["connection"]) == (200, b"hello world", "close")
        assert sock.recv(1) == b""
