"""The store's one conditional write per report, on both engines: moto's DynamoDB and Amazon's DynamoDB Local.

Every test runs once per engine (``engine`` in tests/integration/conftest.py), its DynamoDB Local case marked
``dynamodb_local``. moto runs in process, without java; DynamoDB Local is Amazon's own evaluation of what the
store relies on: the conditions, ``ReturnValuesOnConditionCheckFailure``, ``REMOVE`` from a sparse index, the
index's projection and ``Limit`` paging. Every rule here holds on both; one that held on one engine only would
show as a failing case. One test reaches no engine at all: an endpoint that refuses.
"""

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
from dlrwatch.domain.times import iso
from dlrwatch.errors import StorageUnavailable
from dlrwatch.store import (
    DUE_INDEX,
    HISTORY_MAX,
    ForwardState,
    NextPoll,
    Outcome,
    Registered,
    Store,
    due_shard,
    from_dynamo,
    to_dynamo,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SENT_AT = NOW - timedelta(hours=1)
FIRST_POLL = NextPoll(iso(SENT_AT + timedelta(minutes=5)), 0)
SHARDS = 4
MESSAGE_ID = "77149843739"


@pytest.fixture
def store(engine_store: Store) -> Store:
    """Here, the store on each engine in turn."""
    return engine_store


@pytest.fixture
def requests_sent(store: Store) -> RequestCounter:
    return RequestCounter(store.client)


def report(
    status: Status, raw: str | None, minutes: int | None, message_id: str = MESSAGE_ID, source: Source = Source.PUSH
) -> Report:
    """A seven.io report for the message sent at SENT_AT, ``minutes`` after sending (None: no provider time)."""
    at = SENT_AT + timedelta(minutes=minutes) if minutes is not None else None
    return Report("sevenio", message_id, status, raw, at, source)


def shard_of(message_id: str = MESSAGE_ID) -> str:
    return due_shard("sevenio", message_id, SHARDS)


def register(store: Store, message_id: str = MESSAGE_ID) -> Registered:
    return store.register("sevenio", message_id, SENT_AT, "+491701234567", FIRST_POLL, shard_of(message_id), NOW)


def stored(store: Store, message_id: str = MESSAGE_ID) -> dict[str, Any]:
    item = store.get("sevenio", message_id)
    assert item is not None, f"sevenio {message_id} is not stored"
    return item


def state(store: Store, message_id: str = MESSAGE_ID) -> tuple[Any, ...]:
    item = stored(store, message_id)
    return item["status"], item["final"], item["provider_status"], item["status_at"]


def due_pks(store: Store, shard: str, until: str = "9999") -> list[str]:
    """What the due index lists on ``shard`` up to ``until``: all a poller could ever find."""
    answer = store.client.query(
        TableName=store.table_name,
        IndexName=DUE_INDEX,
        KeyConditionExpression="due_shard = :shard AND due_at <= :until",
        ExpressionAttributeValues=to_dynamo({":shard": shard, ":until": until}),
    )
    return [item["pk"]["S"] for item in answer["Items"]]


SENT = report(Status.SENT, "TRANSMITTED", 1)
DELIVERED = report(Status.DELIVERED, "DELIVERED", 10)
BUFFERED_LATE = report(Status.BUFFERED, "BUFFERED", 20)


# -- what the store relies on ---------------------------------------------------------------------------


def test_a_failed_condition_answers_with_the_stored_item(store: Store) -> None:
    """``ReturnValuesOnConditionCheckFailure=ALL_OLD``: the store learns duplicate or stale without a read."""
    key = {"pk": {"S": "sevenio#1"}}
    store.client.put_item(TableName=store.table_name, Item=key | {"prec": {"S": "2|5"}})
    with pytest.raises(store.client.exceptions.ConditionalCheckFailedException) as failed:
        store.client.update_item(
            TableName=store.table_name,
            Key=key,
            UpdateExpression="SET prec = :prec",
            ConditionExpression="attribute_not_exists(prec) OR prec < :prec",
            ExpressionAttributeValues={":prec": {"S": "0|1"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert failed.value.response.get("Item") == key | {"prec": {"S": "2|5"}}


def test_an_unreachable_table_raises_storage_unavailable() -> None:
    """No engine: a closed port refuses at once, and the store says so in its own terms (a 5xx, so senders retry)."""
    client = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    with pytest.raises(StorageUnavailable):
        Store("dlrwatch-test", client=client).apply(DELIVERED, NOW)


# -- one report, one write --------------------------------------------------------------------------------


@pytest.mark.parametrize("registered_first", [False, True], ids=["unregistered", "registered"])
def test_each_report_costs_exactly_one_update_item(
    store: Store, requests_sent: RequestCounter, registered_first: bool
) -> None:
    if registered_first:
        register(store)
    for r in (SENT, DELIVERED, DELIVERED, BUFFERED_LATE):
        requests_sent.reset()
        store.apply(r, NOW)
        assert requests_sent.calls == {"UpdateItem": 1}


def test_a_report_for_an_unregistered_message_is_stored(store: Store) -> None:
    assert store.apply(DELIVERED, NOW).outcome is Outcome.APPLIED
    assert state(store) == ("delivered", True, "DELIVERED", "2026-11-22T09:10:00.000Z")
    assert [h["status"] for h in stored(store)["history"]] == ["delivered"]


@pytest.mark.parametrize(
    ("twice", "registered_first"),
    [(DELIVERED, False), (SENT, True)],
    ids=["final-unregistered", "non-final-registered"],
)
def test_the_same_report_twice_changes_nothing(store: Store, twice: Report, registered_first: bool) -> None:
    if registered_first:
        register(store)
    store.apply(twice, NOW)
    before = stored(store)
    assert store.apply(twice, NOW + timedelta(minutes=5)).outcome is Outcome.DUPLICATE
    assert stored(store) == before


def test_a_stale_report_changes_nothing(store: Store) -> None:
    register(store)
    store.apply(report(Status.BUFFERED, "BUFFERED", 5), NOW)
    before = stored(store)
    result = store.apply(SENT, NOW + timedelta(minutes=1))
    assert (result.outcome, result.previous_status) == (Outcome.STALE, "buffered")
    assert stored(store) == before


def test_late_buffered_never_overwrites_delivered(store: Store) -> None:
    store.apply(DELIVERED, NOW)
    assert store.apply(BUFFERED_LATE, NOW).outcome is Outcome.STALE
    assert state(store) == ("delivered", True, "DELIVERED", "2026-11-22T09:10:00.000Z")


def test_a_later_non_final_replaces_an_earlier_one(store: Store) -> None:
    store.apply(report(Status.BUFFERED, "BUFFERED", 5), NOW)
    result = store.apply(report(Status.SENT, "TRANSMITTED", 6), NOW)
    assert (result.outcome, result.previous_status) == (Outcome.APPLIED, "buffered")
    assert state(store)[0] == "sent"


def test_a_report_merges_into_a_registered_message(store: Store) -> None:
    register(store)
    store.apply(SENT, NOW)
    item = stored(store)
    assert (item["status"], item["sent_at"], item["recipient"]) == ("sent", iso(SENT_AT), "+491701234567")
    assert (item["due_at"], item["poll_attempt"]) == (FIRST_POLL.due_at, 0), "a push report leaves the poll as it was"


# -- the due index and retention -------------------------------------------------------------------------


def test_a_final_status_leaves_the_due_index_and_starts_the_retention_clock(store: Store) -> None:
    register(store)
    assert due_pks(store, shard_of()) == [f"sevenio#{MESSAGE_ID}"]
    store.apply(DELIVERED, NOW)
    assert due_pks(store, shard_of()) == []
    item = stored(store)
    assert "due_shard" not in item
    assert "due_at" not in item
    assert int(item["expires_at"]) == int((NOW + timedelta(days=90)).timestamp())
    assert (item["sent_at"], item["recipient"]) == (iso(SENT_AT), "+491701234567"), "registration survives"


def test_a_non_final_status_keeps_the_message_due_and_expires_only_long_after_its_last_poll(store: Store) -> None:
    register(store)
    assert "expires_at" not in stored(store), "a registered message is kept until it is final"
    store.apply(report(Status.BUFFERED, "BUFFERED", 5), NOW)
    assert due_pks(store, shard_of()) == [f"sevenio#{MESSAGE_ID}"]
    expires = datetime.fromtimestamp(int(stored(store)["expires_at"]), UTC)
    assert expires == NOW + store.open_retention
    assert expires > SENT_AT + timedelta(days=5) + store.retention, "never before the poll schedule ends it"


def test_a_report_for_a_message_never_registered_expires_and_each_report_renews_it(store: Store) -> None:
    store.apply(report(Status.SENT, "TRANSMITTED", 1), NOW)
    assert int(stored(store)["expires_at"]) == int((NOW + store.open_retention).timestamp())
    later = NOW + timedelta(days=3)
    store.apply(report(Status.BUFFERED, "BUFFERED", 2), later)
    assert int(stored(store)["expires_at"]) == int((later + store.open_retention).timestamp())


def test_a_registration_takes_the_expiry_off_an_open_report_it_merges_into(store: Store) -> None:
    store.apply(report(Status.SENT, "TRANSMITTED", 1), NOW)
    register(store)
    item = stored(store)
    assert "expires_at" not in item, "due now: polling ends it, and its final status starts the retention"
    assert item["due_at"] == FIRST_POLL.due_at


def test_a_polled_non_final_report_moves_the_next_poll_in_the_same_write(
    store: Store, requests_sent: RequestCounter
) -> None:
    register(store)
    later = NextPoll(iso(SENT_AT + timedelta(minutes=30)), 1)
    requests_sent.reset()
    store.apply(report(Status.SENT, "TRANSMITTED", 2, source=Source.POLL), NOW, next_poll=later)
    assert requests_sent.writes == 1
    assert due_pks(store, shard_of(), FIRST_POLL.due_at) == []
    assert due_pks(store, shard_of(), later.due_at) == [f"sevenio#{MESSAGE_ID}"]
    assert stored(store)["poll_attempt"] == 1


# -- finals -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("later_first", [True, False], ids=["later-first", "earlier-first"])
def test_two_different_finals_resolve_to_the_later_time_and_are_flagged(store: Store, later_first: bool) -> None:
    earlier = report(Status.FAILED, "NOTDELIVERED", 8)
    later = report(Status.DELIVERED, "DELIVERED", 12)
    first, second = (later, earlier) if later_first else (earlier, later)
    assert not store.apply(first, NOW).conflicting_final
    assert store.apply(second, NOW).conflicting_final
    assert state(store) == ("delivered", True, "DELIVERED", "2026-11-22T09:12:00.000Z")


def test_a_later_report_of_the_same_final_status_is_no_conflict(store: Store) -> None:
    store.apply(DELIVERED, NOW)
    result = store.apply(report(Status.DELIVERED, "DELIVERED", 11), NOW)
    assert (result.outcome, result.previous_status, result.conflicting_final) == (Outcome.APPLIED, "delivered", False)


def test_a_late_real_final_beats_our_give_up_and_the_give_up_never_returns(store: Store) -> None:
    register(store)
    give_up = Report.give_up("sevenio", MESSAGE_ID, SENT_AT + timedelta(days=5))
    assert store.apply(give_up, NOW).outcome is Outcome.APPLIED
    assert state(store)[:2] == ("unknown", True)
    assert due_pks(store, shard_of()) == []
    late = report(Status.DELIVERED, "DELIVERED", 3)
    result = store.apply(late, NOW + timedelta(days=6))
    assert (result.outcome, result.previous_status, result.conflicting_final) == (Outcome.APPLIED, "unknown", False)
    assert state(store) == ("delivered", True, "DELIVERED", "2026-11-22T09:03:00.000Z")
    assert store.apply(give_up, NOW + timedelta(days=7)).outcome is Outcome.STALE
    assert [h["source"] for h in stored(store)["history"]] == ["giveup", "push"]


REPORTS = (
    report(Status.SENT, "ACCEPTED", 1),
    report(Status.BUFFERED, "BUFFERED", 4),
    report(Status.UNKNOWN, "UNKNOWN", None, source=Source.POLL),
    report(Status.FAILED, "NOTDELIVERED", 9),
    report(Status.DELIVERED, "DELIVERED", 30),
)


def test_every_order_of_arrival_gives_the_same_end_state(store: Store) -> None:
    """Rule 5 through the engine's own condition evaluation: all 120 orders of five reports end alike.

    Then the third and the first report of each order arrive again: each writes nothing, whether it is the
    stored report (a duplicate) or one it outranks (stale).
    """
    orders = list(itertools.permutations(REPORTS))
    for n, order in enumerate(orders):
        again = [Report(r.provider, f"perm{n}", r.status, r.provider_status, r.provider_time, r.source) for r in order]
        for r in again:
            store.apply(r, NOW)
        for r in (again[2], again[0]):
            assert store.apply(r, NOW).outcome is not Outcome.APPLIED, f"{r.provider_status} applied twice"
    # One consistent scan reads back all 120 messages: the end states, not the store's read, are under test.
    pages = store.client.get_paginator("scan").paginate(TableName=store.table_name, ConsistentRead=True)
    items = [from_dynamo(raw) for page in pages for raw in page["Items"]]
    assert sorted(item["message_id"] for item in items) == sorted(f"perm{n}" for n in range(len(orders)))
    end_states = set()
    for item in items:
        applied = item["history"]
        assert len({(h["status"], h["provider_status"]) for h in applied}) == len(applied), "no report applied twice"
        assert (applied[-1]["status"], applied[-1]["status_at"]) == (item["status"], item["status_at"])
        end_states.add((item["status"], item["final"], item["provider_status"], item["status_at"], item["prec"]))
    assert end_states == {("delivered", True, "DELIVERED", "2026-11-22T09:30:00.000Z", REPORTS[-1].key)}


def test_history_is_bounded_and_keeps_the_newest_reports(store: Store, requests_sent: RequestCounter) -> None:
    extra = 3
    for minute in range(HISTORY_MAX + extra):
        store.apply(report(Status.BUFFERED, "BUFFERED", minute), NOW)
    history = stored(store)["history"]
    assert len(history) == HISTORY_MAX
    assert [h["status_at"] for h in history] == [
        iso(SENT_AT + timedelta(minutes=m)) for m in range(extra, HISTORY_MAX + extra)
    ]
    assert stored(store)["status_at"] == history[-1]["status_at"]
    # Only the reports past the bound pay a second write, to trim.
    assert requests_sent.writes == HISTORY_MAX + extra * 2


# -- webhook nonces --------------------------------------------------------------------------------------


def test_a_nonce_is_accepted_once_until_it_expires_or_is_forgotten(store: Store) -> None:
    ttl = timedelta(seconds=600)
    assert store.remember_nonce("sevenio", "abc123abc123", NOW, ttl)
    assert not store.remember_nonce("sevenio", "abc123abc123", NOW + timedelta(seconds=10), ttl), "a replay"
    assert store.remember_nonce("sevenio", "abc123abc124", NOW + timedelta(seconds=10), ttl), "another nonce"
    assert store.remember_nonce("sevenio", "abc123abc123", NOW + timedelta(seconds=601), ttl), "expired"


# -- registration ----------------------------------------------------------------------------------------


def test_a_new_registration_is_pending_and_due_at_its_first_poll(store: Store) -> None:
    assert register(store) is Registered.REGISTERED
    item = stored(store)
    assert (item["status"], item["final"], item["sent_at"], item["recipient"]) == (
        "pending",
        False,
        iso(SENT_AT),
        "+491701234567",
    )
    assert (item["due_shard"], item["due_at"], item["poll_attempt"]) == (shard_of(), FIRST_POLL.due_at, 0)
    assert due_pks(store, shard_of(), FIRST_POLL.due_at) == [f"sevenio#{MESSAGE_ID}"]
    assert due_pks(store, shard_of(), iso(SENT_AT + timedelta(minutes=4))) == []


def test_registering_again_is_already_registered_and_changes_nothing(store: Store) -> None:
    register(store)
    before = stored(store)
    assert register(store) is Registered.ALREADY_REGISTERED
    assert stored(store) == before


def test_a_registration_merges_into_an_earlier_non_final_report_and_makes_it_due(store: Store) -> None:
    store.apply(SENT, NOW)
    assert register(store) is Registered.REGISTERED
    item = stored(store)
    assert state(store) == ("sent", False, "TRANSMITTED", "2026-11-22T09:01:00.000Z")
    assert (item["prec"], len(item["history"])) == (SENT.key, 1), "the report is not lost"
    assert (item["sent_at"], item["due_at"]) == (iso(SENT_AT), FIRST_POLL.due_at)
    assert due_pks(store, shard_of()) == [f"sevenio#{MESSAGE_ID}"]
    assert register(store) is Registered.ALREADY_REGISTERED


def test_a_registration_after_a_final_report_keeps_it_and_is_never_due(store: Store) -> None:
    store.apply(DELIVERED, NOW)
    assert register(store) is Registered.REGISTERED
    item = stored(store)
    assert state(store) == ("delivered", True, "DELIVERED", "2026-11-22T09:10:00.000Z")
    assert (item["sent_at"], item["recipient"]) == (iso(SENT_AT), "+491701234567")
    assert "due_at" not in item
    assert "due_shard" not in item
    assert due_pks(store, shard_of()) == []
    assert register(store) is Registered.ALREADY_REGISTERED
    assert "due_at" not in stored(store)


# -- polling bookkeeping ---------------------------------------------------------------------------------


def test_a_reschedule_is_conditioned_on_the_due_time_it_saw(store: Store) -> None:
    register(store)
    [seen] = store.due(shard_of(), SENT_AT + timedelta(minutes=5))
    second = NextPoll(iso(SENT_AT + timedelta(minutes=30)), 1)
    assert store.reschedule(seen, second)
    assert not store.reschedule(seen, NextPoll(iso(SENT_AT + timedelta(hours=2)), 2)), "another run got there first"
    item = stored(store)
    assert (item["due_at"], item["poll_attempt"], item["written_by"]) == (second.due_at, 1, "schedule")


def test_a_reschedule_after_a_final_report_never_makes_the_message_due_again(store: Store) -> None:
    register(store)
    [seen] = store.due(shard_of(), SENT_AT + timedelta(minutes=5))
    store.apply(DELIVERED, NOW)
    assert not store.reschedule(seen, NextPoll(iso(SENT_AT + timedelta(minutes=30)), 1))
    assert "due_at" not in stored(store)
    assert due_pks(store, shard_of()) == []


def _seed(store: Store, items: list[dict[str, Any]]) -> None:
    """Puts ``items`` 25 to a request: the quickest way to fill a table."""
    for start in range(0, len(items), 25):
        requests: list[Any] = [{"PutRequest": {"Item": to_dynamo(i)}} for i in items[start : start + 25]]
        answer = store.client.batch_write_item(RequestItems={store.table_name: requests})
        assert not answer.get("UnprocessedItems")


def _message(n: int, shard: str, due_at: datetime | None) -> dict[str, Any]:
    mid = str(70_000_000_000 + n)
    item: dict[str, Any] = {"pk": f"sevenio#{mid}", "provider": "sevenio", "message_id": mid, "sent_at": iso(SENT_AT)}
    if due_at is None:
        return item | {"status": "delivered", "final": True}
    return item | {"status": "pending", "final": False, "due_shard": shard, "due_at": iso(due_at), "poll_attempt": 0}


def test_due_returns_only_due_messages_oldest_first_over_several_pages(
    store: Store, requests_sent: RequestCounter
) -> None:
    until = SENT_AT + timedelta(minutes=30)
    due = [_message(n, "0", SENT_AT + timedelta(seconds=n)) for n in range(1200)]
    not_due = [
        *(_message(2000 + n, "0", until + timedelta(seconds=n + 1)) for n in range(30)),  # later
        *(_message(3000 + n, "1", SENT_AT) for n in range(30)),  # another shard
        *(_message(4000 + n, "0", None) for n in range(30)),  # final: not in the index
    ]
    _seed(store, due + not_due)
    requests_sent.reset()
    found = list(store.due("0", until, page_size=500))
    assert [m.message_id for m in found] == [i["message_id"] for i in due]
    assert requests_sent.calls == {"Query": 3}, "1,200 due items in pages of 500"
    first = found[0]
    assert (first.provider, first.sent_at, first.poll_attempt, first.due_at) == ("sevenio", SENT_AT, 0, iso(SENT_AT))


def test_due_with_nothing_due_is_one_empty_query(store: Store, requests_sent: RequestCounter) -> None:
    register(store)
    requests_sent.reset()
    assert list(store.due(shard_of(), SENT_AT + timedelta(minutes=4))) == []
    assert requests_sent.calls == {"Query": 1}


# -- the sender's side: sequence, callback_url, forwarding state -----------------------------------------------

URL = "https://sender.example/dlr"


def test_the_sequence_grows_with_every_write_that_can_change_what_a_sender_is_told(store: Store) -> None:
    register(store)
    assert stored(store)["seq"] == 1
    store.apply(SENT, NOW)
    store.apply(DELIVERED, NOW)
    assert stored(store)["seq"] == 3
    store.apply(DELIVERED, NOW)
    store.apply(SENT, NOW)
    assert stored(store)["seq"] == 3, "a duplicate or a stale report writes nothing, so tells nothing new"


def test_a_registration_keeps_the_callback_url_and_a_later_one_replaces_it(store: Store) -> None:
    first = store.register("sevenio", MESSAGE_ID, SENT_AT, None, FIRST_POLL, shard_of(), NOW, callback_url=URL)
    assert first is Registered.REGISTERED
    assert (stored(store)["callback_url"], stored(store)["seq"]) == (URL, 1)
    other = "https://elsewhere.example/dlr"
    again = store.register("sevenio", MESSAGE_ID, SENT_AT, None, FIRST_POLL, shard_of(), NOW, callback_url=other)
    assert again is Registered.ALREADY_REGISTERED
    item = stored(store)
    assert (item["callback_url"], item["seq"], item["written_by"]) == (other, 2, "registration")
    store.register("sevenio", MESSAGE_ID, SENT_AT, None, FIRST_POLL, shard_of(), NOW, callback_url=other)
    store.register("sevenio", MESSAGE_ID, SENT_AT, None, FIRST_POLL, shard_of(), NOW)
    assert (stored(store)["callback_url"], stored(store)["seq"]) == (other, 2), "same URL or none: nothing written"


def test_a_registration_after_a_final_report_attaches_its_callback_url(store: Store) -> None:
    store.apply(DELIVERED, NOW)
    store.register("sevenio", MESSAGE_ID, SENT_AT, None, FIRST_POLL, shard_of(), NOW, callback_url=URL)
    item = stored(store)
    assert (item["status"], item["callback_url"], item["seq"]) == ("delivered", URL, 2)
    assert "due_at" not in item


def test_the_recipient_key_is_written_by_the_registration_only_when_there_is_one(store: Store) -> None:
    store.register(
        "sevenio", "1", SENT_AT, "+49 170 1234567", FIRST_POLL, shard_of("1"), NOW, recipient_key="+491701234567"
    )
    store.register("sevenio", "2", SENT_AT, "shop", FIRST_POLL, shard_of("2"), NOW)
    assert stored(store, "1")["recipient_key"] == "+491701234567"
    assert stored(store, "1")["recipient"] == "+49 170 1234567", "the recipient stays as registered"
    assert "recipient_key" not in stored(store, "2"), "no NULL index key: DynamoDB would refuse the write"
    store.apply(report(Status.DELIVERED, "DELIVERED", 9, message_id="1"), NOW)
    assert stored(store, "1")["recipient_key"] == "+491701234567"


def test_forwarding_state_counts_attempts_and_keeps_the_highest_sequence_delivered(store: Store) -> None:
    register(store)
    store.record_forward("sevenio", MESSAGE_ID, sequence=2, state=ForwardState.RETRYING, http_status=503, now=NOW)
    store.record_forward("sevenio", MESSAGE_ID, sequence=3, state=ForwardState.DELIVERED, http_status=200, now=NOW)
    store.record_forward("sevenio", MESSAGE_ID, sequence=2, state=ForwardState.DELIVERED, http_status=204, now=NOW)
    item = stored(store)
    assert (item["fwd_attempts"], item["fwd_delivered_seq"], item["fwd_state"], item["fwd_http_status"]) == (
        3,
        3,
        "delivered",
        204,
    ), "an older status delivered late never lowers what the sender has"
    assert item["written_by"] == "forward"
    assert item["seq"] == 1, "bookkeeping: it tells the sender nothing new"
    assert store.forward_target("sevenio", MESSAGE_ID) == {"fwd_delivered_seq": 3}


def test_forwarding_state_never_brings_back_an_erased_message(store: Store) -> None:
    store.record_forward("sevenio", "404", sequence=2, state=ForwardState.DELIVERED, http_status=200, now=NOW)
    store.record_forward("sevenio", "404", sequence=2, state=ForwardState.RETRYING, http_status=None, now=NOW)
    assert store.get("sevenio", "404") is None
    assert store.forward_target("sevenio", "404") is None
