"""Sender API (AWS IAM): ``POST /messages`` registers sent messages, ``GET /messages/{provider}/{id}`` reads one,
``GET /messages?recipient=`` looks a recipient's messages up and ``DELETE /messages?recipient=`` erases them.

A recipient is a phone number: it never goes into a log line, and a message id only as ``loggable_id`` shows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aws_lambda_powertools.logging import correlation_paths

from dlrwatch.config import Settings
from dlrwatch.domain.times import utcnow
from dlrwatch.http import Answer, Event, Router, json_response, request_body
from dlrwatch.messages import MessageService, query_parameters
from dlrwatch.observability import loggable_id, logger, metrics
from dlrwatch.store import Store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

settings = Settings.from_env()
service = MessageService(
    Store(settings.table_name, retention=settings.retention, open_retention=settings.open_retention), settings, utcnow
)
app = Router()


@app.route("POST", "/messages")
def register(event: Event) -> Answer:
    return json_response(200, service.register(request_body(event, 1024 * 1024)))


@app.route("GET", "/messages")
def look_up(event: Event) -> Answer:
    return json_response(200, service.look_up(query_parameters(str(event.get("rawQueryString") or ""))))


@app.route("DELETE", "/messages")
def forget(event: Event) -> Answer:
    return json_response(200, service.forget(query_parameters(str(event.get("rawQueryString") or ""))))


@app.route("GET", "/messages/<provider>/<message_id>")
def read(event: Event, provider: str, message_id: str) -> Answer:
    # Routes match the raw path: an id sent percent-encoded ("123%3A4477...") arrives encoded.
    message_id = unquote(message_id)
    logger.append_keys(message_id=loggable_id(provider, message_id))
    return json_response(200, service.read(provider, message_id))


# The correlation id is API Gateway's request id, the one its access log shows.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event)
