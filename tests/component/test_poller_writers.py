"""A poll run's writers: answers are settled while the next calls are made, and every guarantee of a run holds.

Provider stand-ins that take time to answer, over real HTTP on loopback; a store whose writes take a fixed time
(in memory where only the timing matters, moto where what is stored matters).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from dlrwatch_local.standins import ProviderStandIns
from support.polling import SCHEDULE, SENT_AT, Clock, item, poll_settings, register
from support.provider_times import berlin
from support.template import template

from dlrwatch.config import Settings
from dlrwatch.domain.report import Report
from dlrwatch.domain.times import iso
from dlrwatch.errors import StorageUnavailable
from dlrwatch.poller import WRITE_BACKLOG, WRITERS, Poller
from dlrwatch.providers import bulksms_eapi, sevenio
from dlrwatch.store import CLIENT_CONFIG, DueMessage, NextPoll, Outcome, Store, WriteResult

FIRST_POLL = SENT_AT + SCHEDULE.offsets[0]
AFTER_FIRST_POLL = FIRST_POLL + timedelta(minutes=1)
LATENCY = 0.1  # seconds a stand-in takes to answer a status call


@dataclass(frozen=True)
class Call:
    started: float
    ended: float
    ids: list[str]


def record_calls(monkeypatch: pytest.MonkeyPatch, provider: ModuleType) -> list[Call]:
    """Every status call made to ``provider``, with when it was in flight."""
    calls: list[Call] = []
    lock = threading.Lock()
    real = provider.poll

    def poll(session: Any, config: Any, message_ids: list[str]) -> Any:
        started = time.monotonic()
        try:
            return real(session, config, message_ids)
        finally:
            with lock:
                calls.append(Call(started, time.monotonic(), list(message_ids)))

    monkeypatch.setattr(provider, "poll", poll)
    return calls


def most_in_flight(calls: list[Call]) -> int:
    moments = sorted([(c.started, 1) for c in calls] + [(c.ended, -1) for c in calls])
    return max(itertools.accumulate(step for _, step in moments))


@dataclass(frozen=True)
class Write:
    message_id: str
    started: float
    ended: float
    thread: str


class TimedStore:
    """Due messages in memory whose every write takes ``write_seconds``, as a round trip to DynamoDB does; it
    records when each write ran. Every report applies: the timing is what matters here."""

    def __init__(self, messages: list[DueMessage], write_seconds: float) -> None:
        self.messages = messages
        self.write_seconds = write_seconds
        self.writes: list[Write] = []
        self.in_flight = 0
        self._lock = threading.Lock()

    def due(self, shard: str, until: datetime, page_size: int = 500) -> Iterator[DueMessage]:
        return iter(self.messages if shard == "0" else [])

    def apply(self, report: Report, now: datetime, next_poll: NextPoll | None = None) -> WriteResult:
        self._write(report.message_id)
        return WriteResult(Outcome.APPLIED)

    def reschedule(self, message: DueMessage, next_poll: NextPoll) -> bool:
        self._write(message.message_id)
        return True

    def _write(self, message_id: str) -> None:
        started = time.monotonic()
        time.sleep(self.write_seconds)
        with self._lock:
            self.writes.append(Write(message_id, started, time.monotonic(), threading.current_thread().name))


def due_sevenio(standins: ProviderStandIns, count: int) -> list[DueMessage]:
    ids = [str(78_000_000_000 + n) for n in range(count)]
    for mid in ids:
        standins.state.sevenio[mid] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=2)))
    return [DueMessage("sevenio", mid, SENT_AT, 0, iso(FIRST_POLL)) for mid in ids]


def timed_poller(store: TimedStore, settings: Settings, **options: Any) -> Poller:
    return Poller(
        store,  # type: ignore[arg-type]
        settings,
        secrets=ProviderStandIns.credentials().get,
        clock=lambda: AFTER_FIRST_POLL,
        **options,
    )


# -- writes overlap calls ------------------------------------------------------------------------------------


def test_the_next_call_starts_while_the_last_answer_is_still_being_written(
    standins: ProviderStandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One call at a time: writing an answer used to come between every two calls."""
    standins.state.latency = LATENCY
    store = TimedStore(due_sevenio(standins, 150), write_seconds=0.01)
    calls = record_calls(monkeypatch, sevenio)
    summary = timed_poller(store, poll_settings(standins, poll_concurrency={"sevenio": 1})).run(budget_seconds=30)
    assert summary.settled == 150
    assert len(calls) == 3
    first, second = sorted(calls, key=lambda c: c.started)[:2]
    first_written = max(w.ended for w in store.writes if w.message_id in first.ids)
    assert second.started < first_written, "the second call waited for the first answer to be written"
    assert any(w.started < second.ended and second.started < w.ended for w in store.writes), "no write overlapped it"


