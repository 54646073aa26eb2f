"""Poll throughput: messages one run settles a second, against provider stand-ins that take 100 ms to answer.

The ideal is what the providers allow: the calls a provider may have in flight, times the ids one call asks for,
every 100 ms (seven.io 2 x 50 ids, BulkSMS JSON 4 x 1, the EAPI 1 batch). A run reaches it only when settling an
answer (a DynamoDB write a message) never holds up the next call. Measured on a store double whose writes take a
fixed 5 ms (DynamoDB's order on AWS), and on DynamoDB Local; each beside the design the writers replaced, where the
thread that made a call wrote its answer before its next call (``Poller(writers=0)``), the two taking turns.

The capacity of one run is its measured rate over the 50 s a run may start calls for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from common import Context, Figure, median, quiet
from dlrwatch_local.standins import ProviderStandIns
from support.dynamo import create_table
from writes import dynamodb_client

from dlrwatch.config import Settings
from dlrwatch.domain.report import PENDING_KEY, Report, Source, supersedes
from dlrwatch.domain.schedule import Schedule
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.poller import WRITERS, Poller
from dlrwatch.providers import PROVIDERS
from dlrwatch.store import DueMessage, NextPoll, Outcome, Store, WriteResult, due_shard, to_dynamo

SECTION = "throughput"
TABLE = "bench-throughput"
LATENCY = 0.1  # seconds a stand-in takes to answer a status call
WRITE_SECONDS = 0.005  # one DynamoDB write on AWS, about
BUDGET = 50  # seconds a run may start calls for (Settings.poll_budget_seconds)
TARGET = 0.80  # of the ideal
SHARDS = 8
SCHEDULE = Schedule.parse("5m,30m,2h,5h,1d,2d,5d")
SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
FIRST_POLL = SENT_AT + SCHEDULE.offsets[0]
NOW = FIRST_POLL + timedelta(minutes=1)
VARIANTS = {"writers": WRITERS, "inline": 0}
BASELINE = "writes inline, before the next call (the design before writers)"
LABELS = {"sevenio": "seven.io", "bulksms": "BulkSMS JSON", "bulksms-eapi": "BulkSMS EAPI"}


class TimedMemoryStore:
    """A benchmark double of the three Store methods a poll run uses (``due``, ``apply``, ``reschedule``), in
    memory, each write taking ``write_seconds`` as a round trip to DynamoDB would. It keeps the rules the poller
    relies on: an item is due while it has a due time; a report applies only when its precedence key outranks the
    stored one, and a final one ends the due time; a reschedule holds only if the due time is still the one read.
    Nothing else of the real store (history, TTL, registration, paging) is here."""

    def __init__(self, write_seconds: float) -> None:
        self.write_seconds = write_seconds
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add_due(self, provider: str, message_id: str) -> None:
        self.items[provider, message_id] = {
            "prec": PENDING_KEY,
            "due_at": iso(FIRST_POLL),
            "poll_attempt": 0,
            "shard": due_shard(provider, message_id, SHARDS),
        }

    def due(self, shard: str, until: datetime, page_size: int = 500) -> Iterator[DueMessage]:
        with self._lock:
            found = sorted(
                (item["due_at"], provider, mid, item["poll_attempt"])
                for (provider, mid), item in self.items.items()
                if item["shard"] == shard and item["due_at"] is not None and item["due_at"] <= iso(until)
            )
        for due_at, provider, mid, attempt in found:
            yield DueMessage(provider, mid, SENT_AT, attempt, due_at)

    def apply(self, report: Report, now: datetime, next_poll: NextPoll | None = None) -> WriteResult:
        time.sleep(self.write_seconds)
        with self._lock:
            item = self.items.setdefault((report.provider, report.message_id), {"prec": None, "due_at": None})
            if not supersedes(report.key, item["prec"]):
                return WriteResult(Outcome.DUPLICATE if item["prec"] == report.key else Outcome.STALE)
            item["prec"] = report.key
            if report.final:
                item["due_at"] = None
            elif next_poll is not None:
                item["due_at"], item["poll_attempt"] = next_poll.due_at, next_poll.attempt
        return WriteResult(Outcome.APPLIED)

    def reschedule(self, message: DueMessage, next_poll: NextPoll) -> bool:
        time.sleep(self.write_seconds)
        with self._lock:
            item = self.items.get((message.provider, message.message_id))
            if item is None or item["due_at"] != message.due_at:
                return False
            item["due_at"], item["poll_attempt"] = next_poll.due_at, next_poll.attempt
        return True

    def still_due(self) -> int:
        return sum(1 for item in self.items.values() if item["due_at"] is not None)


@dataclass(frozen=True)
class Case:
    provider: str
    messages: int  # due at the start of a run

    @property
    def per_call(self) -> int:
        # The EAPI's batches here have one recipient each: one call a message, its least favourable case.
        return int(getattr(PROVIDERS[self.provider], "IDS_PER_CALL", 1))

    @property
    def ideal(self) -> float:
        return PROVIDERS[self.provider].POLL_CONCURRENCY * self.per_call / LATENCY


def message_ids(provider: str, first: int, number: int) -> list[str]:
    if provider == "bulksms-eapi":
        return [f"{first + n}:447700900001" for n in range(number)]
    return [str(first + n) for n in range(number)]


def answer_delivered(standins: ProviderStandIns, provider: str, ids: list[str]) -> None:
    """What the stand-in answers for ``ids``: a final report each, so a message is settled by one write."""
    state = standins.state
    for mid in ids:
        if provider == "sevenio":
            state.sevenio[mid] = ("DELIVERED", "2026-11-22 11:02:00.000")
        elif provider == "bulksms":
            state.bulksms[mid] = ("DELIVERED", None)
        else:
            batch, _, msisdn = mid.partition(":")
            state.eapi[batch][msisdn] = ("11", "26-11-22 11:02:00")


def poll_settings(standins: ProviderStandIns, table: str) -> Settings:
    urls = standins.urls
    return Settings(
        table_name=table,
        schedule=SCHEDULE,
        due_shards=SHARDS,
        provider_urls={
            "sevenio": urls["SEVENIO_API_URL"],
            "bulksms-eapi": urls["BULKSMS_EAPI_URL"],
            "bulksms": urls["BULKSMS_API_URL"],
        },
    )


def timed_run(store: Any, settings: Settings, writers: int, expected: int) -> float:
    """Seconds one run takes to settle ``expected`` due messages (reading them included)."""
    poller = Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=lambda: NOW, writers=writers)
    started = time.perf_counter()
    summary = poller.run(budget_seconds=300)
    elapsed = time.perf_counter() - started
    if summary.settled != expected:
        raise RuntimeError(f"a run settled {summary.settled} of {expected} messages: {summary.as_dict()}")
    return elapsed


def taking_turns(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """``common.interleaved``, but each variant times itself: filling the store before a run is not measured."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            samples[name].append(run())
    return samples


