"""The forward queue ──▶ senders' callback_url: each status change POSTed, signed, retried on a schedule.

A queue message is ``{"callback_url": ..., "detail": {...}}`` (dlrwatch.publisher). Each record of a batch is
handled in its own thread (a slow sender holds up no other), and the batch is answered with the records to be
retried (ReportBatchItemFailures). A retry waits in the queue: the forwarder sets the message's visibility to the
retry schedule's next gap and reports it failed, so SQS hands it back when the retry is due and counts the
receives (ApproximateReceiveCount is the attempt's number). Once the schedule has run out, the forwarder itself
puts the message in the dead-letter queue, with why, and records it as dead-lettered.

Decisions:
- The body is the detail as compact JSON with sorted keys, ASCII only: the same bytes on every attempt, whatever
  the Python version; the signature covers exactly them.
- A retry reads the message first (one GetItem) and drops the callback when the message is gone, its
  callback_url is another one now, or the sender already has this status or a later one; the first attempt
  skips that read, because the publisher queued it a moment ago.
- Without a signing key nothing is sent unsigned: the invocation fails, every record comes back after the queue's
  visibility timeout, and the function's error metric shows it. (The registration already refuses a callback_url
  without a key; this covers a key removed later.)
- A DNS timeout at attempt time is a retry like a connection error; a URL that no longer passes the checks is
  refused for good.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dlrwatch.config import Settings
from dlrwatch.domain.times import utcnow
from dlrwatch.forwarding import (
    Attempt,
    RefusedUrl,
    Resolver,
    ResolverUnavailable,
    check_url,
    post,
    signature,
    signing_keys,
)
from dlrwatch.observability import count as count_metric
from dlrwatch.observability import loggable_id, logger
from dlrwatch.store import ForwardState, Store

MAX_THREADS = 10
_metrics_lock = threading.Lock()


def count(name: str) -> None:
    """One count, from any of a batch's threads: Powertools' buffered metric set is not safe for concurrent adds
    (two threads adding a metric's first value at once keep one)."""
    with _metrics_lock:
        count_metric(name)


class SigningKeyMissing(RuntimeError):
    """FORWARD_SIGNING_KEY is not set (or not readable): nothing is sent, every record is retried."""


@dataclass(frozen=True)
class Callback:
    """A queue message, checked: what to POST and where."""

    callback_url: str
    detail: Mapping[str, Any]
    event_id: str
    provider: str
    message_id: str
    sequence: int

    @classmethod
    def parse(cls, body: str) -> Callback:
        """The queue message's callback; ValueError naming what is wrong (never a value from it)."""
        message = json.loads(body)
        if not isinstance(message, dict):
            raise ValueError("the message is not a JSON object")
        url, detail = message.get("callback_url"), message.get("detail")
        if not isinstance(url, str) or not url:
            raise ValueError("callback_url is missing or not a string")
        if not isinstance(detail, dict):
            raise ValueError("detail is missing or not an object")
        fields: dict[str, str] = {}
        for name in ("event_id", "provider", "message_id"):
            value = detail.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"detail.{name} is missing or not a string")
            fields[name] = value
        sequence = detail.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise ValueError("detail.sequence is missing or not a whole number")
        return cls(url, detail, fields["event_id"], fields["provider"], fields["message_id"], sequence)

    def body(self) -> bytes:
        return json.dumps(self.detail, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode("ascii")

    def log_fields(self) -> dict[str, Any]:
        """What a log line may say of it: never the URL (it may carry a token), never the recipient."""
        return {
            "event_id": self.event_id,
            "provider": self.provider,
            "message_id": loggable_id(self.provider, self.message_id),
            "sequence": self.sequence,
        }


class Forwarder:
    """Handles one SQS batch of callbacks. Everything it talks to is handed in, so tests pass their own.

    ``sqs`` gives the SQS client (called on first need: a batch that retries nothing never makes one);
    ``signing_secret`` gives the FORWARD_SIGNING_KEY secret (None when not set); ``ca_certs`` replaces certifi's
    CA bundle (tests).
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        sqs: Callable[[], Any],
        dead_letter_queue_url: str,
        signing_secret: Callable[[], str | None],
        resolve: Resolver,
        clock: Callable[[], datetime] = utcnow,
        ca_certs: str | None = None,
        attempt_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sqs = sqs
        self.dead_letter_queue_url = dead_letter_queue_url
        self.signing_secret = signing_secret
        self.resolve = resolve
        self.clock = clock
        self.ca_certs = ca_certs
        self.attempt_seconds = attempt_seconds

    def handle(self, event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        """Lambda's partial-batch answer: the records to be retried."""
        records = list(event.get("Records") or [])
        if not records:
            return {"batchItemFailures": []}
        secret = self.signing_secret()
        if not secret:
            raise SigningKeyMissing("FORWARD_SIGNING_KEY is not set: no status callback is sent until it is")
        keys = signing_keys(secret)
        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(records)), thread_name_prefix="forward") as pool:
            retried = list(pool.map(lambda record: self._handle_record(record, keys), records))
        return {
            "batchItemFailures": [
                {"itemIdentifier": str(record["messageId"])}
                for record, retry in zip(records, retried, strict=True)
                if retry
            ]
        }

    def _handle_record(self, record: Mapping[str, Any], keys: list[bytes]) -> bool:
        """Handle one record; True when it is to be retried (its visibility already set)."""
        try:
            return self._forward(record, keys)
        except Exception:
            # Whatever went wrong (the store, SQS), the record comes back after the queue's visibility timeout.
            logger.exception("status callback not handled", extra={"sqs_message_id": record.get("messageId")})
            return True

    def _forward(self, record: Mapping[str, Any], keys: list[bytes]) -> bool:
        attempt_no = _receive_count(record)
        try:
            callback = Callback.parse(str(record.get("body", "")))
        except ValueError as exc:
            logger.error("malformed status callback dead-lettered", extra={"reason": str(exc)})
            self._dead_letter(str(record.get("body", "")), None, f"malformed: {exc}", attempt_no)
            count("ForwardDeadLettered")
            return False
        if attempt_no > 1 and self._superseded(callback):
            return False
        try:
            checked = check_url(
                callback.callback_url, allowed_hosts=self.settings.forward_allowed_hosts, resolve=self.resolve
            )
        except RefusedUrl as exc:
            self._record(callback, ForwardState.REFUSED, None)
            count("ForwardRefused")
            self._log("status callback refused", callback, None, None, "refused", str(exc))
            return False
        except ResolverUnavailable as exc:
            attempt = Attempt(None, "retry", str(exc))
            host = None
        else:
            host = checked.host
            body = callback.body()
            timestamp = int(self.clock().timestamp())
            headers = {
                "Content-Type": "application/json",
                "X-Dlrwatch-Event-Id": callback.event_id,
                "X-Dlrwatch-Timestamp": str(timestamp),
                "X-Dlrwatch-Signature": signature(keys, timestamp, body),
            }
            count("ForwardAttempts")
            attempt = post(checked, body, headers, timeout=self.attempt_seconds, ca_certs=self.ca_certs)
        return self._settle(record, callback, attempt, attempt_no, host)

    def _superseded(self, callback: Callback) -> bool:
        """Whether a retry is pointless now: the message is gone, sends elsewhere, or its sender has this status
        (or a later one) already."""
        target = self.store.forward_target(callback.provider, callback.message_id)
        why = None
        if target is None:
            why = "message gone"
        elif target.get("callback_url") != callback.callback_url:
            why = "callback_url replaced"
        elif int(target.get("fwd_delivered_seq") or 0) >= callback.sequence:
            why = "a later status was delivered"
        if why is None:
            return False
        count("ForwardDropped")
        logger.info("status callback dropped", extra={**callback.log_fields(), "reason": why})
        return True

    def _settle(
        self, record: Mapping[str, Any], callback: Callback, attempt: Attempt, attempt_no: int, host: str | None
    ) -> bool:
        """Record what the attempt came to, and retry it later or dead-letter it; True when it is retried."""
        if attempt.outcome == "delivered":
            self._record(callback, ForwardState.DELIVERED, attempt.status)
            count("ForwardDelivered")
            self._log("status callback delivered", callback, host, attempt.status, "delivered", attempt.reason)
            return False
        if attempt.outcome == "refused":
            self._record(callback, ForwardState.REFUSED, attempt.status)
            count("ForwardRefused")
            self._log("status callback refused", callback, host, attempt.status, "refused", attempt.reason)
            return False
        delay = retry_delay(self.settings, attempt_no)
        if delay is None:
            self._dead_letter(str(record["body"]), attempt.status, attempt.reason, attempt_no)
            self._record(callback, ForwardState.DEAD_LETTERED, attempt.status)
            count("ForwardDeadLettered")
            self._log("status callback dead-lettered", callback, host, attempt.status, "dead-lettered", attempt.reason)
            return False
        self.sqs().change_message_visibility(
            QueueUrl=queue_url(str(record["eventSourceARN"])),
            ReceiptHandle=str(record["receiptHandle"]),
            VisibilityTimeout=delay,
        )
        self._record(callback, ForwardState.RETRYING, attempt.status)
        count("ForwardRetries")
        self._log("status callback retried", callback, host, attempt.status, "retry", attempt.reason, delay)
        return True

    def _record(self, callback: Callback, state: ForwardState, http_status: int | None) -> None:
        self.store.record_forward(
            callback.provider,
            callback.message_id,
            sequence=callback.sequence,
            state=state,
            http_status=http_status,
            now=self.clock(),
        )

    def _dead_letter(self, body: str, status: int | None, reason: str, attempts: int) -> None:
        """The message as queued, with what became of it: redriven to the forward queue, it is sent again (the
        forwarder ignores the added keys)."""
        try:
            message = json.loads(body)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            message = {"body": body}
        message |= {"last_status": status, "reason": reason, "attempts": attempts}
        self.sqs().send_message(QueueUrl=self.dead_letter_queue_url, MessageBody=json.dumps(message))

    def _log(
        self,
        message: str,
        callback: Callback,
        host: str | None,
        status: int | None,
        outcome: str,
        reason: str,
        retry_in: int | None = None,
    ) -> None:
        extra = {**callback.log_fields(), "host": host, "status": status, "outcome": outcome, "reason": reason}
        if retry_in is not None:
            extra["retry_in_seconds"] = retry_in
        level = logger.info if outcome in ("delivered", "retry") else logger.warning
        level(message, extra=extra)


def retry_delay(settings: Settings, attempt_no: int) -> int | None:
    """Seconds until the retry after attempt ``attempt_no`` (1-based), or None when the schedule has run out.

    The schedule's offsets count from the first attempt: retry n waits offset[n-1] - offset[n-2] (offset[-1] = 0).
    """
    offsets = settings.forward_retry_schedule.offsets
    if attempt_no > len(offsets):
        return None
    gap = offsets[attempt_no - 1] - (offsets[attempt_no - 2] if attempt_no >= 2 else timedelta(0))
    return max(int(gap.total_seconds()), 0)


def queue_url(arn: str) -> str:
    """A queue's URL from its ARN (``arn:aws:sqs:{region}:{account}:{name}``): SQS reads the account and name
    from it, and the request goes to the client's own endpoint, so no GetQueueUrl call (and permission) is
    needed."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError("eventSourceARN is not an SQS queue's ARN")
    _, partition, _, region, account, name = parts
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def _receive_count(record: Mapping[str, Any]) -> int:
    text = str((record.get("attributes") or {}).get("ApproximateReceiveCount") or "1")
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else 1