def test_a_run_takes_about_its_calls_not_its_calls_plus_its_writes(standins: ProviderStandIns) -> None:
    standins.state.latency = LATENCY
    calls, write_seconds = 6, 0.01
    store = TimedStore(due_sevenio(standins, calls * sevenio.IDS_PER_CALL), write_seconds)
    poller = timed_poller(store, poll_settings(standins, poll_concurrency={"sevenio": 1}))
    started = time.monotonic()
    summary = poller.run(budget_seconds=30)
    elapsed = time.monotonic() - started
    assert summary.settled == calls * sevenio.IDS_PER_CALL
    one_after_another = calls * LATENCY + calls * sevenio.IDS_PER_CALL * write_seconds  # 3.6 s
    # About 0.7 s: the calls, then the last answer's writes. The bound leaves room for a loaded machine.
    assert elapsed < 0.6 * one_after_another, f"{elapsed:.2f} s: the writes still come between the calls"


def test_a_provider_faster_than_storage_waits_instead_of_piling_up_answers(standins: ProviderStandIns) -> None:
    """A provider that answers at once, and writes that take 10 ms: the answers not yet written stay bounded."""
    store = TimedStore(due_sevenio(standins, 1000), write_seconds=0.01)
    pending: list[int] = []
    answered = 0
    lock = threading.Lock()
    real_poll = sevenio.poll

    def poll(session: Any, config: Any, message_ids: list[str]) -> Any:
        nonlocal answered
        answer = real_poll(session, config, message_ids)
        with lock:
            answered += len(message_ids)
        return answer

    def apply(report: Report, now: datetime, next_poll: NextPoll | None = None) -> WriteResult:
        with lock:
            pending.append(answered - len(store.writes))
        return TimedStore.apply(store, report, now, next_poll)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sevenio, "poll", poll)
        patch.setattr(store, "apply", apply)
        summary = timed_poller(store, poll_settings(standins)).run(budget_seconds=60)
    assert summary.settled == 1000
    in_hand = sevenio.POLL_CONCURRENCY * sevenio.IDS_PER_CALL  # answers received, waiting for room
    assert max(pending) <= WRITE_BACKLOG + in_hand, f"{max(pending)} answered messages waited to be written"


@pytest.mark.parametrize(("writers", "written_by"), [(WRITERS, "writer"), (0, "sevenio")])
def test_answers_are_written_by_the_writers_or_with_none_by_the_thread_that_called(
    writers: int, written_by: str, standins: ProviderStandIns
) -> None:
    """No writers is the design before them, kept to measure against (benchmarks/throughput.py)."""
    store = TimedStore(due_sevenio(standins, 100), write_seconds=0.0)
    summary = timed_poller(store, poll_settings(standins), writers=writers).run(budget_seconds=30)
    assert summary.settled == 100
    assert {w.thread.partition("_")[0] for w in store.writes} == {written_by}


def test_a_negative_number_of_writers_is_refused(standins: ProviderStandIns) -> None:
    with pytest.raises(ValueError, match="writers"):
        timed_poller(TimedStore([], 0.0), poll_settings(standins), writers=-1)


def test_every_writer_keeps_a_pooled_connection_of_the_store_client() -> None:
    """A writer beyond botocore's pool would open, and drop, a connection for every write."""
    assert CLIENT_CONFIG.max_pool_connections >= WRITERS


