"""The publisher's second duty: a status change of a message registered with a ``callback_url`` is queued for the
forwarder (and a registration that attaches a URL to a message that already has a report queues its current
status), while the bus keeps its one event per status change."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3
import pytest
from moto import mock_aws

from dlrwatch.publisher import Publisher, SqsForwardSink, forwards_from_env

URL = "https://sender.example/dlr"


class ListSink:
    """Takes every put (events or callbacks); fails those ``fails`` picks, or raises when ``raises``."""

    def __init__(self, fails: Callable[[Mapping[str, Any]], bool] = lambda _: False, raises: bool = False) -> None:
        self.fails, self.raises = fails, raises
        self.taken: list[Mapping[str, Any]] = []

    def put(self, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        if self.raises:
            raise ConnectionError("unreachable")
        failed = [i for i, entry in enumerate(entries) if self.fails(entry)]
        self.taken += [entry for i, entry in enumerate(entries) if i not in failed]
        return failed


def image(status: str, *, seq: int, final: bool = False, written_by: str = "report", **more: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": "sevenio#77149843739"},
        "provider": {"S": "sevenio"},
        "message_id": {"S": "77149843739"},
        "status": {"S": status},
        "final": {"BOOL": final},
        "prec": {"S": f"{int(final)}|20261122100{seq}00|0{seq}|X"},
        "written_by": {"S": written_by},
        "updated_at": {"S": "2026-11-22T10:06:01.000Z"},
        "seq": {"N": str(seq)},
    }
    if status != "pending":
        item |= {"source": {"S": "push"}, "provider_status": {"S": status.upper()}, "status_at": {"NULL": True}}
    return item | {name: {"S": value} for name, value in more.items()}


def record(number: int, new: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "Keys": {"pk": new["pk"]},
        "NewImage": new,
        "SequenceNumber": str(1000 + number),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        stream["OldImage"] = old
    return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": stream}


def publish(*records: dict[str, Any], events: ListSink | None = None, callbacks: ListSink | None = None) -> set[str]:
    return Publisher(events or ListSink(), callbacks if callbacks is not None else ListSink()).publish(records)


def test_a_status_change_of_a_message_with_a_callback_url_is_queued_with_its_event() -> None:
    events, callbacks = ListSink(), ListSink()
    old = image("pending", seq=1, written_by="registration", callback_url=URL)
    new = image("delivered", seq=2, final=True, callback_url=URL)
    assert publish(record(1, new, old), events=events, callbacks=callbacks) == set()
    [event] = events.taken
    [callback] = callbacks.taken
    assert callback == {"callback_url": URL, "detail": json.loads(event["Detail"])}
    assert (callback["detail"]["status"], callback["detail"]["sequence"]) == ("delivered", 2)


def test_a_message_without_a_callback_url_queues_nothing() -> None:
    callbacks = ListSink()
    publish(record(1, image("sent", seq=2), image("pending", seq=1, written_by="registration")), callbacks=callbacks)
    assert callbacks.taken == []


def test_pending_is_never_sent_to_the_sender() -> None:
    events, callbacks = ListSink(), ListSink()
    publish(
        record(1, image("pending", seq=1, written_by="registration", callback_url=URL)),
        events=events,
        callbacks=callbacks,
    )
    assert len(events.taken) == 1, "the bus still hears of the registration"
    assert callbacks.taken == []


def test_a_registration_attaching_a_url_to_a_reported_message_sends_the_current_status_only_to_the_sender() -> None:
    events, callbacks = ListSink(), ListSink()
    old = image("delivered", seq=1, final=True)
    new = image("delivered", seq=2, final=True, written_by="registration", callback_url=URL)
    assert publish(record(1, new, old), events=events, callbacks=callbacks) == set()
    assert events.taken == [], "no status changed: no event on the bus"
    [callback] = callbacks.taken
    assert (callback["callback_url"], callback["detail"]["status"], callback["detail"]["sequence"]) == (
        URL,
        "delivered",
        2,
    )


def test_a_new_url_replacing_the_old_one_gets_the_current_status() -> None:
    callbacks = ListSink()
    other = "https://elsewhere.example/dlr"
    old = image("sent", seq=3, callback_url=URL)
    new = image("sent", seq=4, written_by="registration", callback_url=other)
    publish(record(1, new, old), callbacks=callbacks)
    assert [c["callback_url"] for c in callbacks.taken] == [other]


@pytest.mark.parametrize("written_by", ["forward", "schedule", "backfill"])
def test_bookkeeping_writes_tell_nobody_anything(written_by: str) -> None:
    events, callbacks = ListSink(), ListSink()
    old = image("sent", seq=3, callback_url=URL)
    new = copy.deepcopy(old) | {"written_by": {"S": written_by}, "fwd_state": {"S": "delivered"}}
    publish(record(1, new, old), events=events, callbacks=callbacks)
    assert (events.taken, callbacks.taken) == ([], [])


def test_a_callback_that_cannot_be_queued_fails_its_record_and_holds_back_the_next_change() -> None:
    events, callbacks = ListSink(), ListSink(fails=lambda c: c["detail"]["status"] == "sent")
    first = record(1, image("sent", seq=2, callback_url=URL), image("pending", seq=1, callback_url=URL))
    second = record(2, image("delivered", seq=3, final=True, callback_url=URL), image("sent", seq=2, callback_url=URL))
    assert publish(first, second, events=events, callbacks=callbacks) == {"1001", "1002"}
    assert callbacks.taken == [], "the later change waits for the earlier one: retried together, in order"


def test_a_forward_queue_that_raises_fails_the_records_with_callbacks_only() -> None:
    callbacks = ListSink(raises=True)
    with_url = record(1, image("sent", seq=2, callback_url=URL), image("pending", seq=1, callback_url=URL))
    without = record(2, image("sent", seq=2) | {"pk": {"S": "sevenio#1"}}, image("pending", seq=1))
    assert publish(with_url, without, callbacks=callbacks) == {"1001"}


def test_callbacks_reach_the_forward_queue_ten_at_a_time() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-central-1")
        url = sqs.create_queue(QueueName="forward")["QueueUrl"]
        calls: list[int] = []
        sqs.meta.events.register(
            "provide-client-params.sqs.SendMessageBatch", lambda params, **_: calls.append(len(params["Entries"]))
        )
        bodies = [{"callback_url": URL, "detail": {"event_id": f"{n:032x}", "sequence": n}} for n in range(23)]
        assert SqsForwardSink(url, client=sqs).put(bodies) == []
        assert calls == [10, 10, 3]
        received: list[dict[str, Any]] = []
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            received += [json.loads(m["Body"]) for m in batch]
        assert sorted(received, key=lambda b: b["detail"]["sequence"]) == bodies


def test_the_forward_queue_comes_from_the_environment() -> None:
    assert forwards_from_env({}) is None
    sink = forwards_from_env({"FORWARD_QUEUE_URL": "https://sqs.eu-central-1.amazonaws.com/1/forward"})
    assert isinstance(sink, SqsForwardSink)
