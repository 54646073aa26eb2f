"""The stream contract (docs/schema.md, docs/schemas/*.json) against what the real store writes to moto's table."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from jsonschema import Draft202012Validator

from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.providers import PROVIDERS
from dlrwatch.publisher import Publisher
from dlrwatch.store import DueMessage, NextPoll, Store, due_shard, from_dynamo

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
DOC = (ROOT / "docs" / "schema.md").read_text()
ITEM_SCHEMA = Draft202012Validator(json.loads((SCHEMAS / "item.schema.json").read_text()))
EVENT_SCHEMA = Draft202012Validator(json.loads((SCHEMAS / "status-event.schema.json").read_text()))

SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
LAST_POLL = timedelta(days=5)


def at(minutes: float) -> datetime:
    return SENT_AT + timedelta(minutes=minutes)


def plain(value: Any) -> Any:
    """An item as JSON carries it: DynamoDB numbers as JSON numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def register(store: Store, provider: str, message_id: str, recipient: str | None = "+491701234567") -> None:
    first = NextPoll(iso(at(5)), 0)
    store.register(provider, message_id, SENT_AT, recipient, first, due_shard(provider, message_id, 8), at(0.1))


def write_every_kind_of_item(store: Store) -> dict[str, tuple[str, str]]:
    """Each way the store writes a message, through its public methods; answers the items by scenario."""
    register(store, "sevenio", "1001")  # registered, nothing else yet
    register(store, "bulksms", "2001", recipient=None)

    register(store, "sevenio", "1002")  # registered, pushed, polled, rescheduled
    store.apply(Report("sevenio", "1002", Status.SENT, "TRANSMITTED", at(0.3), extra={"foreign_id": "o-1"}), at(0.4))
    store.reschedule(DueMessage("sevenio", "1002", SENT_AT, 0, iso(at(5))), NextPoll(iso(at(30)), 1))
    store.apply(
        Report("sevenio", "1002", Status.BUFFERED, "BUFFERED", at(29), Source.POLL), at(30), NextPoll(iso(at(120)), 2)
    )

    register(store, "sevenio", "1003")  # delivered
    store.apply(Report("sevenio", "1003", Status.DELIVERED, "DELIVERED", at(1)), at(1.1))

    bulksms_final = Report("bulksms", "2002", Status.DELIVERED, "DELIVERED", None, extra={"user_supplied_id": "u-9"})
    store.apply(bulksms_final, at(2))  # a final report before its registration, then the registration
    register(store, "bulksms", "2002")

    store.apply(Report("bulksms-eapi", "3001:447700900123", Status.BUFFERED, "40", None), at(1))  # non-final first
    register(store, "bulksms-eapi", "3001:447700900123")

    register(store, "sevenio", "1004")  # given up after the last poll
    store.apply(Report.give_up("sevenio", "1004", SENT_AT + LAST_POLL), SENT_AT + LAST_POLL + timedelta(seconds=5))

    register(store, "sevenio", "1005")  # given up, then a real final after all
    store.apply(Report.give_up("sevenio", "1005", SENT_AT + LAST_POLL), SENT_AT + LAST_POLL + timedelta(seconds=5))
    store.apply(
        Report("sevenio", "1005", Status.FAILED, "NOTDELIVERED", SENT_AT + LAST_POLL + timedelta(hours=1)), at(9000)
    )

    store.remember_nonce("sevenio", "6f1c0d2e9a7b4c3d", at(3), timedelta(minutes=10))
    return {
        "registered": ("sevenio", "1001"),
        "registered without recipient": ("bulksms", "2001"),
        "pushed, polled and rescheduled": ("sevenio", "1002"),
        "delivered": ("sevenio", "1003"),
        "final before registration": ("bulksms", "2002"),
        "non-final before registration": ("bulksms-eapi", "3001:447700900123"),
        "given up": ("sevenio", "1004"),
        "final after give-up": ("sevenio", "1005"),
    }


def every_item(store: Store) -> list[dict[str, Any]]:
    scanned = store.client.scan(TableName=store.table_name)["Items"]
    return [plain(from_dynamo(item)) for item in scanned]


def schema_errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def test_every_item_the_store_writes_matches_the_item_schema(store: Store) -> None:
    scenarios = write_every_kind_of_item(store)
    items = every_item(store)
    assert len(items) == len(scenarios) + 1, "every scenario's item, and the nonce"
    for item in items:
        assert schema_errors(ITEM_SCHEMA, item) == [], item


def test_the_item_schema_refuses_what_the_doc_rules_out(store: Store) -> None:
    write_every_kind_of_item(store)
    item = plain(store.get("sevenio", "1003"))  # delivered: final, no longer due
    assert ITEM_SCHEMA.is_valid(item)
    assert not ITEM_SCHEMA.is_valid(item | {"undocumented": "x"}), "an attribute docs/schema.md does not name"
    assert not ITEM_SCHEMA.is_valid(item | {"due_shard": "1", "due_at": iso(at(30))}), "a final message still due"
    assert not ITEM_SCHEMA.is_valid(item | {"status": "sent"}), "a final sent"
    assert not ITEM_SCHEMA.is_valid(item | {"status": "seen"}), "a status outside the contract"