# -- the guarantees of a run -----------------------------------------------------------------------------------


@pytest.fixture
def small_calls(monkeypatch: pytest.MonkeyPatch) -> int:
    """seven.io calls of 10 ids: as many calls as 50-id ones, with a fifth of the messages to store in moto."""
    monkeypatch.setattr(sevenio, "IDS_PER_CALL", 10)
    return 10


def test_a_storage_failure_mid_run_fails_the_run_stops_the_provider_and_leaves_the_rest_due(
    store: Store, standins: ProviderStandIns, clock: Clock, monkeypatch: pytest.MonkeyPatch, small_calls: int
) -> None:
    seven = [str(7_700 + n) for n in range(5 * small_calls)]
    for mid in seven:
        register(store, "sevenio", mid)
        standins.state.sevenio[mid] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=2)))
    bulk = [str(9_700 + n) for n in range(4)]
    for mid in bulk:
        register(store, "bulksms", mid)
        standins.state.bulksms[mid] = ("DELIVERED", None)
    standins.state.latency = LATENCY
    real_apply, real_poll = store.apply, sevenio.poll
    sevenio_writes, sevenio_calls = itertools.count(), itertools.count()
    second_call, failed = threading.Event(), threading.Event()

    def apply(report: Report, now: datetime, next_poll: NextPoll | None = None) -> WriteResult:
        if report.provider == "sevenio" and next(sevenio_writes) >= 5:
            second_call.wait(timeout=30)  # storage fails while the second call is in flight
            failed.set()
            raise StorageUnavailable("simulated")
        return real_apply(report, now, next_poll)

    def poll(session: Any, config: Any, message_ids: list[str]) -> Any:
        if next(sevenio_calls) == 1:
            second_call.set()
            failed.wait(timeout=30)
        return real_poll(session, config, message_ids)

    monkeypatch.setattr(store, "apply", apply)
    monkeypatch.setattr(sevenio, "poll", poll)
    clock.now = AFTER_FIRST_POLL
    settings = poll_settings(standins, poll_concurrency={"sevenio": 1})
    poller = Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=clock)
    with pytest.raises(StorageUnavailable):
        poller.run(budget_seconds=30)  # the run fails, so the poller's error alarm sees it
    monkeypatch.setattr(store, "apply", real_apply)
    assert standins.state.calls["sevenio"] == 2, "a provider whose answers cannot be stored is asked no more"
    states = [item(store, "sevenio", mid) for mid in seven]
    untouched = [
        m for m in states if (m["status"], m.get("due_at"), m["poll_attempt"]) == ("pending", iso(FIRST_POLL), 0)
    ]
    delivered = [m for m in states if m["status"] == "delivered" and "due_at" not in m]
    assert (len(delivered), len(untouched)) == (5, len(seven) - 5), "each message settled or left due, untouched"
    assert {item(store, "bulksms", mid)["status"] for mid in bulk} == {"delivered"}, "other providers' results kept"
    poller.run(budget_seconds=30)
    assert {item(store, "sevenio", mid)["status"] for mid in seven} == {"delivered"}, "the next run loses nothing"


