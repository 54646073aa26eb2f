"""Following status events as they happen: the local stack's JSON-lines events file (its stand-in for the bus),
or the stack's EventBridge bus on AWS through a temporary rule and queue that are removed however the tail ends."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import botocore.session

from dlrwatch_cli.errors import CommandError
from dlrwatch_cli.target import aws_client

Envelope = dict[str, Any]
EVENT_SOURCE = "dlrwatch"
PREFIX = "dlrwatch-tail-"
POLL_SECONDS = 0.25  # how often the events file is looked at: an event shows within a quarter second
LONG_POLL_SECONDS = 20  # SQS's longest receive wait: one request a 20 s while nothing happens
# The queue keeps an event an hour at most: it is read as it arrives, and a tail that died leaves little behind.
QUEUE_ATTRIBUTES = {"MessageRetentionPeriod": "3600", "SqsManagedSseEnabled": "true"}


@dataclass(frozen=True)
class Filter:
    provider: str | None = None
    message_id: str | None = None

    def matches(self, envelope: Envelope) -> bool:
        detail = envelope.get("detail")
        if not isinstance(detail, dict):
            return False
        return (self.provider is None or detail.get("provider") == self.provider) and (
            self.message_id is None or detail.get("message_id") == self.message_id
        )


# -- the local stack's events file ---------------------------------------------------------------------------------


@dataclass
class FileFollower:
    """The lines appended to ``path`` since the last ``read``, like ``tail -F``: from the file's end when it exists
    at the start, from its beginning when it appears later, again from the beginning when it is truncated or
    replaced. A line still being written waits for its newline."""

    path: Path
    _file: BinaryIO | None = field(default=None, init=False)
    _identity: tuple[int, int] | None = field(default=None, init=False)
    _partial: bytes = field(default=b"", init=False)
    _started: bool = field(default=False, init=False)
    _skip_to_newline: bool = field(default=False, init=False)

    def read(self) -> list[str]:
        lines: list[str] = []
        if self._file is None:
            self._open(from_end=not self._started)
            self._started = True
            if self._file is None:
                return lines
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != self._identity:
            lines += self._drain()  # what was written before it went away or was replaced
            self._close()
            self._open(from_end=False)
            if self._file is None:
                return lines
        elif now.st_size < self._file.tell():
            self._file.seek(0)  # truncated: what is there now is new
            self._partial, self._skip_to_newline = b"", False
        return lines + self._drain()

    def _open(self, *, from_end: bool) -> None:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - kept open across reads, closed in close()
        except FileNotFoundError:
            self._file = None
            return
        stat = os.fstat(self._file.fileno())
        self._identity = (stat.st_dev, stat.st_ino)
        if from_end:
            end = self._file.seek(0, os.SEEK_END)
            if end:  # started within a line being written: its rest is no whole event
                self._file.seek(end - 1)
                self._skip_to_newline = self._file.read(1) != b"\n"

    def _drain(self) -> list[str]:
        if self._file is None:
            return []
        data = self._partial + self._file.read()
        if self._skip_to_newline:
            if b"\n" not in data:
                return []
            data = data.split(b"\n", 1)[1]
            self._skip_to_newline = False
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete if line.strip()]

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._identity, self._partial, self._skip_to_newline = None, None, b"", False

    def close(self) -> None:
        self._close()


def follow_file(path: Path, *, warn: TextIO = sys.stderr, poll: float = POLL_SECONDS) -> Iterator[Envelope]:
    """Each event appended to the events file from now on, forever (the caller stops it)."""
    follower = FileFollower(path)
    try:
        while True:
            for line in follower.read():
                try:
                    envelope = json.loads(line)
                except ValueError:
                    print(f"skipped a line of {path} that is not JSON", file=warn, flush=True)
                    continue
                if isinstance(envelope, dict):
                    yield envelope
            time.sleep(poll)
    finally:
        follower.close()


# -- the stack's EventBridge bus on AWS ----------------------------------------------------------------------------


def queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """Only EventBridge may send to the queue, and only for this rule."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StatusEventsFromTheTailRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


