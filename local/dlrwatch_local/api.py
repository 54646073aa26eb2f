"""The HTTP API on loopback: each request becomes an API Gateway (HTTP API, payload 2.0) event for the real
handler that template.yaml routes it to, and the handler's answer goes back as the HTTP response.

Routes come from the template's ``HttpApi`` events, so a route added there is served here too. AWS IAM
authorization is not checked locally (there is no IAM here); everything else is the Lambda code path.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dlrwatch_local.httpserver import LoopbackServer, RequestHandler
from dlrwatch_local.template import http_api_events, template

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
# Media types API Gateway passes as text (besides text/*), as observed on HTTP APIs with payload format 2.0.
TEXT_MEDIA_TYPES = frozenset({"application/json", "application/xml", "application/javascript"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # "/messages/{provider}/{message_id}"
    function: str  # logical id, e.g. "CallbackFunction"
    pattern: re.Pattern[str]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method != self.method:
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


def routes() -> list[Route]:
    """Every HttpApi route of template.yaml, with the function it invokes."""
    found = []
    for logical_id, props in http_api_events():
        path, method = props["Path"], props["Method"].upper()
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
        found.append(Route(method, path, logical_id, re.compile(regex)))
    return found


def handler_module(logical_id: str) -> tuple[str, str]:
    """``CallbackFunction`` -> (``functions/callback/``, ``callback.handler``)."""
    props = template()["Resources"][logical_id]["Properties"]
    return props["CodeUri"], props["Handler"]


def is_text(content_type: str) -> bool:
    """Whether API Gateway hands a body of this media type to the function as text rather than base64: only
    ``text/*``, JSON, XML and JavaScript are text (forms, a missing type and everything else arrive base64)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES


def event_body(body: bytes, content_type: str) -> tuple[str, bool]:
    """The event's ``body`` and ``isBase64Encoded``. Text that is not valid UTF-8 cannot travel as a JSON string:
    it arrives base64-encoded, like a binary body."""
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def event_headers(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Header names in lower case; a header sent several times is one, its values joined by commas (payload 2.0)."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def api_event(
    method: str,
    route: Route,
    params: dict[str, str],
    raw_path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    query_parameters: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        query_parameters[key] = f"{query_parameters[key]},{value}" if key in query_parameters else value
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route.path}",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {route.path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    if params:
        event["pathParameters"] = params
    if body:
        event["body"], event["isBase64Encoded"] = event_body(body, headers.get("content-type", ""))
    return event


class LocalApi:
    """The API on 127.0.0.1 (``port`` 0: a free one): ``invoke(logical_id, event)`` answers each routed request.

    ``invoke`` is called from many threads at once, one per connection, as API Gateway invokes concurrently.
    """

    def __init__(self, port: int, invoke: Callable[[str, dict[str, Any]], dict[str, Any]]) -> None:
        self.routes = routes()
        self.invoke = invoke
        self.requests = 0
        self._count_lock = threading.Lock()
        api = self

        class ApiRequestHandler(RequestHandler):
            def serve(self) -> None:
                api.serve(self)

        self.server = LoopbackServer(ApiRequestHandler, port=port)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.server.start(name="api")

    def stop(self) -> None:
        self.server.stop()

    def serve(self, request: RequestHandler) -> None:
        with self._count_lock:
            self.requests += 1
        # API Gateway takes in the whole request before routing it: a body it refuses is refused on any route.
        body = request.read_body()
        url = urlsplit(request.path)
        method = request.command.upper()
        for route in self.routes:
            params = route.match(method, url.path)
            if params is not None:
                headers = event_headers(request.headers.items())
                event = api_event(method, route, params, url.path, url.query, headers, body, request.client_address[0])
                try:
                    answer = self.invoke(route.function, event)
                except Exception as failure:  # a failing function is a 500 on API Gateway too; its log has the trace
                    print(f"{route.function}: {failure}", file=sys.stderr, flush=True)
                    answer = {"statusCode": 500, "body": json.dumps({"message": "Internal Server Error"})}
                self._answer(request, answer)
                return
        request.respond_error(404, "Not Found")

    @staticmethod
    def _answer(request: RequestHandler, answer: dict[str, Any]) -> None:
        raw = answer.get("body") or ""
        data = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
        headers = {k.lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        request.respond(int(answer.get("statusCode", 200)), data, headers)
