"""The table's stream, read the way Lambda's event source mapping reads it, for the local stack.

Records pass the mapping's own filter criteria (from template.yaml), arrive in batches in stream order, and a
batch's reported item failures are delivered again, up to the mapping's retry limit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

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
    """Polls every shard of the table's stream and hands filtered batches to ``invoke``."""

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
    ) -> None:
        self.streams = streams
        self.stream_arn = stream_arn
        self.invoke = invoke
        self.region = region
        self.batch_size = batch_size
        self.retries = retries
        self.patterns = patterns or []
        self.interval = interval
        self.iterators: dict[str, str | None] = {}
        self.delivered = 0
        self.dropped = 0
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
            except Exception:  # an endpoint hiccup must not end the local stream
                time.sleep(1)
            self._stop.wait(self.interval)

    def pump(self) -> int:
        """One pass over every shard; the number of records handed over."""
        handed = 0
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        for shard in description.get("Shards", []):
            shard_id = shard["ShardId"]
            if shard_id not in self.iterators:
                self.iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            iterator = self.iterators[shard_id]
            if iterator is None:
                continue  # a closed shard, read to its end
            page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            self.iterators[shard_id] = page.get("NextShardIterator")
            records = [lambda_record(r, self.stream_arn, self.region) for r in page.get("Records", [])]
            records = [r for r in records if not self.patterns or any(matches(p, r) for p in self.patterns)]
            for start in range(0, len(records), self.batch_size):
                self._deliver(records[start : start + self.batch_size])
                handed += len(records[start : start + self.batch_size])
        return handed

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        for _attempt in range(self.retries + 1):
            answer = self.invoke({"Records": batch}) or {}
            failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
            if not failed:
                self.delivered += len(batch)
                return
            # Lambda retries from the first failed record on; so does this.
            first = next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
            self.delivered += first
            batch = batch[first:]
        self.dropped += len(batch)
