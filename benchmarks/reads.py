"""Items read per due message by the poller's due query (the sparse, sharded ``due`` index), with tens of thousands
of messages in the table that are not due, beside a poller that scans the table for due messages.

Items read are DynamoDB's own ``ScannedCount`` (what it bills reads by, before any filter), summed over every
request. The due messages are registered through Store.register; the rest of the table is seeded in bulk with
items built as Store.register and Store.apply write them (``registered_item``, ``delivered_item``; a test holds
them to the store's own writes): half of them final (outside the sparse index), half still pending with their
next poll ahead (in the index, beyond the key condition).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from common import Context, Figure, at_most, median, quiet
from support.template import table_definition
from writes import Meter, Spent, dynamodb_client

from dlrwatch.config import Settings
from dlrwatch.domain.report import PENDING_KEY, Report, Source
from dlrwatch.domain.schedule import DEFAULT_SCHEDULE, Schedule
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.poller import Poller
from dlrwatch.store import NextPoll, Store, WrittenBy, due_shard, item_key, to_dynamo

SECTION = "reads"
TABLE = "bench-reads"
TARGET = 1.05  # items read per due message
SHARDS = 8
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=90)
SCHEDULE = Schedule.parse(DEFAULT_SCHEDULE)
BATCH = 25  # BatchWriteItem's most
SEEDERS = 4  # threads: DynamoDB Local takes about 1,400 items/s from 4, half that from one, no more from 8


# -- items as the store writes them ----------------------------------------------------------------------------


def registered_item(
    provider: str,
    message_id: str,
    sent_at: datetime,
    recipient: str | None,
    first_poll: NextPoll,
    shard: str,
    now: datetime,
) -> dict[str, Any]:
    """The item Store.register writes for a message no report has reached yet (Python values)."""
    return {
        "pk": item_key(provider, message_id),
        "provider": provider,
        "message_id": message_id,
        "sent_at": iso(sent_at),
        "recipient": recipient,
        "registered_at": iso(now),
        "written_by": str(WrittenBy.REGISTRATION),
        "status": str(Status.PENDING),
        "final": False,
        "prec": PENDING_KEY,
        "due_shard": shard,
        "due_at": first_poll.due_at,
        "poll_attempt": first_poll.attempt,
        "seq": 1,
    }


def delivered_item(registered: dict[str, Any], report: Report, now: datetime, retention: timedelta) -> dict[str, Any]:
    """The item once Store.apply has stored a final ``report`` into ``registered``: out of the due index."""
    if not report.final:
        raise ValueError("a final report, which takes the message out of the due index")
    item = {k: v for k, v in registered.items() if k not in ("due_shard", "due_at")}
    item.update(
        {
            "status": str(report.status),
            "final": report.final,
            "provider_status": report.provider_status,
            "status_at": report.status_at,
            "prec": report.key,
            "source": str(report.source),
            "updated_at": iso(now),
            "written_by": str(WrittenBy.REPORT),
            "history": [report.history_entry(now)],
            "expires_at": int((now + retention).timestamp()),
            "seq": int(registered.get("seq", 0)) + 1,
        }
    )
    return item


def not_due_item(n: int, rng: random.Random) -> dict[str, Any]:
    """A message that is not due at ``NOW``: even ``n`` delivered, odd ``n`` pending with its next poll ahead."""
    message_id = str(78_000_000_000 + n)
    shard = due_shard("sevenio", message_id, SHARDS)
    if n % 2:
        sent_at = NOW - timedelta(minutes=rng.uniform(0, 4))  # its first poll, 5 minutes on, still ahead
        attempt = rng.randrange(len(SCHEDULE.offsets))
        ahead = SCHEDULE.offsets[attempt] if attempt else timedelta(minutes=5)
        due_at = NOW + timedelta(seconds=rng.uniform(1, ahead.total_seconds()))
        return registered_item("sevenio", message_id, sent_at, None, NextPoll(iso(due_at), attempt), shard, sent_at)
    sent_at = NOW - timedelta(days=rng.uniform(0, 80))
    first = NextPoll(iso(sent_at + SCHEDULE.offsets[0]), 0)
    registered = registered_item("sevenio", message_id, sent_at, "+491701234567", first, shard, sent_at)
    report = Report("sevenio", message_id, Status.DELIVERED, "DELIVERED", sent_at + timedelta(seconds=20), Source.PUSH)
    return delivered_item(registered, report, sent_at + timedelta(seconds=21), RETENTION)


def seed(client: Any, table: str, numbers: Sequence[int]) -> float:
    """Put the not-due items ``numbers`` in bulk; answers the seconds it took."""
    rng = random.Random(len(numbers))  # noqa: S311 - test data, not secrecy
    items = [to_dynamo(not_due_item(n, rng)) for n in numbers]
    chunks = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]

    def put(chunk: list[dict[str, Any]]) -> None:
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in chunk]}
        while request:
            answer = client.batch_write_item(RequestItems=request)
            request = answer.get("UnprocessedItems") or {}

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=SEEDERS) as pool:
        list(pool.map(put, chunks))
    return time.perf_counter() - started


# -- the two ways to find due messages ------------------------------------------------------------------------


def scan_due(client: Any, table: str, until: datetime) -> int:
    """A poller without the index: scan the table, keep the items due by ``until``; answers how many."""
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "due_at <= :until",
        "ExpressionAttributeValues": {":until": {"S": iso(until)}},
    }
    found = 0
    while True:
        page = client.scan(**request)
        found += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return found
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def sizes(ctx: Context) -> tuple[int, int, int]:
    """Due messages, then the two table sizes (not-due items)."""
    return (100, 1_000, 5_000) if ctx.quick else (300, 10_000, 50_000)


def run(ctx: Context) -> list[Figure]:
    with quiet():
        return measure(ctx)


def measure(ctx: Context) -> list[Figure]:
    client = dynamodb_client(ctx, connections=SEEDERS + 2)
    # The table as template.yaml defines it, but for its stream: a stream changes no read, and DynamoDB Local keeps
    # every record of it, slowing each later write (bulk seeding falls from 1,400 to under 450 items/s, and keeps
    # falling) and the sections that run after this one.
    definition = table_definition(TABLE)
    definition.pop("StreamSpecification", None)
    client.create_table(**definition)
    client.get_waiter("table_exists").wait(TableName=TABLE, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    try:
        return measure_table(ctx, client)
    finally:
        client.delete_table(TableName=TABLE)  # 50,000 items less for DynamoDB Local to hold for the next sections


def measure_table(ctx: Context, client: Any) -> list[Figure]:
    meter = Meter(client)
    store = Store(TABLE, client=client)
    poller = Poller(store, Settings(table_name=TABLE, due_shards=SHARDS), secrets=lambda _: None, clock=lambda: NOW)
    due_count, *table_sizes = sizes(ctx)
    sent_at = NOW - timedelta(minutes=6)
    first = NextPoll(iso(sent_at + SCHEDULE.offsets[0]), 0)
    for k in range(due_count):
        message_id = str(77_900_000_000 + k)
        store.register("sevenio", message_id, sent_at, None, first, due_shard("sevenio", message_id, SHARDS), sent_at)

    def due_query() -> int:
        return sum(1 for _ in poller._due(NOW))

    def scan() -> int:
        return scan_due(client, TABLE, NOW)

    found: list[Figure] = []
    seeded = 0
    for size in table_sizes:
        seconds = seed(client, TABLE, range(seeded, size))
        ctx.note(
            SECTION,
            f"{size - seeded:,} not-due items seeded in {seconds:.1f} s ({(size - seeded) / seconds:,.0f} items/s, "
            f"BatchWriteItem of {BATCH} from {SEEDERS} threads)",
        )
        seeded = size
        # The two take turns; each turn is counted as well as timed (the counts of every turn are equal). A Scan of
        # 50,000 items takes seconds on DynamoDB Local, so the larger table gets one turn.
        turns = 3 if size < max(table_sizes) else 1
        spent: dict[str, Spent] = {}
        samples: dict[str, list[float]] = {"query": [], "scan": []}
        for _ in range(turns):
            for name, find in (("query", due_query), ("scan", scan)):
                with meter.measuring() as spent[name]:
                    started = time.perf_counter()
                    found_due = find()
                    samples[name].append(time.perf_counter() - started)
                if found_due != due_count:
                    raise AssertionError(f"the {name} found {found_due} due messages of {due_count}")
        query_spent, scan_spent = spent["query"], spent["scan"]
        label = f"{size:,} not-due items and {due_count} due"
        found += [
            Figure(
                SECTION,
                f"items read per due message, {label}",
                query_spent.scanned / due_count,
                "items",
                floor=1.0,
                baseline=scan_spent.scanned / due_count,
                baseline_name="Scan with a filter on due_at",
                target=f"<= {TARGET:.2f} items read per due message",
                met=at_most(query_spent.scanned / due_count, TARGET),
                note=f"{query_spent.requests:.0f} Query requests (one per shard) against "
                f"{scan_spent.requests:.0f} Scan page(s)",
            ),
            Figure(
                SECTION,
                f"read units per due message, {label}",
                query_spent.read_units / due_count,
                "RCU",
                baseline=scan_spent.read_units / due_count,
                baseline_name="Scan with a filter on due_at",
            ),
            Figure(
                SECTION,
                f"time to find the due messages, {label}",
                median(samples["query"]) * 1000,
                "ms",
                baseline=median(samples["scan"]) * 1000,
                baseline_name="Scan with a filter on due_at",
                note=f"median of {turns} turns each" if turns > 1 else "one turn each",
            ),
        ]
    ctx.note(
        SECTION,
        "The due query is the poller's own (Poller._due: Store.due over all 8 shards, key condition "
        "`due_shard = :shard AND due_at <= :now`). Half the not-due items are delivered (no due keys: outside the "
        "sparse index), half pending with their next poll ahead (in the index, past the key condition).",
    )
    return found
