"""The one DynamoDB adapter. Each report is one conditional UpdateItem: no read before it.

Item layout (one item per message, ``pk = "{provider}#{message_id}"``; docs/decisions.md says why):
status fields (``status``, ``final``, ``provider_status``, ``status_at``, ``source``), the precedence key of the
report they came from (``prec``), a bounded ``history``, registration fields (``sent_at``, ``recipient``), the
due-index keys present only while the message needs polling (``due_shard``, ``due_at``), the number of its next
poll (``poll_attempt``, left as it was once final), the kind of the last write (``written_by``), a counter
of the writes that can change what a sender is told (``seq``, the status event's ``sequence``), the TTL
``expires_at``, the sender's ``callback_url`` with the state of the status callbacks to it (``fwd_*``), and, when
the recipient is an E.164 number, its normalized form ``recipient_key`` (the key of the sparse recipient index,
written once, at registration). docs/schema.md documents each attribute for the stream's consumers.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
RECIPIENT_INDEX = "recipient"
# BatchGetItem reads at most 100 keys a call, BatchWriteItem writes at most 25 items.
BATCH_GET_MAX = 100
BATCH_WRITE_MAX = 25
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
    FORWARD = "forward"  # the state of the status callbacks to the sender
    BACKFILL = "backfill"  # a one-off maintenance write (the recipient index's backfill)


class ForwardState(StrEnum):
    """What became of the last status callback attempted for a message."""

    DELIVERED = "delivered"  # the sender answered 2xx
    RETRYING = "retrying"  # a 429, a 5xx, a timeout or no connection: tried again on the retry schedule
    DEAD_LETTERED = "dead-lettered"  # the retry schedule ran out: in the dead-letter queue
    REFUSED = "refused"  # a 3xx or another 4xx, or a URL that no longer passes the checks: not tried again


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
        open_retention: timedelta | None = None,
        client: DynamoDBClient | None = None,
        config: Config = CLIENT_CONFIG,
    ) -> None:
        """``retention``: how long a message is kept once final. ``open_retention``: how long after its last
        report a message that is not final is kept (a report for a message never registered, which no poll
        will ever end); longer than a registered message can stay open, so it never cuts polling short."""
        self.table_name = table_name
        self.retention = retention
        self.open_retention = open_retention or retention + timedelta(days=7)
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
            "expires_at = :expires_at",
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
            ":one": 1,
            # Kept for ``retention`` once final; a report that leaves the message open (an orphan's, say)
            # keeps it ``open_retention`` from now, renewed by each report.
            ":expires_at": int((now + (self.retention if report.final else self.open_retention)).timestamp()),
        }
        expression = " ADD seq :one"
        if report.final:
            expression += " REMOVE due_shard, due_at"
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
        *,
        recipient_key: str | None = None,
        callback_url: str | None = None,
    ) -> Registered:
        """Record a sent message and make it due, merging into whatever reports arrived before it.

        One write, unless a final report arrived first: then a second write records the registration
        without making the message due. ``recipient_key`` (the normalized recipient) is written here and only
        here, so the recipient index costs one index write per message and none per report. A message
        registered again keeps its first registration, except its ``callback_url``: the latest one given wins.
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
            ":one": 1,
        }
        sets = (
            "#provider = :provider, message_id = :message_id, sent_at = :sent_at, recipient = :recipient, "
            "registered_at = :now, written_by = :written_by, #status = if_not_exists(#status, :pending), "
            "#final = if_not_exists(#final, :false), prec = if_not_exists(prec, :pending_key)"
        )
        # DynamoDB refuses a NULL index key: the attribute is there only when there is a key.
        if recipient_key is not None:
            sets += ", recipient_key = :recipient_key"
            fields[":recipient_key"] = recipient_key
        if callback_url is not None:
            sets += ", callback_url = :callback_url"
            fields[":callback_url"] = callback_url
        registration = "SET " + sets
        names = {"#provider": "provider", "#status": "status", "#final": "final"}
        try:
            self._conditional_update(
                provider,
                message_id,
                # Due until final: an open report's expiry no longer applies, the poll schedule ends it.
                UpdateExpression=registration
                + ", due_shard = :shard, due_at = :due_at, poll_attempt = :attempt ADD seq :one REMOVE expires_at",
                ConditionExpression="attribute_not_exists(sent_at) AND "
                "(attribute_not_exists(#final) OR #final = :false)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=to_dynamo(
                    fields | {":shard": shard, ":due_at": first_poll.due_at, ":attempt": first_poll.attempt}
                ),
            )
        except _ConditionFailed as failed:
            if "sent_at" in failed.item:
                self._replace_callback_url(provider, message_id, failed.item, callback_url)
                return Registered.ALREADY_REGISTERED
            try:  # a final report came first: nothing left to poll
                self._conditional_update(
                    provider,
                    message_id,
                    UpdateExpression=registration + " ADD seq :one",
                    ConditionExpression="attribute_not_exists(sent_at)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=to_dynamo(fields),
                )
            except _ConditionFailed as again:
                self._replace_callback_url(provider, message_id, again.item, callback_url)
                return Registered.ALREADY_REGISTERED
        return Registered.REGISTERED

    def _replace_callback_url(
        self, provider: str, message_id: str, stored: dict[str, Any], callback_url: str | None
    ) -> None:
        """A registration of a message registered before: its ``callback_url``, when given and another one,
        replaces the stored one (a registration write: the sender is told the current status at the new URL)."""
        if callback_url is None or stored.get("callback_url") == callback_url:
            return
        with suppress(_ConditionFailed):  # the same URL, set meanwhile by another registration
            self._conditional_update(
                provider,
                message_id,
                UpdateExpression="SET callback_url = :url, written_by = :written_by ADD seq :one",
                ConditionExpression="attribute_exists(sent_at) AND "
                "(attribute_not_exists(callback_url) OR callback_url <> :url)",
                ExpressionAttributeValues=to_dynamo(
                    {":url": callback_url, ":written_by": WrittenBy.REGISTRATION, ":one": 1}
                ),
            )

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

    # -- status callbacks to the sender ---------------------------------------------------------------------

    def record_forward(
        self,
        provider: str,
        message_id: str,
        *,
        sequence: int,
        state: ForwardState,
        http_status: int | None,
        now: datetime,
    ) -> None:
        """Record one attempt of a status callback: the attempts so far, the last answer's HTTP status (None:
        no answer), what became of it and, once delivered, the highest ``sequence`` the sender has been sent.

        Never brings back a message that is gone (erased, or expired): there is nothing left to record then.
        """
        sets = "fwd_state = :state, fwd_http_status = :http_status, fwd_at = :now, written_by = :written_by"
        values: dict[str, Any] = {
            ":state": str(state),
            ":http_status": http_status,
            ":now": iso(now),
            ":written_by": WrittenBy.FORWARD,
            ":one": 1,
        }
        exists = "attribute_exists(pk)"
        try:
            if state is ForwardState.DELIVERED:
                try:
                    self._conditional_update(
                        provider,
                        message_id,
                        UpdateExpression=f"SET {sets}, fwd_delivered_seq = :seq ADD fwd_attempts :one",
                        ConditionExpression=f"{exists} AND "
                        "(attribute_not_exists(fwd_delivered_seq) OR fwd_delivered_seq < :seq)",
                        ExpressionAttributeValues=to_dynamo(values | {":seq": sequence}),
                    )
                    return
                except _ConditionFailed as failed:
                    if not failed.item:
                        return
                    # A later status reached the sender first: the highest stays as it is.
            self._conditional_update(
                provider,
                message_id,
                UpdateExpression=f"SET {sets} ADD fwd_attempts :one",
                ConditionExpression=exists,
                ExpressionAttributeValues=to_dynamo(values),
            )
        except _ConditionFailed:
            return

    def forward_target(self, provider: str, message_id: str) -> dict[str, Any] | None:
        """What a retry needs to know before it calls the sender again: the message's ``callback_url`` and the
        highest ``sequence`` delivered to it; None when the message is gone."""
        with _dynamodb():
            answer = self.client.get_item(
                TableName=self.table_name,
                Key={"pk": {"S": item_key(provider, message_id)}},
                ProjectionExpression="callback_url, fwd_delivered_seq",
                ConsistentRead=True,
            )
        return from_dynamo(answer["Item"]) if "Item" in answer else None

    # -- by recipient ----------------------------------------------------------------------------------------

    def by_recipient(
        self,
        recipient_key: str,
        *,
        since: str | None = None,
        limit: int = 50,
        start: dict[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        """A recipient's messages, newest ``sent_at`` first, at most ``limit`` of them from ``start`` (the
        previous page's end), and where the next page starts (None: no more).

        The recipient index holds keys only, so a status update never writes to it; the page's messages are
        then read from the table, ``limit`` keys a BatchGetItem.
        """
        condition = "recipient_key = :key"
        values: dict[str, Any] = {":key": recipient_key}
        if since is not None:
            condition += " AND sent_at >= :since"
            values[":since"] = since
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": RECIPIENT_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": to_dynamo(values),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if start is not None:
            request["ExclusiveStartKey"] = to_dynamo(dict(start))
        with _dynamodb():
            page = self.client.query(**request)
        keys = [str(from_dynamo(raw)["pk"]) for raw in page["Items"]]
        end = page.get("LastEvaluatedKey")
        items = self._get_many(keys)
        return [items[key] for key in keys if key in items], (
            {k: str(v) for k, v in from_dynamo(end).items()} if end else None
        )

    def _get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), BATCH_GET_MAX):
            pending: dict[str, Any] = {
                self.table_name: {"Keys": [{"pk": {"S": key}} for key in keys[start : start + BATCH_GET_MAX]]}
            }
            for _ in range(8):
                with _dynamodb():
                    answer = self.client.batch_get_item(RequestItems=pending)
                for raw in answer.get("Responses", {}).get(self.table_name, []):
                    item = from_dynamo(raw)
                    found[str(item["pk"])] = item
                pending = dict(answer.get("UnprocessedKeys") or {})
                if not pending:
                    break
            else:
                raise StorageUnavailable("DynamoDB left keys unprocessed, again and again")
        return found

    def forget_recipient(self, recipient_key: str, *, most: int = 500) -> tuple[int, bool]:
        """Delete at most ``most`` messages registered for ``recipient_key``; how many were deleted, and
        whether some may be left (call again)."""
        removed = 0
        start: dict[str, Any] | None = None
        while removed < most:
            request: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": RECIPIENT_INDEX,
                "KeyConditionExpression": "recipient_key = :key",
                "ExpressionAttributeValues": to_dynamo({":key": recipient_key}),
                "Limit": min(BATCH_WRITE_MAX * 4, most - removed),
            }
            if start is not None:
                request["ExclusiveStartKey"] = start
            with _dynamodb():
                page = self.client.query(**request)
            keys = [raw["pk"] for raw in page["Items"]]
            for first in range(0, len(keys), BATCH_WRITE_MAX):
                self._delete_all(keys[first : first + BATCH_WRITE_MAX])
            removed += len(keys)
            start = page.get("LastEvaluatedKey")
            if start is None:
                return removed, False
        return removed, True

    def _delete_all(self, keys: list[Any]) -> None:
        pending: dict[str, Any] = {self.table_name: [{"DeleteRequest": {"Key": {"pk": key}}} for key in keys]}
        for _ in range(8):
            with _dynamodb():
                answer = self.client.batch_write_item(RequestItems=pending)
            pending = dict(answer.get("UnprocessedItems") or {})
            if not pending:
                return
        raise StorageUnavailable("DynamoDB left deletions unprocessed, again and again")

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
