"""API Gateway (HTTP API, payload 2.0) events for any request, built as the local API builds them, and the
deployed handlers that template.yaml routes them to."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dlrwatch_local.api import api_event, routes

from support.lambda_context import FakeContext

SOURCE_IP = "203.0.113.10"
TOKEN = "test-token"  # the callback token the handlers are given in tests
SIGNING_KEY = "test-signing-key"  # the seven.io signing key events/sevenio-webhook-signed.json was signed with
SIGNED_AT = datetime.fromtimestamp(1795341960, tz=UTC)  # when it was signed: the handlers' clock in tests
HOST = "abc123.execute-api.eu-central-1.amazonaws.com"
FUNCTIONS = {"CallbackFunction": "callback", "MessagesFunction": "messages"}


def http_event(
    method: str, path: str, query: str = "", headers: Mapping[str, str] | None = None, body: bytes = b""
) -> tuple[str, dict[str, Any]]:
    """The routed function's module name and the event API Gateway would pass it."""
    for route in routes():
        params = route.match(method, path)
        if params is not None:
            sent = {"host": HOST, **{k.lower(): v for k, v in (headers or {}).items()}}
            return FUNCTIONS[route.function], api_event(method, route, params, path, query, sent, body, SOURCE_IP)
    raise LookupError(f"no route for {method} {path}")


def answer_of(module: Any, event: dict[str, Any]) -> tuple[int, Any]:
    """The handler's status code and JSON body."""
    answer = module.handler(event, FakeContext())
    return int(answer["statusCode"]), json.loads(answer["body"])
