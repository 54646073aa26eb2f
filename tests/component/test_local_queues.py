"""The local stack's forward queue reader: Lambda's SQS event source mapping, so that a status callback the
forwarder could not deliver waits in the queue for its retry and comes back, and one it handled is gone."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from dlrwatch_local.queues import QueueMapping, create_forward_queues, queue_source
from dlrwatch_local.stack import MotoServer, free_port

REGION = "eu-central-1"
Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


@pytest.fixture
def sqs_endpoint() -> Iterator[str]:
    server = MotoServer(name="moto-sqs-test").start()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


def sqs_client(boto_session: boto3.Session, endpoint: str) -> Any:
    config = Config(connect_timeout=2, read_timeout=10, retries={"total_max_attempts": 1})
    return boto_session.client("sqs", endpoint_url=endpoint, config=config)


@pytest.fixture
def sqs(boto_session: boto3.Session, sqs_endpoint: str) -> Any:
    return sqs_client(boto_session, sqs_endpoint)


def make_queue(sqs: Any, name: str, visibility: int = 30) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": str(visibility)})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def counts(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(found[names[0]]), int(found[names[1]])


class Recorder:
    """A stand-in for the forwarder: records every event, answers with what ``decide`` says."""

    def __init__(self, decide: Handler) -> None:
        self.decide = decide
        self.events: list[dict[str, Any]] = []
        self.bodies: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any] | None:
        with self.lock:
            self.events.append(event)
            self.bodies += [record["body"] for record in event["Records"]]
        return self.decide(event)


def fail_bodies(*bodies: str) -> Handler:
    def decide(event: dict[str, Any]) -> dict[str, Any]:
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] in bodies]
        }

    return decide


def mapping(sqs: Any, queue: tuple[str, str], invoke: Handler, **options: Any) -> QueueMapping:
    return QueueMapping(sqs, *queue, invoke, region=REGION, log=options.pop("log", io.StringIO()), **options)


def until(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_the_queues_are_made_as_the_template_makes_them(sqs: Any) -> None:
    queues = create_forward_queues(sqs, "dlrwatch-queues")
    forward_url, _ = queues["ForwardQueue"]
    dead_url, dead_arn = queues["ForwardDeadLetterQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=forward_url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "120"
    assert attributes["MessageRetentionPeriod"] == "345600"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 50}
    dead = sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["MessageRetentionPeriod"])["Attributes"]
    assert dead["MessageRetentionPeriod"] == "1209600"
    source = queue_source()
    assert source is not None
    assert (source["BatchSize"], source["FunctionResponseTypes"]) == (10, ["ReportBatchItemFailures"])


def test_handled_records_are_deleted_and_failed_ones_stay_in_the_queue(sqs: Any) -> None:
    queue = make_queue(sqs, "handled-and-failed")
    for body in ("a", "b", "c"):
        sqs.send_message(
            QueueUrl=queue[0], MessageBody=body, MessageAttributes={"kind": {"DataType": "String", "StringValue": "x"}}
        )
    forwarder = Recorder(fail_bodies("b"))
    reader = mapping(sqs, queue, forwarder)
    while reader.poll():  # moto may hand the three out over more than one receive
        pass
    assert sorted(forwarder.bodies) == ["a", "b", "c"]
    assert counts(sqs, queue[0]) == (0, 1), "a and c deleted; b in flight until its visibility ends"
    assert (reader.failed_records, reader.delivered_batches) == (1, len(forwarder.events))

    record = forwarder.events[0]["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert (record["eventSourceARN"], record["awsRegion"]) == (queue[1], REGION)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert int(record["attributes"]["SentTimestamp"]) > 0
    assert record["messageAttributes"]["kind"]["stringValue"] == "x"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert {"messageId", "receiptHandle", "md5OfBody"} <= set(record)


def test_a_failed_record_comes_back_once_the_visibility_the_handler_set_ends(sqs: Any) -> None:
    queue = make_queue(sqs, "retried", visibility=120)
    sqs.send_message(QueueUrl=queue[0], MessageBody="retry me")

    def forward(event: dict[str, Any]) -> dict[str, Any]:
        record = event["Records"][0]
        if record["attributes"]["ApproximateReceiveCount"] != "1":
            return {"batchItemFailures": []}
        # What the forwarder does with a callback to retry: it comes back when the retry is due, here in 1 s.
        sqs.change_message_visibility(QueueUrl=queue[0], ReceiptHandle=record["receiptHandle"], VisibilityTimeout=1)
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    forwarder = Recorder(forward)
    reader = mapping(sqs, queue, forwarder).start()
    try:
        assert until(lambda: len(forwarder.events) >= 2 and counts(sqs, queue[0]) == (0, 0)), forwarder.events
    finally:
        reader.stop()
    first, second = (event["Records"][0] for event in forwarder.events[:2])
    assert second["messageId"] == first["messageId"]
    assert second["attributes"]["ApproximateReceiveCount"] == "2"
    sent = int(second["attributes"]["SentTimestamp"])
    assert sent == int(first["attributes"]["SentTimestamp"]), "the same message, not a copy"
    assert len(forwarder.events) == 2, "delivered, then deleted: never again"


def test_an_invocation_that_raises_leaves_the_whole_batch_for_later(sqs: Any) -> None:
    queue = make_queue(sqs, "crashed", visibility=1)
    for body in ("x", "y"):
        sqs.send_message(QueueUrl=queue[0], MessageBody=body)
    crashes = [RuntimeError("the function crashed")]

    def forward(event: dict[str, Any]) -> None:
        if crashes:
            raise crashes.pop()

    forwarder = Recorder(forward)
    log = io.StringIO()
    reader = mapping(sqs, queue, forwarder, log=log).start()
    try:
        assert until(lambda: sorted(set(forwarder.bodies)) == ["x", "y"] and counts(sqs, queue[0]) == (0, 0))
    finally:
        reader.stop()
    assert reader.failed_records >= 1
    assert "failed on a batch" in log.getvalue()


def test_an_answer_naming_a_record_not_in_the_batch_fails_the_whole_batch(sqs: Any) -> None:
    queue = make_queue(sqs, "odd-answer")
    sqs.send_message(QueueUrl=queue[0], MessageBody="kept")
    reader = mapping(sqs, queue, Recorder(lambda _: {"batchItemFailures": [{"itemIdentifier": "not-ours"}]}))
    assert reader.poll() == 1
    assert counts(sqs, queue[0]) == (0, 1), "kept, as Lambda keeps a batch whose answer it cannot read"


def test_a_stop_never_waits_for_a_receive(sqs: Any) -> None:
    queue = make_queue(sqs, "idle")
    reader = mapping(sqs, queue, Recorder(lambda _: None)).start()
    time.sleep(1.5)  # receiving, on an empty queue
    started = time.monotonic()
    reader.stop()
    assert not reader.thread.is_alive()
    assert time.monotonic() - started < 4, "at most one short receive (1 s) on a loaded machine"


def test_the_reader_outlives_its_endpoint_and_says_so_once(boto_session: boto3.Session) -> None:
    port = free_port()
    server = MotoServer(port=port, name="moto-sqs-restart").start()
    sqs = sqs_client(boto_session, server.endpoint_url)
    queue = make_queue(sqs, "outlived")
    forwarder = Recorder(lambda _: None)
    log = io.StringIO()
    reader = mapping(sqs, queue, forwarder, log=log, retry_interval=0.2).start()
    try:
        sqs.send_message(QueueUrl=queue[0], MessageBody="before")
        assert until(lambda: forwarder.bodies == ["before"])
        server.stop()
        assert until(lambda: "cannot receive" in log.getvalue())
        time.sleep(1)  # several retries while it is down
        server = MotoServer(port=port, name="moto-sqs-restart").start()  # moto's queues live on in the process
        sqs.send_message(QueueUrl=queue[0], MessageBody="after")
        assert until(lambda: forwarder.bodies == ["before", "after"])
    finally:
        reader.stop()
        server.stop()
    said = log.getvalue()
    assert said.count("cannot receive") == 1, said
    assert "again" in said
