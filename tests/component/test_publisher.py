"""The publisher function over sample stream events (events/stream-*.json): one event per status change."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from jsonschema import Draft202012Validator
from moto import mock_aws
from support.lambda_context import FakeContext

from dlrwatch.config import ConfigError
from dlrwatch.publisher import EventBridgeSink, JsonLinesSink, Publisher, sink_from_env

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
HANDLER = ROOT / "functions" / "publisher" / "publisher.py"
EVENT_SCHEMA = Draft202012Validator(json.loads((ROOT / "docs" / "schemas" / "status-event.schema.json").read_text()))
BUS = "dlrwatch-test-status"

A, E = "77149843739", "1380000001"  # the batch's messages that change status (seven.io; BulkSMS, unregistered)

# sample event -> the changes it must publish: (message_id, previous_status, status, final)
EXPECTED: dict[str, list[tuple[str, str | None, str, bool]]] = {
    "stream-registration-insert": [(A, None, "pending", False)],
    "stream-report-sent": [(A, "pending", "sent", False)],
    "stream-report-delivered": [(A, "sent", "delivered", True)],
    "stream-giveup": [("77149843750", "unknown", "unknown", True)],
    "stream-schedule-only": [],
    "stream-report-same-status": [],
    "stream-ttl-remove": [],
    "stream-nonce-insert": [],
    "stream-batch": [
        (A, None, "pending", False),
        (A, "pending", "sent", False),
        (A, "sent", "delivered", True),
        (E, None, "delivered", True),
    ],
}


class FakeSink:
    """Takes every put; fails the entries ``fails`` picks, or raises for a put ``raises`` picks."""

    def __init__(
        self,
        fails: Callable[[dict[str, Any]], bool] = lambda detail: False,
        raises: Callable[[list[dict[str, Any]]], bool] = lambda details: False,
    ) -> None:
        self.fails, self.raises = fails, raises
        self.puts: list[list[Mapping[str, Any]]] = []
        self.delivered: list[dict[str, Any]] = []

    def put(self, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        self.puts.append(list(entries))
        details = [json.loads(e["Detail"]) for e in entries]
        if self.raises(details):
            raise ConnectionError("EventBridge unreachable")
        failed = [i for i, detail in enumerate(details) if self.fails(detail)]
        self.delivered += [d for i, d in enumerate(details) if i not in failed]
        return failed


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def sequence_numbers(event: dict[str, Any], message_id: str, status: str | None = None) -> list[str]:
    """The records of ``event`` that change the status of ``message_id`` (to ``status``, when given)."""

    def status_of(image: dict[str, Any] | None) -> str | None:
        return (image or {}).get("status", {}).get("S")

    return [
        r["dynamodb"]["SequenceNumber"]
        for r in event["Records"]
        if r["dynamodb"]["Keys"]["pk"]["S"].endswith(f"#{message_id}")
        and r["eventName"] != "REMOVE"
        and status_of(r["dynamodb"].get("NewImage")) != status_of(r["dynamodb"].get("OldImage"))
        and status in {None, status_of(r["dynamodb"].get("NewImage"))}
    ]


def changes(details: list[dict[str, Any]]) -> list[tuple[str, str | None, str, bool]]:
    """The changes published, each message's in the order published (messages apart may interleave)."""
    published = [(d["message_id"], d["previous_status"], d["status"], d["final"]) for d in details]
    return sorted(published, key=lambda change: [c[0] for c in published].index(change[0]))


