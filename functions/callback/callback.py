"""Provider callbacks: ``GET|POST /callbacks/{channel}`` (seven.io, BulkSMS). Parsing and rules live in dlrwatch."""

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from dlrwatch.callbacks import CallbackService
from dlrwatch.config import Settings
from dlrwatch.http import json_response, push_request, register_error_answers
from dlrwatch.observability import logger, metrics
from dlrwatch.store import CALLBACK_CLIENT_CONFIG, Store

settings = Settings.from_env()
service = CallbackService(
    Store(settings.table_name, retention=settings.retention, config=CALLBACK_CLIENT_CONFIG), settings
)
app = APIGatewayHttpResolver()
register_error_answers(app)


@app.route("/callbacks/<channel>", method=["GET", "POST"])
def receive(channel: str) -> Response[str]:
    result = service.receive(channel, push_request(app.current_event, settings.max_body_bytes))
    return json_response(200, result)


# The event is never logged: its query string carries the callback token. The correlation id is API Gateway's
# request id, the one its access log shows.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
