"""Poll runs against Amazon's DynamoDB Local: what needs DynamoDB's own per-item atomicity.

Two runs overlapping in time (the scheduler fires every minute; a run may outlast it) read the same due
messages and settle them at once: the conditional writes must apply each result once and move each due
time once. moto does not serialise concurrent conditional writes to one item, so this lives here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from dlrwatch_local.standins import ProviderStandIns

from dlrwatch.config import Settings
from dlrwatch.domain.schedule import Schedule
from dlrwatch.domain.times import iso
from dlrwatch.poller import Poller
from dlrwatch.store import NextPoll, Store, due_shard

SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SCHEDULE = Schedule.parse("5m,30m,2h")
SHARDS = 4


@pytest.fixture
def standins() -> Iterator[ProviderStandIns]:
    with ProviderStandIns() as running:
        yield running


def test_overlapping_runs_apply_each_result_once_and_move_each_due_time_once(
    store: Store, standins: ProviderStandIns
) -> None:
    ids = [str(7_400 + n) for n in range(100)]
    for mid in ids:
        store.register(
            "sevenio",
            mid,
            SENT_AT,
            None,
            NextPoll(iso(SENT_AT + SCHEDULE.offsets[0]), 0),
            due_shard("sevenio", mid, SHARDS),
            SENT_AT,
        )
        standins.state.sevenio[mid] = ("TRANSMITTED", "2026-11-22 11:01:00.000")
    settings = Settings(
        table_name=store.table_name,
        schedule=SCHEDULE,
        due_shards=SHARDS,
        provider_urls={"sevenio": standins.urls["SEVENIO_API_URL"]},
        provider_timeout=5,
    )
    now = SENT_AT + timedelta(minutes=6)
    runs = [Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=lambda: now) for _ in "ab"]
    barrier = threading.Barrier(len(runs))
    original_due = Store.due

    def due_together(self: Store, shard: str, until: datetime, page_size: int = 500) -> Iterator[object]:
        found = list(original_due(self, shard, until, page_size))
        if shard == str(SHARDS - 1):
            barrier.wait(timeout=30)  # both runs have read every shard before either settles anything
        return iter(found)

    summaries = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "due", due_together)
        threads = [threading.Thread(target=lambda r=run: summaries.append(r.run(60))) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    assert [s.due for s in summaries] == [len(ids), len(ids)], "both runs saw every message due"
    for mid in ids:
        polled = store.get("sevenio", mid)
        assert polled is not None
        assert [h["status"] for h in polled["history"]] == ["sent"], f"{mid}: the result applied once"
        assert (polled["poll_attempt"], polled["due_at"]) == (1, "2026-11-22T10:30:00.000Z"), f"{mid}: moved once"
