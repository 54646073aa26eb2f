"""What the poller's tests share: a fixed start, a settable clock, registration and reading helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dlrwatch_local.standins import ProviderStandIns

from dlrwatch.config import Settings
from dlrwatch.domain.schedule import Schedule
from dlrwatch.domain.times import iso
from dlrwatch.store import NextPoll, Registered, Store, due_shard

SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SCHEDULE = Schedule.parse("5m,30m,2h,5h,1d,2d,5d")
SHARDS = 4


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def poll_settings(standins: ProviderStandIns, table_name: str = "dlrwatch-test", **overrides: Any) -> Settings:
    urls = standins.urls
    options: dict[str, Any] = {
        "table_name": table_name,
        "schedule": SCHEDULE,
        "due_shards": SHARDS,
        "provider_urls": {
            "sevenio": urls["SEVENIO_API_URL"],
            "bulksms-eapi": urls["BULKSMS_EAPI_URL"],
            "bulksms": urls["BULKSMS_API_URL"],
        },
        # Generous for a loaded CI machine; the slow stand-in answers after 3 s.
        "provider_timeout": 1.5,
    }
    return Settings(**(options | overrides))


def register(store: Store, provider: str, message_id: str, sent_at: datetime = SENT_AT) -> Registered:
    first = NextPoll(iso(sent_at + SCHEDULE.offsets[0]), 0)
    return store.register(provider, message_id, sent_at, None, first, due_shard(provider, message_id, SHARDS), sent_at)


def item(store: Store, provider: str, message_id: str) -> dict[str, Any]:
    found = store.get(provider, message_id)
    assert found is not None
    return found
