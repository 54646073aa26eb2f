"""What a forwarded status costs (the publisher's queueing, the forward queue, the forwarder's invocation, its write),
what the recipient index costs per message, and the price of a million forwarded statuses beside the design it
replaces: an EventBridge rule sending every status event to SQS, for a forwarder that reads each message first.

Everything dlrwatch does here is its own code: the Store on DynamoDB Local (capacity from its
``ReturnConsumedCapacity``, writes.Meter), the publisher fed stream records made from the items' own images, and
the forwarder's handler run in this process on the queue messages the publisher made, POSTing over TLS to a
loopback receiver (tests/support/receivers.py, in a process of its own so that its TLS work is not counted as the
forwarder's CPU) that answers 200 at once. SQS is a stub that answers at once and counts each call and its payload:
what SQS bills is the calls, and the calls Lambda's event source mapping makes (a receive per batch, a delete of
the handled records) are AWS's, counted from the batch size and the handler's answer.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count, pairwise
from typing import Any

from common import ROOT, Context, Figure, at_most, interleaved, median, quiet
from cost import Assumptions, Prices
from dlrwatch_local.template import template
from support.dynamo import create_table
from support.lambda_context import FakeContext
from support.receivers import NAME, CountingResolver
from writes import Meter, Spent, dynamodb_client, item_size

from dlrwatch import observability
from dlrwatch.config import Settings
from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.forwarder import Forwarder
from dlrwatch.publisher import MAX_ENTRIES, Publisher, SqsForwardSink
from dlrwatch.store import RECIPIENT_INDEX, ForwardState, NextPoll, Store, due_shard, item_key

SECTION = "callbacks"
TABLE = "bench-callbacks"
QUEUE_ARN = "arn:aws:sqs:eu-central-1:123456789012:bench-forward"
QUEUE_URL = "https://sqs.eu-central-1.amazonaws.com/123456789012/bench-forward"
DEAD_LETTER_URL = "https://sqs.eu-central-1.amazonaws.com/123456789012/bench-forward-dead"
SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
NUMBER = "+491701234567"
BATCH = 10  # the forward queue's BatchSize, and SendMessageBatch's most
SQS_CHUNK = 64 * 1024  # SQS bills each 64 KB of a request's payload as a request
# A message's reports: (status, provider status, minutes after sending).
REPORTS = ((Status.SENT, "TRANSMITTED", 1), (Status.BUFFERED, "BUFFERED", 2), (Status.DELIVERED, "DELIVERED", 3))
BASELINE = "EventBridge rule → SQS → forwarder reading the item"


@dataclass(frozen=True)
class Assumed:
    """What this section cannot measure; written down beside its table."""

    dynamodb_round_trip_ms: float = Assumptions().dynamodb_round_trip_ms
    sender_answer_ms: float = 100.0  # a sender's endpoint over the internet, TLS set up: the batch waits for it
    # The baseline's rule cannot tell which messages have a callback_url (the event does not carry the URL), so
    # every status event reaches its queue: this share of them has a callback (half, as `make run`'s sender).
    callback_share: float = 0.5
    platform_log_bytes: float = Assumptions().platform_log_bytes


# -- what stands in for SQS and for a sender -------------------------------------------------------------------


class Sqs:
    """SQS as the publisher and the forwarder call it: answers at once, counts each call and its payload bytes."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.payloads: list[int] = []
        self._lock = threading.Lock()

    def send_message_batch(self, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        with self._lock:
            self.calls["SendMessageBatch"] += 1
            self.payloads.append(sum(len(str(e["MessageBody"]).encode()) for e in Entries))
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}

    def change_message_visibility(self, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["ChangeMessageVisibility"] += 1
        return {}

    def send_message(self, **_: Any) -> dict[str, Any]:
        with self._lock:
            self.calls["SendMessage"] += 1
        return {}

    def take(self) -> Counter[str]:
        with self._lock:
            calls, self.calls = self.calls, Counter()
        return calls


class Events:
    def __init__(self) -> None:
        self.entries = 0

    def put(self, entries: Sequence[Mapping[str, Any]]) -> list[int]:
        self.entries += len(entries)
        return []


RECEIVER = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, {tests!r})
from support.receivers import Receiver, make_callback_ca
with tempfile.TemporaryDirectory() as folder:
    ca = make_callback_ca(Path(folder))
    with Receiver(tls=ca) as receiver:
        print(json.dumps({{"port": receiver.port, "ca": str(ca.ca_file)}}), flush=True)
        sys.stdin.read()