@dataclass
class BusSubscription:
    """A temporary SQS queue that a temporary rule on ``bus`` fills with every dlrwatch event. ``remove`` takes
    away the target, the rule and the queue, each tried even when another fails; what was asked for counts as made
    (a lost answer may still have made it)."""

    events: Any
    sqs: Any
    bus: str
    say: Callable[[str], None]
    name: str = field(default_factory=lambda: PREFIX + secrets.token_hex(4))
    target_id: str = "tail-queue"
    queue_url: str | None = None
    rule_arn: str | None = None
    made: list[str] = field(default_factory=list)

    def create(self) -> None:
        self.made.append("queue")
        self.queue_url = self.sqs.create_queue(QueueName=self.name, Attributes=QUEUE_ATTRIBUTES)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        queue_arn = attributes["Attributes"]["QueueArn"]
        self.say(f"created queue {self.name}")
        self.made.append("rule")
        self.rule_arn = self.events.put_rule(
            Name=self.name,
            EventBusName=self.bus,
            EventPattern=json.dumps({"source": [EVENT_SOURCE]}),
            State="ENABLED",
            Description="dlrwatch tail: status events to a temporary queue; removed when the tail ends",
        )["RuleArn"]
        self.say(f"created rule {self.name} on bus {self.bus}")
        self.sqs.set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(queue_policy(queue_arn, self.rule_arn))}
        )
        self.made.append("target")
        answer = self.events.put_targets(
            Rule=self.name, EventBusName=self.bus, Targets=[{"Id": self.target_id, "Arn": queue_arn}]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"rule {self.name} refused the queue as its target: {answer.get('FailedEntries')}")
        self.say(f"created target {self.target_id} of rule {self.name}")

    def receive(self, wait_seconds: int) -> list[Envelope]:
        """The events that arrived, waiting up to ``wait_seconds`` for the first; each deleted once read."""
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
        found = []
        for message in answer.get("Messages", []):
            try:
                found.append(json.loads(message["Body"]))
            except ValueError:
                self.say("skipped a queued message that is not JSON")
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def remove(self) -> list[str]:
        """What could not be removed, each with its reason (empty when all is gone). A Ctrl-C during a step skips
        that step only, and names what it left."""
        left: list[str] = []
        if "target" in self.made:
            self._step(
                f"target {self.target_id} of rule {self.name} on bus {self.bus}",
                lambda: self.events.remove_targets(Rule=self.name, EventBusName=self.bus, Ids=[self.target_id]),
                self.events.exceptions.ResourceNotFoundException,
                left,
            )
        if "rule" in self.made:
            self._step(
                f"rule {self.name} on bus {self.bus}",
                lambda: self.events.delete_rule(Name=self.name, EventBusName=self.bus),
                self.events.exceptions.ResourceNotFoundException,
                left,
            )
        if "queue" in self.made:
            self._step(
                f"queue {self.name}",
                lambda: self.sqs.delete_queue(
                    QueueUrl=self.queue_url or self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
                ),
                self.sqs.exceptions.QueueDoesNotExist,
                left,
            )
        return left

    def _step(self, what: str, action: Callable[[], object], gone: type[Exception], left: list[str]) -> None:
        try:
            action()
        except gone:
            self.say(f"{what} was already gone")
        except Exception as exc:
            left.append(f"{what} ({exc})")
        except KeyboardInterrupt:
            left.append(f"{what} (interrupted)")
        else:
            self.say(f"removed {what}")


class CleanupFailed(CommandError):
    """Something the tail created is still there; the message names it so that it can be removed by hand."""


@contextmanager
def subscribed(
    session: botocore.session.Session, region: str, bus: str, say: Callable[[str], None]
) -> Iterator[BusSubscription]:
    """A subscription for the block, removed when it ends: normally, on Ctrl-C, on SIGTERM or on an error."""
    subscription = BusSubscription(aws_client(session, "events", region), aws_client(session, "sqs", region), bus, say)
    try:
        subscription.create()
        yield subscription
    finally:
        left = subscription.remove()
        if left:
            raise CleanupFailed("could not remove " + "; ".join(left))


def follow_bus(subscription: BusSubscription, *, wait_seconds: int = LONG_POLL_SECONDS) -> Iterator[Envelope]:
    while True:
        yield from subscription.receive(wait_seconds)
