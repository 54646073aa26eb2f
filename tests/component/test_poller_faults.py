"""The poller against providers that answer the way real servers sometimes do: it trusts no answer further than
SPEC.md's polling rules allow. Real HTTP on loopback, moto's DynamoDB."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import boto3
import pytest
from botocore.config import Config
from dlrwatch_local.standins import EAPI_PASSWORD, EAPI_USER, SEVENIO_KEY, TOKEN_SECRET, CaptureServer, ProviderStandIns
from support.polling import SCHEDULE, SENT_AT, Clock, item, poll_settings, register
from support.provider_times import berlin

from dlrwatch.domain.schedule import Schedule
from dlrwatch.domain.times import from_iso, iso
from dlrwatch.errors import StorageUnavailable
from dlrwatch.observability import metrics
from dlrwatch.poller import Poller
from dlrwatch.store import Store

FIRST_POLL = SENT_AT + SCHEDULE.offsets[0]
JITTER = timedelta(minutes=2)
MESSAGES = {"sevenio": "7001", "bulksms-eapi": "555:447700900001", "bulksms": "9001"}


def due_in(store: Store, provider: str, message_id: str, now: datetime) -> timedelta:
    return from_iso(item(store, provider, message_id)["due_at"]) - now


def retried_not_used_up(store: Store, provider: str, message_id: str, now: datetime) -> None:
    """A transient fault: the message is asked again in 1-3 minutes, and its schedule is not used up."""
    found = item(store, provider, message_id)
    assert (found["status"], found["poll_attempt"]) == ("pending", 0)
    assert timedelta(minutes=1) <= due_in(store, provider, message_id, now) <= timedelta(minutes=3)


@pytest.fixture
def at_first_poll(clock: Clock) -> datetime:
    clock.now = FIRST_POLL + timedelta(seconds=1)
    return clock.now


# -- Retry-After -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["429", "5xx"])
@pytest.mark.parametrize("retry_after", ["315360000", "999999999999"])
def test_a_retry_after_of_years_moves_the_next_poll_at_most_an_hour_ahead(
    status: str, retry_after: str, store: Store, poller: Poller, standins: ProviderStandIns, at_first_poll: datetime
) -> None:
    register(store, "sevenio", "7001")
    standins.fail("sevenio", status, retry_after=retry_after)
    summary = poller.run(budget_seconds=30)  # 999999999999 s overflowed a timedelta: every run failed
    assert summary.retried == 1
    assert timedelta(hours=1) <= due_in(store, "sevenio", "7001", at_first_poll) <= timedelta(hours=1) + JITTER
    assert item(store, "sevenio", "7001")["poll_attempt"] == 0, "a provider's fault does not use up the schedule"


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "at_least"),
    [
        ("date in 600 s", timedelta(minutes=9)),  # an HTTP date: honoured (less the seconds the test takes)
        ("600", timedelta(minutes=10)),
        ("-600", timedelta(minutes=1)),  # negative: absent, our own backoff
        ("soon", timedelta(minutes=1)),  # invalid: absent
        ("date 600 s ago", timedelta(minutes=1)),  # past: absent
        ("Sun, 31 Dec 9999 23:59:59 GMT", timedelta(hours=1)),  # far future: capped at an hour
    ],
)
def test_retry_after_is_honoured_as_seconds_or_a_date_and_ignored_when_invalid_negative_or_past(
    retry_after: str,
    at_least: timedelta,
    store: Store,
    poller: Poller,
    standins: ProviderStandIns,
    at_first_poll: datetime,
) -> None:
    register(store, "bulksms", "9001")
    dates = {"date in 600 s": http_date(600), "date 600 s ago": http_date(-600)}  # made when the test runs
    standins.fail("bulksms", "5xx", retry_after=dates.get(retry_after, retry_after))
    poller.run(budget_seconds=30)
    waited = due_in(store, "bulksms", "9001", at_first_poll)
    assert at_least <= waited <= max(at_least, timedelta(minutes=1)) + JITTER + timedelta(minutes=1)


def test_a_429_pauses_that_provider_for_the_run_and_until_its_retry_after(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock, at_first_poll: datetime
) -> None:
    ids = [str(7100 + n) for n in range(200)]  # four seven.io calls of 50 ids, two at a time
    for mid in ids:
        register(store, "sevenio", mid)
    register(store, "bulksms", "9001")
    standins.state.bulksms["9001"] = ("DELIVERED", None)
    standins.fail("sevenio", "429", retry_after="300")
    first = poller.run(budget_seconds=30)
    assert standins.state.calls["sevenio"] <= 2, "no call is started after the 429 (one may have been in flight)"
    assert first.left_due >= 100, "the messages not asked stay due, untouched"
    assert item(store, "bulksms", "9001")["status"] == "delivered", "other providers are polled as usual"
    clock.now = at_first_poll + timedelta(minutes=2)
    second = poller.run(budget_seconds=30)
    assert standins.state.calls["sevenio"] <= 2, "still paused: its Retry-After has not passed"
    assert second.left_due >= 100
    clock.now = at_first_poll + timedelta(minutes=6)
    poller.run(budget_seconds=30)
    assert standins.state.calls["sevenio"] >= 4, "asked again once the pause is over"


# -- answers that cannot be read -------------------------------------------------------------------------

DEEP = "[" * 20_000 + "]" * 20_000
HUGE = "7" * 5_000


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("sevenio", DEEP),
        ("sevenio", f'[{{"id": {HUGE}, "status": "DELIVERED"}}]'),
        ("sevenio", '[{"id": "7001", "status": "DELIVERED", "status_time": NaN}]'),
        ("bulksms", '{"id": "9001", "type": "SENT", "status": ' + DEEP + "}"),
        ("bulksms", f'{{"id": "9001", "type": "SENT", "status": {{"type": "DELIVERED"}}, "n": {HUGE}}}'),
        ("bulksms", ""),
        ("bulksms-eapi", f"0|Returns to follow\n447700900001|{HUGE}\n"),
        ("bulksms-eapi", "0|Returns to follow\n447700900001|11|" + "9" * 5_000 + "\n"),
    ],
    ids=[
        "sevenio-deep",
        "sevenio-huge-id",
        "sevenio-nan",
        "bulksms-deep",
        "bulksms-huge",
        "bulksms-empty",
        "eapi-huge-code",
        "eapi-huge-time",
    ],
)
def test_an_answer_that_cannot_be_read_is_a_transient_fault_for_its_messages_only(
    provider: str, body: str, store: Store, poller: Poller, standins: ProviderStandIns, at_first_poll: datetime
) -> None:
    for name, mid in MESSAGES.items():
        register(store, name, mid)
    standins.state.sevenio["7001"] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=1)))
    standins.state.bulksms["9001"] = ("DELIVERED", None)
    standins.state.eapi["555"]["447700900001"] = ("11", "26-11-22 12:01:00")
    standins.fail(
        provider, "body", body=body, content_type="text/plain" if provider == "bulksms-eapi" else "application/json"
    )
    poller.run(budget_seconds=30)  # used to raise (RecursionError, ValueError): every run failed
    retried_not_used_up(store, provider, MESSAGES[provider], at_first_poll)
    for other, mid in MESSAGES.items():
        if other != provider:
            assert item(store, other, mid)["status"] == "delivered", f"{other} is polled as usual"


def test_a_body_dripping_a_byte_every_two_seconds_ends_at_the_call_deadline(
    store: Store, poller: Poller, standins: ProviderStandIns, at_first_poll: datetime
) -> None:
    register(store, "sevenio", "7001")
    standins.fail("sevenio", "drip", interval=2.0)  # 64 bytes: two minutes, every read gets data in time
    started = time.monotonic()
    summary = poller.run(budget_seconds=30)
    elapsed = time.monotonic() - started
    # The call's deadline is the provider timeout (1.5 s here); the bound leaves room for a loaded machine.
    assert elapsed < 20, f"the run took {elapsed:.0f} s: the deadline did not end the call"
    assert summary.retried == 1
    retried_not_used_up(store, "sevenio", "7001", at_first_poll)


def test_a_call_started_near_the_end_of_the_run_gets_only_the_time_left(
    store: Store, standins: ProviderStandIns, clock: Clock, at_first_poll: datetime
) -> None:
    register(store, "sevenio", "7001")
    settings = poll_settings(standins, provider_timeout=60.0)
    poller = Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=clock)
    standins.fail("sevenio", "drip", interval=2.0)
    started = time.monotonic()
    poller.run(budget_seconds=3)
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"the run took {elapsed:.0f} s although 3 s were left when its call started"
    retried_not_used_up(store, "sevenio", "7001", at_first_poll)


# -- redirects ---------------------------------------------------------------------------------------------

SECRETS = {"sevenio": SEVENIO_KEY, "bulksms-eapi": EAPI_PASSWORD, "bulksms": TOKEN_SECRET}


@pytest.mark.parametrize("provider", sorted(MESSAGES))
def test_a_redirect_is_never_followed_so_no_credential_reaches_another_origin(
    provider: str,
    store: Store,
    poller: Poller,
    standins: ProviderStandIns,
    at_first_poll: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    register(store, provider, MESSAGES[provider])
    with CaptureServer() as elsewhere:
        standins.fail(provider, "redirect", location=elsewhere.url)
        metrics.clear_metrics()
        with caplog.at_level(logging.ERROR):
            poller.run(budget_seconds=30)
        received = [repr(r) for r in elsewhere.requests]
    assert received == [], "nothing at all reaches the redirect's target"
    assert not any(SECRETS[provider] in r or EAPI_USER in r for r in received)
    retried_not_used_up(store, provider, MESSAGES[provider], at_first_poll)
    assert "ProviderConfigFaults" in metrics.metric_set, "counted for the configuration-fault alarm"
    logged = [r for r in caplog.records if r.getMessage() == "provider answered a redirect"]
    assert [(getattr(r, "provider", None), getattr(r, "kind", None)) for r in logged] == [(provider, "http_307")]
    metrics.clear_metrics()


# -- backing off, and giving up whatever the provider keeps answering ---------------------------------------


def test_transient_retries_back_off_doubling_to_an_hour_and_give_up_an_hour_after_the_schedule(
    store: Store, standins: ProviderStandIns, clock: Clock
) -> None:
    schedule = Schedule.parse("5m,30m,2h,5h")
    poller = Poller(
        store, poll_settings(standins, schedule=schedule), secrets=ProviderStandIns.credentials().get, clock=clock
    )
    register(store, "bulksms", "9001")
    standins.fail("bulksms", "5xx", times=1_000)  # down for good
    waits: list[timedelta] = []
    clock.now = SENT_AT + schedule.offsets[0]
    while (found := item(store, "bulksms", "9001"))["final"] is False:
        assert len(waits) < 60, "never given up"
        clock.now = from_iso(found["due_at"])  # each run exactly when the message is due
        poller.run(budget_seconds=30)
        after = item(store, "bulksms", "9001")
        if not after["final"]:
            waits.append(from_iso(after["due_at"]) - clock.now)
    assert timedelta(minutes=1) <= waits[0] <= timedelta(minutes=3)
    assert all(w <= timedelta(hours=1) + JITTER for w in waits), "never more than an hour (plus jitter) ahead"
    assert waits[5] >= 16 * timedelta(minutes=1), "the wait doubles"
    assert any(w >= timedelta(hours=1) for w in waits), "up to an hour"
    given_up = item(store, "bulksms", "9001")
    assert (given_up["status"], given_up["source"]) == ("unknown", "giveup")
    assert given_up["status_at"] == iso(SENT_AT + schedule.offsets[-1])
    assert clock.now >= SENT_AT + schedule.offsets[-1] + timedelta(hours=1), "one retry's grace after the end"
    assert clock.now <= SENT_AT + schedule.offsets[-1] + timedelta(hours=2) + JITTER
    calls = standins.state.calls["bulksms"]
    clock.now += timedelta(days=1)
    poller.run(budget_seconds=30)
    assert standins.state.calls["bulksms"] == calls, "a given-up message is not asked again"


# -- DynamoDB down during a run ------------------------------------------------------------------------------


def test_with_dynamodb_down_during_a_run_the_run_fails_loudly_and_the_next_run_loses_nothing(
    store: Store, poller: Poller, standins: ProviderStandIns, at_first_poll: datetime
) -> None:
    ids = [str(7200 + n) for n in range(60)]
    for mid in ids:
        register(store, "sevenio", mid)
        standins.state.sevenio[mid] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=1)))
    due = [m for shard in range(4) for m in store.due(str(shard), at_first_poll)]
    down = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",  # nothing listens: every write is refused at once
        config=Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    working = poller.store
    poller.store = Store(store.table_name, client=down)
    poller._due = lambda now: iter(due)  # type: ignore[method-assign]  # it read the due items, then DynamoDB went
    with pytest.raises(StorageUnavailable):
        poller.run(budget_seconds=30)  # the run fails, so the poller's error alarm sees it
    assert {item(store, "sevenio", mid)["status"] for mid in ids} == {"pending"}, "nothing half-written"
    assert all(item(store, "sevenio", mid)["due_at"] == iso(FIRST_POLL) for mid in ids), "all still due"
    poller.store = working
    del poller._due
    poller.run(budget_seconds=30)
    assert {item(store, "sevenio", mid)["status"] for mid in ids} == {"delivered"}, "no message lost"
