"""The local stack's stream reader: the same filter, record shape and retries as Lambda's event source mapping,
so that a failing put is retried and nothing is lost, locally as on AWS."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from dlrwatch_local.streams import StreamPump, filter_patterns, matches, stream_source

from dlrwatch.domain.report import Report
from dlrwatch.domain.status import Status
from dlrwatch.publisher import Publisher
from dlrwatch.store import Store

EVENTS = Path(__file__).resolve().parents[2] / "events"


def sample(name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((EVENTS / f"stream-{name}.json").read_text())["Records"][0]
    return record


@pytest.mark.parametrize(
    ("name", "admitted"),
    [
        ("registration-insert", True),
        ("report-sent", True),
        ("report-delivered", True),
        ("giveup", True),
        ("report-same-status", True),
        ("schedule-only", False),
        ("ttl-remove", False),
        ("nonce-insert", False),
    ],
)
def test_the_template_filter_admits_only_writes_that_can_change_a_status(name: str, admitted: bool) -> None:
    source = stream_source()
    assert source is not None, "template.yaml wires the publisher to the stream"
    assert any(matches(p, sample(name)) for p in filter_patterns(source)) is admitted


class FlakySink:
    """Refuses the first ``failures`` puts, then accepts everything."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[dict[str, Any]] = []

    def put(self, entries: Any) -> list[int]:
        if self.failures:
            self.failures -= 1
            return list(range(len(entries)))
        self.published += [json.loads(e["Detail"]) for e in entries]
        return []


@pytest.fixture
def stream(moto_client: Any, store: Store) -> tuple[Any, str]:
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    arn = moto_client.describe_table(TableName=store.table_name)["Table"]["LatestStreamArn"]
    return streams, arn


def pump_into(publisher: Publisher, stream: tuple[Any, str], retries: int) -> StreamPump:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        failed = publisher.publish(event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": s} for s in sorted(failed)]}

    source = stream_source()
    assert source is not None
    streams, arn = stream
    return StreamPump(streams, arn, invoke, region="eu-central-1", retries=retries, patterns=filter_patterns(source))


def test_a_failing_put_is_retried_and_nothing_is_lost(store: Store, stream: tuple[Any, str]) -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    for n, raw in enumerate(("TRANSMITTED", "DELIVERED")):
        store.apply(
            Report("sevenio", "1", Status.SENT if n == 0 else Status.DELIVERED, raw, now.replace(minute=n + 1)), now
        )
    sink = FlakySink(failures=2)
    pump = pump_into(Publisher(sink), stream, retries=5)
    pump.pump()
    assert [(e["message_id"], e["status"]) for e in sink.published] == [("1", "sent"), ("1", "delivered")]
    assert (pump.delivered, pump.dropped) == (2, 0)


def test_records_still_failing_after_the_retries_are_counted_as_dropped(store: Store, stream: tuple[Any, str]) -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    store.apply(Report("sevenio", "2", Status.DELIVERED, "DELIVERED", now), now)
    sink = FlakySink(failures=100)
    pump = pump_into(Publisher(sink), stream, retries=2)
    pump.pump()
    assert sink.published == []
    assert (pump.delivered, pump.dropped) == (0, 1), "on AWS these go to the failure queue"
