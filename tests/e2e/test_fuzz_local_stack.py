"""Black-box fuzzing of `make run`'s stack over real HTTP: the routes of docs/openapi.json, requests from the same
strategies as the handler fuzzing (tests/support/hostile.py), plus raw requests no HTTP client would send.

Each generated request's message ids are made its own (ids of the strategies' valid pools get the example's
number), so that afterwards every id a refused request carried can be looked up: it must be unknown (404).

Registrations carry callback URLs of every kind; the stack allows 127.0.0.1 and localhost, so the ones it takes
are called on loopback only. A host that is not an IP literal is looked up by the machine's resolver, which has no
outside answers here: the few such URLs are refused (400), or answered 503 when DNS does not answer in time.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from support.hostile import TOKEN, FuzzRequest, operations, request_for
from support.local_stack import ROOT, RunningStack, running
from support.reliability import record_fuzz_run

OPENAPI = json.loads((ROOT / "docs" / "openapi.json").read_text())
EXAMPLES = int(os.environ.get("BLACK_BOX_EXAMPLES") or 1_200)
# The valid ids of the strategies' pools, and how each example makes them its own.
OWN_IDS = {
    "sevenio": ("77149843739", lambda n: str(77_000_000_000 + n)),
    "bulksms": ("1380000001", lambda n: str(13_000_000_000 + n)),
    "bulksms-eapi": ("123456789", lambda n: str(200_000_000 + n)),
}
EAPI_RECIPIENT = "447700900123"
# A registration whose callback_url host DNS did not answer for in time: to be retried, never a crash.
DNS_TIMEOUT = (503, {"error": "could not resolve the callback_url host, retry later"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = {
        "CALLBACK_TOKEN": TOKEN,
        "POLL_SCHEDULE": "1h",  # no poll while fuzzing: only the requests write
        "POLL_INTERVAL": "3600",
        "SEVENIO_API_URL": "http://127.0.0.1:9/api",
        "TABLE_NAME": "dlrwatch-fuzz",
        "FORWARD_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    with running(tmp_path_factory.mktemp("fuzz"), env) as started:
        yield started


def own(request: FuzzRequest, n: int) -> tuple[FuzzRequest, dict[str, str]]:
    """The request with the pools' valid ids replaced by the example's own; and those ids, by provider."""
    body, query, path = request.body, request.query, request.path
    carried: dict[str, str] = {}
    for provider, (pool_id, made) in OWN_IDS.items():
        if pool_id.encode() in body or pool_id in query or pool_id in path:
            carried[provider] = made(n)
        body, query, path = (
            body.replace(pool_id.encode(), made(n).encode()),
            query.replace(pool_id, made(n)),
            path.replace(pool_id, made(n)),
        )
    changed = FuzzRequest(request.method, path, query, request.headers, body)
    return changed, carried


def wire(headers: dict[str, str]) -> dict[str, bytes]:
    """Header values as bytes on the wire (UTF-8), without the characters no client can put in a header."""
    cleaned = {name: value.translate({13: None, 10: None, 0: None}).strip() for name, value in headers.items()}
    return {name: value.encode("utf-8", "replace") for name, value in cleaned.items()}


def stored_ids(provider: str, own_id: str) -> str:
    return f"{own_id}:{EAPI_RECIPIENT}" if provider == "bulksms-eapi" else own_id


def test_no_request_gets_a_5xx_and_no_refused_request_stores_a_message(stack: RunningStack) -> None:
    targets = operations(OPENAPI)
    statuses: Counter[int] = Counter()
    refused_ids: list[tuple[str, str]] = []
    accepted_ids: set[tuple[str, str]] = set()
    http = requests.Session()
    counter = iter(range(1, 10**9))

    @seed(20261123)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=DirectoryBasedExampleDatabase(ROOT / ".hypothesis" / "examples"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=st.sampled_from(targets).flatmap(lambda t: request_for(*t)))
    def check(request: FuzzRequest) -> None:
        sent, carried = own(request, next(counter))
        url = f"{stack.api_url}{sent.path}" + (f"?{sent.query}" if sent.query else "")
        answer = http.request(sent.method, url, data=sent.body or None, headers=wire(sent.headers), timeout=60)
        statuses[answer.status_code] += 1
        try:
            body = answer.json() if answer.status_code >= 400 else None
        except ValueError:
            body = answer.text[:300]  # not JSON: fails below
        assert answer.status_code < 500 or (answer.status_code, body) == DNS_TIMEOUT, (
            f"{answer.status_code} {answer.text[:300]} for {sent}"
        )
        keys = {(p, stored_ids(p, i)) for p, i in carried.items()}
        if answer.status_code >= 400:
            assert isinstance(body, dict), body
            assert isinstance(body.get("error", body.get("message")), str), body
            refused_ids.extend(keys)
        elif sent.method == "POST":
            accepted_ids.update(keys)

    try:
        check()
    finally:
        record_fuzz_run("fuzz-local-stack", "every route, over HTTP", statuses)

    to_check = sorted(set(refused_ids) - accepted_ids)
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = [
            key for key, item in zip(to_check, pool.map(lambda key: stack.get(*key), to_check), strict=True) if item
        ]
    assert found == [], "messages stored from requests that were refused"
    assert len(to_check) > EXAMPLES // 12, "enough refused requests carried an id to look up"
    assert statuses[200] > EXAMPLES // 24, "enough requests were valid for the fuzzing to go deep"


def raw(request_line: str, body: bytes | None = None, *headers: str) -> bytes:
    """A request as bytes; with a body, a Content-Length that is its true length unless ``headers`` give one."""
    lines = [request_line, "Host: x", *headers]
    if body is not None and not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


JSON = "Content-Type: application/json"
RAW = {
    "bad UTF-8 JSON": raw(f"POST /callbacks/sevenio?token={TOKEN} HTTP/1.1", b'{"a":\xff}', JSON),
    "bad UTF-8 registration": raw("POST /messages HTTP/1.1", b"[\xfe\xff]]", JSON),
    "bad Content-Length": raw("POST /messages HTTP/1.1", b"{}", "Content-Length: ten"),
    "negative Content-Length": raw("POST /messages HTTP/1.1", b"{}", "Content-Length: -1"),
    "chunked": raw(
        f"POST /callbacks/bulksms?token={TOKEN} HTTP/1.1", b"2\r\n[]\r\n0\r\n\r\n", JSON, "Transfer-Encoding: chunked"
    ),
    "PUT": raw("PUT /messages HTTP/1.1", b""),
    "DELETE": raw("DELETE /messages/sevenio/1 HTTP/1.1"),
    "OPTIONS": raw("OPTIONS /callbacks/sevenio HTTP/1.1"),
    "BREW": raw("BREW /callbacks/bulksms HTTP/1.1"),
    "unknown path": raw("GET /../../etc/passwd HTTP/1.1"),
    "percent-encoded NUL id": raw("GET /messages/sevenio/%00%0A HTTP/1.1"),
    # Query strings as no client library would send them (requests re-encodes a broken escape and a raw NUL).
    "lookup with a raw + given twice": raw("GET /messages?recipient=+491701234567&recipient=+491701234567 HTTP/1.1"),
    "erasure with broken escapes": raw("DELETE /messages?recipient=%zz%2%ED%A0%80%C0%AB HTTP/1.1"),
    "lookup with a raw NUL": raw("GET /messages?recipient=+49\x00170&next=\x00 HTTP/1.1"),
    "lookup with a non-UTF-8 token": b"GET /messages?recipient=%2B4917012&next=\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(RAW))
def test_a_raw_request_no_client_would_send_is_answered_without_a_5xx(name: str, stack: RunningStack) -> None:
    port = int(stack.api_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(RAW[name])
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    assert status_line.startswith("HTTP/1.1 "), f"no answer: {answer!r}"
    status = int(status_line.split()[1])
    assert status < 500, status_line
    if name == "chunked":
        assert status == 200, "a chunked body is read like any other (here BulkSMS's [] probe)"
    else:
        assert 400 <= status < 500, f"{name} was not refused: {status_line}"
