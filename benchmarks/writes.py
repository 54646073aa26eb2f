"""DynamoDB requests and capacity units per report, through the real Store on DynamoDB Local, beside the two usual
ways of getting the same guarantees: read the item first, or wrap the write in Powertools' idempotency utility.

Capacity units are DynamoDB Local's own ``ConsumedCapacity`` (``ReturnConsumedCapacity=INDEXES``, table and index
apart). DynamoDB Local returns none for a failed conditional write, which AWS bills all the same: those are
counted by AWS's rule (``Meter``), never as free.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any, cast

import boto3
from boto3.dynamodb.types import TypeSerializer
from common import Context, Figure, at_most, quiet
from support.dynamo import create_table
from support.lambda_context import FakeContext

from dlrwatch.domain.report import Report, Source, supersedes
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.store import CLIENT_CONFIG, DueMessage, NextPoll, Outcome, Store, due_shard, item_key

SECTION = "writes"
TABLE = "bench-writes"
IDEMPOTENCY_TABLE = "bench-writes-idempotency"
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# AWS's Developer Guide, "Capacity units consumed by conditional writes" (WorkingWithItems.html).
FAILED_WRITE_RULE = (
    'DynamoDB Local reports no consumed capacity for a failed conditional write, but AWS bills it: "If a '
    "ConditionExpression evaluates to false during a conditional write, DynamoDB still consumes write capacity "
    'from the table" (DynamoDB Developer Guide, Working with items, "Capacity units consumed by conditional '
    'writes"): one unit when the item does not exist, else one per KB of the item. Each failed write is counted '
    "so, from the size of the item it returns, on the table (a failed write changes no index)."
)
SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SHARDS = 8
FIRST_POLL = NextPoll(iso(SENT_AT + timedelta(minutes=5)), 0)


# -- what a client spends -------------------------------------------------------------------------------------


@dataclass
class Spent:
    """Requests and capacity units, as DynamoDB would bill them."""

    requests: int = 0
    writes: int = 0
    reads: int = 0
    write_units: float = 0.0  # table and indexes, failed conditional writes included
    index_write_units: float = 0.0
    read_units: float = 0.0
    failed_writes: int = 0  # failed conditional writes, counted by AWS's rule
    failed_write_units: float = 0.0
    scanned: int = 0  # items read by Query and Scan (their ScannedCount)

    def per(self, n: int) -> Spent:
        return Spent(**{f.name: getattr(self, f.name) / n for f in fields(self)})


def item_size(item: Mapping[str, Any]) -> int:
    """An item's size in bytes as DynamoDB counts it (the Developer Guide's item-size rules): names and values,
    numbers at a byte per two significant digits plus one, lists and maps 3 bytes plus a byte per element."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Mapping[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(len(b) for b in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in data.items())
    raise ValueError(f"unknown attribute type {kind!r}")


def _number_size(text: str) -> int:
    digits = text.lstrip("-+").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return math.ceil(len(digits) / 2) + 1


def failed_write_units(item: Mapping[str, Any] | None) -> float:
    """What AWS bills a failed conditional write: 1 unit without an item, else one per KB of it."""
    if not item:
        return 1.0
    return float(max(1, math.ceil(item_size(item) / 1024)))


