"""The local stack's stream reader: the same filter, record shape and retries as Lambda's event source mapping,
so that a failing put is retried and nothing is lost, locally as on AWS."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from dlrwatch_local.streams import StreamPump, filter_patterns, matches, stream_source
from support.dynamo import create_table

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


def pump_into(publisher: Publisher, stream: tuple[Any, str], retries: int, **options: Any) -> StreamPump:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        failed = publisher.publish(event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": s} for s in sorted(failed)]}

    source = stream_source()
    assert source is not None
    streams, arn = stream
    return StreamPump(
        streams, arn, invoke, region="eu-central-1", retries=retries, patterns=filter_patterns(source), **options
    )


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


class OutOfStep:
    """The stream API as the reader finds it after its endpoint changed under it: iterators that have expired
    (after 15 minutes, or a restart), or a stream that no longer exists (DynamoDB Local restarted without its
    data, the table made anew)."""

    def __init__(self, streams: Any) -> None:
        self.streams = streams
        self.handed_out: set[str] = set()
        self.expired: set[str] = set()
        self.vanished: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.streams, name)

    def expire_iterators(self) -> None:
        self.expired |= self.handed_out

    def get_shard_iterator(self, **request: Any) -> Any:
        answer = self.streams.get_shard_iterator(**request)
        self.handed_out.add(answer["ShardIterator"])
        return answer

    def get_records(self, **request: Any) -> Any:
        if request["ShardIterator"] in self.expired:
            raise ClientError({"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}, "GetRecords")
        answer = self.streams.get_records(**request)
        self.handed_out.add(answer.get("NextShardIterator", ""))
        return answer

    def describe_stream(self, **request: Any) -> Any:
        if request["StreamArn"] in self.vanished:
            error = {"Code": "ResourceNotFoundException", "Message": f"Stream: {request['StreamArn']} not found"}
            raise ClientError({"Error": error}, "DescribeStream")
        return self.streams.describe_stream(**request)


def published(sink: FlakySink) -> list[tuple[str, str]]:
    return [(e["message_id"], e["status"]) for e in sink.published]


def test_after_an_expired_iterator_reading_resumes_after_the_last_record_handed_over(
    store: Store, stream: tuple[Any, str]
) -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    streams = OutOfStep(stream[0])
    sink = FlakySink(failures=0)
    pump = pump_into(Publisher(sink), (streams, stream[1]), retries=0)
    store.apply(Report("sevenio", "3", Status.SENT, "TRANSMITTED", now), now)
    pump.pump()
    store.apply(Report("sevenio", "3", Status.DELIVERED, "DELIVERED", now.replace(minute=1)), now)
    streams.expire_iterators()
    with pytest.raises(ClientError):
        pump.pump()  # said once by the running reader, which then tries again
    pump.pump()
    assert published(sink) == [("3", "sent"), ("3", "delivered")], "nothing twice, nothing lost"


def test_when_the_stream_vanishes_the_reader_follows_the_table_to_its_new_one(
    moto_client: Any, store: Store, stream: tuple[Any, str]
) -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    streams, first_arn = OutOfStep(stream[0]), stream[1]
    sink = FlakySink(failures=0)
    pump = pump_into(
        Publisher(sink), (streams, first_arn), retries=0, table_name=store.table_name, dynamodb=moto_client
    )
    store.apply(Report("sevenio", "4", Status.SENT, "TRANSMITTED", now), now)
    pump.pump()

    moto_client.delete_table(TableName=store.table_name)
    create_table(moto_client, store.table_name)
    streams.vanished.add(first_arn)
    store.apply(Report("sevenio", "5", Status.DELIVERED, "DELIVERED", now), now)
    pump.pump()
    assert published(sink) == [("4", "sent"), ("5", "delivered")]
    assert pump.stream_arn == moto_client.describe_table(TableName=store.table_name)["Table"]["LatestStreamArn"]
    assert pump.stream_arn != first_arn


def test_a_publisher_invocation_that_raises_is_retried_not_lost(store: Store, stream: tuple[Any, str]) -> None:
    now = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    store.apply(Report("sevenio", "6", Status.DELIVERED, "DELIVERED", now), now)
    sink = FlakySink(failures=0)
    publisher = Publisher(sink)
    crashes = [RuntimeError("the function crashed")]

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        if crashes:
            raise crashes.pop()
        failed = publisher.publish(event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": s} for s in sorted(failed)]}

    source = stream_source()
    assert source is not None
    pump = StreamPump(
        *stream, invoke, region="eu-central-1", retries=2, patterns=filter_patterns(source), log=io.StringIO()
    )
    pump.pump()
    assert published(sink) == [("6", "delivered")]
    assert (pump.delivered, pump.dropped) == (1, 0)


def test_an_endpoint_going_away_is_one_failure_however_its_connections_break() -> None:
    """A stop shows first as a request cut in the middle, then as connections refused: said once, not twice."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
    from dlrwatch_local.streams import failure_kind

    url = "http://127.0.0.1:9/"
    kinds = {
        failure_kind(ConnectionClosedError(endpoint_url=url)),
        failure_kind(EndpointConnectionError(endpoint_url=url)),
        failure_kind(ReadTimeoutError(endpoint_url=url)),
    }
    assert len(kinds) == 1
    other = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "gone"}}, "DescribeStream")
    assert failure_kind(other) not in kinds, "another failure is said when it comes"
