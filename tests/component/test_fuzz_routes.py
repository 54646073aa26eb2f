"""Property-based fuzzing of every route of docs/openapi.json through the deployed handlers, against moto.

For every generated request: the answer is never a 5xx (storage works here, so a 5xx can only be a crash on
input), but for the 503 a registration gets when DNS does not answer for its callback_url's host; a 4xx carries a
JSON ``error``; and a refused request wrote nothing to the table. Callback URLs are checked against a resolver that
answers from ``hostile.RESOLVED`` (no DNS is asked), with 127.0.0.1 and localhost allowed as on the local stack.
The run is seeded
(the same examples every run, ``FUZZ_EXAMPLES`` in all, 10,000 by default, shared among the targets); a
failing example is kept in .hypothesis/ (not in git) and tried first next time. Each target's counts go to
.local/reliability/ for docs/reliability.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import secrets
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from support.api_events import HOST, SIGNED_AT, SIGNING_KEY, answer_of, http_event
from support.dynamo import RequestCounter
from support.hostile import LOOKED_UP, RESOLVED, FuzzRequest, operations, request_for
from support.reliability import record_fuzz_run

from dlrwatch import observability
from dlrwatch.domain.times import iso
from dlrwatch.providers import sevenio
from dlrwatch.store import NextPoll, Store, due_shard

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = json.loads((ROOT / "docs" / "openapi.json").read_text())
NOW = SIGNED_AT
SIGNED = ("/callbacks/sevenio", "POST", "application/json", "signed")
KNOWN = [("sevenio", "77149843739"), ("bulksms", "1380000001"), ("bulksms-eapi", "123456789:447700900123")]

TARGETS = [(path, method, content_type, "plain") for path, method, content_type, _ in operations(OPENAPI)]
TARGETS.append(SIGNED)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 10_000)
PER_TARGET = math.ceil(EXAMPLES / len(TARGETS))


def operation_of(path: str, method: str) -> dict[str, Any]:
    operation: dict[str, Any] = OPENAPI["paths"][path][method.lower()]
    return operation


# The answer to a registration whose callback_url host DNS did not answer for in time: retried later, never a crash.
DNS_TIMEOUT = (503, {"error": "could not resolve the callback_url host, retry later"})


def resolve(host: str) -> list[str]:
    """DNS as the registration sees it in the fuzzing: ``RESOLVED``, localhost, a ``slow.`` host timing out."""
    if host.startswith("slow."):
        raise TimeoutError(host)
    if host == "localhost":
        return ["127.0.0.1", "::1"]
    if host not in RESOLVED:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return RESOLVED[host]


def target_id(target: tuple[str, str, str | None, str]) -> str:
    path, method, content_type, variant = target
    kind = (content_type or "query").split("/")[-1]
    return f"{method} {path} {kind}" + (" signed" if variant == "signed" else "")


@pytest.fixture
def quiet_handlers(handlers: dict[str, Any], store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The handlers, for thousands of requests: no metric lines, no log lines, and time enough on moto."""
    # Timing is not under test: in-process moto writes ~30 a second, DynamoDB hundreds of times more.
    service = handlers["callback"].service
    monkeypatch.setattr(service, "settings", dataclasses.replace(service.settings, answer_within_seconds=60.0))
    senders = handlers["messages"].service
    allowed = frozenset({"127.0.0.1", "localhost"})
    monkeypatch.setattr(senders, "settings", dataclasses.replace(senders.settings, forward_allowed_hosts=allowed))
    monkeypatch.setattr(senders, "resolve", resolve)
    monkeypatch.setenv("FORWARD_SIGNING_KEY", "fuzz-forward-key")
    monkeypatch.setattr(observability, "DISABLED", True)
    for provider, message_id in KNOWN:  # so that reads and lookups find something
        first = NextPoll(iso(NOW), 0)
        shard = due_shard(provider, message_id, 8)
        store.register(provider, message_id, NOW, LOOKED_UP, first, shard, NOW, recipient_key=LOOKED_UP)
    observability.logger.setLevel("CRITICAL")
    yield handlers
    observability.logger.setLevel("INFO")


def signed(request: FuzzRequest, nonce: str) -> FuzzRequest:
    """The request as seven.io would sign it: parsing must then see the body, however odd."""
    timestamp = str(int(NOW.timestamp()))
    url = f"https://{HOST}{request.path}" + (f"?{request.query}" if request.query else "")
    body_md5 = hashlib.md5(request.body, usedforsecurity=False).hexdigest()
    signature = sevenio.sign(SIGNING_KEY, timestamp, nonce, request.method, url, body_md5)
    headers = request.headers | {"x-signature": signature, "x-timestamp": timestamp, "x-nonce": nonce}
    return dataclasses.replace(request, headers=headers)


@pytest.mark.parametrize("target", TARGETS, ids=target_id)
def test_no_request_gets_a_5xx_and_a_refused_request_stores_nothing(
    target: tuple[str, str, str | None, str],
    quiet_handlers: dict[str, Any],
    requests_sent: RequestCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, method, content_type, variant = target
    if variant == "signed":
        monkeypatch.setenv("SEVENIO_SIGNING_KEY", SIGNING_KEY)
    statuses: Counter[int] = Counter()
    nonces = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=32, max_size=32)

    @seed(20261122 + TARGETS.index(target))  # each target its own examples (the signed one included)
    @settings(
        max_examples=PER_TARGET,
        deadline=None,
        database=DirectoryBasedExampleDatabase(ROOT / ".hypothesis" / "examples"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )
    @given(request=request_for(path, method, content_type, operation_of(path, method)), nonce=nonces)
    def check(request: FuzzRequest, nonce: str) -> None:
        if variant == "signed":
            request = signed(request, nonce + secrets.token_hex(4))
        before = requests_sent.writes
        name, event = http_event(request.method, request.path, request.query, request.headers, request.body)
        status, body = answer_of(quiet_handlers[name], event)
        statuses[status] += 1
        assert status < 500 or (status, body) == DNS_TIMEOUT, f"{status} {body} for {request}"
        if status >= 400:
            assert isinstance(body, dict), body
            assert isinstance(body.get("error"), str), body
            assert requests_sent.writes == before, f"refused ({status}) but wrote: {request}"

    try:
        check()
    finally:
        record_fuzz_run("fuzz-routes", target_id(target), statuses)
    assert statuses[200] > 0, "some generated requests must be valid, or the fuzzing stays shallow"