def test_the_budget_still_holds_every_answer_received_is_settled_and_nothing_else_touched(
    store: Store, standins: ProviderStandIns, clock: Clock, monkeypatch: pytest.MonkeyPatch, small_calls: int
) -> None:
    ids = [str(7_800 + n) for n in range(10 * small_calls)]  # ten calls of 0.2 s, one at a time: about three fit
    for mid in ids:
        register(store, "sevenio", mid)
        standins.state.sevenio[mid] = ("DELIVERED", berlin(SENT_AT + timedelta(minutes=2)))
    standins.state.latency = 0.2
    calls = record_calls(monkeypatch, sevenio)
    real_apply = store.apply

    def slow_apply(report: Report, now: datetime, next_poll: NextPoll | None = None) -> WriteResult:
        time.sleep(0.01)
        return real_apply(report, now, next_poll)

    monkeypatch.setattr(store, "apply", slow_apply)
    clock.now = AFTER_FIRST_POLL
    settings = poll_settings(standins, poll_concurrency={"sevenio": 1})
    poller = Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=clock)
    due = [m for shard in range(4) for m in store.due(str(shard), clock.now)]
    poller._due = lambda now: iter(due)  # type: ignore[method-assign]  # read beforehand: the budget is for calls
    started = time.monotonic()
    summary = poller.run(budget_seconds=0.5)
    elapsed = time.monotonic() - started
    assert 1 <= len(calls) < 10, "no call is started once the budget is spent"
    assert all(call.started < started + 1.0 for call in calls), "a call started after the budget was spent"
    asked = {mid for call in calls for mid in call.ids}
    assert summary.settled + summary.retried == len(asked), "every answer received is settled"
    assert summary.settled + summary.retried + summary.left_due == len(ids)
    for mid in ids:
        found = item(store, "sevenio", mid)
        if mid not in asked:
            assert (found["status"], found["due_at"], found["poll_attempt"]) == ("pending", iso(FIRST_POLL), 0)
        elif found["status"] != "delivered":  # a call cut short by the end of the budget: asked again soon
            assert (found["status"], found["poll_attempt"]) == ("pending", 0)
            assert found["due_at"] > iso(clock.now + timedelta(seconds=59))
    assert elapsed < 15, f"the run took {elapsed:.1f} s"


# -- how many calls at once --------------------------------------------------------------------------------


def test_the_concurrency_setting_is_how_many_calls_a_provider_has_in_flight(
    standins: ProviderStandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    standins.state.latency = 0.2
    calls = record_calls(monkeypatch, sevenio)
    store = TimedStore(due_sevenio(standins, 8 * sevenio.IDS_PER_CALL), write_seconds=0.0)
    timed_poller(store, poll_settings(standins, poll_concurrency={"sevenio": 4})).run(budget_seconds=30)
    assert len(calls) == 8
    assert most_in_flight(calls) == 4


def test_the_eapi_is_asked_one_batch_at_a_time_whatever_the_settings_say(
    standins: ProviderStandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    standins.state.latency = 0.2
    calls = record_calls(monkeypatch, bulksms_eapi)
    batches = [f"{600 + n}:447700900001" for n in range(4)]
    store = TimedStore([DueMessage("bulksms-eapi", mid, SENT_AT, 0, iso(FIRST_POLL)) for mid in batches], 0.0)
    settings = poll_settings(standins, poll_concurrency={"bulksms-eapi": 4})
    timed_poller(store, settings).run(budget_seconds=30)
    assert len(calls) == 4
    assert most_in_flight(calls) == 1


def test_the_template_passes_its_concurrency_parameter_to_the_poller_alone() -> None:
    loaded = template()
    parameter = loaded["Parameters"]["PollConcurrency"]
    poller = loaded["Resources"]["PollerFunction"]["Properties"]
    assert poller["Environment"]["Variables"]["POLL_CONCURRENCY"] == {"Ref": "PollConcurrency"}
    others = [r for name, r in loaded["Resources"].items() if name != "PollerFunction"]
    assert not any("POLL_CONCURRENCY" in str(r) for r in others)
    default = Settings.from_env({"TABLE_NAME": "t", "POLL_CONCURRENCY": parameter["Default"]})
    assert {name: default.concurrency_of(name) for name in ("sevenio", "bulksms", "bulksms-eapi")} == {
        "sevenio": 2,
        "bulksms": 4,
        "bulksms-eapi": 1,
    }
    for accepted in ("sevenio=4", "sevenio=4,bulksms=8", "bulksms-eapi=1"):
        assert re.fullmatch(parameter["AllowedPattern"], accepted)
        Settings.from_env({"TABLE_NAME": "t", "POLL_CONCURRENCY": accepted})
    for refused in ("sevenio 4", "sevenio=4;bulksms=8", "sevenio=four"):
        assert not re.fullmatch(parameter["AllowedPattern"], refused)
