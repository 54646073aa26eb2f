"""The store's one conditional write per report, against moto's DynamoDB (DynamoDB Local: tests/integration)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from support.dynamo import RequestCounter

from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.errors import StorageUnavailable
from dlrwatch.store import HISTORY_MAX, Outcome, Store, to_dynamo

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SENT_AT = NOW - timedelta(hours=1)


def report(
    status: Status, raw: str, minutes: int | None, message_id: str = "77149843739", source: Source = Source.PUSH
) -> Report:
    at = SENT_AT + timedelta(minutes=minutes) if minutes is not None else None
    return Report("sevenio", message_id, status, raw, at, source)


def registered(store: Store, message_id: str = "77149843739") -> None:
    """A message as registration leaves it: pending and due for its first poll."""
    store.client.put_item(
        TableName=store.table_name,
        Item=to_dynamo(
            {
                "pk": f"sevenio#{message_id}",
                "provider": "sevenio",
                "message_id": message_id,
                "status": "pending",
                "final": False,
                "prec": "0|00000000000000|00|",
                "sent_at": "2026-11-22T09:00:00.000Z",
                "due_shard": "3",
                "due_at": "2026-11-22T09:05:00.000Z",
                "poll_attempt": 0,
            }
        ),
    )


def due_items(store: Store) -> list[dict[str, Any]]:
    answer = store.client.query(
        TableName=store.table_name,
        IndexName="due",
        KeyConditionExpression="due_shard = :s",
        ExpressionAttributeValues={":s": {"S": "3"}},
    )
    return answer["Items"]


def state(store: Store, message_id: str = "77149843739") -> tuple[Any, ...]:
    item = store.get("sevenio", message_id)
    assert item is not None
    return item["status"], item["final"], item["provider_status"], item["status_at"]


DELIVERED = report(Status.DELIVERED, "DELIVERED", 10)
BUFFERED_LATE = report(Status.BUFFERED, "BUFFERED", 20)


def test_a_report_for_an_unregistered_message_is_stored(store: Store) -> None:
    assert store.apply(DELIVERED, NOW).outcome is Outcome.APPLIED
    item = store.get("sevenio", "77149843739")
    assert item is not None
    assert (item["status"], item["final"], item["provider_status"]) == ("delivered", True, "DELIVERED")
    assert item["status_at"] == "2026-11-22T09:10:00.000Z"
    assert [h["status"] for h in item["history"]] == ["delivered"]


def test_each_report_costs_exactly_one_write_request(store: Store, requests_sent: RequestCounter) -> None:
    for r in (report(Status.SENT, "TRANSMITTED", 1), DELIVERED, DELIVERED, BUFFERED_LATE):
        requests_sent.reset()
        store.apply(r, NOW)
        assert requests_sent.calls == {"UpdateItem": 1}


def test_the_same_report_twice_changes_nothing(store: Store) -> None:
    store.apply(DELIVERED, NOW)
    before = store.get("sevenio", "77149843739")
    assert store.apply(DELIVERED, NOW + timedelta(minutes=5)).outcome is Outcome.DUPLICATE
    assert store.get("sevenio", "77149843739") == before


def test_late_buffered_never_overwrites_delivered(store: Store) -> None:
    store.apply(DELIVERED, NOW)
    assert store.apply(BUFFERED_LATE, NOW).outcome is Outcome.STALE
    assert state(store) == ("delivered", True, "DELIVERED", "2026-11-22T09:10:00.000Z")


def test_a_later_non_final_replaces_an_earlier_one(store: Store) -> None:
    store.apply(report(Status.BUFFERED, "BUFFERED", 5), NOW)
    assert store.apply(report(Status.SENT, "TRANSMITTED", 6), NOW).outcome is Outcome.APPLIED
    assert state(store)[0] == "sent"


def test_a_final_status_leaves_the_due_index_and_starts_the_retention_clock(store: Store) -> None:
    registered(store)
    assert len(due_items(store)) == 1
    store.apply(DELIVERED, NOW)
    item = store.get("sevenio", "77149843739")
    assert item is not None
    assert "due_shard" not in item
    assert "due_at" not in item
    assert due_items(store) == []
    assert int(item["expires_at"]) == int((NOW + timedelta(days=90)).timestamp())
    assert item["sent_at"] == "2026-11-22T09:00:00.000Z", "registration fields survive the report"


def test_a_non_final_status_keeps_the_message_due(store: Store) -> None:
    registered(store)
    store.apply(report(Status.BUFFERED, "BUFFERED", 5), NOW)
    assert len(due_items(store)) == 1
    item = store.get("sevenio", "77149843739")
    assert item is not None
    assert "expires_at" not in item


def test_a_report_merges_into_a_registered_message(store: Store) -> None:
    registered(store)
    store.apply(report(Status.SENT, "TRANSMITTED", 1), NOW)
    item = store.get("sevenio", "77149843739")
    assert item is not None
    assert (item["status"], item["sent_at"], item["poll_attempt"]) == ("sent", "2026-11-22T09:00:00.000Z", 0)


@pytest.mark.parametrize("first_later", [True, False], ids=["later-first", "earlier-first"])
def test_two_different_finals_resolve_to_the_later_time_and_are_flagged(store: Store, first_later: bool) -> None:
    earlier = report(Status.FAILED, "NOTDELIVERED", 8)
    later = report(Status.DELIVERED, "DELIVERED", 12)
    first, second = (later, earlier) if first_later else (earlier, later)
    assert not store.apply(first, NOW).conflicting_final
    assert store.apply(second, NOW).conflicting_final
    assert state(store)[:3] == ("delivered", True, "DELIVERED")


def test_a_later_report_of_the_same_final_status_is_no_conflict(store: Store) -> None:
    store.apply(DELIVERED, NOW)
    later = report(Status.DELIVERED, "DELIVERED", 11)
    result = store.apply(later, NOW)
    assert (result.outcome, result.previous_status, result.conflicting_final) == (Outcome.APPLIED, "delivered", False)


def test_a_late_real_final_beats_our_give_up(store: Store) -> None:
    registered(store)
    store.apply(Report.give_up("sevenio", "77149843739", SENT_AT + timedelta(days=5)), NOW)
    assert state(store)[:2] == ("unknown", True)
    assert store.apply(report(Status.DELIVERED, "DELIVERED", 3), NOW).outcome is Outcome.APPLIED
    assert state(store)[:3] == ("delivered", True, "DELIVERED")
    assert (
        store.apply(Report.give_up("sevenio", "77149843739", SENT_AT + timedelta(days=5)), NOW).outcome
        is not Outcome.APPLIED
    )


REPORTS = (
    report(Status.SENT, "ACCEPTED", 1),
    report(Status.BUFFERED, "BUFFERED", 4),
    report(Status.UNKNOWN, "UNKNOWN", None, source=Source.POLL),
    report(Status.FAILED, "NOTDELIVERED", 9),
    report(Status.DELIVERED, "DELIVERED", 30),
)


def test_any_order_of_arrival_gives_the_same_end_state(store: Store) -> None:
    """Rule 5 through DynamoDB's own condition evaluation: every permutation, with a duplicate thrown in."""
    end_states = set()
    for n, order in enumerate(itertools.permutations(REPORTS[1:])):
        message_id = f"perm{n}"
        for r in (*order[:2], REPORTS[0], *order[2:], order[0]):
            store.apply(Report(r.provider, message_id, r.status, r.provider_status, r.provider_time, r.source), NOW)
        end_states.add(state(store, message_id))
    assert end_states == {("delivered", True, "DELIVERED", "2026-11-22T09:30:00.000Z")}