def documented(section: str, header: str | None = None) -> set[str]:
    """The names in the first column of the tables under ``section`` of docs/schema.md (headed ``header``)."""
    parts = re.split(r"^(#{2,3} .+)$", DOC, flags=re.MULTILINE)
    body = parts[parts.index(section) + 1]
    names = set()
    for table in re.findall(r"(?:^\|.*\n)+", body, flags=re.MULTILINE):
        rows = table.splitlines()
        if header is None or rows[0].split("|")[1].strip() == header:
            names |= {m.group(1) for row in rows[2:] if (m := re.match(r"^\| `([^`]+)` \|", row))}
    return names


def test_the_doc_names_every_attribute_the_store_writes_and_no_other(store: Store) -> None:
    write_every_kind_of_item(store)
    attributes = {name for item in every_item(store) if "status" in item for name in item}
    history = {name for item in every_item(store) for entry in item.get("history", []) for name in entry}
    assert {"due_shard", "expires_at", "foreign_id", "user_supplied_id"} <= attributes | history, "all kinds written"
    schema = json.loads((SCHEMAS / "item.schema.json").read_text())["$defs"]
    assert attributes <= documented("## The message item") == set(schema["message"]["properties"])
    assert history <= documented("### History entries") == set(schema["history_entry"]["properties"])


def test_the_doc_names_every_status_and_every_event_field(store: Store) -> None:
    assert documented("## Statuses") == {str(s) for s in Status}
    assert set(PROVIDERS) <= set(re.findall(r"`([a-z-]+)`", DOC))
    register(store, "sevenio", "1001")
    sink = ListSink()
    Publisher(sink).publish(stream_records(store))
    event_fields = set(json.loads((SCHEMAS / "status-event.schema.json").read_text())["properties"])
    assert set(sink.details[0]) == event_fields == documented("## The status event", "detail field")


def test_the_sample_stream_events_hold_valid_items() -> None:
    images = [
        from_dynamo(record["dynamodb"][image])
        for path in sorted((ROOT / "events").glob("stream-*.json"))
        for record in json.loads(path.read_text())["Records"]
        for image in ("NewImage", "OldImage")
        if image in record["dynamodb"]
    ]
    assert len(images) > 10
    for image in images:
        assert schema_errors(ITEM_SCHEMA, plain(image)) == [], image


# -- through the stream ------------------------------------------------------------------------------------------


def stream_records(store: Store) -> list[dict[str, Any]]:
    """Every record of the table's stream so far, as a Lambda event carries it."""
    # botocore addresses DynamoDB Streams by account id (<account>.streams-ddb...), which moto does not serve.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    arn = store.client.describe_table(TableName=store.table_name)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")
        answer = streams.get_records(ShardIterator=iterator["ShardIterator"])
        records += answer["Records"]
    return records


class ListSink:
    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []

    def put(self, entries: Any) -> list[int]:
        self.details += [json.loads(e["Detail"]) for e in entries]
        return []


def test_stream_images_match_the_item_schema(store: Store) -> None:
    write_every_kind_of_item(store)
    images = [
        plain(from_dynamo(record["dynamodb"][image]))
        for record in stream_records(store)
        for image in ("NewImage", "OldImage")
        if image in record["dynamodb"]
    ]
    # moto (unlike DynamoDB) streams an extra key-only INSERT before an UpdateItem creates an item: not an item.
    images = [image for image in images if set(image) != {"pk"}]
    assert len(images) > 20
    for image in images:
        assert schema_errors(ITEM_SCHEMA, image) == [], image


def test_the_stream_of_real_writes_publishes_valid_events_for_each_status_change(store: Store) -> None:
    scenarios = write_every_kind_of_item(store)
    sink = ListSink()
    assert Publisher(sink).publish(stream_records(store)) == set()
    for detail in sink.details:
        assert schema_errors(EVENT_SCHEMA, detail) == [], detail

    def statuses(provider: str, message_id: str) -> list[tuple[str, bool]]:
        return [
            (d["status"], d["final"])
            for d in sink.details
            if (d["provider"], d["message_id"]) == (provider, message_id)
        ]

    assert statuses(*scenarios["pushed, polled and rescheduled"]) == [
        ("pending", False),
        ("sent", False),
        ("buffered", False),
    ]
    assert statuses(*scenarios["final before registration"]) == [("delivered", True)]
    assert statuses(*scenarios["given up"]) == [("pending", False), ("unknown", True)]
    assert statuses(*scenarios["final after give-up"]) == [("pending", False), ("unknown", True), ("failed", True)]
    assert len({d["event_id"] for d in sink.details}) == len(sink.details)


@pytest.mark.parametrize("scenario", ["delivered", "given up"])
def test_time_to_final_is_measured_from_sent_at(store: Store, scenario: str) -> None:
    scenarios = write_every_kind_of_item(store)
    sink = ListSink()
    Publisher(sink).publish(stream_records(store))
    [final] = [d for d in sink.details if (d["provider"], d["message_id"]) == scenarios[scenario] and d["final"]]
    expected = {"delivered": 60.0, "given up": LAST_POLL.total_seconds()}[scenario]
    assert (final["sent_at"], final["time_to_final_seconds"]) == (iso(SENT_AT), expected)
