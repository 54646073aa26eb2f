"""Provider callbacks: ``GET|POST /callbacks/{channel}`` (seven.io, BulkSMS). Parsing and rules live in dlrwatch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.logging import correlation_paths

from dlrwatch.callbacks import CallbackService
from dlrwatch.config import Settings
from dlrwatch.http import Answer, Event, Router, json_response, push_request
from dlrwatch.observability import logger, metrics
from dlrwatch.store import CALLBACK_CLIENT_CONFIG, Store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

settings = Settings.from_env()
service = CallbackService(
    Store(
        settings.table_name,
        retention=settings.retention,
        open_retention=settings.open_retention,
        config=CALLBACK_CLIENT_CONFIG,
    ),
    settings,
)
app = Router()


@app.route(["GET", "POST"], "/callbacks/<channel>")
def receive(event: Event, channel: str) -> Answer:
    result = service.receive(channel, push_request(event, settings.max_body_bytes))
    return json_response(200, result)


# The event is never logged: its query string carries the callback token. The correlation id is API Gateway's
# request id, the one its access log shows.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event)
