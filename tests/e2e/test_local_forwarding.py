"""Status callbacks to the sender end to end on `make run`'s stack: a registration with a callback_url, a report,
the publisher's queue, the forwarder's signed POSTs to a receiver on loopback, its retries and its dead letters.

The receiver is this test's own; it checks each signature with the key the stack was given, independently of the
code that signs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
import requests
from dlrwatch_local.httpserver import LoopbackServer, RequestHandler
from support.local_stack import RunningStack, running
from support.provider_times import berlin

pytestmark = pytest.mark.xdist_group("local-forwarding")  # one worker starts the stacks, one after the other

TOKEN = "e2e-callback-token"
KEY = "e2e-forward-key"
CLOSED = "http://127.0.0.1:9"  # the providers' status APIs: nothing is polled here
OUTCOME_WITHIN = 60.0  # generous: a loaded 2-core machine, a retry schedule of seconds


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    answered: int

    @property
    def detail(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found

    def signed_with(self, key: str) -> bool:
        timestamp = self.headers["x-dlrwatch-timestamp"]
        expected = hmac.new(key.encode(), f"{timestamp}.".encode() + self.body, hashlib.sha256).hexdigest()
        given = [part.strip() for part in self.headers["x-dlrwatch-signature"].split(",")]
        return f"v1={expected}" in given


class Receiver:
    """A sender's callback endpoint: answers the statuses it was given, one a POST, then ``then``."""

    def __init__(self, answers: list[int], then: int = 200) -> None:
        self.answers = list(answers)
        self.then = then
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(RequestHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                with receiver._lock:
                    status = receiver.answers.pop(0) if receiver.answers else receiver.then
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    receiver.posts.append(Post(self.path, headers, body, status))
                self.respond(status, b"", {"Content-Type": "text/plain"})

        self.server = LoopbackServer(Handler)

    def url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"

    def __enter__(self) -> Receiver:
        self.server.start("receiver")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()

    def received(self) -> list[Post]:
        with self._lock:
            return list(self.posts)


def env(table: str, **extra: str) -> dict[str, str]:
    return {
        "CALLBACK_TOKEN": TOKEN,
        "FORWARD_SIGNING_KEY": KEY,
        "TABLE_NAME": table,
        "POLL_INTERVAL": "60",
        "SEVENIO_API_URL": CLOSED,
        "BULKSMS_EAPI_URL": CLOSED,
        "BULKSMS_API_URL": CLOSED,
    } | extra


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The stack with `make run`'s own status callback defaults (FORWARD_ALLOWED_HOSTS, FORWARD_RETRY_SCHEDULE)."""
    with running(tmp_path_factory.mktemp("forwarding"), env("dlrwatch-forwarding")) as started:
        yield started


def register(stack: RunningStack, message_id: str, callback_url: str) -> requests.Response:
    body = {
        "messages": [
            {
                "provider": "sevenio",
                "message_id": message_id,
                "sent_at": datetime.now(UTC).isoformat(),
                "callback_url": callback_url,
            }
        ]
    }
    return requests.post(f"{stack.api_url}/messages", json=body, timeout=10)


def push(stack: RunningStack, message_id: str, raw: str) -> None:
    query = {"token": TOKEN, "msg_id": message_id, "status": raw, "timestamp": berlin(datetime.now(UTC))}
    answer = requests.get(f"{stack.api_url}/callbacks/sevenio?{urlencode(query)}", timeout=10)
    assert answer.status_code == 200, answer.text


def until(condition: Callable[[], Any], stack: RunningStack, what: str) -> Any:
    """``condition()``'s first truthy value within OUTCOME_WITHIN seconds."""
    deadline = time.monotonic() + OUTCOME_WITHIN
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.25)
    raise AssertionError(f"no {what} within {OUTCOME_WITHIN:g} s; output:\n{stack.shown()}")


def callback_state(stack: RunningStack, message_id: str) -> dict[str, Any]:
    shown: dict[str, Any] = stack.get("sevenio", message_id).get("callback") or {}
    return shown


