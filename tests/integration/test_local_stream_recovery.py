"""The local stack's stream reader outlives the DynamoDB Local it reads: a restart on the same port, or the table
deleted and made anew, and the records written afterwards are still handed over, each once.

DynamoDB Local keeps its tables, their streams and their shard iterators across a restart when it runs with
``-dbPath``; a table made anew has a stream of its own (a new ARN), and the old one is disabled.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from dlrwatch_local.dynamodb_local import FAKE_KEY, REGION, DynamoDBLocal, free_port
from dlrwatch_local.streams import StreamPump
from support.dynamo import create_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WAIT = 60.0  # seconds for records to arrive: generous, a loaded machine must pass


class Recorder:
    """Stands in for the publisher: the keys of the records it was handed, in order."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.keys += [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        return {"batchItemFailures": []}


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT:g} s: {what}")
        time.sleep(0.1)


def streams_client(endpoint_url: str) -> Any:
    return boto3.client(
        "dynamodbstreams",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_KEY,
    )


def put(client: DynamoDBClient, table: str, *keys: str) -> list[str]:
    for key in keys:
        client.put_item(TableName=table, Item={"pk": {"S": key}})
    return list(keys)


@pytest.fixture
def pumps() -> Iterator[list[StreamPump]]:
    running: list[StreamPump] = []
    yield running
    for pump in running:
        pump.stop()


def start_pump(
    pumps: list[StreamPump], endpoint_url: str, client: DynamoDBClient, table: str
) -> tuple[StreamPump, Recorder, io.StringIO]:
    recorder, log = Recorder(), io.StringIO()
    arn = client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    pump = StreamPump(
        streams_client(endpoint_url),
        arn,
        recorder,
        region=REGION,
        interval=0.1,
        retry_interval=0.2,
        table_name=table,
        dynamodb=client,
        log=log,
    )
    pump.start()
    pumps.append(pump)
    return pump, recorder, log


def test_records_written_after_a_restart_on_the_same_port_are_delivered_once(
    tmp_path: Path, pumps: list[StreamPump]
) -> None:
    port, table = free_port(), "recovery"
    first = DynamoDBLocal(port=port, in_memory=False, db_path=tmp_path)
    first.start()
    second = DynamoDBLocal(port=port, in_memory=False, db_path=tmp_path)
    try:
        client = first.client()
        create_table(client, table)
        pump, recorder, log = start_pump(pumps, first.endpoint_url, client, table)
        before = put(client, table, *(f"before-{n}" for n in range(5)))
        wait_until(lambda: recorder.keys == before, "the records written before the restart")

        first.stop()
        wait_until(lambda: pump.failure is not None, "the reader noticing that DynamoDB Local is gone")
        second.start()  # seconds, during which the reader retries many times
        after = put(client, table, *(f"after-{n}" for n in range(5)))
        wait_until(lambda: len(recorder.keys) >= len(before + after), "the records written after the restart")
        pump.stop()  # before DynamoDB Local stops again: that would be a failure of its own to say
    finally:
        first.stop()
        second.stop()
    assert recorder.keys == before + after, "each record handed over once, in order"
    said = log.getvalue().splitlines()
    failures = [line for line in said if "cannot read" in line]
    assert 1 <= len(failures) <= 3, f"what fails is said once, not on every retry: {said}"
    assert said[-1].endswith("again"), f"and the recovery is said: {said}"


def test_records_written_after_the_table_is_made_anew_are_delivered(
    dynamodb_local: DynamoDBLocal, ddb_client: DynamoDBClient, table: str, pumps: list[StreamPump]
) -> None:
    pump, recorder, log = start_pump(pumps, dynamodb_local.endpoint_url, ddb_client, table)
    old = put(ddb_client, table, *(f"old-{n}" for n in range(3)))
    wait_until(lambda: recorder.keys == old, "the records of the first table")
    old_stream = pump.stream_arn

    ddb_client.delete_table(TableName=table)
    create_table(ddb_client, table)
    new = put(ddb_client, table, *(f"new-{n}" for n in range(3)))
    wait_until(lambda: len(recorder.keys) >= len(old + new), "the records of the table made anew")

    assert recorder.keys == old + new
    assert pump.stream_arn != old_stream
    assert pump.stream_arn == ddb_client.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    assert "new stream" in log.getvalue()
