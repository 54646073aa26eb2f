"""Receiving pushed delivery reports: authenticate, parse, store each report, say what happened.

A provider waits about 5 seconds for an answer, then retries. So a request is answered within
``Settings.answer_within_seconds`` whatever hangs behind it (the secret store, DynamoDB): what is not durable
by then is answered 503, and the provider's retry stores it (reports are idempotent).

A signed webhook's nonce is recorded only once its reports are stored. A request that fails, times out or is
killed half way therefore never leaves its nonce "used", and the provider's retry is let in. A replay of a
request that was stored finds the nonce and is refused; its reports were duplicates and changed nothing.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dlrwatch.config import Settings
from dlrwatch.credentials import secret
from dlrwatch.domain.report import Report
from dlrwatch.domain.times import utcnow
from dlrwatch.errors import BadInput, PayloadTooLarge, StorageUnavailable, Unauthorized
from dlrwatch.http import NotConfigured
from dlrwatch.observability import count, count_and_log, loggable_id, logger
from dlrwatch.providers import CALLBACKS, sevenio
from dlrwatch.providers.base import PushRequest
from dlrwatch.store import Outcome, Store

# BulkSMS sends at most 10 messages a webhook; seven.io's bulk format is not public. 100 reports are stored
# well within the answer budget even on the CPU share of a 256 MB function.
MAX_REPORTS = 100
# Reports are written in parallel, at most this many at once, so a full request costs a few round trips, not 100.
WRITERS = 16


class UnknownRoute(BadInput):
    status_code = 404


class TooSlow(StorageUnavailable):
    """Storage or the secret store did not answer in time: 503, so the provider retries."""


@dataclass
class CallbackService:
    store: Store
    settings: Settings
    secrets: Callable[[str], str | None] = secret
    clock: Callable[[], datetime] = utcnow
    # Requests run here so that the caller can stop waiting at the deadline; writers store their reports.
    # A thread still waiting on a hung connection after its request was answered ends with its client's
    # timeouts (seconds); the pools are sized so that a few such threads leave room for the next request.
    _requests: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="request"), repr=False
    )
    _writers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="writer"), repr=False
    )

    def receive(self, channel: str, request: PushRequest) -> dict[str, int]:
        module = CALLBACKS.get(channel)
        if module is None:
            raise UnknownRoute(f"no callback route {channel!r}")
        answered = threading.Event()  # set once the caller has stopped waiting: nothing more may be recorded
        work = self._requests.submit(self._receive, channel, request, answered)
        try:
            return work.result(timeout=self.settings.answer_within_seconds)
        except TimeoutError:
            answered.set()
            raise TooSlow(f"no answer from storage within {self.settings.answer_within_seconds:g} s") from None

    def _receive(self, channel: str, request: PushRequest, answered: threading.Event) -> dict[str, int]:
        self._check_token(request)
        now = self.clock()
        nonce = self._check_signature(channel, request, now)
        module = CALLBACKS[channel]
        reports: list[Report] = module.parse_callback(request, self.settings.zone_of(module.NAME))
        if len(reports) > MAX_REPORTS:
            raise PayloadTooLarge(f"at most {MAX_REPORTS} reports a request, not {len(reports)}")
        outcomes = list(self._writers.map(lambda report: self._store(report, now), reports))
        record_reports(reports, outcomes)
        applied = outcomes.count(Outcome.APPLIED)
        if nonce and not answered.is_set():
            window = timedelta(seconds=2 * sevenio.SIGNATURE_MAX_AGE)
            if not self.store.remember_nonce(channel, nonce, now, window):
                raise Unauthorized("replayed nonce", missing=False)
        return {"received": len(reports), "applied": applied}

    def _check_token(self, request: PushRequest) -> None:
        expected = self.secrets("CALLBACK_TOKEN")
        if not expected:
            raise NotConfigured("the callback token is not configured")
        given = [v for k, v in request.query if k == "token"]
        if not given or not given[0]:
            raise Unauthorized("missing token", missing=True)
        if not hmac.compare_digest(given[0].encode(), expected.encode()):
            raise Unauthorized("wrong token", missing=False)

    def _check_signature(self, channel: str, request: PushRequest, now: datetime) -> str | None:
        """seven.io signs its webhooks; when a signing key is set, every seven.io request must be signed.

        Answers the nonce, which the caller records once the reports are stored (a replay is refused then: its
        reports were duplicates, each a failed conditional write, and changed nothing).
        """
        if channel != sevenio.CALLBACK:
            return None
        key = self.secrets("SEVENIO_SIGNING_KEY")
        if not key:
            return None
        return sevenio.verify_signature(request, key, now.timestamp())

    def _store(self, report: Report, now: datetime) -> Outcome:
        result = self.store.apply(report, now)
        if result.outcome is Outcome.STALE:
            count("StaleReports", provider=report.provider)
        if result.conflicting_final:
            count("ConflictingFinals", provider=report.provider)
            logger.warning(
                "two different final statuses",
                extra={
                    "provider": report.provider,
                    "message_id": loggable_id(report.provider, report.message_id),
                    "kept_or_replaced": result.previous_status,
                    "reported": str(report.status),
                    "outcome": str(result.outcome),
                },
            )
        logger.debug(
            "report",
            extra={
                "provider": report.provider,
                "message_id": loggable_id(report.provider, report.message_id),
                "status": str(report.status),
                "provider_status": report.provider_status,
                "outcome": str(result.outcome),
            },
        )
        return result.outcome


def record_reports(reports: list[Report], outcomes: list[Outcome]) -> None:
    """One line for a request's reports, not two for each: the ``Reports`` count of each (provider, status,
    source) the request holds, carrying what each report was and what became of it (its message id, the
    provider's status, the outcome). A seven.io request holds one report: one line; a BulkSMS one up to ten."""
    groups: dict[tuple[str, str, str], list[dict[str, str | None]]] = {}
    for report, outcome in zip(reports, outcomes, strict=True):
        key = (report.provider, str(report.status), str(report.source))
        groups.setdefault(key, []).append(
            {
                "message_id": loggable_id(report.provider, report.message_id),
                "provider_status": report.provider_status,
                "outcome": str(outcome),
            }
        )
    for (provider, status, source), entries in groups.items():
        count_and_log(
            "Reports", len(entries), "reports", {"reports": entries}, provider=provider, status=status, source=source
        )