def memory_rates(standins: ProviderStandIns, case: Case, repeats: int) -> dict[str, float]:
    """Messages a second of each variant, median of ``repeats`` runs, on the timed double."""
    ids = message_ids(case.provider, 5_000_000, case.messages)
    answer_delivered(standins, case.provider, ids)
    settings = poll_settings(standins, TABLE)

    def variant(writers: int) -> Callable[[], float]:
        def run() -> float:
            store = TimedMemoryStore(WRITE_SECONDS)
            for mid in ids:
                store.add_due(case.provider, mid)
            elapsed = timed_run(store, settings, writers, case.messages)
            if store.still_due():
                raise RuntimeError("a run left messages due")
            return elapsed

        return run

    samples = taking_turns({name: variant(writers) for name, writers in VARIANTS.items()}, repeats)
    return {name: case.messages / median(times) for name, times in samples.items()}


def dynamodb_local_rates(
    standins: ProviderStandIns, ctx: Context, case: Case, repeats: int
) -> tuple[dict[str, float], float]:
    """The same on DynamoDB Local through the real Store: each run polls messages of its own, made due beforehand.
    Also answers the rate of the store's writes alone from as many threads as the run's writers: the bound here."""
    client = dynamodb_client(ctx)
    create_table(client, TABLE)
    store = Store(TABLE, client=client)
    settings = poll_settings(standins, TABLE)
    firsts = count(6_000_000, case.messages)

    def variant(writers: int) -> Callable[[], float]:
        def run() -> float:
            ids = message_ids(case.provider, next(firsts), case.messages)
            answer_delivered(standins, case.provider, ids)
            put_due(client, case.provider, ids)
            return timed_run(store, settings, writers, case.messages)

        return run

    try:
        store_write_rate(store, case.provider, message_ids(case.provider, 3_000_000, 200))  # warms DynamoDB Local
        samples = taking_turns({name: variant(writers) for name, writers in VARIANTS.items()}, repeats)
        writes_alone = store_write_rate(store, case.provider, message_ids(case.provider, 4_000_000, case.messages))
    finally:
        client.delete_table(TableName=TABLE)
    return {name: case.messages / median(times) for name, times in samples.items()}, writes_alone


def store_write_rate(store: Store, provider: str, ids: list[str]) -> float:
    """Writes a second of Store.apply alone, a final report for each of ``ids``, from WRITERS threads."""
    put_due(store.client, provider, ids)
    reports = [Report(provider, mid, Status.DELIVERED, "DELIVERED", SENT_AT, Source.POLL) for mid in ids]
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        started = time.perf_counter()
        list(pool.map(lambda report: store.apply(report, NOW), reports))
        return len(reports) / (time.perf_counter() - started)