"""


@contextlib.contextmanager
def receiver() -> Iterator[tuple[int, str]]:
    """A sender's endpoint answering 200 at once, over TLS with a test CA, in a process of its own: (port, CA)."""
    child = subprocess.Popen(  # noqa: S603 (this interpreter, on a script of this file)
        [sys.executable, "-c", RECEIVER.format(tests=str(ROOT / "tests"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        started = json.loads(child.stdout.readline() or "{}")
        if "port" not in started:
            raise RuntimeError("the loopback receiver did not start")
        yield int(started["port"]), str(started["ca"])
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# -- index units by index --------------------------------------------------------------------------------------


class ByIndex:
    """The write units each index took, from the answers writes.Meter asked to carry them."""

    def __init__(self, client: Any) -> None:
        self.units: Counter[str] = Counter()
        client.meta.events.register("after-call.dynamodb.*", self._add)

    def _add(self, parsed: dict[str, Any], **_: Any) -> None:
        consumed = parsed.get("ConsumedCapacity") or []
        for answer in [consumed] if isinstance(consumed, dict) else consumed:
            for name, units in (answer.get("GlobalSecondaryIndexes") or {}).items():
                self.units[name] += float(units.get("CapacityUnits", 0))

    def take(self, index: str) -> float:
        units, self.units = self.units, Counter()
        return units[index]


# -- the messages ----------------------------------------------------------------------------------------------


@dataclass
class Bench:
    store: Store
    meter: Meter
    indexes: ByIndex
    images: Any  # an unmetered client: the items' images for the stream records
    ids: Iterator[str]
    sequence: Iterator[int]

    def register(self, message_id: str, *, recipient: bool, callback_url: str | None) -> None:
        first = NextPoll(iso(SENT_AT + timedelta(minutes=5)), 0)
        self.store.register(
            "sevenio",
            message_id,
            SENT_AT,
            NUMBER if recipient else None,
            first,
            due_shard("sevenio", message_id, 8),
            SENT_AT,
            recipient_key=NUMBER if recipient else None,
            callback_url=callback_url,
        )

    def report(self, message_id: str, n: int) -> None:
        status, raw, minutes = REPORTS[n]
        at = SENT_AT + timedelta(minutes=minutes)
        self.store.apply(Report("sevenio", message_id, status, raw, at, Source.PUSH), at + timedelta(seconds=1))

    def image(self, message_id: str) -> dict[str, Any]:
        answer = self.images.get_item(
            TableName=TABLE, Key={"pk": {"S": item_key("sevenio", message_id)}}, ConsistentRead=True
        )
        return dict(answer.get("Item") or {})

    def life(self, *, recipient: bool, callback_url: str | None) -> tuple[str, list[dict[str, Any]]]:
        """A message registered and given its three reports; the stream records its writes make."""
        message_id = next(self.ids)
        self.register(message_id, recipient=recipient, callback_url=callback_url)
        images = [self.image(message_id)]
        for n in range(len(REPORTS)):
            self.report(message_id, n)
            images.append(self.image(message_id))
        records = [stream_record(next(self.sequence), images[0], None)]
        records += [stream_record(next(self.sequence), new, old) for old, new in pairwise(images)]
        return message_id, records


def stream_record(number: int, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "Keys": {"pk": new["pk"]},
        "NewImage": new,
        "SequenceNumber": str(number),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old is not None:
        stream["OldImage"] = old
    return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": stream}


def sqs_event(bodies: Sequence[str], sequence: int, receive_count: int) -> dict[str, Any]:
    """The forward queue's messages as Lambda hands them over, each a new status (``sequence``) to the store."""
    records = []
    for n, body in enumerate(bodies):
        message = json.loads(body)
        message["detail"]["sequence"] = sequence
        records.append(
            {
                "messageId": f"bench-{sequence}-{n}",
                "receiptHandle": f"receipt-{sequence}-{n}",
                "body": json.dumps(message),
                "attributes": {"ApproximateReceiveCount": str(receive_count)},
                "eventSourceARN": QUEUE_ARN,
            }
        )
    return {"Records": records}


def elsewhere(body: str, message_id: str) -> str:
    """The same queue message for another message (one the baseline's forwarder finds without a callback_url)."""
    message = json.loads(body)
    message["detail"] = {**message["detail"], "message_id": message_id, "event_id": f"bench-{message_id}"}
    return json.dumps(message)


# -- the run ---------------------------------------------------------------------------------------------------


@dataclass
class Handled:
    """One variant of the forwarder's batch: what it spent per record, and its times per record."""

    spent: Spent
    sqs: Counter[str]
    wall_ms: list[float]
    cpu_us: list[float]
    records: int


def run(ctx: Context) -> list[Figure]:
    with quiet(), receiver() as (port, ca_file):
        return measure(ctx, port, ca_file)


def measure(ctx: Context, port: int, ca_file: str) -> list[Figure]:
    client = dynamodb_client(ctx, connections=BATCH + 2)
    create_table(client, TABLE)
    meter = Meter(client)
    indexes = ByIndex(client)
    store = Store(TABLE, client=client)
    bench = Bench(store, meter, indexes, dynamodb_client(ctx), (str(77_500_000_000 + k) for k in count()), count(1))
    url = f"https://{NAME}:{port}/hook?token=bench"
    closed = f"https://{NAME}:9/hook?token=bench"  # nothing listens: every attempt fails, to be retried
    n = 3 if ctx.quick else 10

    index = recipient_index(bench, n)

    # The publisher on ten messages' lives in one stream batch: their status events, their queue messages.
    sqs, events = Sqs(), Events()
    publisher = Publisher(events, SqsForwardSink(QUEUE_URL, client=sqs))
    lives = [bench.life(recipient=True, callback_url=url) for _ in range(BATCH)]
    records = [record for _, lives_records in lives for record in lives_records]
    if publisher.publish(records):
        raise RuntimeError("the publisher failed records")
    sends, payloads, forwarded = sqs.take()["SendMessageBatch"], list(sqs.payloads), len(lives) * len(REPORTS)
    if sends * MAX_ENTRIES != forwarded or sum(payloads) == 0:
        raise RuntimeError(f"{forwarded} callbacks went out in {sends} SendMessageBatch calls")
    bodies_by_message: dict[str, list[str]] = {}
    for body in captured_bodies(lives, url):
        bodies_by_message.setdefault(json.loads(body)["detail"]["message_id"], []).append(body)
    first = [bodies_by_message[message_id][-1] for message_id, _ in lives]

    # The typical item's forwarding write, its retry read, and its size.
    message_id = lives[0][0]
    indexes.take(RECIPIENT_INDEX)
    with meter.measuring() as delivered_write:
        store.record_forward(
            "sevenio", message_id, sequence=9_999, state=ForwardState.DELIVERED, http_status=200, now=SENT_AT
        )
    record_index_units = indexes.take(RECIPIENT_INDEX)
    with meter.measuring() as retry_read:
        store.forward_target("sevenio", message_id)
    typical_bytes = item_size(bench.image(message_id))

    # The forwarder, on the queue messages the publisher made.
    resolver = CountingResolver({NAME: ["127.0.0.1"]})
    forwarder = Forwarder(
        store,
        Settings(table_name=TABLE, forward_allowed_hosts=frozenset({NAME})),
        sqs=lambda: sqs,
        dead_letter_queue_url=DEAD_LETTER_URL,
        signing_secret=lambda: "bench-signing-key",
        resolve=resolver,
        ca_certs=ca_file,
    )
    readers = [bench.life(recipient=True, callback_url=url)[0] for _ in range(BATCH)]
    silent = [bench.life(recipient=True, callback_url=None)[0] for _ in range(BATCH)]
    failing = [bench.life(recipient=True, callback_url=closed)[0] for _ in range(BATCH)]
    reread = [elsewhere(first[k], readers[k]) for k in range(BATCH)]
    # The baseline's forwarder gets the events of messages without a callback_url too: it reads, finds none, drops.
    nothing = [elsewhere(first[k], silent[k]) for k in range(BATCH)]
    refused = [
        json.dumps({**json.loads(elsewhere(first[k], failing[k])), "callback_url": closed}) for k in range(BATCH)
    ]
    sequence = count(10_000)
    variants: dict[str, tuple[list[str], int]] = {
        "first attempt, 10 a batch": (first, 1),
        "first attempt, 1 a batch": (first[:1], 1),
        "retry, item read first, 10 a batch": (reread, 2),
        "no callback_url, item read, 10 a batch": (nothing, 2),
    }
    handled = {name: Handled(Spent(), Counter(), [], [], len(bodies)) for name, (bodies, _) in variants.items()}

    def handle(name: str) -> None:
        bodies, receives = variants[name]
        event = sqs_event(bodies, next(sequence), receives)
        started = time.process_time()
        answer = forwarder.handle(event)
        handled[name].cpu_us.append((time.process_time() - started) * 1e6 / len(bodies))
        if answer["batchItemFailures"]:
            raise RuntimeError(f"{name}: the forwarder asked for {len(answer['batchItemFailures'])} retries")

    for name in variants:  # once each, counted: the requests and units of a batch
        with meter.measuring() as spent:
            handle(name)
        handled[name].spent, handled[name].sqs = spent.per(handled[name].records), sqs.take()
        handled[name].cpu_us.clear()
    for _ in range(2):  # warm: connections, the TLS context, the CA file read once
        for name in variants:
            handle(name)
    for handled_ in handled.values():
        handled_.cpu_us.clear()
    repeats = max(ctx.repeats, 5)
    samples = interleaved({name: lambda name=name: handle(name) for name in variants}, repeats)
    for name, seconds in samples.items():
        handled[name].wall_ms = [s * 1000 / handled[name].records for s in seconds]
    sqs.take()

    # Attempts that fail (nothing listens): the first one, and a retry (which reads first).
    failed: dict[str, tuple[Spent, Counter[str]]] = {}  # per record
    for name, receives in (("first attempt", 1), ("retry", 2)):
        with meter.measuring() as spent:
            answer = forwarder.handle(sqs_event(refused, next(sequence), receives))
        if len(answer["batchItemFailures"]) != BATCH:
            raise RuntimeError(f"failed {name}s: {len(answer['batchItemFailures'])} of {BATCH} retried")
        calls = sqs.take()
        failed[name] = (spent.per(BATCH), Counter({call: k / BATCH for call, k in calls.items()}))

    log_bytes, log_lines = logged(forwarder, sqs_event(first, next(sequence), 1))
    sqs.take()
    measured = Measured(
        index=index,
        sends_per_callback=sends / forwarded,
        billed_sends_per_callback=sum(max(1, math.ceil(p / SQS_CHUNK)) for p in payloads) / forwarded,
        queue_message_bytes=sum(payloads) / forwarded,
        events_per_callback=events.entries / forwarded,
        delivered_write=delivered_write,
        record_index_units=record_index_units,
        retry_read=retry_read,
        typical_bytes=typical_bytes,
        handled=handled,
        failed=failed,
        log_bytes=log_bytes,
        log_lines=log_lines,
        repeats=repeats,
    )
    return figures(ctx, measured, Assumed())


def captured_bodies(lives: Sequence[tuple[str, list[dict[str, Any]]]], url: str) -> list[str]:
    """The queue messages the publisher made for ``lives`` (a second publish into a sink that keeps them: the
    stub SQS counts, this one keeps the bodies)."""

    class Keep:
        def __init__(self) -> None:
            self.bodies: list[str] = []

        def put(self, messages: Sequence[Mapping[str, Any]]) -> list[int]:
            self.bodies += [json.dumps(m) for m in messages]
            return []

    keep = Keep()
    Publisher(Events(), keep).publish([r for _, records in lives for r in records])
    if any(json.loads(b)["callback_url"] != url for b in keep.bodies):
        raise RuntimeError("a queue message names another callback_url")
    return keep.bodies


def recipient_index(bench: Bench, n: int) -> dict[str, dict[str, float]]:
    """Write units of a registration and of each report, without a recipient and with one: on the table and its
    indexes in all (``total``), and on the recipient index (``index``), per message and per report."""
    found: dict[str, dict[str, float]] = {}
    for label, recipient in (("without", False), ("with", True)):
        registration = reports = registration_index = reports_index = 0.0
        for _ in range(n):
            message_id = next(bench.ids)
            bench.indexes.take(RECIPIENT_INDEX)
            with bench.meter.measuring() as one:
                bench.register(message_id, recipient=recipient, callback_url=None)
            registration += one.write_units
            registration_index += bench.indexes.take(RECIPIENT_INDEX)
            for k in range(len(REPORTS)):
                with bench.meter.measuring() as one:
                    bench.report(message_id, k)
                reports += one.write_units
                reports_index += bench.indexes.take(RECIPIENT_INDEX)
        per_report = n * len(REPORTS)
        found[label] = {
            "registration": registration / n,
            "registration_index": registration_index / n,
            "report": reports / per_report,
            "report_index": reports_index / per_report,
        }
    return found


def logged(forwarder: Forwarder, event: dict[str, Any]) -> tuple[float, float]:
    """Log bytes and lines per callback of one batch through the Lambda handler as deployed (its decorators, INFO
    logging, metrics on), from what it writes to stdout."""
    environment = {
        "TABLE_NAME": TABLE,
        "FORWARD_DEAD_LETTER_QUEUE_URL": DEAD_LETTER_URL,
        "FORWARD_ALLOWED_HOSTS": NAME,
    }
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_forwarder_function", ROOT / "functions" / "forwarder" / "forwarder.py"
        )
        assert spec is not None
        assert spec.loader is not None
        function = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(function)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    function.forwarder = forwarder
    out = io.StringIO()
    handler: Any = observability.logger.registered_handler
    level, disabled = observability.logger.log_level, observability.DISABLED
    stream = handler.setStream(out)
    observability.logger.setLevel("INFO")
    observability.DISABLED = False
    try:
        with contextlib.redirect_stdout(out):
            answer = function.handler(event, FakeContext(function_name="dlrwatch-bench-forwarder"))
    finally:
        handler.setStream(stream)
        observability.logger.setLevel(level)
        observability.DISABLED = disabled
    if answer["batchItemFailures"]:
        raise RuntimeError("the logged batch was not delivered")
    text = out.getvalue()
    records = len(event["Records"])
    return len(text.encode()) / records, text.count("\n") / records


# -- figures ---------------------------------------------------------------------------------------------------


@dataclass
class Measured:
    index: dict[str, dict[str, float]]
    sends_per_callback: float
    billed_sends_per_callback: float
    queue_message_bytes: float
    events_per_callback: float
    delivered_write: Spent
    record_index_units: float
    retry_read: Spent
    typical_bytes: int
    handled: dict[str, Handled]
    failed: dict[str, tuple[Spent, Counter[str]]]
    log_bytes: float
    log_lines: float
    repeats: int

    def wall(self, name: str) -> float:
        return median(self.handled[name].wall_ms)

    def cpu(self, name: str) -> float:
        return median(self.handled[name].cpu_us)


@dataclass(frozen=True)
class Use:
    """What a million forwarded statuses use of each billed quantity, per forwarded status."""

    sqs_requests: float
    invocations: float
    gb_seconds: float
    write_units: float
    read_units: float
    log_bytes: float


def forwarder_function() -> tuple[float, str]:
    """The forwarder's memory (MB) and architecture, from template.yaml."""
    resources = template()
    defaults = resources.get("Globals", {}).get("Function", {})
    own = resources["Resources"]["ForwarderFunction"]["Properties"]
    memory = float(own.get("MemorySize", defaults.get("MemorySize", 128)))
    architecture = (own.get("Architectures") or defaults.get("Architectures") or ["x86_64"])[0]
    return memory, str(architecture)


def invocation_ms(batch: int, cpu_us: float, round_trips: int, sender: bool, memory_mb: float, a: Assumed) -> int:
    """One invocation's billed time: its records' CPU one after the other at the memory's share of a vCPU, and
    their waits side by side (each record in its own thread): DynamoDB round trips and the slowest sender."""
    cpu_share = min(memory_mb / 1769, 1.0)
    wait = round_trips * a.dynamodb_round_trip_ms + (a.sender_answer_ms if sender else 0.0)
    return math.ceil(batch * cpu_us / 1000 / cpu_share + wait)


def ours(m: Measured, batch: int, memory_mb: float, a: Assumed, *, floor: bool = False) -> Use:
    """dlrwatch's forwarded status at ``batch`` callbacks a batch (the stream's and the queue's alike)."""
    name = "first attempt, 10 a batch"
    spent = m.handled[name].spent
    sends = m.billed_sends_per_callback if batch == BATCH else 1.0
    # Lambda's event source mapping: one receive per batch, one delete of its handled records.
    sqs = sends + 2 / batch
    ms = invocation_ms(batch, m.cpu(name), 1, True, memory_mb, a)
    per_line = m.log_bytes / max(m.log_lines, 1.0)
    log_bytes = per_line if floor else m.log_bytes
    return Use(
        sqs_requests=sqs,
        invocations=1 / batch,
        gb_seconds=ms / batch / 1000 * memory_mb / 1024,
        write_units=spent.write_units,
        read_units=0.0 if floor else spent.read_units,
        log_bytes=log_bytes + a.platform_log_bytes / batch,
    )


def baseline(m: Measured, batch: int, memory_mb: float, a: Assumed) -> Use:
    """The same forwarded status by an EventBridge rule → SQS → a forwarder that reads each message first: every
    status event is queued (one SendMessage each, by EventBridge), and read, callback_url or not."""
    events = 1 / a.callback_share  # status events queued per forwarded status
    reading = m.handled["retry, item read first, 10 a batch"]
    silent = m.handled["no callback_url, item read, 10 a batch"]
    cpu = a.callback_share * m.cpu("retry, item read first, 10 a batch") + (1 - a.callback_share) * m.cpu(
        "no callback_url, item read, 10 a batch"
    )
    ms = invocation_ms(batch, cpu, 2, True, memory_mb, a)
    return Use(
        sqs_requests=events * (1 + 2 / batch),
        invocations=events / batch,
        gb_seconds=events * ms / batch / 1000 * memory_mb / 1024,
        write_units=reading.spent.write_units,
        read_units=reading.spent.read_units + (events - 1) * silent.spent.read_units,
        log_bytes=m.log_bytes + events * a.platform_log_bytes / batch,
    )


def dollars(use: Use, prices: Prices, sqs_price: float) -> dict[str, float]:
    """Dollars per million forwarded statuses, by service."""
    return {
        "SQS": use.sqs_requests * sqs_price,
        "Lambda requests": use.invocations * prices.lambda_per_million,
        "Lambda duration": use.gb_seconds * 1_000_000 * prices.lambda_arm_gb_second,
        "DynamoDB writes": use.write_units * prices.write_unit_per_million,
        "DynamoDB reads": use.read_units * prices.read_unit_per_million,
        "CloudWatch Logs": use.log_bytes * 1_000_000 / 1024**3 * prices.logs_gb,
    }


def figures(ctx: Context, m: Measured, a: Assumed) -> list[Figure]:
    memory_mb, architecture = forwarder_function()
    if architecture != "arm64":
        raise RuntimeError(f"the forwarder is {architecture}: only arm64's Lambda price is in cost.Prices")
    events = 1 / a.callback_share
    first = m.handled["first attempt, 10 a batch"]
    reading = m.handled["retry, item read first, 10 a batch"]
    silent = m.handled["no callback_url, item read, 10 a batch"]
    found: list[Figure] = []

    def add(name: str, value: float, unit: str, **more: Any) -> None:
        found.append(Figure(SECTION, name, value, unit, **more))

    # -- requests and capacity per forwarded status
    add(
        "SQS SendMessageBatch calls per forwarded status (publisher)",
        m.sends_per_callback,
        "requests",
        floor=1 / MAX_ENTRIES,
        baseline=events,
        baseline_name="EventBridge's SendMessage per status event",
        note=f"{m.queue_message_bytes:.0f} B a queue message: a call of 10 is billed as "
        f"{m.billed_sends_per_callback * MAX_ENTRIES:.0f} request(s) of 64 KB",
    )
    for batch in (BATCH, 1):
        sends = m.billed_sends_per_callback if batch == BATCH else 1.0
        add(
            f"SQS requests per forwarded status, {batch} a batch",
            sends + 2 / batch,
            "requests",
            floor=1 / MAX_ENTRIES + 2 / BATCH,
            baseline=events * (1 + 2 / batch),
            baseline_name=BASELINE,
            note="the publisher's send, and Lambda's receive and delete, each shared by the batch"
            + ("; at a trickle the stream's batch and the queue's hold one record each" if batch == 1 else ""),
        )
        add(
            f"Lambda invocations per forwarded status, {batch} a batch",
            1 / batch,
            "invocations",
            floor=1 / BATCH,
            baseline=events / batch,
            baseline_name=BASELINE,
        )
    dynamodb = first.spent
    add(
        "DynamoDB requests per forwarded status, first attempt",
        dynamodb.requests,
        "requests",
        floor=1.0,
        baseline=reading.spent.requests + (events - 1) * silent.spent.requests,
        baseline_name=BASELINE,
        target="1 write request, no read",
        met=dynamodb.writes == 1 and dynamodb.reads == 0 and at_most(dynamodb.requests, 1.0),
        note="Store.record_forward, one conditional UpdateItem",
    )
    add(
        "write units per forwarded status",
        dynamodb.write_units,
        "WCU",
        floor=math.ceil(m.typical_bytes / 1024),
        baseline=reading.spent.write_units,
        baseline_name=BASELINE,
        note=f"the typical item (a recipient, a callback_url, three reports) is {m.typical_bytes} B; its "
        f"recipient index took {m.record_index_units:g} WCU of the forwarding write",
    )
    add(
        "read units per forwarded status",
        dynamodb.read_units,
        "RCU",
        floor=0.0,
        baseline=reading.spent.read_units + (events - 1) * silent.spent.read_units,
        baseline_name=BASELINE,
    )
    retry_spent, retry_sqs = m.failed["retry"]
    first_spent, first_sqs = m.failed["first attempt"]
    add(
        "DynamoDB requests per retry delivered",
        reading.spent.requests,
        "requests",
        floor=dynamodb.requests,
        note=f"the extra is one strongly consistent GetItem (Store.forward_target) of {m.retry_read.read_units:g} "
        "RCU: the message may be gone, sending elsewhere, or told a later status",
    )
    add("read units per retry", reading.spent.read_units, "RCU", floor=0.0)
    add(
        "requests per attempt that fails, first / later",
        first_spent.requests + first_sqs["ChangeMessageVisibility"],
        "requests",
        baseline=retry_spent.requests + retry_sqs["ChangeMessageVisibility"],
        baseline_name="a later attempt",
        note=f"first: {first_spent.writes:g} UpdateItem and {first_sqs['ChangeMessageVisibility']:g} "
        f"ChangeMessageVisibility; a later one adds {retry_spent.reads:g} GetItem; each attempt is also a "
        "receive share, and the message is deleted only once it is settled",
    )

    # -- the forwarder's time and logs
    for name, label in (
        ("first attempt, 10 a batch", "first attempt, 10 a batch"),
        ("first attempt, 1 a batch", "first attempt, 1 a batch"),
    ):
        add(
            f"handler time per callback, {label}",
            m.wall(name),
            "ms",
            baseline=m.wall("retry, item read first, 10 a batch") if "10" in label else None,
            baseline_name="reading the item first" if "10" in label else "",
            note=f"median of {m.repeats} interleaved batches" if "10" in label else "",
        )
    add(
        "handler time per status event without a callback_url (baseline only)",
        m.wall("no callback_url, item read, 10 a batch"),
        "ms",
        note="the baseline's forwarder reads the message and drops the event",
    )
    add(
        "forwarder CPU per callback, first attempt, 10 a batch",
        m.cpu("first attempt, 10 a batch"),
        "µs",
        baseline=m.cpu("retry, item read first, 10 a batch"),
        baseline_name="reading the item first",
        note="this process's CPU while the handler ran: parsing, signing, TLS, the DynamoDB client",
    )
    add("log bytes per callback", m.log_bytes, "B", note=f"{m.log_lines:.2f} lines a callback")

    # -- the recipient index
    without, with_ = m.index["without"], m.index["with"]
    add(
        "recipient index write units, registration",
        with_["registration_index"],
        "WCU",
        floor=1.0,
        baseline=without["registration_index"],
        baseline_name="no recipient",
        target="1 with a recipient, 0 without",
        met=at_most(with_["registration_index"], 1.0)
        and with_["registration_index"] >= 1.0
        and without["registration_index"] == 0.0,
    )
    add(
        "write units per registration, table and indexes",
        with_["registration"],
        "WCU",
        baseline=without["registration"],
        baseline_name="no recipient",
    )
    add(
        "recipient index write units per report",
        with_["report_index"],
        "WCU",
        floor=0.0,
        baseline=without["report_index"],
        baseline_name="no recipient",
        target="0 per report",
        met=with_["report_index"] == 0.0,
    )
    add(
        "write units per report, table and indexes",
        with_["report"],
        "WCU",
        baseline=without["report"],
        baseline_name="no recipient",
    )

    # -- the price
    prices, sqs_price = Prices(), Prices().sqs_per_million
    floor_use = ours(m, BATCH, memory_mb, a, floor=True)
    floor = dollars(floor_use, prices, sqs_price)
    for batch in (BATCH, 1):
        mine = dollars(ours(m, batch, memory_mb, a), prices, sqs_price)
        theirs = dollars(baseline(m, batch, memory_mb, a), prices, sqs_price)
        if batch == BATCH:
            for service in mine:
                add(
                    f"{service}, per million forwarded statuses",
                    mine[service],
                    "$",
                    floor=floor[service],
                    baseline=theirs[service],
                    baseline_name=BASELINE,
                )
        add(
            f"total, per million forwarded statuses, {batch} a batch",
            sum(mine.values()),
            "$",
            floor=sum(floor.values()),
            baseline=sum(theirs.values()),
            baseline_name=BASELINE,
        )
    describe(ctx, m, a, memory_mb)
    return found


def describe(ctx: Context, m: Measured, a: Assumed, memory_mb: float) -> None:
    ctx.note(
        SECTION,
        "Measured: ten messages registered with a recipient and a callback_url, each given three reports (SENT, "
        "BUFFERED, DELIVERED) on DynamoDB Local; the publisher run on the 40 stream records their writes made "
        f"(made from the items' images), into a stub SQS that counts: {m.events_per_callback * 3:.0f} status "
        "events for 3 forwarded statuses a message (pending is not forwarded). The forwarder's handler run in this "
        "process on those queue messages (a new sequence each batch, so each is a new status to the store), "
        "POSTing over TLS to a loopback receiver in a process of its own that answers 200 at once; SQS is the "
        "stub (the forwarder calls it only for a retry or a dead letter). Variants took turns: a first attempt "
        "(10 a batch, and 1), a retry that reads the message first, and an event of a message without a "
        "callback_url that is read and dropped (the baseline's lot for most events).",
    )
    ctx.note(
        SECTION,
        "SQS requests are billed per call, each 64 KB of payload a request ($0.40 a million, standard queue): "
        "the publisher's SendMessageBatch of 10 and, by Lambda's event source mapping, one ReceiveMessage per "
        "batch and one DeleteMessageBatch of its handled records. Left out in both designs: the mapping's long "
        "polls of an empty queue (a handful of pollers, each a request per 20 s: about 650,000 requests, $0.26, "
        "a month whatever the traffic), and the EventBridge events, which both publish.",
    )
    ctx.note(
        SECTION,
        f"Priced with the cost section's prices; the forwarder has {memory_mb:.0f} MB (arm64, template.yaml), so "
        f"its CPU takes {1769 / memory_mb:.1f}x its time here; an invocation is billed its records' CPU one after "
        f"the other plus, side by side, a DynamoDB round trip of {a.dynamodb_round_trip_ms:g} ms (two when it "
        f"reads first) and the slowest sender's answer, assumed {a.sender_answer_ms:g} ms; "
        f"{a.platform_log_bytes:g} B of Lambda platform log records an invocation. Floor: full batches of 10, one "
        "write, no read, one log line a callback.",
    )
    ctx.note(
        SECTION,
        f"Baseline: {BASELINE}. A rule cannot tell which messages have a callback_url (the event does not carry "
        f"it: it may hold a sender's token), so every status event goes to the queue; assumed "
        f"{a.callback_share:.0%} of them have one, so {1 / a.callback_share:g} events are queued (one SendMessage "
        "each, as EventBridge delivers to SQS), received, deleted and read (the forwarder's strongly consistent "
        "GetItem) per forwarded status, with the same write and logs for the one forwarded.",
    )
