"""The one DynamoDB adapter. Each report is one conditional UpdateItem: no read before it.

Item layout (one item per message, ``pk = "{provider}#{message_id}"``; docs/decisions.md says why):
status fields (``status``, ``final``, ``provider_status``, ``status_at``, ``source``), the precedence key of the
report they came from (``prec``), a bounded ``history``, registration fields (``sent_at``, ``recipient``), the
due-index keys present only while the message needs polling (``due_shard``, ``due_at``), the number of its next
poll (``poll_attempt``, left as it was once final), the kind of the last write (``written_by``) and, once final,
the TTL ``expires_at``. docs/schema.md documents each attribute for the stream's consumers.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dlrwatch.domain.report import PENDING_KEY, Report, Tier, key_status, supersedes
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import from_iso, iso
from dlrwatch.errors import StorageUnavailable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HISTORY_MAX = 50
DUE_INDEX = "due"
NONCE_PREFIX = "nonce#"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# botocore's standard retries absorb throttling and brief faults; what still fails becomes a 5xx (the sender
# retries) or leaves a message due (the next poll run retries). Its pool keeps a connection for each of the poll
# run's writers (dlrwatch.poller.WRITERS), and two to spare.
CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}, max_pool_connections=10
)
# Callbacks answer within seconds (dlrwatch.callbacks): DynamoDB answers in milliseconds, so a call that takes
# a second has hung, and a second attempt is all the budget holds. Its pool keeps a connection for each of a
# request's writers (dlrwatch.callbacks.WRITERS), so a full request does not open and drop connections.
CALLBACK_CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2}, max_pool_connections=16
)


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # the same report again: nothing written
    STALE = "stale"  # a report the stored one outranks: nothing written


@dataclass(frozen=True)
class WriteResult:
    outcome: Outcome
    previous_status: str | None = None
    # Two different provider finals for one message: the later provider time won (rule 1).
    conflicting_final: bool = False


@dataclass(frozen=True)
class NextPoll:
    """When a message is polled next, and which poll of its schedule that is (0-based)."""

    due_at: str
    attempt: int


@dataclass(frozen=True)
class DueMessage:
    """A due-index entry: all the poller knows of a message before it asks the provider."""

    provider: str
    message_id: str
    sent_at: datetime
    poll_attempt: int
    due_at: str


class WrittenBy(StrEnum):
    """Which kind of write last touched an item: lets the stream's consumers skip bookkeeping writes
    (the publisher's event source mapping filters on it) without comparing old and new images."""

    REPORT = "report"
    REGISTRATION = "registration"
    SCHEDULE = "schedule"


class Registered(StrEnum):
    REGISTERED = "registered"
    ALREADY_REGISTERED = "already registered"


def item_key(provider: str, message_id: str) -> str:
    return f"{provider}#{message_id}"


def nonce_key(provider: str, nonce: str) -> str:
    return f"{NONCE_PREFIX}{provider}#{nonce}"


def due_shard(provider: str, message_id: str, shards: int) -> str:
    """A stable shard, so a message's due entry always lands on the same index partition."""
    return str(zlib.crc32(item_key(provider, message_id).encode()) % shards)


def to_dynamo(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in value.items()}


def from_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


class Store:
    def __init__(
        self,
        table_name: str,
        *,
        retention: timedelta = timedelta(days=90),
        client: DynamoDBClient | None = None,
        config: Config = CLIENT_CONFIG,
    ) -> None:
        self.table_name = table_name
        self.retention = retention
        self.client: DynamoDBClient = client or boto3.client("dynamodb", config=config)

    # -- reports ---------------------------------------------------------------------------------------

    def apply(self, report: Report, now: datetime, next_poll: NextPoll | None = None) -> WriteResult:
        """Store ``report`` if its key outranks the stored one (rules 1-6 of the update).

        A polled non-final report carries the message's next poll in the same write (``next_poll``).
        """
        entry = _serializer.serialize([report.history_entry(now)])
        try:
            old = self._update(
                report,
                now,
                next_poll=next_poll,
                history=("list_append(if_not_exists(history, :empty), :entry)", {":empty": {"L": []}, ":entry": entry}),
            )
        except _ConditionFailed as failed:
            stored = failed.item
            stored_key = stored.get("prec")
            if stored_key is not None and not supersedes(report.key, stored_key):
                outcome = Outcome.DUPLICATE if stored_key == report.key else Outcome.STALE
                return WriteResult(outcome, _previous(stored), _conflict(stored, report))
            # It outranks the stored report, but the history is full: keep its newest entries.
            old = self._apply_trimmed(report, now, stored, next_poll)
        return WriteResult(Outcome.APPLIED, _previous(old), _conflict(old, report))

    def _apply_trimmed(
        self, report: Report, now: datetime, stored: dict[str, Any], next_poll: NextPoll | None
    ) -> dict[str, Any]:
        for _ in range(5):
            history = [*list(stored.get("history", []))[-(HISTORY_MAX - 1) :], report.history_entry(now)]
            try:
                return self._update(
                    report,
                    now,
                    history=(":history", {":history": _serializer.serialize(history)}),
                    expect_key=stored.get("prec"),
                    next_poll=next_poll,
                )
            except _ConditionFailed as failed:
                stored = failed.item
                if not supersedes(report.key, stored.get("prec")):
                    return stored  # overtaken meanwhile; a later apply() of this report is a no-op
        raise StorageUnavailable("history trim kept losing the race")

    def _update(
        self,
        report: Report,
        now: datetime,
        *,
        history: tuple[str, dict[str, Any]],
        expect_key: str | None = None,
        next_poll: NextPoll | None = None,
    ) -> dict[str, Any]:
        history_expr, history_values = history
        sets = [
            "#provider = :provider",
            "message_id = :message_id",
            "#status = :status",
            "#final = :final",
            "provider_status = :provider_status",
            "status_at = :status_at",
            "prec = :prec",
            "#source = :source",
            "updated_at = :now",
            "written_by = :written_by",
            f"history = {history_expr}",
        ]
        values: dict[str, Any] = {
            ":provider": report.provider,
            ":message_id": report.message_id,
            ":status": str(report.status),
            ":final": report.final,
            ":provider_status": report.provider_status,
            ":status_at": report.status_at,
            ":prec": report.key,
            ":source": str(report.source),
            ":now": iso(now),
            ":written_by": WrittenBy.REPORT,
        }
        expression = ""
        if report.final:
            sets.append("expires_at = :expires_at")
            values[":expires_at"] = int((now + self.retention).timestamp())
            expression = " REMOVE due_shard, due_at"
        elif next_poll is not None:
            sets += ["due_at = :due_at", "poll_attempt = :poll_attempt"]
            values |= {":due_at": next_poll.due_at, ":poll_attempt": next_poll.attempt}
        if expect_key is None:
            condition = (
                "(attribute_not_exists(prec) OR prec < :prec) AND "
                "(attribute_not_exists(history) OR size(history) < :history_max)"
            )
            values[":history_max"] = HISTORY_MAX
        else:
            condition = "prec = :expected"
            values[":expected"] = expect_key
        return self._conditional_update(
            report.provider,
            report.message_id,
            UpdateExpression="SET " + ", ".join(sets) + expression,
            ConditionExpression=condition,
            ExpressionAttributeNames={
                "#provider": "provider",
                "#status": "status",
                "#final": "final",
                "#source": "source",
            },
            ExpressionAttributeValues=to_dynamo(values) | history_values,
            ReturnValues="UPDATED_OLD",
        )

    def _conditional_update(self, provider: str, message_id: str, **request: Any) -> dict[str, Any]:
        with _dynamodb():
            answer = self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": item_key(provider, message_id)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **request,
            )
        return from_dynamo(answer.get("Attributes", {}))

    # -- registration and polling -----------------------------------------------------------------------

    def register(
        self,
        provider: str,
        message_id: str,
        sent_at: datetime,
        recipient: str | None,
        first_poll: NextPoll,
        shard: str,
        now: datetime,
    ) -> Registered:
        """Record a sent message and make it due, merging into whatever reports arrived before it.

        One write, unless a final report arrived first: then a second write records the registration
        without making the message due.
        """
        fields = {
            ":provider": provider,
            ":message_id": message_id,
            ":sent_at": iso(sent_at),
            ":recipient": recipient,
            ":now": iso(now),
            ":written_by": WrittenBy.REGISTRATION,
            ":pending": str(Status.PENDING),
            ":false": False,
            ":pending_key": PENDING_KEY,
        }
        registration = (
            "SET #provider = :provider, message_id = :message_id, sent_at = :sent_at, recipient = :recipient, "
            "registered_at = :now, written_by = :written_by, #status = if_not_exists(#status, :pending), "
            "#final = if_not_exists(#final, :false), prec = if_not_exists(prec, :pending_key)"
        )
        names = {"#provider": "provider", "#status": "status", "#final": "final"}
        try:
            self._conditional_update(
                provider,
                message_id,
                UpdateExpression=registration + ", due_shard = :shard, due_at = :due_at, poll_attempt = :attempt",
                ConditionExpression="attribute_not_exists(sent_at) AND "
                "(attribute_not_exists(#final) OR #final = :false)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo(
                    fields | {":shard": shard, ":due_at": first_poll.due_at, ":attempt": first_poll.attempt}
                ),
            )
        except _ConditionFailed as failed:
            if "sent_at" in failed.item:
                return Registered.ALREADY_REGISTERED
            try:  # a final report came first: nothing left to poll
                self._conditional_update(
                    provider,
                    message_id,
                    UpdateExpression=registration,
                    ConditionExpression="attribute_not_exists(sent_at)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=to_dynamo(fields),
                )
            except _ConditionFailed:
                return Registered.ALREADY_REGISTERED
        return Registered.REGISTERED

    def reschedule(self, message: DueMessage, next_poll: NextPoll) -> bool:
        """Move a due message to its next poll; False when another run or a final report got there first."""
        try:
            self._conditional_update(
                message.provider,
                message.message_id,
                UpdateExpression="SET due_at = :due_at, poll_attempt = :attempt, written_by = :written_by",
                ConditionExpression="due_at = :seen",
                ExpressionAttributeValues=to_dynamo(
                    {
                        ":due_at": next_poll.due_at,
                        ":attempt": next_poll.attempt,
                        ":seen": message.due_at,
                        ":written_by": WrittenBy.SCHEDULE,
                    }
                ),
            )
        except _ConditionFailed:
            return False
        return True

    def due(self, shard: str, until: datetime, page_size: int = 500) -> Iterator[DueMessage]:
        """The messages of one due-index shard whose poll time has come, oldest first; nothing else is read."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "due_shard = :shard AND due_at <= :until",
            "ExpressionAttributeValues": to_dynamo({":shard": shard, ":until": iso(until)}),
            "Limit": page_size,
        }
        while True:
            with _dynamodb():
                page = self.client.query(**request)
            for raw in page["Items"]:
                item = from_dynamo(raw)
                yield DueMessage(
                    provider=item["provider"],
                    message_id=item["message_id"],
                    sent_at=from_iso(item["sent_at"]),
                    poll_attempt=int(item.get("poll_attempt", 0)),
                    due_at=item["due_at"],
                )
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- signed webhook nonces ---------------------------------------------------------------------------

    def remember_nonce(self, provider: str, nonce: str, now: datetime, ttl: timedelta) -> bool:
        """Record a webhook nonce; False when it was seen before and has not expired (a replay).

        Called once the request's reports are stored, so a request that failed never leaves its nonce behind.
        """
        try:
            with _dynamodb():
                self.client.put_item(
                    TableName=self.table_name,
                    Item=to_dynamo({"pk": nonce_key(provider, nonce), "expires_at": int((now + ttl).timestamp())}),
                    ConditionExpression="attribute_not_exists(pk) OR expires_at < :now",
                    ExpressionAttributeValues={":now": {"N": str(int(now.timestamp()))}},
                )
        except _ConditionFailed:
            return False
        return True

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, provider: str, message_id: str) -> dict[str, Any] | None:
        with _dynamodb():
            answer = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": item_key(provider, message_id)}}, ConsistentRead=True
            )
        return from_dynamo(answer["Item"]) if "Item" in answer else None


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("condition failed")
        self.item = item


@contextmanager
def _dynamodb() -> Iterator[None]:
    """The one translation of DynamoDB's errors: a failed condition (with the stored item, when it was asked
    for) becomes ``_ConditionFailed``; anything else, ``StorageUnavailable`` (a 5xx, so the sender retries)."""
    try:
        yield
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if code == "ConditionalCheckFailedException":
            raise _ConditionFailed(from_dynamo(cast(dict[str, Any], exc.response.get("Item", {})))) from None
        raise StorageUnavailable(f"DynamoDB {code}") from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"DynamoDB unreachable: {type(exc).__name__}") from exc


def _previous(stored: dict[str, Any]) -> str | None:
    """The status the item held before this write, read from its precedence key: the key changes with every
    applied report, so it is always among the old values DynamoDB returns, while an unchanged status may not be."""
    key = stored.get("prec")
    return str(key_status(key)[1]) if key else None


def _conflict(stored: dict[str, Any], report: Report) -> bool:
    """Whether the stored status and ``report`` are two different provider finals."""
    key = stored.get("prec")
    if not key or report.tier is not Tier.PROVIDER_FINAL:
        return False
    tier, status = key_status(key)
    return tier is Tier.PROVIDER_FINAL and status is not report.status
