"""`make run`'s stack under concurrent requests: as on AWS, every request is answered from its own event, and
concurrent writes to one message lose nothing, on the default local DynamoDB.

The stack runs as ``python -m dlrwatch_local`` (``SIMULATE=0``). For the test of answers, its threads switch
every 10 µs instead of every 5 ms: state wrongly shared between concurrent requests then shows within a few
hundred requests instead of tens of thousands.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from support.local_stack import RunningStack, running
from support.provider_times import berlin

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "concurrency-token"
# The stack's entry point, with threads that switch far more often than Python's default: races show sooner.
RACY_ENTRY = "import runpy, sys; sys.setswitchinterval(1e-5); runpy.run_module('dlrwatch_local', run_name='__main__')"


ENV = {
    "CALLBACK_TOKEN": TOKEN,
    "POLL_SCHEDULE": "1h",  # nothing falls due while the test runs: only its own requests write
    "POLL_INTERVAL": "3600",
    "SEVENIO_API_URL": "http://127.0.0.1:9/api",  # never a real provider
    "TABLE_NAME": "dlrwatch-concurrency",
}


@pytest.fixture
def racy_stack(tmp_path: Path) -> Iterator[RunningStack]:
    with running(tmp_path, ENV, ("-c", RACY_ENTRY)) as stack:
        yield stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    with running(tmp_path, ENV) as started:
        yield started


class Client:
    """One HTTP session per thread: requests' sessions are not meant to be shared across threads."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self._local = threading.local()

    @property
    def http(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        session: requests.Session = self._local.session
        return session

    def register(self, message_id: str) -> requests.Response:
        body = {"messages": [{"provider": "sevenio", "message_id": message_id, "recipient": "+491701234567"}]}
        return self.http.post(f"{self.api_url}/messages", json=body, timeout=30)

    def push(self, message_id: str, raw: str, at: datetime) -> requests.Response:
        body = {"webhook_event": "dlr", "data": {"msg_id": message_id, "status": raw, "timestamp": berlin(at)}}
        return self.http.post(f"{self.api_url}/callbacks/sevenio?token={TOKEN}", json=body, timeout=30)

    def read(self, message_id: str) -> requests.Response:
        return self.http.get(f"{self.api_url}/messages/sevenio/{message_id}", timeout=30)


def answered(response: requests.Response) -> tuple[int, Any]:
    return response.status_code, response.json() if response.content else None


def test_concurrent_requests_are_each_answered_from_their_own_event(racy_stack: RunningStack) -> None:
    client = Client(racy_stack.api_url)
    now = datetime.now(UTC)
    known = [f"k{n}" for n in range(20)]
    for message_id in known:
        assert client.register(message_id).status_code == 200

    def register(n: int) -> tuple[str, Any]:
        status, body = answered(client.register(f"r{n}"))
        return f"register r{n}", (status, [r["message_id"] for r in body.get("results", [])] if body else None)

    def push(n: int) -> tuple[str, Any]:
        return f"push p{n}", answered(client.push(f"p{n}", "TRANSMITTED", now))[0]

    def read(n: int) -> tuple[str, Any]:
        status, body = answered(client.read(known[n % len(known)]))
        return f"read {known[n % len(known)]}", (status, body.get("message_id") if body else None)

    requests_per_kind = 60
    work: list[tuple[Callable[[int], tuple[str, Any]], int]] = []
    for n in range(requests_per_kind):
        work += [(register, n), (push, n), (read, n)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = dict(pool.map(lambda job: job[0](job[1]), work))

    expected: dict[str, Any] = {}
    for n in range(requests_per_kind):
        expected[f"register r{n}"] = (200, [f"r{n}"])
        expected[f"push p{n}"] = 200
        expected[f"read {known[n % len(known)]}"] = (200, known[n % len(known)])
    assert {k: v for k, v in answers.items() if v != expected[k]} == {}, "each answer is its own request's"
    # each push stored its own message's report: none was applied to another message in its place
    unreported = [n for n in range(requests_per_kind) if answered(client.read(f"p{n}"))[1].get("status") != "sent"]
    assert unreported == []


def test_concurrent_registration_and_report_of_one_message_lose_nothing(stack: RunningStack) -> None:
    """Each message is registered and given a non-final report at the same moment, from two threads: whichever
    write lands first, the message ends ``sent`` and still due for its first poll. (An engine that lets two
    writes to one item interleave loses one in ten of these, so 120 messages show it; moto writes some 45 items
    a second on a busy 2-core machine, which bounds what the test can afford.)"""
    client = Client(stack.api_url)
    now = datetime.now(UTC)
    messages = [f"m{n}" for n in range(120)]

    def race(message_id: str) -> tuple[int, int]:
        start = threading.Barrier(2)
        codes: dict[str, int] = {}

        def register() -> None:
            start.wait()
            codes["register"] = client.register(message_id).status_code

        def push() -> None:
            start.wait()
            codes["push"] = client.push(message_id, "TRANSMITTED", now).status_code

        threads = [threading.Thread(target=register), threading.Thread(target=push)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return codes["register"], codes["push"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(race, messages))
    assert set(codes) == {(200, 200)}

    with ThreadPoolExecutor(max_workers=4) as pool:
        states = dict(zip(messages, pool.map(lambda m: answered(client.read(m))[1], messages), strict=True))
    lost = {
        m: (s.get("status"), s.get("next_poll_at")) for m, s in states.items() if not s or s.get("status") != "sent"
    }
    undue = [m for m, s in states.items() if s and s.get("next_poll_at") is None]
    assert lost == {}, f"{len(lost)} of {len(messages)} messages lost their report"
    assert undue == [], f"{len(undue)} of {len(messages)} messages lost their due entry"
