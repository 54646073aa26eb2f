"""Status changes out of the table's stream: one EventBridge event per change of a message's status.

The stream carries every write to the table; most change no status (a repeated report, a later report of the
same status, a registration merging into an earlier report, a reschedule, a webhook nonce, a TTL deletion).
Only a record whose ``status`` or ``final`` differs from the item's previous image becomes an event; its
``detail`` is the public contract documented in docs/schema.md and docs/schemas/status-event.schema.json.

The events are put for the whole batch, 10 a call, and each record fails or succeeds with its own event. Changes
of one message go out in stream order: when one of them cannot be put, the later ones of that message in the
batch are held back too (failed, to be retried with it), so no consumer sees ``delivered`` before ``sent``.

A message registered with a ``callback_url`` also has each such change (``pending`` aside) queued for the
forwarder, which POSTs it to the sender; and once more its current status when a registration attaches a new URL
to a message that already has a report. A record succeeds when its event is put and its callback queued; a
retried record may put or queue its change twice, with the same ``event_id`` (consumers and senders deduplicate
on it). The forward queue is fed from here, not from the bus: replaying the bus's archive never calls a sender.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dlrwatch.config import ConfigError
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import from_iso, iso, utcnow
from dlrwatch.observability import count, gauge, loggable_item, logger
from dlrwatch.store import NONCE_PREFIX, WrittenBy, from_dynamo

SOURCE = "dlrwatch"
DETAIL_TYPE = "Delivery Status Changed"
# PutEvents and SendMessageBatch take at most 10 entries a call.
MAX_ENTRIES = 10

# The stream's batch is retried as a whole when a call hangs, so fail fast and let botocore retry briefly.
EVENTS_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})
# Writes that tell nobody anything new: a poll moved later, the state of a status callback, maintenance.
BOOKKEEPING = frozenset({WrittenBy.SCHEDULE, WrittenBy.FORWARD, WrittenBy.BACKFILL})

# One record of a DynamoDB stream event, as Lambda delivers it.
Record = Mapping[str, Any]


class EventSink(Protocol):
    """Where the events go: EventBridge in AWS, a file when running locally, a list in tests."""

    def put(self, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        """Deliver ``entries`` (PutEvents entries without ``EventBusName``); answer the indexes that failed.

        Raising fails every entry of the call.
        """
        ...


class ForwardSink(Protocol):
    """Where status callbacks are queued for the forwarder: SQS in AWS and locally, a list in tests."""

    def put(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        """Queue ``messages`` (forward queue bodies); answer the indexes that failed. Raising fails them all."""
        ...


class NotPublished(Exception):
    """A record whose status change could not be put (the batch reports it as failed, and it is retried)."""


@dataclass(frozen=True)
class StatusChange:
    sequence_number: str
    item: str  # the item's key: changes of one item keep their stream order
    detail: dict[str, Any]
    publish: bool = True  # a change of status: an event on the bus
    callback_url: str | None = None  # where the sender is told of it, if anywhere

    @property
    def entry(self) -> dict[str, Any]:
        return {"Source": SOURCE, "DetailType": DETAIL_TYPE, "Detail": json.dumps(self.detail), "Resources": []}

    @property
    def forward(self) -> dict[str, Any]:
        """The forward queue's message: what the forwarder POSTs (``detail``), and where."""
        return {"callback_url": self.callback_url, "detail": self.detail}


def status_change(record: Record) -> StatusChange | None:
    """What one stream record changes that someone must hear of: a message's status (an event, and a callback
    when the message has a URL), or the URL a sender is told at (a callback of the current status); None when
    it changes neither."""
    stream = record["dynamodb"]
    sequence_number = str(stream["SequenceNumber"])
    item = str(from_dynamo(stream["Keys"])["pk"])
    if record.get("eventName") not in {"INSERT", "MODIFY"} or item.startswith(NONCE_PREFIX):
        return None
    if "NewImage" not in stream:
        raise ValueError("stream record without NewImage: the stream must carry NEW_AND_OLD_IMAGES")
    new = from_dynamo(stream["NewImage"])
    old = from_dynamo(stream.get("OldImage") or {})
    if new.get("written_by") in BOOKKEEPING or "status" not in new:
        return None
    changed = "status" not in old or (old["status"], old.get("final")) != (new["status"], new.get("final"))
    url = new.get("callback_url")
    told = new["status"] != Status.PENDING and url is not None
    attached = told and url != old.get("callback_url")
    if not changed and not attached:
        return None
    return StatusChange(
        sequence_number, item, status_detail(item, new, old), publish=changed, callback_url=url if told else None
    )


