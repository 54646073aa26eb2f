"""Provider status calls per message over a realistic mix of fates, with the real services on DynamoDB Local.

A thousand seven.io messages are registered (MessageService), their reports pushed (CallbackService, seven.io JSON
webhooks) and polled (Poller, over HTTP, against the seven.io stand-in), on a clock that steps from push to push
and from poll to poll of the schedule (5m, 30m, 2h, 5h, 1d, 2d, 5d after sending; each run one minute after its
poll is due). The stand-in answers what the provider knows at that moment.

Besides the calls, the run is where the cost section learns one message's life: its pushed reports, its DynamoDB
writes and units (Meter), and the status events and publisher records its writes put on the table's stream
(read back from DynamoDB Local's stream, filtered as template.yaml filters it, judged by the publisher's own
``status_change``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any

import boto3
from common import Context, Figure, quiet
from dlrwatch_local.standins import ProviderStandIns
from dlrwatch_local.streams import filter_patterns, lambda_record, matches, stream_source
from support.dynamo import create_table
from support.provider_times import berlin
from writes import Meter, Spent, add, dynamodb_client, item_size

from dlrwatch.callbacks import CallbackService
from dlrwatch.config import Settings
from dlrwatch.domain.report import Report
from dlrwatch.domain.schedule import DEFAULT_SCHEDULE, Schedule
from dlrwatch.messages import MessageService
from dlrwatch.poller import Poller
from dlrwatch.providers import sevenio
from dlrwatch.providers.base import PushRequest
from dlrwatch.publisher import status_change
from dlrwatch.store import Store, WriteResult, to_dynamo

SECTION = "calls"
TABLE = "bench-calls"
TOKEN = "bench-callback-token"  # noqa: S105 - the stand-in callback token of this run
SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SCHEDULE = Schedule.parse(DEFAULT_SCHEDULE)
SHARDS = 8
RUN_AFTER = timedelta(minutes=1)  # the scheduler runs the poller every minute: a poll is made within one
PUSHERS = 8  # pushes of one moment sent at once, as providers do

# The names the cost section reads.
CALLS = "provider calls per message"
PUSHED = "pushed reports per message"
EVENTS = "status events per message"
RECORDS = "stream records to the publisher per message"
WRITES = "DynamoDB write requests per message"
WRITE_UNITS = "DynamoDB write units per message"
READ_UNITS = "DynamoDB read units per message"
FAILED_UNITS = "failed conditional write units per message"
REPORTS = "reports stored per message"
POLLED = "messages polled per message"
ITEM_BYTES = "stored item size, final message"

S = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Fate:
    """What happens to a share of the messages: what the provider knows when (offset from sending, raw status),
    and which of it reaches us by push, when (arrival offset, raw status, provider time offset)."""

    name: str
    share: float
    known: tuple[tuple[timedelta, str], ...]
    pushed: tuple[tuple[timedelta, str, timedelta], ...]


def _learned_by_poll(step: int) -> Fate:
    offset = SCHEDULE.offsets[step]
    return Fate(
        f"final push lost, learned by the poll at {_duration(offset)}",
        0.01,
        ((5 * S, "TRANSMITTED"), (offset - MINUTE, "DELIVERED")),
        ((6 * S, "TRANSMITTED", 5 * S),),
    )


def _duration(offset: timedelta) -> str:
    seconds = int(offset.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


ON_TIME = ((5 * S, "TRANSMITTED"), (20 * S, "DELIVERED"))
ON_TIME_PUSHED = ((6 * S, "TRANSMITTED", 5 * S), (21 * S, "DELIVERED", 20 * S))
FATES = (
    Fate("final pushed before the first poll", 0.80, ON_TIME, ON_TIME_PUSHED),
    Fate("the same, the final pushed twice", 0.05, ON_TIME, (*ON_TIME_PUSHED, (2 * MINUTE, "DELIVERED", 20 * S))),
    Fate(
        "final pushed late, after the 30m poll",
        0.05,
        ((5 * S, "TRANSMITTED"), (40 * MINUTE, "DELIVERED")),
        ((6 * S, "TRANSMITTED", 5 * S), (40 * MINUTE + S, "DELIVERED", 40 * MINUTE)),
    ),
    *(_learned_by_poll(step) for step in range(len(SCHEDULE.offsets))),
    Fate(
        "never final: given up after the last poll", 0.03, ((5 * S, "TRANSMITTED"),), ((6 * S, "TRANSMITTED", 5 * S),)
    ),
)
FINALS = frozenset({"DELIVERED", "NOTDELIVERED", "REJECTED", "EXPIRED", "FAILED"})


def assign(n: int) -> list[Fate]:
    """Each of ``n`` messages' fate, in the mix's proportions (the rounding goes to the largest share)."""
    counts = [round(f.share * n) for f in FATES]
    counts[0] += n - sum(counts)
    return [fate for fate, k in zip(FATES, counts, strict=True) for _ in range(k)]


def poll_times() -> list[timedelta]:
    return [offset + RUN_AFTER for offset in SCHEDULE.offsets]


def expected_due(fates: list[Fate]) -> list[int]:
    """Messages due at each poll run, from the mix alone: a message is due until a final reached the store, by a
    push that arrived before the run or by an earlier run that found the provider knew it."""
    due = [0] * len(SCHEDULE.offsets)
    for fate in fates:
        pushed_final = min((at for at, raw, _ in fate.pushed if raw in FINALS), default=None)
        for step, run_at in enumerate(poll_times()):
            if pushed_final is not None and pushed_final < run_at:
                break
            due[step] += 1
            if any(raw in FINALS and at <= run_at for at, raw in fate.known):
                break  # this run learns the final
    return due


def floor_calls(due: list[int], ids_per_call: int = sevenio.IDS_PER_CALL) -> int:
    """The fewest status calls that ask about every due message at every run: full calls of ``ids_per_call``."""
    return sum(math.ceil(k / ids_per_call) for k in due)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CountingStore(Store):
    """The store, counting the reports it is asked to store (each a conditional write; with a read before it in a
    read-then-write design)."""

    applied: Counter[str]

    def apply(self, report: Report, now: datetime, next_poll: Any = None) -> WriteResult:
        result = super().apply(report, now, next_poll)
        self.applied[str(result.outcome)] += 1
        return result


def stream_records(ctx: Context, client: Any) -> Iterator[dict[str, Any]]:
    """Every record of the table's stream, as Lambda would receive it."""
    streams = boto3.client("dynamodbstreams", endpoint_url=ctx.dynamodb_local)
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    for shard in description["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                yield lambda_record(record, arn, "local")
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")


def run(ctx: Context) -> list[Figure]:
    with quiet(), ProviderStandIns() as standins:
        return measure(ctx, standins)


def measure(ctx: Context, standins: ProviderStandIns) -> list[Figure]:
    n = 200 if ctx.quick else 1000
    client = dynamodb_client(ctx, connections=PUSHERS + 8)
    create_table(client, TABLE)
    meter = Meter(client)
    store = CountingStore(TABLE, client=client)
    store.applied = Counter()
    clock = Clock(SENT_AT)
    settings = Settings(
        table_name=TABLE, due_shards=SHARDS, provider_urls={"sevenio": standins.urls["SEVENIO_API_URL"]}
    )
    secrets = {**ProviderStandIns.credentials(), "CALLBACK_TOKEN": TOKEN}
    callbacks = CallbackService(store, settings, secrets=secrets.get, clock=clock)
    messages = MessageService(store, settings, clock)
    poller = Poller(store, settings, secrets=secrets.get, clock=clock)

    fates = assign(n)
    ids = [str(77_600_000_000 + k) for k in range(n)]
    clock.now = SENT_AT + S
    for start in range(0, n, 500):
        batch = [
            {"provider": "sevenio", "message_id": i, "sent_at": SENT_AT.isoformat()} for i in ids[start : start + 500]
        ]
        messages.register(json.dumps({"messages": batch}).encode())
    registration = meter.take()

    # Every moment something happens: pushes arriving, and poll runs.
    Push = tuple[str, str, timedelta]
    moments: list[tuple[timedelta, int, Push | None]] = []
    for message_id, fate in zip(ids, fates, strict=True):
        for at, raw, provider_at in fate.pushed:
            moments.append((at, 0, (message_id, raw, provider_at)))
    for run_at in poll_times():
        moments.append((run_at, 1, None))
    moments.sort(key=lambda m: (m[0], m[1]))

    def push(item: Push) -> None:
        message_id, raw, provider_at = item
        data = {"msg_id": message_id, "status": raw, "timestamp": berlin(SENT_AT + provider_at)}
        body = json.dumps({"webhook_event": "dlr", "data": data}).encode()
        headers = {"content-type": "application/json"}
        callbacks.receive("sevenio", PushRequest("POST", "/callbacks/sevenio", (("token", TOKEN),), headers, body))

    due: list[int] = []
    pushes = 0
    with ThreadPoolExecutor(max_workers=PUSHERS) as pool:
        for (at, kind), group in groupby(moments, key=lambda m: (m[0], m[1])):
            clock.now = SENT_AT + at
            if kind == 0:
                arriving = [item for _, _, item in group if item is not None]
                list(pool.map(push, arriving))
                pushes += len(arriving)
                continue
            for message_id, fate in zip(ids, fates, strict=True):
                known = [(t, raw) for t, raw in fate.known if t <= at]
                standins.state.sevenio[message_id] = (known[-1][1], berlin(SENT_AT + known[-1][0])) if known else None
            summary = poller.run(budget_seconds=60)
            if summary.left_due or summary.retried:
                raise AssertionError(f"the poll run at {_duration(at)} did not settle every message: {summary}")
            due.append(summary.due)
    life = add(registration, meter.take())

    expected = expected_due(fates)
    if due != expected:
        raise AssertionError(f"messages due at each run {due}, where the mix makes them {expected}")
    calls = standins.state.calls["sevenio"]
    patterns = filter_patterns(stream_source() or {})
    records = [r for r in stream_records(ctx, client) if not patterns or any(matches(p, r) for p in patterns)]
    events = sum(1 for r in records if status_change(r) is not None)
    finals = client.scan(
        TableName=TABLE,
        FilterExpression="#final = :true",
        ExpressionAttributeNames={"#final": "final"},
        ExpressionAttributeValues=to_dynamo({":true": True}),
    )["Items"]
    item_bytes = sum(item_size(i) for i in finals) / max(len(finals), 1)
    meter.take()
    reports = sum(store.applied.values())
    return figures(ctx, n, fates, due, calls, pushes, events, len(records), life, reports, item_bytes, store.applied)


def figures(
    ctx: Context,
    n: int,
    fates: list[Fate],
    due: list[int],
    calls: int,
    pushes: int,
    events: int,
    records: int,
    life: Spent,
    reports: int,
    item_bytes: float,
    outcomes: Counter[str],
) -> list[Figure]:
    floor = floor_calls(due)
    per_message_polling = sum(due)
    mix = Counter(f.name for f in fates)
    ctx.note(
        SECTION,
        f"The mix, of {n:,} seven.io messages sent at once: "
        + "; ".join(f"{name} {count / n:.0%}" for name, count in mix.items())
        + ". Pushes: TRANSMITTED 6 s after sending, then the final (DELIVERED) as the fate says.",
    )
    ctx.note(
        SECTION,
        "Due at each poll run (5m, 30m, 2h, 5h, 1d, 2d, 5d): "
        + ", ".join(f"{k}" for k in due)
        + f"; the floor, a full call of {sevenio.IDS_PER_CALL} ids where it can be: "
        + " + ".join(str(math.ceil(k / sevenio.IDS_PER_CALL)) for k in due)
        + f" = {floor} calls. Store: DynamoDB Local (the table from template.yaml, with its stream).",
    )
    ctx.note(
        SECTION,
        "Reports stored by outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())) + ".",
    )
    return [
        Figure(
            SECTION,
            CALLS,
            calls / n,
            "calls",
            floor=floor / n,
            baseline=per_message_polling / n,
            baseline_name="one call per message per poll",
            note=f"{calls} calls for {n:,} messages",
        ),
        Figure(SECTION, POLLED, per_message_polling / n, "polls", note="a message once for each run it was due at"),
        Figure(SECTION, PUSHED, pushes / n, "reports"),
        Figure(SECTION, REPORTS, reports / n, "reports", note="pushed, polled, and our give-ups: one write each"),
        Figure(
            SECTION,
            EVENTS,
            events / n,
            "events",
            note="changes of status or finality on the stream, registration (pending) included",
        ),
        Figure(SECTION, RECORDS, records / n, "records", floor=events / n, note="stream records past the filter"),
        Figure(
            SECTION,
            WRITES,
            life.writes / n,
            "requests",
            floor=events / n,
            note="registration, pushes and polls; the floor is one write per status change",
        ),
        Figure(
            SECTION,
            WRITE_UNITS,
            life.write_units / n,
            "WCU",
            floor=events / n + 2,
            note="the floor: one unit per status change, and two for entering and leaving the due index",
        ),
        Figure(SECTION, FAILED_UNITS, life.failed_write_units / n, "WCU", note="duplicates and stale reports"),
        Figure(SECTION, READ_UNITS, life.read_units / n, "RCU", note="the poll runs' due queries"),
        Figure(SECTION, ITEM_BYTES, item_bytes, "B", note="as DynamoDB counts an item's size"),
    ]
