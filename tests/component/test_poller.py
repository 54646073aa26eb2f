"""The poller against provider stand-ins over real HTTP on loopback, and moto's DynamoDB."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from dlrwatch_local.standins import ProviderStandIns
from support.dynamo import RequestCounter
from support.polling import SCHEDULE, SENT_AT, SHARDS, Clock, item, register
from support.provider_times import berlin

from dlrwatch.config import Settings
from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.poller import Poller
from dlrwatch.providers import sevenio
from dlrwatch.store import Store, due_shard

# -- the schedule -------------------------------------------------------------------------------------


def test_a_message_without_push_is_polled_at_each_offset_until_the_provider_knows(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    register(store, "sevenio", "7001")
    standins.state.sevenio["7001"] = None  # no report yet
    for n, offset in enumerate(SCHEDULE.offsets[:4]):
        clock.now = SENT_AT + offset - timedelta(seconds=1)
        poller.run(budget_seconds=30)
        assert standins.state.calls["sevenio"] == n, "not polled before its time"
        if n == 1:
            standins.state.sevenio["7001"] = ("TRANSMITTED", berlin(SENT_AT + timedelta(minutes=1)))
        if n == 3:
            standins.state.sevenio["7001"] = ("DELIVERED", berlin(SENT_AT + timedelta(hours=4)))
        clock.now = SENT_AT + offset + timedelta(seconds=1)
        poller.run(budget_seconds=30)
        assert standins.state.calls["sevenio"] == n + 1, f"polled at offset {offset}"
    delivered = item(store, "sevenio", "7001")
    assert (delivered["status"], delivered["final"], delivered["source"]) == ("delivered", True, "poll")
    assert delivered["status_at"] == "2026-11-22T14:00:00.000Z"
    assert "due_at" not in delivered
    for offset in SCHEDULE.offsets[4:]:
        clock.now = SENT_AT + offset + timedelta(seconds=1)
        poller.run(budget_seconds=30)
    assert standins.state.calls["sevenio"] == 4, "a final message is never polled again"


def test_a_message_the_provider_never_finalizes_becomes_unknown_after_the_last_poll(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    register(store, "bulksms", "9001")
    standins.state.bulksms["9001"] = ("SENT", None)
    for offset in SCHEDULE.offsets:
        clock.now = SENT_AT + offset + timedelta(seconds=30)
        poller.run(budget_seconds=30)
    assert standins.state.calls["bulksms"] == len(SCHEDULE.offsets)
    given_up = item(store, "bulksms", "9001")
    assert (given_up["status"], given_up["final"], given_up["source"]) == ("unknown", True, "giveup")
    assert given_up["status_at"] == iso(SENT_AT + SCHEDULE.offsets[-1])
    assert "due_at" not in given_up
    assert [h["status"] for h in given_up["history"]] == ["sent", "unknown"]
    clock.now += timedelta(days=30)
    poller.run(budget_seconds=30)
    assert standins.state.calls["bulksms"] == len(SCHEDULE.offsets)


def test_a_message_whose_push_report_came_first_is_never_polled(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    store.apply(Report("sevenio", "7002", Status.DELIVERED, "DELIVERED", SENT_AT + timedelta(minutes=1)), SENT_AT)
    register(store, "sevenio", "7002")
    for offset in SCHEDULE.offsets:
        clock.now = SENT_AT + offset + timedelta(seconds=1)
        poller.run(budget_seconds=30)
    assert standins.state.calls["sevenio"] == 0
    assert item(store, "sevenio", "7002")["status"] == "delivered"


def test_a_late_registration_polls_once_then_gives_up(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    register(store, "sevenio", "7003", sent_at=SENT_AT - timedelta(days=10))
    poller.run(budget_seconds=30)
    assert standins.state.calls["sevenio"] == 1
    assert item(store, "sevenio", "7003")["status"] == "unknown"


# -- cost -----------------------------------------------------------------------------------------------


def test_a_thousand_due_sevenio_messages_cost_one_status_call_per_fifty_ids(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    ids = [str(77_000_000_000 + n) for n in range(1000)]
    for mid in ids:
        register(store, "sevenio", mid)
        standins.state.sevenio[mid] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=2)))
    clock.now = SENT_AT + timedelta(minutes=6)
    summary = poller.run(budget_seconds=120)
    assert standins.state.calls["sevenio"] == 1000 // sevenio.IDS_PER_CALL
    assert sorted(i for asked in standins.state.asked["sevenio"] for i in asked) == sorted(ids)
    assert summary.settled == 1000
    assert all(item(store, "sevenio", mid)["status"] == "delivered" for mid in ids[::97])


def test_a_batch_of_eapi_recipients_costs_one_get_report_per_poll(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    for n in range(40):
        register(store, "bulksms-eapi", f"555:4477009{n:05d}")
        standins.state.eapi["555"][f"4477009{n:05d}"] = ("11" if n % 2 else "10", "26-11-22 12:03:00")
    register(store, "bulksms-eapi", "556:447700900001")
    clock.now = SENT_AT + timedelta(minutes=6)
    poller.run(budget_seconds=30)
    assert standins.state.calls["bulksms-eapi"] == 2, "one call per batch"
    assert item(store, "bulksms-eapi", "555:447700900001")["status"] == "delivered"
    assert item(store, "bulksms-eapi", "555:447700900000")["status"] == "sent"
    assert item(store, "bulksms-eapi", "556:447700900001")["status"] == "pending", "unknown batch: no rows"


def test_a_poll_run_reads_only_due_items(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    """10,000 items that are not due (final, or due later) cost the run nothing to read."""
    not_due = []
    for n in range(10_000):
        mid = str(70_000_000_000 + n)
        entry: dict[str, Any] = {
            "pk": {"S": f"sevenio#{mid}"},
            "provider": {"S": "sevenio"},
            "message_id": {"S": mid},
            "sent_at": {"S": iso(SENT_AT)},
        }
        if n % 2:
            entry |= {"status": {"S": "delivered"}, "final": {"BOOL": True}}
        else:  # registered, but its first poll is tomorrow
            entry |= {
                "due_shard": {"S": due_shard("sevenio", mid, SHARDS)},
                "poll_attempt": {"N": "0"},
                "due_at": {"S": iso(SENT_AT + timedelta(days=1))},
            }
        not_due.append({"PutRequest": {"Item": entry}})
    for start in range(0, len(not_due), 25):
        store.client.batch_write_item(RequestItems={"dlrwatch-test": not_due[start : start + 25]})
    due = [str(71_000_000_000 + n) for n in range(30)]
    for mid in due:
        register(store, "sevenio", mid)
    read = RequestCounter(store.client)
    returned = []
    store.client.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: returned.append((parsed["Count"], parsed["ScannedCount"]))
    )
    clock.now = SENT_AT + timedelta(minutes=6)
    poller.run(budget_seconds=30)
    assert read.calls["Scan"] == 0
    assert read.calls["Query"] == SHARDS
    assert sum(count for count, _ in returned) == len(due)
    assert sum(scanned for _, scanned in returned) == len(due), "items read equal the due items"


# -- provider faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind"), [("slow", "timeout"), ("5xx", "http_5xx"), ("429", "http_429"), ("garbage", "garbage")]
)
def test_a_transient_provider_fault_retries_soon_without_using_up_the_schedule(
    fault: str,
    kind: str,
    store: Store,
    poller: Poller,
    standins: ProviderStandIns,
    clock: Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(store, "sevenio", "7004")
    standins.state.sevenio["7004"] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=3)))
    standins.fail("sevenio", fault)
    clock.now = SENT_AT + timedelta(minutes=6)
    summary = poller.run(budget_seconds=30)
    assert summary.retried == 1
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert {(m["provider"], m["kind"]) for m in metrics if "ProviderErrors" in m} == {("sevenio", kind)}
    waiting = item(store, "sevenio", "7004")
    assert waiting["poll_attempt"] == 0, "the failed call did not use up a poll"
    retry_at = datetime.fromisoformat(waiting["due_at"])
    earliest = timedelta(seconds=90 if fault == "429" else 60)
    assert clock.now + earliest <= retry_at <= clock.now + earliest + timedelta(seconds=120)
    clock.now = retry_at + timedelta(seconds=1)
    poller.run(budget_seconds=30)
    assert item(store, "sevenio", "7004")["status"] == "delivered"


def test_partial_answers_keep_the_good_rows(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    for n in range(4):
        register(store, "sevenio", f"800{n}")
        standins.state.sevenio[f"800{n}"] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=2)))
        register(store, "bulksms-eapi", f"777:44770090000{n}")
        standins.state.eapi["777"][f"44770090000{n}"] = ("11", "26-11-22 12:03:00")
    standins.fail("sevenio", "partial")
    standins.fail("bulksms-eapi", "partial")
    clock.now = SENT_AT + timedelta(minutes=6)
    poller.run(budget_seconds=30)
    seven = [item(store, "sevenio", f"800{n}") for n in range(4)]
    eapi = [item(store, "bulksms-eapi", f"777:44770090000{n}") for n in range(4)]
    for found in (seven, eapi):
        assert sorted((m["status"], m["poll_attempt"]) for m in found) == [
            ("delivered", 0),
            ("delivered", 0),
            ("pending", 0),  # its row was missing or malformed: a transient fault, the poll is not used up
            ("pending", 0),
        ]
        for retried in (m for m in found if m["status"] == "pending"):
            assert iso(clock.now + timedelta(minutes=1)) <= retried["due_at"] <= iso(clock.now + timedelta(minutes=3))


@pytest.mark.parametrize("provider", ["sevenio", "bulksms-eapi", "bulksms"])
def test_an_authentication_failure_stops_that_provider_for_the_run(
    provider: str, store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    ids = {
        "sevenio": [str(7100 + n) for n in range(120)],
        "bulksms-eapi": [f"{n}:447700900001" for n in range(5)],
        "bulksms": [str(9100 + n) for n in range(12)],
    }
    for name, mids in ids.items():
        for mid in mids:
            register(store, name, mid)
    standins.state.bulksms.update(dict.fromkeys(ids["bulksms"], ("DELIVERED", None)))
    standins.fail(provider, "auth", times=100)
    clock.now = SENT_AT + timedelta(minutes=6)
    summary = poller.run(budget_seconds=30)
    assert summary.stopped == {provider}
    concurrency = {"sevenio": 2, "bulksms-eapi": 1, "bulksms": 4}[provider]
    assert standins.state.calls[provider] <= concurrency, "stopped after the first refusal"
    untouched = [item(store, provider, mid) for mid in ids[provider]]
    assert {(m["status"], m["due_at"], m["poll_attempt"]) for m in untouched} == {
        ("pending", "2026-11-22T10:05:00.000Z", 0)
    }
    others = [name for name in ids if name != provider]
    assert all(standins.state.calls[name] > 0 for name in others), "other providers are still polled"


def test_eapi_internal_error_22_is_retried_soon(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    register(store, "bulksms-eapi", "999:447700900001")
    standins.fail("bulksms-eapi", "eapi22")
    clock.now = SENT_AT + timedelta(minutes=6)
    assert poller.run(budget_seconds=30).retried == 1
    assert item(store, "bulksms-eapi", "999:447700900001")["poll_attempt"] == 0


def test_seven_io_legacy_text_answers_are_read(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    standins.state.sevenio_legacy_text = True
    register(store, "sevenio", "7200")
    standins.state.sevenio["7200"] = ("NOTDELIVERED", str(int((SENT_AT + timedelta(minutes=4)).timestamp())))
    clock.now = SENT_AT + timedelta(minutes=6)
    poller.run(budget_seconds=30)
    failed = item(store, "sevenio", "7200")
    assert (failed["status"], failed["provider_status"], failed["status_at"]) == (
        "failed",
        "NOTDELIVERED",
        "2026-11-22T10:04:00.000Z",
    )


def test_an_unknown_bulksms_message_waits_for_its_next_poll(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock
) -> None:
    register(store, "bulksms", "9999")
    clock.now = SENT_AT + timedelta(minutes=6)
    poller.run(budget_seconds=30)
    waiting = item(store, "bulksms", "9999")
    assert (waiting["status"], waiting["poll_attempt"], waiting["due_at"]) == ("pending", 1, "2026-11-22T10:30:00.000Z")


# -- budget and overlap ------------------------------------------------------------------------------------


def test_a_run_cut_short_by_its_budget_loses_nothing_and_the_next_run_finishes(
    store: Store, settings: Settings, standins: ProviderStandIns, clock: Clock
) -> None:
    ids = [str(7300 + n) for n in range(120)]  # three seven.io calls
    for mid in ids:
        register(store, "sevenio", mid)
        standins.state.sevenio[mid] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=1)))
    ticks = iter(range(1000))
    lock = threading.Lock()

    def monotonic() -> float:
        with lock:
            return float(next(ticks))

    poller = Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=clock, monotonic=monotonic)
    clock.now = SENT_AT + timedelta(minutes=6)
    first = poller.run(budget_seconds=2.5)  # time for two calls
    assert standins.state.calls["sevenio"] == 2
    assert first.left_due + first.settled == len(ids)
    assert first.left_due > 0
    second = poller.run(budget_seconds=2.5)
    assert second.settled == first.left_due
    asked = [i for call in standins.state.asked["sevenio"] for i in call]
    assert sorted(asked) == sorted(ids), "every message asked for exactly once over the two runs"
    assert {item(store, "sevenio", mid)["status"] for mid in ids} == {"delivered"}


def test_a_run_that_read_the_same_due_items_as_another_never_double_applies(
    store: Store, settings: Settings, standins: ProviderStandIns, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two overlapping runs: the second settles messages the first has already settled, from a stale read.

    (The truly concurrent case needs DynamoDB's own per-item atomicity: tests/integration runs it there.)
    """
    ids = [str(7400 + n) for n in range(60)]
    for mid in ids:
        register(store, "sevenio", mid)
        standins.state.sevenio[mid] = ("TRANSMITTED", berlin(SENT_AT + timedelta(minutes=1)))
    clock.now = SENT_AT + timedelta(minutes=6)
    stale = [m for shard in range(SHARDS) for m in store.due(str(shard), clock.now)]
    first, second = (Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=clock) for _ in "ab")
    assert first.run(budget_seconds=30).settled == len(ids)
    monkeypatch.setattr(second, "_due", lambda now: iter(stale))
    clock.now += timedelta(seconds=20)
    second.run(budget_seconds=30)
    for mid in ids:
        polled = item(store, "sevenio", mid)
        assert [h["status"] for h in polled["history"]] == ["sent"], "applied once"
        assert (polled["poll_attempt"], polled["due_at"]) == (1, "2026-11-22T10:30:00.000Z"), "moved once"
        assert polled["source"] == str(Source.POLL)


