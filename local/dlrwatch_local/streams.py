"""The table's stream, read the way Lambda's event source mapping reads it, for the local stack.

Records pass the mapping's own filter criteria (from template.yaml), arrive in batches in stream order, and a
batch's reported item failures are delivered again, up to the mapping's retry limit. The reader survives its
endpoint: restarts, tables made anew, expired iterators (see ``StreamPump``).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from dlrwatch_local.template import template

Invoke = Callable[[dict[str, Any]], dict[str, Any] | None]


def stream_source(function: str = "PublisherFunction") -> dict[str, Any] | None:
    """The ``DynamoDB`` event of ``function`` in template.yaml, or None when there is none."""
    resource = template()["Resources"].get(function)
    if not resource:
        return None
    for event in (resource["Properties"].get("Events") or {}).values():
        if event.get("Type") == "DynamoDB":
            properties: dict[str, Any] = event["Properties"]
            return properties
    return None


def filter_patterns(source: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(f["Pattern"]) for f in (source.get("FilterCriteria") or {}).get("Filters", [])]


def matches(pattern: Any, value: Any) -> bool:
    """The subset of event-pattern syntax filter criteria use here: nested keys, lists of exact values."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(matches(p, value) for p in pattern) if pattern and isinstance(pattern[0], dict) else value in pattern
    return bool(pattern == value)


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A DynamoDB Streams API record as Lambda delivers it (JSON, creation time in epoch seconds)."""
    data = dict(record["dynamodb"])
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = created.timestamp()
    shaped = {k: v for k, v in record.items() if k != "dynamodb"}
    shaped.update({"dynamodb": data, "eventSourceARN": stream_arn, "awsRegion": region})
    return shaped


class StreamPump:
    """Polls every shard of the table's stream and hands filtered batches to ``invoke``.

    It outlives the endpoint it reads: when DynamoDB goes away (a restart, a table deleted and created again),
    it says once what fails, keeps trying, and once it can read again it says so and resumes where it was: in
    each shard that still exists, after the last record it handed over; in a stream it has never seen (the
    table's new one, found through ``table_name``), from the start.
    """

    def __init__(
        self,
        streams: Any,
        stream_arn: str,
        invoke: Invoke,
        *,
        region: str,
        batch_size: int = 100,
        retries: int = 5,
        patterns: list[dict[str, Any]] | None = None,
        interval: float = 0.25,
        table_name: str | None = None,
        dynamodb: Any = None,
        retry_interval: float = 1.0,
        log: TextIO | None = None,
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.invoke = invoke
        self.region = region
        self.batch_size = batch_size
        self.retries = retries
        self.patterns = patterns or []
        self.interval = interval
        self.table_name = table_name
        self.dynamodb = dynamodb
        self.retry_interval = retry_interval
        self.log = log
        self.iterators: dict[str, str | None] = {}  # shard -> where to read next; None: closed, read to its end
        self.positions: dict[str, str] = {}  # shard -> sequence number of the last record handed over
        self.delivered = 0
        self.dropped = 0
        self.failure: str | None = None  # the kind of failure now (failure_kind), as said; None while reading works
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump()
            except Exception as failure:  # the endpoint went away, or answers oddly: say so once, and retry
                self._failed(failure)
                self._stop.wait(self.retry_interval)
                continue
            self._recovered()
            self._stop.wait(self.interval)

    # -- one pass ---------------------------------------------------------------------------------------------

    def pump(self) -> int:
        """One pass over every shard; the number of records handed over."""
        try:
            description = self._describe()
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException" or not self._follow_table():
                raise
            description = self._describe()  # the table's new stream
        handed = read = 0
        shards = [shard["ShardId"] for shard in description.get("Shards", [])]
        for gone in set(self.iterators) - set(shards):  # trimmed, or gone with its stream: nothing left to read
            self.iterators.pop(gone, None)
            self.positions.pop(gone, None)
        for shard_id in shards:
            shard_read, shard_handed = self._read(shard_id)
            read, handed = read + shard_read, handed + shard_handed
        if description.get("StreamStatus") in ("DISABLED", "DISABLING") and read == 0:
            # The table's stream was turned off, or the table made anew; this one is read to its end.
            self._follow_table()
        return handed

    def _describe(self) -> dict[str, Any]:
        """The stream's description with all its shards (DescribeStream pages them)."""
        description: dict[str, Any] = {}
        shards: list[dict[str, Any]] = []
        start: dict[str, str] = {}
        while True:
            page = self.streams.describe_stream(StreamArn=self.stream_arn, **start)["StreamDescription"]
            description = description or page
            shards += page.get("Shards", [])
            if not page.get("LastEvaluatedShardId"):
                return {**description, "Shards": shards}
            start = {"ExclusiveStartShardId": page["LastEvaluatedShardId"]}

    def _read(self, shard_id: str) -> tuple[int, int]:
        """Read one page of a shard: the records read, and those handed over (the others fail the filter)."""
        if shard_id in self.iterators and self.iterators[shard_id] is None:
            return 0, 0  # a closed shard, read to its end
        iterator = self.iterators.get(shard_id) or self._iterator(shard_id)
        try:
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
        except ClientError as error:
            if _code(error) in STALE_ITERATOR:
                # An iterator that expired, or that a restarted endpoint no longer knows: the next pass asks for
                # a fresh one at the same place (or finds the shard gone).
                self.iterators.pop(shard_id, None)
            raise
        raw = page.get("Records", [])
        records = [lambda_record(r, self.stream_arn, self.region) for r in raw]
        records = [r for r in records if not self.patterns or any(matches(p, r) for p in self.patterns)]
        for start in range(0, len(records), self.batch_size):
            self._deliver(records[start : start + self.batch_size])
        # Only now is the page handed over: had a delivery raised, the same records would be read again.
        if raw:
            self.positions[shard_id] = raw[-1]["dynamodb"]["SequenceNumber"]
        self.iterators[shard_id] = page.get("NextShardIterator")
        return len(raw), len(records)

    def _iterator(self, shard_id: str) -> str:
        """Where to start reading a shard: after the last record handed over from it, else at its oldest."""
        position = self.positions.get(shard_id)
        if position is not None:
            try:
                return str(
                    self.streams.get_shard_iterator(
                        StreamArn=self.stream_arn,
                        ShardId=shard_id,
                        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                        SequenceNumber=position,
                    )["ShardIterator"]
                )
            except ClientError as error:
                if _code(error) != "TrimmedDataAccessException":
                    raise
                # What followed our position is trimmed away: the oldest record kept is the next one left.
        return str(
            self.streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )

    def _follow_table(self) -> bool:
        """Switch to the table's current stream when it is another one; whether it was. Without the table's
        name (or when the table is gone, or streams nothing), there is nothing to follow."""
        if self.table_name is None or self.dynamodb is None:
            return False
        table = self.dynamodb.describe_table(TableName=self.table_name)["Table"]
        latest = table.get("LatestStreamArn")
        if not latest:
            raise StreamGone(f"table {self.table_name} has no stream")
        if latest == self.stream_arn:
            return False
        self._say(f"reading the new stream of table {self.table_name}: {latest}")
        self.stream_arn = latest
        self.iterators.clear()  # shards and sequence numbers belong to one stream: the new one starts afresh
        self.positions.clear()
        return True

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        for _attempt in range(self.retries + 1):
            try:
                answer = self.invoke({"Records": batch}) or {}
            except Exception as failure:  # a failed invocation retries the whole batch, as on Lambda
                self._say(f"the publisher failed on a batch of {len(batch)}: {failure!r}")
                continue
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            if not failed:
                self.delivered += len(batch)
                return
            # Lambda retries from the first failed record on; so does this.
            first = next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
            self.delivered += first
            batch = batch[first:]
        self.dropped += len(batch)

    # -- what it says -----------------------------------------------------------------------------------------

    def _failed(self, failure: Exception) -> None:
        kind = failure_kind(failure)
        if kind != self.failure:  # once per kind of failure, not on every retry
            self._say(
                f"cannot read {self.stream_arn}: {type(failure).__name__}: {failure}; "
                f"retrying every {self.retry_interval:g} s"
            )
        self.failure = kind

    def _recovered(self) -> None:
        if self.failure is not None:
            self._say(f"reading {self.stream_arn} again")
            self.failure = None

    def _say(self, message: str) -> None:
        print(f"stream reader: {message}", file=self.log or sys.stderr, flush=True)


class StreamGone(RuntimeError):
    """The table no longer has a stream to read."""


# What GetRecords answers for an iterator it will not serve: expired (after 15 minutes), trimmed, or unknown
# to an endpoint that restarted without its data (DynamoDB Local: "Invalid ShardId in ShardIterator").
STALE_ITERATOR = frozenset(
    {"ExpiredIteratorException", "TrimmedDataAccessException", "ResourceNotFoundException", "ValidationException"}
)


def failure_kind(failure: Exception) -> str:
    """What a reader's failure is, for saying it once: every way of not reaching the endpoint (refused, closed in
    the middle of an answer, timed out) is one failure, since an endpoint going away shows as any of them in turn;
    anything else is its type and message."""
    if isinstance(failure, BotoConnectionError | HTTPClientError):
        return "the endpoint does not answer"
    return f"{type(failure).__name__}: {failure}"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