def test_history_is_bounded_and_keeps_the_newest_reports(store: Store, requests_sent: RequestCounter) -> None:
    for minute in range(HISTORY_MAX + 3):
        store.apply(report(Status.BUFFERED, "BUFFERED", minute), NOW)
    item = store.get("sevenio", "77149843739")
    assert item is not None
    assert len(item["history"]) == HISTORY_MAX
    assert item["history"][-1]["status_at"] == (SENT_AT + timedelta(minutes=HISTORY_MAX + 2)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    assert item["status_at"] == item["history"][-1]["status_at"]
    # Only the reports past the bound pay a second write, to trim.
    assert requests_sent.writes == HISTORY_MAX + 3 * 2


def test_a_nonce_is_accepted_once_until_it_expires(store: Store) -> None:
    ttl = timedelta(seconds=600)
    assert store.remember_nonce("sevenio", "abc123abc123", NOW, ttl)
    assert not store.remember_nonce("sevenio", "abc123abc123", NOW + timedelta(seconds=10), ttl)
    assert store.remember_nonce("sevenio", "abc123abc123", NOW + timedelta(seconds=601), ttl)


def test_an_unreachable_table_raises_storage_unavailable() -> None:
    client = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    with pytest.raises(StorageUnavailable):
        Store("dlrwatch-test", client=client).apply(DELIVERED, NOW)
