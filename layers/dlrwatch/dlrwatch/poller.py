"""One poll run: read the due messages, ask each provider about them in batches, settle every message.

Settling a message is one of: apply a polled report together with the next poll time (one write); move the
next poll (one write, conditioned on the due time read, so an overlapping run cannot move it twice); retry
after a transient provider fault, backing off, without using up the schedule; or give up after the last poll
(``unknown``, final), also when the provider is still failing an hour after it. Messages the run did not
reach stay due, untouched, for the next run.

A provider that answers 429 is asked nothing more until its ``Retry-After`` (at most an hour) has passed:
for the rest of the run, and for later runs this process serves. A redirect is a configuration fault: never
followed (dlrwatch.pull), counted for its alarm, the messages retried later.

The thread that made a call does not settle its answer: it hands the messages to the run's writers and makes its
next call, so a provider's calls follow each other at the provider's pace, not at the pace of 50 writes. A run
ends once every answer it received is settled. A write that fails stops that provider's calls; its messages not
yet settled stay due, untouched, and the run fails once the other providers are done.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from types import ModuleType

from aws_lambda_powertools.metrics import MetricUnit

from dlrwatch.config import Settings
from dlrwatch.credentials import secret
from dlrwatch.domain.report import Report
from dlrwatch.domain.schedule import GIVE_UP_GRACE, RETRY_MIN, retry_delay
from dlrwatch.domain.times import from_iso, iso
from dlrwatch.observability import count, gauge, logger
from dlrwatch.providers import PROVIDERS
from dlrwatch.providers.base import PollConfig, PollResult, ProviderError
from dlrwatch.pull import ProviderHttp, fetch
from dlrwatch.store import DueMessage, NextPoll, Outcome, Store

# Threads of a run that settle polled messages. At about 5 ms a DynamoDB write, 8 settle some 1,600 messages a
# second: more than seven.io (2 calls of 50 ids) and BulkSMS JSON (4 calls of 1) answer at 100 ms a call. Each
# holds one connection of the store's client while it writes, and its pool (store.CLIENT_CONFIG) keeps 10: a
# writer beyond the pool would open, and then drop, a connection for every write.
WRITERS = 8
# Messages handed over and not yet settled, at most: a provider that answers faster than storage takes its
# results waits for room instead of piling them up in memory. Four seven.io answers.
WRITE_BACKLOG = 200


@dataclass
class RunSummary:
    due: int = 0
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    settled: int = 0
    retried: int = 0
    given_up: int = 0
    left_due: int = 0
    stopped: set[str] = field(default_factory=set)  # providers stopped for the run (authentication)

    def as_dict(self) -> dict[str, object]:
        return {
            "due": self.due,
            "calls": dict(self.calls),
            "settled": self.settled,
            "retried": self.retried,
            "given_up": self.given_up,
            "left_due": self.left_due,
            "stopped": sorted(self.stopped),
        }


class Poller:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        secrets: Callable[[str], str | None] = secret,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        writers: int = WRITERS,
    ) -> None:
        if writers < 0:
            raise ValueError("writers must be 0 (settle on the calling thread) or more")
        self.store = store
        self.settings = settings
        self.secrets = secrets
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self.writers = writers
        self.http = {name: ProviderHttp(settings.concurrency_of(name)) for name in PROVIDERS}
        # Providers that answered 429, and until when they are left alone.
        self.paused_until: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def run(self, budget_seconds: float) -> RunSummary:
        deadline = self.monotonic() + budget_seconds
        now = self.clock()
        summary = RunSummary()
        by_provider: dict[str, list[DueMessage]] = defaultdict(list)
        for message in self._due(now):
            by_provider[message.provider].append(message)
            summary.due += 1
        self._report_backlog(by_provider, now)
        failures: dict[str, BaseException] = {}
        writers = _Writers(self.writers, WRITE_BACKLOG)
        try:
            with ThreadPoolExecutor(max_workers=max(len(by_provider), 1), thread_name_prefix="provider") as pool:
                runs = [
                    pool.submit(self._poll_provider, n, ms, now, deadline, summary, writers, failures)
                    for n, ms in by_provider.items()
                ]
        finally:
            writers.close()  # every answer received is settled (or left due) before the run ends
        # A provider's run that failed (storage down, say) fails the invocation, so the error alarm sees it;
        # its messages not settled stay due for the next run. The other providers' runs have completed.
        errors = [error for run in runs if (error := run.exception()) is not None] + list(failures.values())
        for error in errors:
            logger.error("poll run of a provider failed", exc_info=error)
        logger.info("poll run", extra=summary.as_dict())
        if errors:
            raise errors[0]
        return summary

    def _due(self, now: datetime) -> Iterable[DueMessage]:
        per_shard = max(self.settings.max_due_per_run // self.settings.due_shards, 1)
        for shard in range(self.settings.due_shards):
            for n, message in enumerate(self.store.due(str(shard), now)):
                if n >= per_shard:
                    break
                yield message

    def _report_backlog(self, by_provider: dict[str, list[DueMessage]], now: datetime) -> None:
        oldest = min((m.due_at for ms in by_provider.values() for m in ms), default=None)
        age = (now - from_iso(oldest)).total_seconds() if oldest else 0.0
        gauge("OldestDueAgeSeconds", max(age, 0.0))
        gauge("DueMessages", sum(len(ms) for ms in by_provider.values()), MetricUnit.Count)

    def _poll_provider(
        self,
        name: str,
        messages: list[DueMessage],
        now: datetime,
        deadline: float,
        summary: RunSummary,
        writers: _Writers,
        failures: dict[str, BaseException],
    ) -> None:
        module = PROVIDERS.get(name)
        config = self._config(module) if module else None
        if module is None or config is None:
            logger.error("cannot poll: provider unknown or credentials missing", extra={"provider": name})
            count("ProviderErrors", provider=name, kind="not_configured")
            count("ProviderAuthFailures")  # missing credentials are refused credentials, for the alarm
            self._stop(name, summary, len(messages))
            return
        if now < self.paused_until.get(name, now):
            logger.info("provider paused after a 429", extra={"provider": name, "until": iso(self.paused_until[name])})
            with self._lock:
                summary.left_due += len(messages)
            return
        by_id = {m.message_id: m for m in messages}
        stop = threading.Event()

        def settle(work: Callable[[], None]) -> None:
            """One message's writes, on a writer; after a failed write, nothing more: the message stays due."""
            if name in failures:
                with self._lock:
                    summary.left_due += 1
                return
            try:
                work()
            except Exception as error:
                stop.set()  # answers that cannot be stored are not worth asking for
                with self._lock:
                    failures.setdefault(name, error)
                    summary.left_due += 1

        def poll_group(ids: list[str]) -> None:
            started = self.monotonic()
            if stop.is_set() or started >= deadline:
                with self._lock:
                    summary.left_due += len(ids)
                return
            with self._lock:
                summary.calls[name] += 1
            count("Polls", provider=name)
            # One call's deadline: the provider timeout, or the time left in the run if that is less.
            seconds = min(self.settings.provider_timeout, deadline - started)
            try:
                answers = fetch(module, self.http[name], config, ids, seconds)
            except ProviderError as error:
                count("ProviderErrors", provider=name, kind=error.kind)
                if error.auth:
                    stop.set()
                    count("ProviderAuthFailures")  # one alarm for every provider; the log names it
                    logger.error("provider refused our credentials", extra={"provider": name, "kind": error.kind})
                    self._stop(name, summary, len(ids))
                    return
                if error.config:
                    count("ProviderConfigFaults")
                    logger.error("provider answered a redirect", extra={"provider": name, "kind": error.kind})
                if error.pause:
                    stop.set()
                    self._pause(name, now, error.retry_after)
                if error.transient:
                    for mid in ids:
                        retry = partial(self._retry_later, by_id[mid], now, error.retry_after, summary)
                        writers.submit(partial(settle, retry))
                    return
                answers = dict.fromkeys(ids)  # a request the provider will never answer: use up the poll
            for mid in ids:
                writers.submit(
                    partial(settle, partial(self._settle_answer, by_id[mid], answers.get(mid), now, summary))
                )

        calls = self.settings.concurrency_of(name)
        with ThreadPoolExecutor(max_workers=calls, thread_name_prefix=name) as pool:
            list(pool.map(poll_group, module.poll_groups(list(by_id))))

    def _config(self, module: ModuleType) -> PollConfig | None:
        credentials = {key: self.secrets(key) for key in module.CREDENTIALS}
        if not all(credentials.values()):
            return None
        return PollConfig(
            base_url=self.settings.provider_urls.get(module.NAME) or module.DEFAULT_URL,
            credentials={k: v for k, v in credentials.items() if v},
            zone=self.settings.zone_of(module.NAME),
        )

    def _settle_answer(self, message: DueMessage, result: PollResult, now: datetime, summary: RunSummary) -> None:
        if isinstance(result, ProviderError):  # the provider's entry for this message could not be read
            count("ProviderErrors", provider=message.provider, kind=result.kind)
            self._retry_later(message, now, None, summary)
        else:
            self._settle(message, result, now, summary)

    def _settle(self, message: DueMessage, report: Report | None, now: datetime, summary: RunSummary) -> None:
        upcoming = self.settings.schedule.next_poll(message.sent_at, now)
        next_poll = NextPoll(iso(upcoming[1]), upcoming[0]) if upcoming else None
        if report is not None:
            count("PollResults", provider=message.provider, status=str(report.status))
            result = self.store.apply(report, now, next_poll=None if report.final else next_poll)
            if report.final or (result.outcome is Outcome.APPLIED and next_poll is not None):
                self._count(summary, "settled")
                return
        if next_poll is not None:
            self.store.reschedule(message, next_poll)
            self._count(summary, "settled")
            return
        self._give_up(message, now, summary)

    def _retry_later(self, message: DueMessage, now: datetime, retry_after: float | None, summary: RunSummary) -> None:
        """After a transient fault: ask again later, backing off, or give up once the schedule is long past."""
        schedule = self.settings.schedule
        if now >= schedule.give_up_at(message.sent_at) + GIVE_UP_GRACE:
            self._give_up(message, now, summary)
            return
        scheduled = schedule.poll_at(message.sent_at, message.poll_attempt) or schedule.give_up_at(message.sent_at)
        wait = retry_delay(scheduled, from_iso(message.due_at), retry_after, self.rng.random())
        if self.store.reschedule(message, NextPoll(iso(now + wait), message.poll_attempt)):
            self._count(summary, "retried")

    def _give_up(self, message: DueMessage, now: datetime, summary: RunSummary) -> None:
        give_up = Report.give_up(
            message.provider, message.message_id, self.settings.schedule.give_up_at(message.sent_at)
        )
        if self.store.apply(give_up, now).outcome is Outcome.APPLIED:
            count("GivenUp", provider=message.provider)
            self._count(summary, "given_up")

    def _pause(self, name: str, now: datetime, retry_after: float | None) -> None:
        until = now + max(RETRY_MIN, timedelta(seconds=retry_after or 0))
        with self._lock:
            self.paused_until[name] = max(until, self.paused_until.get(name, until))
        logger.warning("provider asked us to slow down (429)", extra={"provider": name, "until": iso(until)})

    def _stop(self, name: str, summary: RunSummary, left: int) -> None:
        with self._lock:
            summary.stopped.add(name)
            summary.left_due += left

    def _count(self, summary: RunSummary, attribute: str) -> None:
        with self._lock:
            setattr(summary, attribute, getattr(summary, attribute) + 1)


class _Writers:
    """A run's writers. ``submit`` hands one message's writes over, and waits while ``backlog`` are waiting or
    being written. With no writers, the caller writes at once (the design before writers, kept to measure
    against: benchmarks/throughput.py)."""

    def __init__(self, count: int, backlog: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="writer") if count else None
        self._room = threading.BoundedSemaphore(backlog)

    def submit(self, work: Callable[[], None]) -> None:
        if self._pool is None:
            work()
            return
        self._room.acquire()
        try:
            self._pool.submit(work).add_done_callback(self._done)
        except BaseException:
            self._room.release()
            raise

    def _done(self, _: Future[None]) -> None:
        self._room.release()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