def status_detail(item: str, new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The event's ``detail`` for an item's new image and its previous one (empty for a new item)."""
    final = bool(new.get("final"))
    if new.get("written_by") == WrittenBy.REGISTRATION:
        changed_at = new.get("registered_at") or new.get("updated_at")
    else:
        changed_at = new.get("updated_at") or new.get("registered_at")
    sent_at = new.get("sent_at")
    ended_at = new.get("status_at") or changed_at
    time_to_final = None
    if final and sent_at and ended_at:
        time_to_final = round((from_iso(ended_at) - from_iso(sent_at)).total_seconds(), 3)
    return {
        "event_id": hashlib.sha256(f"{item}#{new.get('prec', '')}".encode()).hexdigest()[:32],
        "provider": new["provider"],
        "message_id": new["message_id"],
        "status": new["status"],
        "final": final,
        "provider_status": new.get("provider_status"),
        "status_at": new.get("status_at"),
        "source": new.get("source"),
        "previous_status": old.get("status"),
        "previous_final": old.get("final") if "status" in old else None,
        "sent_at": sent_at,
        "recipient": new.get("recipient"),
        "changed_at": changed_at,
        "time_to_final_seconds": time_to_final,
        # Increases with every write that can change what a sender is told: a receiver keeps the highest.
        "sequence": int(new.get("seq", 0)),
    }


class Publisher:
    def __init__(self, sink: EventSink, forwards: ForwardSink | None = None) -> None:
        self.sink = sink
        self.forwards = forwards

    def publish(self, records: Iterable[Record]) -> set[str]:
        """Put one event per status change in ``records``; answer the sequence numbers of the records that failed."""
        failed: set[str] = set()
        failed_items: set[str] = set()
        changes: list[StatusChange] = []
        for record in records:
            try:
                change = status_change(record)
            except (KeyError, TypeError, ValueError):
                sequence_number, item = _identity(record)
                logger.exception(
                    "unreadable stream record",
                    extra={"sequence_number": sequence_number, "item": loggable_item(item)},
                )
                failed.add(sequence_number)
                failed_items.add(item)
                continue
            if change is not None:
                changes.append(change)
        # Each round puts at most one change per item, so a message's changes go out one after the other.
        while changes:
            round_, later, in_round = [], [], set()
            for change in changes:
                if change.item in failed_items:
                    failed.add(change.sequence_number)  # held back behind an earlier change that failed
                elif change.item in in_round:
                    later.append(change)
                else:
                    in_round.add(change.item)
                    round_.append(change)
            for change in self._put(round_):
                failed.add(change.sequence_number)
                failed_items.add(change.item)
            changes = later
        if failed:
            count("PublishFailures", len(failed))
        return failed

    def _put(self, changes: list[StatusChange]) -> list[StatusChange]:
        """Put ``changes`` (their events, then their callbacks); answer those that failed, after recording the
        metrics of those that did not."""
        events = [change for change in changes if change.publish]
        failed = self._send(events, lambda entries: self.sink.put([c.entry for c in entries]), "status event")
        callbacks = [change for change in changes if change.callback_url is not None and change not in failed]
        if callbacks and self.forwards is None:
            logger.warning("a message has a callback_url, but no forward queue is set (FORWARD_QUEUE_URL)")
        elif callbacks and self.forwards is not None:
            forwards = self.forwards
            failed += self._send(callbacks, lambda entries: forwards.put([c.forward for c in entries]), "callback")
        for change in events:
            if change not in failed:
                _record_metrics(change.detail)
        return failed

    @staticmethod
    def _send(
        changes: list[StatusChange], put: Callable[[list[StatusChange]], list[int]], what: str
    ) -> list[StatusChange]:
        """``put`` ``changes``; answer those that failed (all of them when it raised)."""
        if not changes:
            return []
        try:
            failed_indexes = set(put(changes))
        except Exception:  # whatever the sink raised, these records are not done: they fail, and are retried
            logger.exception(f"could not send {what}s", extra={"count": len(changes)})
            return changes
        failed = [change for i, change in enumerate(changes) if i in failed_indexes]
        for change in failed:
            logger.error(
                f"{what} not sent",
                extra={"sequence_number": change.sequence_number, "item": loggable_item(change.item)},
            )
        return failed


def _record_metrics(detail: Mapping[str, Any]) -> None:
    count("StatusChanges", provider=detail["provider"], status=detail["status"])
    if detail["final"] and not detail["previous_final"]:
        count("FinalStatuses", provider=detail["provider"], source=detail["source"] or "none")
        elapsed = detail["time_to_final_seconds"]
        # A negative time means the sender's and the provider's clocks disagree: kept in the event, not measured.
        if elapsed is not None and elapsed >= 0:
            gauge("TimeToFinalSeconds", elapsed, MetricUnit.Seconds, provider=detail["provider"])


def batch_item_failures(records: Sequence[Record], failed: set[str]) -> dict[str, list[dict[str, str]]]:
    """Lambda's partial-batch answer (ReportBatchItemFailures) for ``failed`` sequence numbers, in stream order:
    Lambda retries the batch from the first of them."""
    return {
        "batchItemFailures": [
            {"itemIdentifier": number} for record in records if (number := _identity(record)[0]) in failed
        ]
    }


def _identity(record: Record) -> tuple[str, str]:
    """Sequence number and item key of a record that could not be read, as far as they can be read."""
    stream = record.get("dynamodb") or {}
    key = (stream.get("Keys") or {}).get("pk") or {}
    return str(stream.get("SequenceNumber", "")), str(key.get("S", ""))


# -- sinks ------------------------------------------------------------------------------------------------


class EventBridgeSink:
    """PutEvents on one bus, 10 entries a call; an entry EventBridge refuses, or a call that fails, is reported."""

    def __init__(self, bus_name: str, client: Any | None = None) -> None:
        self.bus_name = bus_name
        self.client: Any = client or boto3.client("events", config=EVENTS_CLIENT_CONFIG)

    def put(self, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        failed: list[int] = []
        for start in range(0, len(entries), MAX_ENTRIES):
            chunk = [{**entry, "EventBusName": self.bus_name} for entry in entries[start : start + MAX_ENTRIES]]
            indexes = range(start, start + len(chunk))
            try:
                answer = self.client.put_events(Entries=chunk)
            except (ClientError, BotoCoreError) as exc:
                logger.error("PutEvents failed", extra={"bus": self.bus_name, "error": str(exc)})
                failed.extend(indexes)
                continue
            results = answer.get("Entries", [])
            if not answer.get("FailedEntryCount"):
                continue
            if len(results) != len(chunk):  # the answer does not say which: none is known to be put
                failed.extend(indexes)
                continue
            for i, result in zip(indexes, results, strict=True):
                if result.get("ErrorCode") or not result.get("EventId"):
                    logger.error(
                        "PutEvents refused an entry",
                        extra={"error_code": result.get("ErrorCode"), "error": result.get("ErrorMessage")},
                    )
                    failed.append(i)
        return failed


class JsonLinesSink:
    """Appends each event, in the form an EventBridge target receives it, as one JSON line to a file (local runs)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def put(self, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        now = iso(utcnow())
        lines = "".join(
            json.dumps(
                {
                    "version": "0",
                    "id": str(uuid.uuid4()),
                    "detail-type": entry["DetailType"],
                    "source": entry["Source"],
                    "time": now,
                    "resources": list(entry.get("Resources", [])),
                    "detail": json.loads(entry["Detail"]),
                }
            )
            + "\n"
            for entry in entries
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
        return []


class SqsForwardSink:
    """SendMessageBatch to the forward queue, 10 messages a call; a message SQS refuses, or a call that fails,
    is reported."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        """Made on first use: a stack whose senders give no callback_url never pays for it at cold start."""
        if self._client is None:
            self._client = boto3.client("sqs", config=EVENTS_CLIENT_CONFIG)
        return self._client

    def put(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
        failed: list[int] = []
        for start in range(0, len(messages), MAX_ENTRIES):
            chunk = messages[start : start + MAX_ENTRIES]
            entries = [{"Id": str(n), "MessageBody": json.dumps(body)} for n, body in enumerate(chunk)]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                logger.error("SendMessageBatch failed", extra={"error": str(exc)})
                failed.extend(range(start, start + len(chunk)))
                continue
            refused = answer.get("Failed") or []
            for entry in refused:
                logger.error("SQS refused a callback", extra={"code": entry.get("Code"), "error": entry.get("Message")})
            sent = {entry.get("Id") for entry in answer.get("Successful") or []}
            failed.extend(start + n for n in range(len(chunk)) if str(n) not in sent)
        return failed


def forwards_from_env(env: Mapping[str, str] | None = None) -> ForwardSink | None:
    """The forward queue ``FORWARD_QUEUE_URL``, or None when there is none (no callback is ever queued)."""
    env = os.environ if env is None else env
    if url := env.get("FORWARD_QUEUE_URL", "").strip():
        return SqsForwardSink(url)
    return None


def sink_from_env(env: Mapping[str, str] | None = None) -> EventSink:
    """``EVENTS_FILE`` (a local run: JSON lines) if set, else the EventBridge bus ``EVENT_BUS_NAME``."""
    env = os.environ if env is None else env
    if path := env.get("EVENTS_FILE", "").strip():
        return JsonLinesSink(path)
    if bus := env.get("EVENT_BUS_NAME", "").strip():
        return EventBridgeSink(bus)
    raise ConfigError("EVENT_BUS_NAME is not set (or EVENTS_FILE, to write the events to a file locally)")
