"""DynamoDB stream of the table ──▶ EventBridge: one event per status change (see dlrwatch.publisher)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlrwatch.observability import logger, metrics
from dlrwatch.publisher import Publisher, batch_item_failures, forwards_from_env, sink_from_env

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

publisher = Publisher(sink_from_env(), forwards_from_env())


# Stream images hold recipients' phone numbers: the event is never logged.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    # The whole batch's events are put at once (10 a call). The records whose event could not be put are answered
    # as failed (ReportBatchItemFailures): Lambda retries the batch from the first of them, in stream order. A
    # batch whose every record failed is answered the same way, not raised: same retry, no noise.
    records = event.get("Records", [])
    return batch_item_failures(records, publisher.publish(records))
