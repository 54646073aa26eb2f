"""The forward queue and its dead letters for the local stack, and the queue read the way Lambda's SQS event source
mapping reads it.

The queues are made from template.yaml's own properties (visibility, retention, the redrive policy to the
dead-letter queue). ``QueueMapping`` receives batches of the mapping's size, hands them to the function in
Lambda's SQS event shape, deletes what was handled and leaves what the function reported as failed (the forwarder
has set when each of those is due again), and outlives its endpoint as ``streams.StreamPump`` does.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from dlrwatch_local.streams import failure_kind
from dlrwatch_local.template import template

Invoke = Callable[[dict[str, Any]], dict[str, Any] | None]

FORWARD_QUEUE = "ForwardQueue"
FORWARD_DEAD_LETTER_QUEUE = "ForwardDeadLetterQueue"
# Lambda's SQS poller waits at most 20 s for messages; locally a short wait keeps a stop prompt and costs nothing.
WAIT_SECONDS = 1


def queue_source(function: str = "ForwarderFunction") -> dict[str, Any] | None:
    """The ``SQS`` event of ``function`` in template.yaml, or None when there is none."""
    resource = template()["Resources"].get(function)
    if not resource:
        return None
    for event in (resource["Properties"].get("Events") or {}).values():
        if event.get("Type") == "SQS":
            properties: dict[str, Any] = event["Properties"]
            return properties
    return None


def queue_attributes(logical_id: str, arns: dict[str, str]) -> dict[str, str]:
    """CreateQueue attributes from the queue's properties in template.yaml; ``arns`` resolves the ``!GetAtt
    X.Arn`` of a redrive policy (the queues it names are made first)."""
    attributes: dict[str, str] = {}
    for name, value in template()["Resources"][logical_id]["Properties"].items():
        if name == "RedrivePolicy":
            target = value["deadLetterTargetArn"]
            if isinstance(target, dict):  # {"Fn::GetAtt": [queue, "Arn"]}
                target = arns[target["Fn::GetAtt"][0]]
            attributes[name] = json.dumps({"deadLetterTargetArn": target, "maxReceiveCount": value["maxReceiveCount"]})
        elif isinstance(value, bool):
            attributes[name] = str(value).lower()
        elif isinstance(value, str | int):
            attributes[name] = str(value)
    return attributes


def create_forward_queues(sqs: Any, prefix: str) -> dict[str, tuple[str, str]]:
    """The forward queue and its dead-letter queue, named after ``prefix``: logical id -> (URL, ARN)."""
    made: dict[str, tuple[str, str]] = {}
    for logical_id, suffix in ((FORWARD_DEAD_LETTER_QUEUE, "forward-dead-letters"), (FORWARD_QUEUE, "forward")):
        arns = {name: arn for name, (_url, arn) in made.items()}
        url = sqs.create_queue(QueueName=f"{prefix}-{suffix}", Attributes=queue_attributes(logical_id, arns))[
            "QueueUrl"
        ]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        made[logical_id] = (url, arn)
    return made


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """A ReceiveMessage message as Lambda delivers it to a function (its attributes and message attributes in
    Lambda's own spelling)."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": list(value.get("StringListValues") or []),
                "binaryListValues": list(value.get("BinaryListValues") or []),
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_ids(answer: dict[str, Any] | None, batch: list[dict[str, Any]]) -> set[str]:
    """The message ids a function's answer reports as failed. As on Lambda, an answer that names an id not in the
    batch (or none at all) fails the whole batch."""
    ids = {record["messageId"] for record in batch}
    failed: set[str] = set()
    for failure in (answer or {}).get("batchItemFailures") or []:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in ids:
            return ids
        failed.add(identifier)
    return failed


class QueueMapping:
    """Receives batches from a queue and hands each to ``invoke``, as Lambda's SQS event source mapping does.

    A batch whose invocation answers is deleted, except the records the answer lists in ``batchItemFailures``
    (when ``report_failures``, the template's ReportBatchItemFailures): those stay in the queue, to come back once
    their visibility ends (the forwarder sets it to the retry's gap). A batch whose invocation raises stays
    whole, back after the queue's visibility timeout. A failing endpoint is said once and retried; a stop takes
    at most one short receive plus the invocation in progress.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        invoke: Invoke,
        *,
        region: str,
        batch_size: int = 10,
        report_failures: bool = True,
        wait_seconds: int = WAIT_SECONDS,
        retry_interval: float = 1.0,
        name: str = "forward queue",
        log: TextIO | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.invoke = invoke
        self.region = region
        self.batch_size = batch_size
        self.report_failures = report_failures
        self.wait_seconds = wait_seconds
        self.retry_interval = retry_interval
        self.name = name
        self.log = log
        self.delivered_batches = 0  # invocations that answered
        self.failed_records = 0  # records reported as failed, or in a batch whose invocation raised
        self.failure: str | None = None  # the kind of failure now (failure_kind), as said; None while receiving works
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="forward-queue", daemon=True)

    def start(self) -> QueueMapping:
        self.thread.start()
        return self

    def stop(self, within: float = 10.0) -> None:
        self._stop.set()
        self.thread.join(timeout=within)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as failure:  # the endpoint went away, or answers oddly: say so once, and retry
                self._failed(failure)
                self._stop.wait(self.retry_interval)
                continue
            self._recovered()

    # -- one receive -----------------------------------------------------------------------------------------

    def poll(self) -> int:
        """One receive, and the invocation of what it brought; the number of records received."""
        received = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if received and not self._stop.is_set():  # stopping: left for the queue to hand out again
            self.deliver([lambda_record(m, self.queue_arn, self.region) for m in received])
        return len(received)

    def deliver(self, batch: list[dict[str, Any]]) -> None:
        try:
            answer = self.invoke({"Records": batch})
        except Exception as failure:  # Lambda reports an error: the whole batch comes back after its visibility
            self.failed_records += len(batch)
            self._say(f"the function failed on a batch of {len(batch)}: {failure!r}")
            return
        self.delivered_batches += 1
        failed = failed_ids(answer, batch) if self.report_failures else set()
        self.failed_records += len(failed)
        done = [record for record in batch if record["messageId"] not in failed]
        if done:
            self._delete(done)

    def _delete(self, records: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": r["receiptHandle"]} for n, r in enumerate(records)]
        answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        if answer.get("Failed"):  # a receipt handle that expired: the message comes back, as SQS would have it
            self._say(f"{len(answer['Failed'])} handled messages could not be deleted; they will come again")

    # -- what it says -----------------------------------------------------------------------------------------

    def _failed(self, failure: Exception) -> None:
        kind = failure_kind(failure)
        if kind != self.failure:  # once per kind of failure, not on every retry
            self._say(
                f"cannot receive from the {self.name}: {type(failure).__name__}: {failure}; "
                f"retrying every {self.retry_interval:g} s"
            )
        self.failure = kind

    def _recovered(self) -> None:
        if self.failure is not None:
            self._say(f"receiving from the {self.name} again")
            self.failure = None

    def _say(self, message: str) -> None:
        print(f"{self.name} reader: {message}", file=self.log or sys.stderr, flush=True)
