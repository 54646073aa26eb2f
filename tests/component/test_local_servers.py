"""Every loopback server of the local stack answers a keep-alive request at once: the provider stand-ins, the
capture server and the local API.

An answer written as headers, then body, on a socket with Nagle's algorithm on waits for the client's delayed ACK
of the headers before the body leaves: about 40 ms a request (measured at 901 ms for the 20 requests below, the
stand-ins' old handler). So each answer leaves in one write, on a socket with TCP_NODELAY.
"""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dlrwatch_local.api import LocalApi
from dlrwatch_local.httpserver import LoopbackServer, RequestHandler
from dlrwatch_local.standins import (
    EAPI_PASSWORD,
    EAPI_USER,
    SEVENIO_KEY,
    TOKEN_ID,
    TOKEN_SECRET,
    CaptureServer,
    ProviderStandIns,
)

REQUESTS = 20
# 20 answers held back by delayed ACKs take 800 ms or more; at once, a few ms each even on a loaded machine.
WITHIN = 0.4
EAPI_FORM = f"username={EAPI_USER}&password={EAPI_PASSWORD}&batch_id=555"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] | None = None


def bulksms_auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{TOKEN_ID}:{TOKEN_SECRET}".encode()).decode()}


@pytest.fixture
def standins() -> Iterator[ProviderStandIns]:
    with ProviderStandIns() as running:
        running.state.sevenio["7001"] = ("DELIVERED", "2026-11-22 11:02:00.000")
        running.state.bulksms["9001"] = ("DELIVERED", None)
        running.state.eapi["555"]["447700900001"] = ("11", "26-11-22 12:01:00")
        yield running


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    with CaptureServer() as running:
        yield running


@pytest.fixture
def api() -> Iterator[LocalApi]:
    def invoke(function: str, event: dict[str, Any]) -> dict[str, Any]:
        return {"statusCode": 200, "body": '{"ok": true}'}

    local = LocalApi(0, invoke)
    local.start()
    yield local
    local.stop()


SERVERS: dict[str, tuple[str, Request]] = {
    "seven.io status": (
        "standins",
        Request("GET", "/sevenio/api/status?msg_id=7001", headers={"X-Api-Key": SEVENIO_KEY}),
    ),
    "EAPI get_report": (
        "standins",
        Request(
            "POST",
            "/eapi/status_reports/get_report/2/2.0",
            EAPI_FORM.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        ),
    ),
    "BulkSMS JSON message": ("standins", Request("GET", "/bulksms/v1/messages/9001", headers=bulksms_auth())),
    "capture server": ("capture", Request("POST", "/elsewhere", b'{"a": 1}', {"Content-Type": "application/json"})),
    "local API": ("api", Request("GET", "/messages/sevenio/7001")),
}


def server_of(kind: str, request: pytest.FixtureRequest) -> LoopbackServer:
    running = request.getfixturevalue(kind)
    server: LoopbackServer = running.server
    return server


def send(connection: http.client.HTTPConnection, request: Request) -> int:
    connection.request(request.method, request.path, body=request.body, headers=request.headers or {})
    answer = connection.getresponse()
    answer.read()
    return answer.status


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_twenty_keep_alive_requests_are_not_held_back_by_delayed_acks(
    name: str, request: pytest.FixtureRequest
) -> None:
    kind, call = SERVERS[name]
    server = server_of(kind, request)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        assert send(connection, call) == 200  # connected, and the server's code paths warm
        sock = connection.sock
        started = time.perf_counter()
        statuses = [send(connection, call) for _ in range(REQUESTS)]
        elapsed = time.perf_counter() - started
        assert connection.sock is sock, "every request on one keep-alive connection"
    finally:
        connection.close()
    assert statuses == [200] * REQUESTS
    assert elapsed < WITHIN, f"{REQUESTS} keep-alive requests took {elapsed * 1000:.0f} ms"


class _Writes:
    """A handler's output stream that counts its writes."""

    def __init__(self, stream: Any, written: Callable[[], None]) -> None:
        self._stream = stream
        self._written = written

    def write(self, data: bytes) -> int:
        self._written()
        return int(self._stream.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_each_answer_leaves_in_one_write_on_a_socket_without_nagle(name: str, request: pytest.FixtureRequest) -> None:
    kind, call = SERVERS[name]
    server = server_of(kind, request)
    writes: list[int] = []
    nodelay: list[int] = []
    lock = threading.Lock()

    class Counted(server.RequestHandlerClass):  # type: ignore[name-defined, misc]
        def setup(self) -> None:
            super().setup()
            nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.wfile = _Writes(self.wfile, self._count)

        def _count(self) -> None:
            with lock:
                writes.append(1)

    assert issubclass(server.RequestHandlerClass, RequestHandler)
    server.RequestHandlerClass = Counted
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        statuses = [send(connection, call) for _ in range(3)]
    finally:
        connection.close()
    assert statuses == [200] * 3
    assert nodelay, "a connection was served"
    assert all(nodelay), "TCP_NODELAY on the connection"
    assert len(writes) == 3, f"{len(writes)} writes for 3 answers"
