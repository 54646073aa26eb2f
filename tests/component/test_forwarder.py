"""The forwarder on moto's DynamoDB and SQS, POSTing to loopback receivers: what a sender receives, what the
message's forwarding state says, and where a callback goes when it fails (the queue's visibility, the dead letters)."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.lambda_context import FakeContext
from support.receivers import NAME, Answer, Received, Receiver

from dlrwatch.config import Settings
from dlrwatch.domain.schedule import Schedule
from dlrwatch.domain.times import iso
from dlrwatch.forwarder import Forwarder, SigningKeyMissing
from dlrwatch.observability import logger
from dlrwatch.store import ForwardState, NextPoll, Store, due_shard

TABLE = "dlrwatch-test"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SENT_AT = NOW - timedelta(hours=1)
KEY = "forward-key-new"
OLD_KEY = "forward-key-old"
HANDLER = Path(__file__).resolve().parents[2] / "functions" / "forwarder" / "forwarder.py"


class Queues:
    """The forward queue and its dead-letter queue on moto, and Lambda's view of the forward queue's messages."""

    def __init__(self, session: boto3.Session) -> None:
        self.sqs = session.client("sqs")
        self.url = self.sqs.create_queue(QueueName="forward")["QueueUrl"]
        self.dead_url = self.sqs.create_queue(QueueName="forward-dead")["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.visibility_set: list[int] = []
        self.sqs.meta.events.register(
            "provide-client-params.sqs.ChangeMessageVisibility",
            lambda params, **_: self.visibility_set.append(params["VisibilityTimeout"]),
        )

    def send(self, body: dict[str, Any] | str) -> None:
        self.sqs.send_message(QueueUrl=self.url, MessageBody=body if isinstance(body, str) else json.dumps(body))

    def receive(self, receive_count: int | None = None) -> dict[str, Any]:
        """The next visible message, as a record of Lambda's SQS event (``receive_count`` overrides SQS's)."""
        messages = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=1, AttributeNames=["All"], VisibilityTimeout=120
        ).get("Messages", [])
        assert messages, "no visible message in the forward queue"
        message = messages[0]
        attributes = dict(message["Attributes"])
        if receive_count is not None:
            attributes["ApproximateReceiveCount"] = str(receive_count)
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": attributes,
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
        }

    def visible(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def dead_letters(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.dead_url, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


@pytest.fixture
def queues(store: Store, boto_session: boto3.Session) -> Queues:
    return Queues(boto_session)  # inside the store fixture's mock_aws


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def forwarder(
    store: Store,
    queues: Queues,
    receiver: Receiver,
    *,
    schedule: str = "1s,1h",
    secret: str | None = KEY,
    attempt_seconds: float = 5.0,
) -> Forwarder:
    settings = Settings(
        table_name=TABLE, forward_retry_schedule=Schedule.parse(schedule), forward_allowed_hosts=frozenset({NAME})
    )
    return Forwarder(
        store,
        settings,
        sqs=lambda: queues.sqs,
        dead_letter_queue_url=queues.dead_url,
        signing_secret=lambda: secret,
        resolve=receiver.resolver(),
        clock=lambda: datetime.now(UTC),
        attempt_seconds=attempt_seconds,
    )


def register(store: Store, message_id: str, callback_url: str | None, provider: str = "sevenio") -> None:
    store.register(
        provider,
        message_id,
        SENT_AT,
        "+491701234567",
        NextPoll(iso(SENT_AT + timedelta(minutes=5)), 0),
        due_shard(provider, message_id, 8),
        NOW,
        callback_url=callback_url,
    )


def callback(receiver: Receiver, message_id: str = "77149843739", sequence: int = 2, **detail: Any) -> dict[str, Any]:
    return {
        "callback_url": receiver.url(),
        "detail": {
            "event_id": f"ev-{message_id}-{sequence}",
            "provider": "sevenio",
            "message_id": message_id,
            "status": "delivered",
            "final": True,
            "recipient": "+491701234567",
            "sequence": sequence,
            **detail,
        },
    }


def verified(request: Received, key: str) -> bool:
    """The receiver's side, as a sender would write it from the docs."""
    timestamp = request.headers["x-dlrwatch-timestamp"]
    expected = hmac.new(key.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    offered = [part.removeprefix("v1=") for part in request.headers["x-dlrwatch-signature"].split(",")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


def state(store: Store, message_id: str = "77149843739") -> dict[str, Any]:
    item = store.get("sevenio", message_id)
    assert item is not None
    return {k: item.get(k) for k in ("fwd_state", "fwd_http_status", "fwd_attempts", "fwd_delivered_seq")}


def test_a_delivered_callback_is_signed_and_recorded(store: Store, queues: Queues, receiver: Receiver) -> None:
    register(store, "77149843739", receiver.url())
    sent = callback(receiver, sequence=3)
    queues.send(sent)

    answer = forwarder(store, queues, receiver).handle({"Records": [queues.receive()]})

    assert answer == {"batchItemFailures": []}
    [request] = receiver.requests
    assert json.loads(request.body) == sent["detail"]
    assert request.body == json.dumps(sent["detail"], separators=(",", ":"), sort_keys=True).encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-dlrwatch-event-id"] == "ev-77149843739-3"
    assert abs(int(request.headers["x-dlrwatch-timestamp"]) - time.time()) < 60
    assert verified(request, KEY)
    assert not verified(request, "another-key")
    assert state(store) == {"fwd_state": "delivered", "fwd_http_status": 200, "fwd_attempts": 1, "fwd_delivered_seq": 3}


def test_while_rotating_both_keys_sign_and_either_verifies(store: Store, queues: Queues, receiver: Receiver) -> None:
    register(store, "77149843739", receiver.url())
    queues.send(callback(receiver))

    forwarder(store, queues, receiver, secret=f"{KEY},{OLD_KEY}").handle({"Records": [queues.receive()]})

    [request] = receiver.requests
    assert request.headers["x-dlrwatch-signature"].count("v1=") == 2
    assert verified(request, KEY)
    assert verified(request, OLD_KEY)


def test_a_failed_attempt_waits_the_schedules_first_gap_then_is_delivered_with_the_same_event_id(
    store: Store, queues: Queues, receiver: Receiver
) -> None:
    register(store, "77149843739", receiver.url())
    queues.send(callback(receiver))
    receiver.answer(Answer(500))
    forward = forwarder(store, queues, receiver, schedule="1s,1h")

    first = queues.receive()
    answer = forward.handle({"Records": [first]})

    assert answer == {"batchItemFailures": [{"itemIdentifier": first["messageId"]}]}
    assert queues.visibility_set == [1]
    assert state(store)["fwd_state"] == "retrying"
    assert state(store)["fwd_http_status"] == 500
    time.sleep(1.2)  # SQS hands the message back once the gap has passed
    second = queues.receive()
    assert second["attributes"]["ApproximateReceiveCount"] == "2"

    assert forward.handle({"Records": [second]}) == {"batchItemFailures": []}

    assert [r.headers["x-dlrwatch-event-id"] for r in receiver.requests] == ["ev-77149843739-2"] * 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert all(verified(r, KEY) for r in receiver.requests)
    assert state(store) == {"fwd_state": "delivered", "fwd_http_status": 200, "fwd_attempts": 2, "fwd_delivered_seq": 2}


def test_each_retry_waits_its_own_gap_of_the_schedule(store: Store, queues: Queues, receiver: Receiver) -> None:
    register(store, "77149843739", receiver.url())
    receiver.answer(Answer(503), Answer(503), Answer(503))
    forward = forwarder(store, queues, receiver, schedule="1m,5m,30m")
    for attempt in (1, 2, 3):
        queues.send(callback(receiver))
        forward.handle({"Records": [queues.receive(receive_count=attempt)]})

    assert queues.visibility_set == [60, 240, 1500]


def test_once_the_schedule_has_run_out_the_callback_is_dead_lettered(
    store: Store, queues: Queues, receiver: Receiver
) -> None:
    register(store, "77149843739", receiver.url())
    sent = callback(receiver)
    queues.send(sent)
    receiver.answer(Answer(503))

    # The second attempt of a one-retry schedule: no retry remains.
    answer = forwarder(store, queues, receiver, schedule="1s").handle({"Records": [queues.receive(receive_count=2)]})

    assert answer == {"batchItemFailures": []}
    assert queues.visibility_set == []
    [dead] = queues.dead_letters()
    assert dead == {**sent, "last_status": 503, "reason": "HTTP 503", "attempts": 2}
    assert state(store)["fwd_state"] == ForwardState.DEAD_LETTERED
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [404, 301, 410])
def test_a_refusing_answer_ends_it_without_a_retry(
    store: Store, queues: Queues, receiver: Receiver, status: int
) -> None:
    register(store, "77149843739", receiver.url())
    queues.send(callback(receiver))
    receiver.answer(Answer(status, {"Location": "https://example.com/"} if status == 301 else {}))

    answer = forwarder(store, queues, receiver).handle({"Records": [queues.receive()]})

    assert answer == {"batchItemFailures": []}
    assert queues.visibility_set == []
    assert queues.dead_letters() == []
    assert state(store)["fwd_state"] == "refused"
    assert state(store)["fwd_http_status"] == status


def test_a_retry_of_a_status_the_sender_already_has_a_later_one_of_is_dropped(
    store: Store, queues: Queues, receiver: Receiver
) -> None:
    register(store, "77149843739", receiver.url())
    store.record_forward("sevenio", "77149843739", sequence=5, state=ForwardState.DELIVERED, http_status=200, now=NOW)
    queues.send(callback(receiver, sequence=4))

    answer = forwarder(store, queues, receiver).handle({"Records": [queues.receive(receive_count=2)]})

    assert answer == {"batchItemFailures": []}
    assert receiver.requests == []
    assert state(store)["fwd_delivered_seq"] == 5


def test_a_retry_for_an_erased_message_or_a_replaced_url_is_dropped(
    store: Store, queues: Queues, receiver: Receiver
) -> None:
    register(store, "1000", receiver.url("/replaced"))
    queues.send(callback(receiver, message_id="1000"))  # queued for the URL before
    queues.send(callback(receiver, message_id="2000"))  # a message that is gone
    records = [queues.receive(receive_count=2), queues.receive(receive_count=2)]

    answer = forwarder(store, queues, receiver).handle({"Records": records})

    assert answer == {"batchItemFailures": []}
    assert receiver.requests == []
    assert store.get("sevenio", "2000") is None  # nothing recorded brings it back


def test_a_first_attempt_is_sent_without_reading_the_message(store: Store, queues: Queues, receiver: Receiver) -> None:
    # The publisher queued it a moment ago; only retries look the message up again.
    register(store, "77149843739", receiver.url("/replaced"))
    queues.send(callback(receiver))

    forwarder(store, queues, receiver).handle({"Records": [queues.receive()]})

    assert len(receiver.requests) == 1


def test_a_url_that_no_longer_passes_the_checks_is_refused_without_a_request(
    store: Store, queues: Queues, receiver: Receiver
) -> None:
    register(store, "77149843739", receiver.url())
    queues.send(callback(receiver))
    forward = forwarder(store, queues, receiver)
    forward.settings = Settings(table_name=TABLE)  # callback.test no longer allowed: 127.0.0.1 is not global

    answer = forward.handle({"Records": [queues.receive()]})

    assert answer == {"batchItemFailures": []}
    assert receiver.requests == []
    assert state(store)["fwd_state"] == "refused"
    assert state(store)["fwd_http_status"] is None


def test_a_malformed_message_is_dead_lettered_not_retried(store: Store, queues: Queues, receiver: Receiver) -> None:
    queues.send("{not json")
    queues.send({"callback_url": receiver.url(), "detail": {"event_id": "e", "provider": "sevenio"}})
    records = [queues.receive(), queues.receive()]

    answer = forwarder(store, queues, receiver).handle({"Records": records})

    assert answer == {"batchItemFailures": []}
    dead = queues.dead_letters()
    assert sorted(d["reason"] for d in dead) == [
        "malformed: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        "malformed: detail.message_id is missing or not a string",
    ]
    assert receiver.requests == []


def test_without_a_signing_key_nothing_is_sent_and_the_batch_fails(
    store: Store, queues: Queues, receiver: Receiver
) -> None:
    register(store, "77149843739", receiver.url())
    queues.send(callback(receiver))

    with pytest.raises(SigningKeyMissing):
        forwarder(store, queues, receiver, secret=None).handle({"Records": [queues.receive()]})

    assert receiver.requests == []


def test_a_sender_that_hangs_holds_up_no_other_callback_in_the_batch(
    store: Store, queues: Queues, receiver: Receiver
) -> None:
    receiver.answer(Answer(behaviour="hang"))  # whichever request comes first hangs; the others are answered
    for message_id in ("1", "2", "3", "4"):
        register(store, message_id, receiver.url())
        queues.send(callback(receiver, message_id=message_id))
    records = [queues.receive() for _ in range(4)]

    started = time.monotonic()
    answer = forwarder(store, queues, receiver, attempt_seconds=2).handle({"Records": records})

    assert time.monotonic() - started < 4.5
    assert len(answer["batchItemFailures"]) == 1
    assert sorted(state(store, m)["fwd_state"] for m in ("1", "2", "3", "4")) == ["delivered"] * 3 + ["retrying"]


def test_the_handler_forwards_with_the_deployed_wiring(
    store: Store, queues: Queues, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook"  # an address literal: the system resolver is not asked
    register(store, "77149843739", url)
    queues.send({**callback(receiver), "callback_url": url})
    monkeypatch.setenv("FORWARD_DEAD_LETTER_QUEUE_URL", queues.dead_url)
    monkeypatch.setenv("FORWARD_SIGNING_KEY", KEY)
    monkeypatch.setenv("FORWARD_ALLOWED_HOSTS", "127.0.0.1")
    spec = importlib.util.spec_from_file_location("forwarder_handler", HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "forwarder_handler", module)
    spec.loader.exec_module(module)

    answer = module.handler({"Records": [queues.receive()]}, FakeContext())

    assert answer == {"batchItemFailures": []}
    [request] = receiver.requests
    assert verified(request, KEY)
    assert state(store)["fwd_state"] == "delivered"


def test_log_lines_name_the_host_never_the_url_the_recipient_or_the_phone_number_in_an_id(
    store: Store, queues: Queues, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    message_id = "4711:491701234567"  # a BulkSMS EAPI id: batch and msisdn
    register(store, message_id, receiver.url(), provider="bulksms-eapi")
    queues.send(
        {
            **callback(receiver),
            "detail": {**callback(receiver)["detail"], "provider": "bulksms-eapi", "message_id": message_id},
        }
    )
    receiver.answer(Answer(503))

    forwarder(store, queues, receiver, schedule="1s").handle({"Records": [queues.receive(receive_count=2)]})

    ours = [record for record in caplog.records if record.name == logger.name]
    logged = "\n".join(logger.registered_formatter.format(record) for record in ours)
    assert "status callback dead-lettered" in logged
    assert f'"host":"{NAME}"' in logged.replace(" ", "")
    assert "sender-secret" not in logged
    assert "491701234567" not in logged
    assert "1701234567" not in logged