def test_a_status_callback_is_retried_signed_under_one_event_id_until_the_sender_takes_it(stack: RunningStack) -> None:
    with Receiver([500, 500]) as receiver:
        answer = register(stack, "3001", receiver.url("/dlr/3001?ref=e2e"))
        assert answer.status_code == 200, answer.text
        push(stack, "3001", "TRANSMITTED")

        until(lambda: any(p.answered == 200 for p in receiver.received()), stack, "callback taken")
        first = receiver.received()
        assert [p.answered for p in first] == [500, 500, 200], "retried after each 500, once taken never again"
        assert all(p.path == "/dlr/3001?ref=e2e" for p in first), "POSTed to the URL as registered"
        assert all(p.headers["content-type"].startswith("application/json") for p in first)
        assert all(p.signed_with(KEY) for p in first), "each attempt signed with the local key"
        event_ids = {p.headers["x-dlrwatch-event-id"] for p in first}
        assert event_ids == {first[0].detail["event_id"]}, "every retry is the same event"
        detail = first[-1].detail
        assert (detail["message_id"], detail["status"]) == ("3001", "sent")

        state = until(lambda: (s := callback_state(stack, "3001")).get("state") == "delivered" and s, stack, "state")
        assert (state["attempts"], state["last_http_status"]) == (3, 200)
        assert state["delivered_sequence"] == detail["sequence"]

        push(stack, "3001", "DELIVERED")
        until(lambda: len(receiver.received()) > len(first), stack, "the second status callback")
        second = receiver.received()[len(first)]
        assert second.detail["status"] == "delivered"
        assert second.detail["sequence"] > detail["sequence"], "a receiver keeps the highest: the newest"
        assert second.headers["x-dlrwatch-event-id"] != first[0].headers["x-dlrwatch-event-id"]
        assert second.signed_with(KEY)
        until(
            lambda: callback_state(stack, "3001").get("delivered_sequence") == second.detail["sequence"],
            stack,
            "the newest delivered sequence",
        )


@pytest.mark.parametrize(
    ("message_id", "callback_url"),
    [("3201", "https://10.0.0.1/x"), ("3202", "http://example.com/x"), ("3203", "https://169.254.169.254/")],
    ids=["private", "not-https-not-allowed", "metadata"],
)
def test_a_callback_url_that_may_not_be_called_refuses_the_registration(
    stack: RunningStack, message_id: str, callback_url: str
) -> None:
    answer = register(stack, message_id, callback_url)
    assert answer.status_code == 400, answer.text
    assert "callback_url" in answer.json()["error"]
    found = requests.get(f"{stack.api_url}/messages/sevenio/{message_id}", timeout=10)
    assert found.status_code == 404, "nothing stored"


def dead_letters(stack: RunningStack) -> list[dict[str, Any]]:
    """The dead-letter queue's messages, read without taking them (visibility 0), found through the banner."""
    banner = re.search(r"dead letters: (\S+) \(SQS at (\S+)\)", stack.shown(20_000))
    assert banner, stack.shown()
    sqs = boto3.client(
        "sqs",
        endpoint_url=banner.group(2),
        region_name="eu-central-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    found: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=banner.group(1), MaxNumberOfMessages=10, VisibilityTimeout=0, WaitTimeSeconds=1
    ).get("Messages", [])
    return found


def test_a_callback_the_sender_always_refuses_ends_in_the_dead_letter_queue(tmp_path: Path) -> None:
    with (
        Receiver([], then=500) as receiver,
        running(tmp_path, env("dlrwatch-dead-letters", FORWARD_RETRY_SCHEDULE="1s,2s")) as stack,
    ):
        assert register(stack, "3101", receiver.url("/dlr")).status_code == 200
        push(stack, "3101", "DELIVERED")

        state = until(
            lambda: (s := callback_state(stack, "3101")).get("state") == "dead-lettered" and s, stack, "dead letter"
        )
        assert (state["attempts"], state["last_http_status"]) == (3, 500), "the first attempt and two retries"
        letters = until(lambda: dead_letters(stack), stack, "a message in the dead-letter queue")
        assert len(letters) == 1
        assert json.loads(letters[0]["Body"])["detail"]["message_id"] == "3101"
        time.sleep(3)  # past the schedule's end: no attempt after the dead letter
        assert [p.answered for p in receiver.received()] == [500, 500, 500]
        assert len({p.headers["x-dlrwatch-event-id"] for p in receiver.received()}) == 1


def test_the_simulated_sender_ends_in_line_with_dlrwatch(tmp_path: Path) -> None:
    with running(tmp_path, {"SIMULATE": "1", "SIM_MESSAGES": "30", "POLL_INTERVAL": "0.5"}) as stack:
        stack.wait_for("summary", 180)
        last = stack.wait_for("callbacks not in line with dlrwatch", 30)
    output = stack.shown(20_000)
    assert "callbacks not in line with dlrwatch: 0 (must be 0)" in last, output
    assert "bad signatures: 0 (must be 0)" in output, output
    forwarded = re.search(r"forwarded (\d+) \(2xx\), retried (\d+) \(failed attempts\), dead (\d+)", output)
    assert forwarded, output
    assert int(forwarded.group(1)) >= 15, "every message with a callback_url had at least one status to send"
    assert int(forwarded.group(2)) > 0, "the sender's failures were retried"
