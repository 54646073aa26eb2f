"""The poller's HTTP client against a server that answers oddly: what a provider call gets back, or the fault
it is classified as (dlrwatch.pull)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dlrwatch.providers.base import ProviderError
from dlrwatch.pull import MAX_ANSWER_BYTES, ProviderHttp

# What the server answers next: (headers, body).
Answer = tuple[dict[str, str], bytes]


class Odd(BaseHTTPRequestHandler):
    answer: Answer = ({}, b"")
    seen: list[tuple[str, str, Message, bytes]] = []  # noqa: RUF012 - one server per test

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Odd.seen.append((self.command, self.path, self.headers, self.rfile.read(length)))  # any case
        headers, body = Odd.answer
        self.send_response(200)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Odd.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_query_form_and_basic_credentials_are_sent_as_a_provider_expects(server: str) -> None:
    session = ProviderHttp(1).within(30)
    session.get(f"{server}/status", params={"msg_id": "1,2"}, auth=("id", "secret"), headers={"Accept": "x/y"})
    session.post(f"{server}/eapi", data={"username": "u", "password": "p w"})
    (get, path, get_headers, _), (post, _, post_headers, form) = Odd.seen
    assert (get, path) == ("GET", "/status?msg_id=1%2C2")
    assert get_headers["Authorization"] == "Basic aWQ6c2VjcmV0"
    assert get_headers["Accept"] == "x/y"
    assert get_headers["User-Agent"].startswith("dlrwatch/")
    assert (post, form) == ("POST", b"username=u&password=p+w")
    assert post_headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        ("application/json; charset=iso-8859-1", "é".encode("latin-1"), "é"),
        ("application/json", "é".encode(), "é"),
        ("text/plain; charset=no-such-codec", "é".encode(), "é"),
        ("text/plain; charset=utf-8", b"\xff", "\ufffd"),
    ],
)
def test_an_answer_is_read_in_its_declared_charset_or_else_utf8_never_failing(
    server: str, content_type: str, body: bytes, text: str
) -> None:
    Odd.answer = ({"Content-Type": content_type}, body)
    assert ProviderHttp(1).within(30).get(server).text == text


def test_a_compressed_answer_that_inflates_past_the_cap_is_garbage(server: str) -> None:
    Odd.answer = ({"Content-Encoding": "gzip"}, gzip.compress(b"0" * (MAX_ANSWER_BYTES + 1)))
    with pytest.raises(ProviderError) as refused:
        ProviderHttp(1).within(30).get(server)
    assert refused.value.kind == "garbage"
