"""Receiving pushed delivery reports: authenticate, parse, store each report, say what happened."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dlrwatch.config import Settings
from dlrwatch.credentials import secret
from dlrwatch.domain.report import Report
from dlrwatch.domain.times import utcnow
from dlrwatch.errors import BadInput, StorageUnavailable, Unauthorized
from dlrwatch.http import NotConfigured
from dlrwatch.observability import count, logger
from dlrwatch.providers import CALLBACKS, sevenio
from dlrwatch.providers.base import PushRequest
from dlrwatch.store import Outcome, Store


class UnknownRoute(BadInput):
    status_code = 404


@dataclass
class CallbackService:
    store: Store
    settings: Settings
    secrets: Callable[[str], str | None] = secret
    clock: Callable[[], datetime] = utcnow

    def receive(self, channel: str, request: PushRequest) -> dict[str, int]:
        module = CALLBACKS.get(channel)
        if module is None:
            raise UnknownRoute(f"no callback route {channel!r}")
        self._check_token(request)
        now = self.clock()
        nonce = self._check_signature(channel, request, now)
        reports: list[Report] = module.parse_callback(request, self.settings.zone_of(module.NAME))
        try:
            applied = sum(self._store(report, now) for report in reports)
        except StorageUnavailable:
            if nonce and not self.store.forget_nonce(channel, nonce):
                logger.error("nonce of a failed request could not be forgotten; its retry will be refused")
            raise
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
        """seven.io signs its webhooks; when a signing key is set, every seven.io request must be signed."""
        if channel != sevenio.CALLBACK:
            return None
        key = self.secrets("SEVENIO_SIGNING_KEY")
        if not key:
            return None
        nonce = sevenio.verify_signature(request, key, now.timestamp())
        window = timedelta(seconds=2 * sevenio.SIGNATURE_MAX_AGE)
        if not self.store.remember_nonce(channel, nonce, now, window):
            raise Unauthorized("replayed nonce", missing=False)
        return nonce

    def _store(self, report: Report, now: datetime) -> bool:
        logger.set_correlation_id(report.message_id)
        result = self.store.apply(report, now)
        count("Reports", provider=report.provider, status=str(report.status), source=str(report.source))
        if result.outcome is Outcome.STALE:
            count("StaleReports", provider=report.provider)
        if result.conflicting_final:
            count("ConflictingFinals", provider=report.provider)
            logger.warning(
                "two different final statuses",
                extra={
                    "provider": report.provider,
                    "kept_or_replaced": result.previous_status,
                    "reported": str(report.status),
                    "outcome": str(result.outcome),
                },
            )
        logger.info(
            "report",
            extra={
                "provider": report.provider,
                "status": str(report.status),
                "provider_status": report.provider_status,
                "outcome": str(result.outcome),
            },
        )
        return result.outcome is Outcome.APPLIED