def put_due(client: Any, provider: str, ids: list[str]) -> None:
    """Registered messages due at their first poll, as Store.register leaves them, 25 to a request."""
    requests = [
        {
            "PutRequest": {
                "Item": to_dynamo(
                    {
                        "pk": f"{provider}#{mid}",
                        "provider": provider,
                        "message_id": mid,
                        "sent_at": iso(SENT_AT),
                        "status": "pending",
                        "final": False,
                        "prec": PENDING_KEY,
                        "due_shard": due_shard(provider, mid, SHARDS),
                        "due_at": iso(FIRST_POLL),
                        "poll_attempt": 0,
                    }
                )
            }
        }
        for mid in ids
    ]
    for start in range(0, len(requests), 25):
        batch: dict[str, Any] = {TABLE: requests[start : start + 25]}
        while batch:
            batch = client.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {}


def rate_figure(name: str, case: Case, rates: dict[str, float], note: str = "", *, targeted: bool = True) -> Figure:
    """The rate with writers beside the ideal (the floor column) and the rate without them."""
    value = rates["writers"]
    return Figure(
        SECTION,
        name,
        value,
        "messages/s",
        floor=case.ideal,
        baseline=rates["inline"],
        baseline_name=BASELINE,
        target=f">= {TARGET:.2f}x ideal" if targeted else "",
        met=value >= TARGET * case.ideal if targeted else None,
        note=note,
    )


def capacity_figure(case: Case, rates: dict[str, float], note: str) -> Figure:
    return Figure(
        SECTION,
        f"{LABELS[case.provider]} messages per poll run ({BUDGET} s budget)",
        rates["writers"] * BUDGET,
        "messages/run",
        floor=case.ideal * BUDGET,
        baseline=rates["inline"] * BUDGET,
        baseline_name=BASELINE,
        note=note,
    )


def run(ctx: Context) -> list[Figure]:
    quick = ctx.quick
    repeats = 1 if quick else min(ctx.repeats, 5)
    sevenio = Case("sevenio", 300 if quick else 1000)  # 20 calls: ten rounds of two
    bulksms = Case("bulksms", 16 if quick else 40)
    eapi = Case("bulksms-eapi", 5 if quick else 10)
    sevenio_local = Case("sevenio", 200 if quick else 500)
    with quiet(), ProviderStandIns() as standins:
        standins.state.latency = LATENCY
        memory = {case.provider: memory_rates(standins, case, repeats) for case in (sevenio, bulksms, eapi)}
        local, writes_alone = dynamodb_local_rates(standins, ctx, sevenio_local, 1 if quick else min(ctx.repeats, 3))
    in_memory = f"in-memory store ({WRITE_SECONDS * 1000:.0f} ms writes)"
    ctx.note(
        SECTION,
        f"One poll run of due messages whose provider answers a final status, against stand-ins answering each "
        f"status call after {LATENCY * 1000:.0f} ms over keep-alive HTTP on loopback; the run's time includes reading "
        f"the due messages. {WRITERS} writers (dlrwatch.poller.WRITERS); the baseline is the same code with none. "
        f"seven.io {sevenio.messages} messages ({sevenio.messages // sevenio.per_call} calls), BulkSMS JSON "
        f"{bulksms.messages}, EAPI {eapi.messages} one-recipient batches; DynamoDB Local {sevenio_local.messages} "
        f"seven.io messages a run through the real Store. Medians of {repeats} runs (DynamoDB Local: "
        f"{1 if quick else min(ctx.repeats, 3)}), the variants taking turns.",
    )
    return [
        rate_figure(f"seven.io poll throughput, {in_memory}", sevenio, memory["sevenio"]),
        rate_figure(
            "seven.io poll throughput, DynamoDB Local",
            sevenio_local,
            local,
            note=f"the store sets the pace here, not the providers: Store.apply alone, from {WRITERS} threads, makes "
            f"{writes_alone:.0f} writes/s on DynamoDB Local on this machine",
            targeted=False,
        ),
        rate_figure(f"BulkSMS JSON poll throughput, {in_memory}", bulksms, memory["bulksms"]),
        rate_figure(f"BulkSMS EAPI poll throughput, {in_memory}", eapi, memory["bulksms-eapi"]),
        capacity_figure(sevenio, memory["sevenio"], f"from the rate on the {in_memory}"),
        capacity_figure(bulksms, memory["bulksms"], f"from the rate on the {in_memory}"),
        capacity_figure(
            eapi,
            memory["bulksms-eapi"],
            "batches of one recipient; one call answers a whole batch, so a run settles this many batches",
        ),
    ]
