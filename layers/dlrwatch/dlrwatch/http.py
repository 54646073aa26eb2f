"""HTTP glue shared by the API handlers: event to request, domain errors to answers, in one place."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, NoReturn

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from dlrwatch.credentials import SecretUnavailable
from dlrwatch.errors import BadInput, PayloadTooLarge, StorageUnavailable, Unauthorized
from dlrwatch.observability import count, logger
from dlrwatch.providers.base import PushRequest, form_pairs


class NotConfigured(RuntimeError):
    """A setting the request needs is missing (a deployment fault): 503, so the sender retries later."""


def json_response(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def request_body(event: APIGatewayProxyEventV2, max_body_bytes: int) -> bytes:
    """The request body, decoded; its size is checked before and after decoding."""
    raw = event.get("body") or ""
    if len(raw) > max_body_bytes * 4 // 3 + 4:
        raise_too_large(max_body_bytes)
    if event.is_base64_encoded:
        try:
            body = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise BadInput("body is not valid base64") from None
    else:
        # "surrogatepass": a lone surrogate cannot come from API Gateway, but if it did, it would become bytes
        # that are not UTF-8, which parsing refuses (400), instead of a crash here.
        body = raw.encode("utf-8", "surrogatepass")
    if len(body) > max_body_bytes:
        raise_too_large(max_body_bytes)
    return body


def push_request(event: APIGatewayProxyEventV2, max_body_bytes: int) -> PushRequest:
    """The provider's request as parsing needs it."""
    body = request_body(event, max_body_bytes)
    context = event.request_context
    query = event.raw_query_string
    return PushRequest(
        method=context.http.method.upper(),
        path=event.raw_path,
        query=tuple(form_pairs(query, "query string")),
        headers={k.lower(): v for k, v in (event.headers or {}).items()},
        body=body,
        url=f"https://{context.domain_name}{event.raw_path}" + (f"?{query}" if query else ""),
    )


def raise_too_large(limit: int) -> NoReturn:
    raise PayloadTooLarge(f"body is larger than {limit} bytes")


def register_error_answers(app: APIGatewayHttpResolver) -> None:
    """Every domain error becomes the answer the spec gives it; nothing else leaks out."""

    @app.exception_handler(BadInput)
    def bad_input(exc: BadInput) -> Response[str]:
        count("RejectedInput")
        logger.info("rejected input", extra={"reason": str(exc)})
        return json_response(exc.status_code, {"error": str(exc)})

    @app.exception_handler(Unauthorized)
    def unauthorized(exc: Unauthorized) -> Response[str]:
        count("AuthFailures")
        logger.warning("refused credentials", extra={"reason": str(exc)})
        return json_response(exc.status_code, {"error": str(exc)})

    @app.exception_handler(StorageUnavailable)
    def storage_failed(exc: StorageUnavailable) -> Response[str]:
        count("StorageFailures")
        logger.exception("storage failed")
        return json_response(503, {"error": "storage unavailable, retry later"})

    @app.exception_handler(SecretUnavailable)
    def secret_failed(exc: SecretUnavailable) -> Response[str]:
        logger.exception("secret store failed")
        return json_response(503, {"error": "configuration unavailable, retry later"})

    @app.exception_handler(NotConfigured)
    def not_configured(exc: NotConfigured) -> Response[str]:
        logger.error("not configured", extra={"reason": str(exc)})
        return json_response(503, {"error": str(exc)})
