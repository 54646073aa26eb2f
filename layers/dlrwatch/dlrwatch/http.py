"""HTTP glue shared by the API handlers: routing, event to request, domain errors to answers, in one place.

The routes are few and API Gateway has matched them already, so a dozen lines route them here instead of
Powertools' event handler, whose import (every event source's data classes, asyncio through AppSync) made up
half of a cold start's own work (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from dlrwatch.errors import BadInput, PayloadTooLarge, SecretUnavailable, StorageUnavailable, Unauthorized
from dlrwatch.forwarding import ResolverUnavailable
from dlrwatch.observability import count, logger
from dlrwatch.providers.base import PushRequest, form_pairs

Event = Mapping[str, Any]
Answer = dict[str, Any]
RouteHandler = Callable[..., Answer]


class NotConfigured(RuntimeError):
    """A setting the request needs is missing (a deployment fault): 503, so the sender retries later."""


# The domain errors that have an answer (``answer_error``); any other exception fails the invocation.
ANSWERED = (BadInput, Unauthorized, StorageUnavailable, SecretUnavailable, ResolverUnavailable, NotConfigured)


class Router:
    """An HTTP API's routes (payload format 2.0): ``route("GET", "/messages/<provider>/<message_id>")``.

    Paths are matched on the raw path, each ``<name>`` one whole segment, handed over still percent-encoded: the
    handler decides what an encoded character means. Domain errors become their answers (``answer_error``); any
    other exception propagates, so the invocation fails and the error alarm sees it.
    """

    def __init__(self) -> None:
        self._routes: list[tuple[frozenset[str], re.Pattern[str], RouteHandler]] = []

    def route(self, methods: str | list[str], path: str) -> Callable[[RouteHandler], RouteHandler]:
        # A segment is anything but a slash, a space or a control character (API Gateway sends those encoded).
        segments = (
            f"(?P<{s[1:-1]}>[^/\\x00-\\x20\\x7f]+)" if s.startswith("<") else re.escape(s) for s in path.split("/")
        )
        pattern = re.compile("/".join(segments))
        wanted = frozenset([methods] if isinstance(methods, str) else methods)

        def register(handler: RouteHandler) -> RouteHandler:
            self._routes.append((wanted, pattern, handler))
            return handler

        return register

    def resolve(self, event: Event) -> Answer:
        method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
        path = str(event.get("rawPath") or "")
        for methods, pattern, handler in self._routes:
            matched = pattern.fullmatch(path)
            if matched and method in methods:
                try:
                    return handler(event, **matched.groupdict())
                except ANSWERED as exc:
                    return answer_error(exc)
        return json_response(404, {"error": "no such route"})


def json_response(status: int, body: Mapping[str, Any]) -> Answer:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def request_body(event: Event, max_body_bytes: int) -> bytes:
    """The request body, decoded; its size is checked before and after decoding."""
    raw = event.get("body") or ""
    if len(raw) > max_body_bytes * 4 // 3 + 4:
        raise_too_large(max_body_bytes)
    if event.get("isBase64Encoded"):
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


def push_request(event: Event, max_body_bytes: int) -> PushRequest:
    """The provider's request as parsing needs it."""
    body = request_body(event, max_body_bytes)
    context = event.get("requestContext") or {}
    path = str(event.get("rawPath") or "")
    query = str(event.get("rawQueryString") or "")
    return PushRequest(
        method=str((context.get("http") or {}).get("method", "")).upper(),
        path=path,
        query=tuple(form_pairs(query, "query string")),
        headers={k.lower(): v for k, v in (event.get("headers") or {}).items()},
        body=body,
        url=f"https://{context.get('domainName', '')}{path}" + (f"?{query}" if query else ""),
    )


def raise_too_large(limit: int) -> NoReturn:
    raise PayloadTooLarge(f"body is larger than {limit} bytes")


def answer_error(exc: Exception) -> Answer:
    """Every domain error (one of ``ANSWERED``) becomes the answer the spec gives it; nothing else leaks out."""
    if isinstance(exc, BadInput):
        count("RejectedInput")
        logger.info("rejected input", extra={"reason": str(exc)})
        return json_response(exc.status_code, {"error": str(exc)})
    if isinstance(exc, Unauthorized):
        count("AuthFailures")
        logger.warning("refused credentials", extra={"reason": str(exc)})
        return json_response(exc.status_code, {"error": str(exc)})
    if isinstance(exc, StorageUnavailable):
        count("StorageFailures")
        logger.exception("storage failed")
        return json_response(503, {"error": "storage unavailable, retry later"})
    if isinstance(exc, SecretUnavailable):
        logger.exception("secret store failed")
        return json_response(503, {"error": "configuration unavailable, retry later"})
    if isinstance(exc, ResolverUnavailable):
        # The message names the host only (never the URL, which may carry the sender's token).
        logger.warning("callback_url host not resolved in time", extra={"reason": str(exc)})
        return json_response(503, {"error": "could not resolve the callback_url host, retry later"})
    logger.error("not configured", extra={"reason": str(exc)})
    return json_response(503, {"error": str(exc)})
