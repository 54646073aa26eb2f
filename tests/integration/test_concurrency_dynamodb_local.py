"""Writes that race for the same messages, on Amazon's DynamoDB Local, whose per-item atomicity is DynamoDB's own:
no update may be lost, whatever the interleaving (moto's in-process engine once lost 1 due entry in 540)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.store import DueMessage, NextPoll, Store, due_shard

SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
FIRST_POLL = NextPoll(iso(SENT_AT + timedelta(minutes=5)), 0)
MESSAGES = 120  # each message written three times at once


def race(*jobs: object) -> None:
    """Run the jobs (callables) at the same moment, several threads at a time, and re-raise any failure."""
    barrier = threading.Barrier(len(jobs))

    def together(job: object) -> None:
        barrier.wait(timeout=60)
        job()  # type: ignore[operator]

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        list(pool.map(together, jobs))


def test_registrations_racing_reports_lose_neither_the_report_nor_the_due_entry(store: Store) -> None:
    def register(mid: str) -> None:
        store.register("sevenio", mid, SENT_AT, "+491701234567", FIRST_POLL, due_shard("sevenio", mid, 8), SENT_AT)

    def report(mid: str, status: Status, raw: str, minute: int) -> None:
        at = SENT_AT + timedelta(minutes=minute)
        store.apply(Report("sevenio", mid, status, raw, at, Source.PUSH), at)

    ids = [str(7_700_000 + n) for n in range(MESSAGES)]
    for start in range(0, MESSAGES, 12):
        jobs = []
        for mid in ids[start : start + 12]:
            final = int(mid) % 3 == 0
            jobs += [
                lambda m=mid: register(m),
                lambda m=mid: report(m, Status.SENT, "TRANSMITTED", 1),
                lambda m=mid, f=final: report(
                    m, Status.DELIVERED if f else Status.BUFFERED, "DELIVERED" if f else "BUFFERED", 2
                ),
            ]
        race(*jobs)
    for mid in ids:
        item = store.get("sevenio", mid)
        assert item is not None
        final = int(mid) % 3 == 0
        assert item["sent_at"] == iso(SENT_AT), f"{mid}: registration lost"
        assert item["recipient"] == "+491701234567"
        assert (item["status"], item["final"]) == (("delivered", True) if final else ("buffered", False)), mid
        if final:
            assert "due_at" not in item, f"{mid}: a final message is still due"
        else:
            assert item.get("due_at") == FIRST_POLL.due_at, f"{mid}: due entry lost"
            assert item.get("due_shard") == due_shard("sevenio", mid, 8)
        applied = sorted(h["provider_status"] for h in item["history"])
        assert applied in (["BUFFERED", "TRANSMITTED"], ["BUFFERED"], ["DELIVERED", "TRANSMITTED"], ["DELIVERED"]), mid


def test_a_poll_moving_the_due_time_racing_a_final_push_never_makes_a_final_message_due_again(store: Store) -> None:
    ids = [str(7_800_000 + n) for n in range(MESSAGES // 2)]
    for mid in ids:
        store.register("sevenio", mid, SENT_AT, None, FIRST_POLL, due_shard("sevenio", mid, 8), SENT_AT)
    later = NextPoll(iso(SENT_AT + timedelta(minutes=30)), 1)
    for start in range(0, len(ids), 12):
        jobs = []
        for mid in ids[start : start + 12]:
            seen = DueMessage("sevenio", mid, SENT_AT, 0, FIRST_POLL.due_at)
            delivered = Report("sevenio", mid, Status.DELIVERED, "DELIVERED", SENT_AT + timedelta(minutes=3))
            jobs += [lambda s=seen: store.reschedule(s, later), lambda d=delivered: store.apply(d, SENT_AT)]
        race(*jobs)
    for mid in ids:
        item = store.get("sevenio", mid)
        assert item is not None
        assert (item["status"], item["final"]) == ("delivered", True)
        assert "due_at" not in item, f"{mid}: a final message was made due again"
        assert "due_shard" not in item