class Meter:
    """Counts what a boto3 DynamoDB client spends: every call asks for its consumed capacity (table and indexes),
    and the answers are added up, whichever thread made the call."""

    def __init__(self, client: Any) -> None:
        self.spent = Spent()
        self._lock = threading.Lock()
        client.meta.events.register("before-parameter-build.dynamodb.*", self._ask)
        client.meta.events.register("after-call.dynamodb.*", self._add)

    @staticmethod
    def _ask(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "ReturnConsumedCapacity" in model.input_shape.members:
            params.setdefault("ReturnConsumedCapacity", "INDEXES")

    def _add(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        operation = model.name
        writing = operation in WRITE_OPERATIONS
        consumed = parsed.get("ConsumedCapacity") or []
        consumed = [consumed] if isinstance(consumed, dict) else consumed
        units = sum(float(c.get("CapacityUnits", 0)) for c in consumed)
        index_units = sum(
            float(i.get("CapacityUnits", 0))
            for c in consumed
            for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
            for i in (c.get(kind) or {}).values()
        )
        failed = parsed.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
        with self._lock:
            spent = self.spent
            spent.requests += 1
            spent.scanned += int(parsed.get("ScannedCount", 0))
            if writing:
                spent.writes += 1
                spent.write_units += units
                spent.index_write_units += index_units
                if failed and not consumed:
                    charged = failed_write_units(parsed.get("Item"))
                    spent.failed_writes += 1
                    spent.failed_write_units += charged
                    spent.write_units += charged
            else:
                spent.reads += 1
                spent.read_units += units

    def take(self) -> Spent:
        """What was spent since the last take, and start again from zero."""
        with self._lock:
            spent, self.spent = self.spent, Spent()
        return spent

    @contextmanager
    def measuring(self) -> Iterator[Spent]:
        """What the block spends (the fields are filled in when it ends)."""
        self.take()
        result = Spent()
        try:
            yield result
        finally:
            spent = self.take()
            for f in fields(result):
                setattr(result, f.name, getattr(spent, f.name))


def dynamodb_client(ctx: Context, connections: int = 10) -> Any:
    """A client for the run's DynamoDB Local, configured as the store's own, but for a read timeout that lets a
    Scan page of a large table (seconds on DynamoDB Local, on a busy machine) finish."""
    from botocore.config import Config

    config = CLIENT_CONFIG.merge(Config(read_timeout=60, max_pool_connections=connections))
    return boto3.client("dynamodb", endpoint_url=ctx.dynamodb_local, config=config)


# -- the three ways to store a report --------------------------------------------------------------------------


class ReadThenWrite:
    """The usual alternative to a conditional write alone: read the stored report, compare, and write only when the
    new one outranks it, on the condition that the item did not change meanwhile. Its write is the very write
    Store.apply makes, so the two differ by the read alone. The read is eventually consistent (half a unit): the
    write's condition catches a stale read."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def apply(self, report: Report, now: datetime) -> Outcome:
        answer = self.store.client.get_item(
            TableName=self.store.table_name, Key={"pk": {"S": item_key(report.provider, report.message_id)}}
        )
        stored = answer.get("Item", {}).get("prec", {}).get("S")
        if stored is not None and not supersedes(report.key, stored):
            return Outcome.DUPLICATE if stored == report.key else Outcome.STALE
        entry = TypeSerializer().serialize([report.history_entry(now)])
        history = ("list_append(if_not_exists(history, :empty), :entry)", {":empty": {"L": []}, ":entry": entry})
        self.store._update(report, now, history=history, expect_key=stored)
        return Outcome.APPLIED


def idempotent_apply(store: Store, client: Any, now: datetime) -> Callable[[Report], object]:
    """Store.apply behind Powertools' idempotency utility, on a table of its own: a report seen before is answered
    from the utility's record. It cannot replace the store's condition (a stale report is a different request), so
    the write inside keeps it."""
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    client.create_table(
        TableName=IDEMPOTENCY_TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    persistence = DynamoDBPersistenceLayer(table_name=IDEMPOTENCY_TABLE, boto3_client=client)
    config = IdempotencyConfig(expires_after_seconds=3600)
    config.register_lambda_context(cast(Any, FakeContext()))  # what the utility reads of a Lambda context

    @idempotent_function(data_keyword_argument="report", persistence_store=persistence, config=config)
    def store_report(report: dict[str, Any]) -> dict[str, str]:
        parsed = Report(
            report["provider"],
            report["message_id"],
            Status(report["status"]),
            report["provider_status"],
            datetime.fromisoformat(report["provider_time"]),
        )
        return {"outcome": str(store.apply(parsed, now).outcome)}

    def apply(report: Report) -> object:
        assert report.provider_time is not None
        fields_ = {
            "provider": report.provider,
            "message_id": report.message_id,
            "status": str(report.status),
            "provider_status": report.provider_status,
            "provider_time": report.provider_time.isoformat(),
        }
        return store_report(report=fields_)

    return apply


# -- the cases -------------------------------------------------------------------------------------------------


def delivered(message_id: str) -> Report:
    return Report("sevenio", message_id, Status.DELIVERED, "DELIVERED", SENT_AT + timedelta(minutes=1), Source.PUSH)


def transmitted(message_id: str) -> Report:
    return Report("sevenio", message_id, Status.SENT, "TRANSMITTED", SENT_AT + timedelta(seconds=30), Source.PUSH)


@dataclass(frozen=True)
class Case:
    name: str
    registered: bool
    before: tuple[Callable[[str], Report], ...]  # reports stored first (not measured)
    report: Callable[[str], Report]
    # The least a write of this report can cost in units: the item (under 1 KB) plus the index entries it must
    # change (a final removes the message from the due index).
    floor_units: float


CASES = (
    Case("new report", True, (), delivered, 2.0),
    Case("duplicate", True, (delivered,), delivered, 1.0),
    Case("stale", True, (delivered,), transmitted, 1.0),
    Case("orphan", False, (), delivered, 1.0),
)
NON_FINAL = Case("non-final report", True, (), transmitted, 1.0)
DESIGNS = ("dlrwatch", "read-then-write", "idempotency utility")
BASELINE_NAMES = {
    "read-then-write": "read-then-write",
    "idempotency utility": "Powertools idempotency",
}


def register(store: Store, message_id: str) -> None:
    store.register("sevenio", message_id, SENT_AT, None, FIRST_POLL, due_shard("sevenio", message_id, SHARDS), SENT_AT)


def run(ctx: Context) -> list[Figure]:
    with quiet():
        return measure(ctx)


def measure(ctx: Context) -> list[Figure]:
    client = dynamodb_client(ctx)
    create_table(client, TABLE)
    meter = Meter(client)
    store = Store(TABLE, client=client)
    now = SENT_AT + timedelta(minutes=2)
    rtw = ReadThenWrite(store)
    designs: dict[str, Callable[[Report], object]] = {
        "dlrwatch": lambda report: store.apply(report, now),
        "read-then-write": lambda report: rtw.apply(report, now),
        "idempotency utility": idempotent_apply(store, client, now),
    }
    n = 5 if ctx.quick else 20
    ids = (str(77_300_000_000 + k) for k in count())
    spent: dict[tuple[str, str], Spent] = {}
    for case in (*CASES, NON_FINAL):
        for design, apply in designs.items():
            total = Spent()
            for _ in range(n):
                message_id = next(ids)
                if case.registered:
                    register(store, message_id)
                for earlier in case.before:
                    apply(earlier(message_id))
                with meter.measuring() as one:
                    apply(case.report(message_id))
                total = add(total, one)
            spent[case.name, design] = total.per(n)

    registrations, reschedules = Spent(), Spent()
    for _ in range(n):
        message_id = next(ids)
        with meter.measuring() as one:
            register(store, message_id)
        registrations = add(registrations, one)
        due = DueMessage("sevenio", message_id, SENT_AT, 0, FIRST_POLL.due_at)
        with meter.measuring() as one:
            store.reschedule(due, NextPoll(iso(SENT_AT + timedelta(minutes=30)), 1))
        reschedules = add(reschedules, one)
    return figures(ctx, spent, registrations.per(n), reschedules.per(n), n)


def add(a: Spent, b: Spent) -> Spent:
    return Spent(**{f.name: getattr(a, f.name) + getattr(b, f.name) for f in fields(a)})


def figures(
    ctx: Context, spent: Mapping[tuple[str, str], Spent], registration: Spent, reschedule: Spent, n: int
) -> list[Figure]:
    found: list[Figure] = []
    every_case_one_write = all(
        spent[c.name, "dlrwatch"].writes == 1 and spent[c.name, "dlrwatch"].reads == 0 for c in (*CASES, NON_FINAL)
    )
    most = max(spent[c.name, "dlrwatch"].requests for c in (*CASES, NON_FINAL))
    found.append(
        Figure(
            SECTION,
            "DynamoDB requests per report, the most of any case",
            most,
            "requests",
            floor=1.0,
            target="1.00 write request per report, no read",
            met=every_case_one_write and at_most(most, 1.0),
            note=f"every case is one conditional UpdateItem and nothing else; {n} reports a case and design",
        )
    )
    for case in CASES:
        ours = spent[case.name, "dlrwatch"]
        read_first = spent[case.name, "read-then-write"]
        for design in ("read-then-write", "idempotency utility"):
            other = spent[case.name, design]
            against = "" if design == "read-then-write" else " (against idempotency)"
            found.append(
                Figure(
                    SECTION,
                    f"requests per report, {case.name}{against}",
                    ours.requests,
                    "requests",
                    floor=1.0,
                    baseline=other.requests,
                    baseline_name=BASELINE_NAMES[design],
                )
            )
            found.append(
                Figure(
                    SECTION,
                    f"write units per report, {case.name}{against}",
                    ours.write_units,
                    "WCU",
                    floor=case.floor_units,
                    baseline=other.write_units,
                    baseline_name=BASELINE_NAMES[design],
                    note=_units_note(ours, other, BASELINE_NAMES[design]) if design == "read-then-write" else "",
                )
            )
        found.append(
            Figure(
                SECTION,
                f"read units per report, {case.name}",
                ours.read_units,
                "RCU",
                floor=0.0,
                baseline=read_first.read_units,
                baseline_name="read-then-write",
            )
        )
    final = spent["new report", "dlrwatch"]
    non_final = spent[NON_FINAL.name, "dlrwatch"]
    for label, write in (
        ("registration (adds the due entry)", registration),
        ("final report (removes the due entry)", final),
        ("non-final report (leaves the due entry)", non_final),
        ("reschedule (moves the due entry)", reschedule),
    ):
        found.append(
            Figure(
                SECTION,
                f"index write units, {label}",
                write.index_write_units,
                "WCU",
                note=f"{_n(write.write_units)} WCU in all, {_n(write.write_units - write.index_write_units)} of them "
                "the table's",
            )
        )
    ctx.note(
        SECTION,
        "Designs: *dlrwatch* is Store.apply, one conditional UpdateItem; *read-then-write* reads the item (GetItem, "
        "eventually consistent), decides by the same precedence rule, and writes only when the report outranks the "
        "stored one, with Store.apply's own write, conditioned on the key it read; *Powertools idempotency* is "
        "Store.apply inside `idempotent_function` (DynamoDBPersistenceLayer on a table of its own in the same "
        "DynamoDB Local): it records each request before and after the write.",
    )
    ctx.note(
        SECTION,
        "Cases: *new report* is a message's first report (DELIVERED, after its registration); *duplicate* the same "
        "report again; *stale* a TRANSMITTED older than the stored DELIVERED; *orphan* a DELIVERED for a message "
        "never registered; *non-final report* a TRANSMITTED after the registration. Floors: one request; in units, "
        "the item (under 1 KB) plus the due-index entries the report must change.",
    )
    failed = sum(s.failed_writes for s in spent.values())
    if failed:
        ctx.note(SECTION, FAILED_WRITE_RULE)
    return found


def _units_note(ours: Spent, other: Spent, name: str) -> str:
    parts = []
    if ours.failed_writes:
        parts.append(f"dlrwatch's {_n(ours.failed_write_units)} WCU: a failed conditional write, billed by AWS's rule")
    if other.failed_writes:
        parts.append(f"{name}'s include {_n(other.failed_write_units)} WCU of failed conditional writes")
    return "; ".join(parts)


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