def failures(answer: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def emitted_metrics(out: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, dimensions, value) of every CloudWatch EMF metric printed."""
    found = []
    for line in out.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            dims = {name: doc[name] for group in directive["Dimensions"] for name in group if name != "service"}
            for metric in directive["Metrics"]:
                value = doc[metric["Name"]]
                found += [(metric["Name"], dims, v) for v in (value if isinstance(value, list) else [value])]
    return found


def load_handler(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """A cold start of the deployed handler module, with ``env`` set."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("publisher_handler", HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_handler(monkeypatch, EVENT_BUS_NAME=BUS)


def run(module: ModuleType, sink: Any, event: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(module.publisher, "sink", sink)
    answer: dict[str, Any] = module.handler(event, FakeContext())
    return answer


# -- which records publish -------------------------------------------------------------------------------


def test_every_stream_sample_event_has_an_expectation() -> None:
    assert sorted(p.stem for p in EVENTS.glob("stream-*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_exactly_one_event_per_status_change(name: str, handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = FakeSink()
    answer = run(handler, sink, load(name), monkeypatch)
    assert failures(answer) == []
    assert changes(sink.delivered) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if EXPECTED[n]))
def test_every_event_matches_the_published_schema(
    name: str, handler: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FakeSink()
    run(handler, sink, load(name), monkeypatch)
    for detail in sink.delivered:
        errors = [e.message for e in EVENT_SCHEMA.iter_errors(detail)]
        assert errors == [], detail


def test_a_delivery_event_carries_the_whole_change(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = FakeSink()
    run(handler, sink, load("stream-report-delivered"), monkeypatch)
    [entry] = sink.puts[0]
    detail = json.loads(entry["Detail"])
    assert {k: v for k, v in entry.items() if k != "Detail"} == {
        "Source": "dlrwatch",
        "DetailType": "Delivery Status Changed",
        "Resources": [],
    }
    assert len(detail.pop("event_id")) == 32
    assert detail == {
        "provider": "sevenio",
        "message_id": A,
        "status": "delivered",
        "final": True,
        "provider_status": "DELIVERED",
        "status_at": "2026-11-22T10:06:00.000Z",
        "source": "push",
        "previous_status": "sent",
        "previous_final": False,
        "sent_at": "2026-11-22T10:00:00.000Z",
        "recipient": "+491701234567",
        "changed_at": "2026-11-22T10:06:01.000Z",
        "time_to_final_seconds": 360.0,
        "sequence": 3,
    }


def test_a_registration_is_announced_as_pending_without_a_report(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FakeSink()
    run(handler, sink, load("stream-registration-insert"), monkeypatch)
    [detail] = sink.delivered
    assert (detail["status"], detail["source"], detail["provider_status"], detail["status_at"]) == (
        "pending",
        None,
        None,
        None,
    )
    assert (detail["changed_at"], detail["sent_at"]) == ("2026-11-22T10:00:02.000Z", "2026-11-22T10:00:00.000Z")
    assert detail["time_to_final_seconds"] is None


def test_a_final_report_for_an_unregistered_message_has_no_time_to_final(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FakeSink()
    run(handler, sink, load("stream-batch"), monkeypatch)
    [detail] = [d for d in sink.delivered if d["message_id"] == E]
    assert (detail["status"], detail["final"], detail["sent_at"], detail["time_to_final_seconds"]) == (
        "delivered",
        True,
        None,
        None,
    )


def test_giving_up_announces_unknown_becoming_final(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = FakeSink()
    run(handler, sink, load("stream-giveup"), monkeypatch)
    [detail] = sink.delivered
    assert (detail["previous_final"], detail["final"], detail["source"]) == (False, True, "giveup")
    assert detail["time_to_final_seconds"] == 5 * 86400  # status_at of a give-up: sent_at + the last offset


def test_a_retried_change_keeps_its_event_id(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    first, again = FakeSink(), FakeSink()
    run(handler, first, load("stream-batch"), monkeypatch)
    run(handler, again, load("stream-report-delivered"), monkeypatch)
    ids = [d["event_id"] for d in first.delivered]
    assert len(set(ids)) == len(ids) == 4, "each change has its own id"
    assert again.delivered[0]["event_id"] == ids[-1], "the same change redelivered has the same id"


def test_changes_of_one_message_are_put_in_stream_order(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = FakeSink()
    run(handler, sink, load("stream-batch"), monkeypatch)
    puts_of_a = [json.loads(e["Detail"])["status"] for put in sink.puts for e in put if A in e["Detail"]]
    assert puts_of_a == ["pending", "sent", "delivered"]
    for put in sink.puts:
        messages = [json.loads(e["Detail"])["message_id"] for e in put]
        assert len(messages) == len(set(messages)), "two changes of one message never share a put"


def test_plain_stream_records_publish_like_powertools_records() -> None:
    sink = FakeSink()
    assert Publisher(sink).publish(load("stream-batch")["Records"]) == set()
    assert changes(sink.delivered) == EXPECTED["stream-batch"]


# -- failures ----------------------------------------------------------------------------------------------


def test_a_refused_event_fails_exactly_its_record(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    event = load("stream-batch")
    sink = FakeSink(fails=lambda detail: detail["message_id"] == E)
    answer = run(handler, sink, event, monkeypatch)
    assert failures(answer) == sequence_numbers(event, E)
    assert changes(sink.delivered) == [c for c in EXPECTED["stream-batch"] if c[0] != E]


def test_a_failed_change_holds_back_the_later_changes_of_its_message(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = load("stream-batch")
    sink = FakeSink(fails=lambda detail: (detail["message_id"], detail["status"]) == (A, "sent"))
    answer = run(handler, sink, event, monkeypatch)
    assert failures(answer) == sequence_numbers(event, A, "sent") + sequence_numbers(event, A, "delivered")
    assert changes(sink.delivered) == [(A, None, "pending", False), (E, None, "delivered", True)]


def test_a_put_that_raises_fails_the_records_of_that_put(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    event = load("stream-batch")
    sink = FakeSink(raises=lambda details: any(d["status"] == "sent" for d in details))
    answer = run(handler, sink, event, monkeypatch)
    # The put of A's "sent" raised; A's "delivered" after it waits with it, the rest is published.
    assert failures(answer) == sequence_numbers(event, A, "sent") + sequence_numbers(event, A, "delivered")
    assert changes(sink.delivered) == [(A, None, "pending", False), (E, None, "delivered", True)]


def test_an_unreadable_record_fails_only_itself(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    event = load("stream-batch")
    [broken] = [r for r in event["Records"] if r["dynamodb"]["SequenceNumber"] in sequence_numbers(event, E)]
    del broken["dynamodb"]["NewImage"]
    sink = FakeSink()
    answer = run(handler, sink, event, monkeypatch)
    assert failures(answer) == [broken["dynamodb"]["SequenceNumber"]]
    assert changes(sink.delivered) == [c for c in EXPECTED["stream-batch"] if c[0] != E]


def test_failures_are_counted_and_only_published_changes_are_measured(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = FakeSink(fails=lambda detail: detail["message_id"] == E)
    run(handler, sink, load("stream-batch"), monkeypatch)
    metrics = emitted_metrics(capsys.readouterr().out)
    assert ("PublishFailures", {}, 1.0) in metrics
    assert sorted((d["status"], v) for n, d, v in metrics if n == "StatusChanges") == [
        ("delivered", 1.0),
        ("pending", 1.0),
        ("sent", 1.0),
    ]
    assert [(d, v) for n, d, v in metrics if n == "FinalStatuses"] == [({"provider": "sevenio", "source": "push"}, 1.0)]
    assert [(d, v) for n, d, v in metrics if n == "TimeToFinalSeconds"] == [({"provider": "sevenio"}, 360.0)]


def test_a_final_status_is_measured_once_per_message(
    handler: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    delivered_after_giveup = load("stream-report-delivered")
    old = delivered_after_giveup["Records"][0]["dynamodb"]["OldImage"]
    old["status"], old["final"], old["source"] = {"S": "unknown"}, {"BOOL": True}, {"S": "giveup"}
    sink = FakeSink()
    run(handler, sink, delivered_after_giveup, monkeypatch)
    assert changes(sink.delivered) == [(A, "unknown", "delivered", True)], "a real final replacing our give-up"
    names = [n for n, _, _ in emitted_metrics(capsys.readouterr().out)]
    assert "StatusChanges" in names
    assert "FinalStatuses" not in names, "counted when it was given up"
    assert "TimeToFinalSeconds" not in names


# -- the EventBridge sink ------------------------------------------------------------------------------------


@pytest.fixture
def bus_queue() -> Iterator[tuple[Any, str]]:
    """moto: the custom bus, and a queue its rule for dlrwatch events delivers to."""
    with mock_aws():
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        queue = sqs.create_queue(QueueName="status-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = {"source": ["dlrwatch"], "detail-type": ["Delivery Status Changed"]}
        events.put_rule(Name="all-status-changes", EventBusName=BUS, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="all-status-changes", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": arn}])
        yield sqs, queue


def test_events_reach_a_rule_on_the_custom_bus(
    bus_queue: tuple[Any, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, queue = bus_queue
    module = load_handler(monkeypatch, EVENT_BUS_NAME=BUS)  # the sink the function builds at cold start
    answer = module.handler(load("stream-batch"), FakeContext())
    assert failures(answer) == []
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    delivered = [json.loads(m["Body"]) for m in received]
    assert {(e["source"], e["detail-type"]) for e in delivered} == {("dlrwatch", "Delivery Status Changed")}
    assert sorted(changes([e["detail"] for e in delivered]), key=repr) == sorted(EXPECTED["stream-batch"], key=repr)
    assert all(EVENT_SCHEMA.is_valid(e["detail"]) for e in delivered)
    assert ("PublishFailures", {}, 1.0) not in emitted_metrics(capsys.readouterr().out)


def test_a_missing_bus_fails_every_change_and_nothing_else(
    bus_queue: tuple[Any, str], handler: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = load("stream-batch")
    answer = run(handler, EventBridgeSink("no-such-bus"), event, monkeypatch)
    assert sorted(failures(answer)) == sorted(sequence_numbers(event, A) + sequence_numbers(event, E))
    assert len(failures(answer)) == len(EXPECTED["stream-batch"])


def test_an_entry_eventbridge_refuses_fails_its_record(handler: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    client = boto3.client("events")
    with Stubber(client) as stub:
        # First put: A's registration and E's delivery; EventBridge throttles the second entry.
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"EventId": "1"}, {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
            },
        )
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "2"}]})
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "3"}]})
        event = load("stream-batch")
        answer = run(handler, EventBridgeSink(BUS, client), event, monkeypatch)
        stub.assert_no_pending_responses()
    assert failures(answer) == sequence_numbers(event, E)


def test_eventbridge_is_called_ten_entries_at_a_time_and_a_failed_call_fails_only_its_entries() -> None:
    client = boto3.client("events")
    entries = [{"Source": "dlrwatch", "DetailType": "Delivery Status Changed", "Detail": "{}", "Resources": []}] * 12
    with Stubber(client) as stub:
        stub.add_response(
            "put_events",
            {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(10)]},
            {"Entries": [{**e, "EventBusName": BUS} for e in entries[:10]]},
        )
        stub.add_client_error("put_events", "InternalException", http_status_code=500)
        assert EventBridgeSink(BUS, client).put(entries) == [10, 11]
        stub.assert_no_pending_responses()


# -- running locally ------------------------------------------------------------------------------------------


def test_a_local_run_writes_the_events_as_json_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out" / "events.jsonl"
    module = load_handler(monkeypatch, EVENTS_FILE=str(path))
    module.handler(load("stream-batch"), FakeContext())
    module.handler(load("stream-giveup"), FakeContext())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert changes([e["detail"] for e in lines]) == EXPECTED["stream-batch"] + EXPECTED["stream-giveup"]
    assert {(e["source"], e["detail-type"]) for e in lines} == {("dlrwatch", "Delivery Status Changed")}


def test_the_sink_comes_from_the_environment(tmp_path: Path) -> None:
    assert isinstance(sink_from_env({"EVENTS_FILE": str(tmp_path / "e.jsonl"), "EVENT_BUS_NAME": BUS}), JsonLinesSink)
    bus_sink = sink_from_env({"EVENT_BUS_NAME": BUS})
    assert isinstance(bus_sink, EventBridgeSink)
    assert bus_sink.bus_name == BUS
    with pytest.raises(ConfigError, match="EVENT_BUS_NAME"):
        sink_from_env({})
