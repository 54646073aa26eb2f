"""Scheduled every minute: polls the providers for every due message (see dlrwatch.poller)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlrwatch.config import Settings
from dlrwatch.domain.times import utcnow
from dlrwatch.observability import logger, metrics
from dlrwatch.poller import Poller
from dlrwatch.store import Store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Time kept back from the Lambda timeout for the writes of the last calls in flight.
SAFETY_SECONDS = 15

settings = Settings.from_env()
poller = Poller(
    Store(settings.table_name, retention=settings.retention, open_retention=settings.open_retention),
    settings,
    clock=utcnow,
)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    remaining = context.get_remaining_time_in_millis() / 1000 - SAFETY_SECONDS
    summary = poller.run(budget_seconds=max(min(settings.poll_budget_seconds, remaining), 0))
    return summary.as_dict()