def test_the_scheduled_handler_runs_a_poll_and_answers_its_summary(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import poller as function
    from support.lambda_context import FakeContext

    register(store, "sevenio", "7500")
    standins.state.sevenio["7500"] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=2)))
    clock.now = SENT_AT + timedelta(minutes=6)
    monkeypatch.setattr(function, "poller", poller)
    answer = function.handler({"source": "aws.scheduler"}, FakeContext(remaining_ms=90_000))
    assert json.loads(json.dumps(answer)) == {
        "due": 1,
        "calls": {"sevenio": 1},
        "settled": 1,
        "retried": 0,
        "given_up": 0,
        "left_due": 0,
        "stopped": [],
    }
    assert item(store, "sevenio", "7500")["status"] == "delivered"


def test_a_storage_failure_during_a_run_fails_the_run_and_leaves_the_messages_due(
    store: Store, poller: Poller, standins: ProviderStandIns, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlrwatch.errors import StorageUnavailable

    register(store, "sevenio", "7600")
    standins.state.sevenio["7600"] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=2)))
    clock.now = SENT_AT + timedelta(minutes=6)

    def unavailable(*_: Any, **__: Any) -> Any:
        raise StorageUnavailable("simulated")

    monkeypatch.setattr(store, "apply", unavailable)
    with pytest.raises(StorageUnavailable):
        poller.run(budget_seconds=30)
    monkeypatch.undo()
    waiting = item(store, "sevenio", "7600")
    assert (waiting["status"], waiting["due_at"]) == ("pending", "2026-11-22T10:05:00.000Z")


def test_missing_credentials_stop_the_provider_like_refused_ones(
    store: Store, settings: Settings, standins: ProviderStandIns, clock: Clock
) -> None:
    from dlrwatch.observability import metrics

    metrics.clear_metrics()
    register(store, "bulksms", "9800")
    without = {k: v for k, v in ProviderStandIns.credentials().items() if not k.startswith("BULKSMS_TOKEN")}
    poller = Poller(store, settings, secrets=without.get, clock=clock)
    clock.now = SENT_AT + timedelta(minutes=6)
    assert poller.run(budget_seconds=30).stopped == {"bulksms"}
    assert standins.state.calls["bulksms"] == 0
    assert "ProviderAuthFailures" in metrics.metric_set, "the alarm's metric is raised"
