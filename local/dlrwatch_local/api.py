"""The HTTP API on loopback: each request becomes an API Gateway (HTTP API, payload 2.0) event for the real
handler that template.yaml routes it to, and the handler's answer goes back as the HTTP response.

Routes come from the template's ``HttpApi`` events, so a route added there is served here too. AWS IAM
authorization is not checked locally (there is no IAM here); everything else is the Lambda code path.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dlrwatch_local.template import template

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
TEXT_TYPES = ("application/json", "text/")


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
    for logical_id, resource in template()["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            path, method = event["Properties"]["Path"], event["Properties"]["Method"].upper()
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
            found.append(Route(method, path, logical_id, re.compile(regex)))
    return found


def handler_module(logical_id: str) -> tuple[str, str]:
    """``CallbackFunction`` -> (``functions/callback/``, ``callback.handler``)."""
    props = template()["Resources"][logical_id]["Properties"]
    return props["CodeUri"], props["Handler"]


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
    content_type = headers.get("content-type", "")
    as_text = not body or content_type.startswith(TEXT_TYPES)
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
        "isBase64Encoded": not as_text,
    }
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    if params:
        event["pathParameters"] = params
    if body:
        event["body"] = body.decode() if as_text else base64.b64encode(body).decode()
    return event


class LocalApi:
    """``ThreadingHTTPServer`` on 127.0.0.1 that invokes ``invoke(logical_id, event)`` for each request."""

    def __init__(self, port: int, invoke: Callable[[str, dict[str, Any]], dict[str, Any]]) -> None:
        self.routes = routes()
        self.invoke = invoke
        self.requests = 0
        api = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the handlers log what matters, and the query string carries the callback token."""

            def do_GET(self) -> None:
                api.serve(self)

            def do_POST(self) -> None:
                api.serve(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), RequestHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="api", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        url = urlsplit(request.path)
        method = request.command.upper()
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        for route in self.routes:
            params = route.match(method, url.path)
            if params is not None:
                headers = {k.lower(): v for k, v in request.headers.items()}
                event = api_event(method, route, params, url.path, url.query, headers, body, request.client_address[0])
                try:
                    answer = self.invoke(route.function, event)
                except Exception as exc:  # a crashing handler is a 500 on API Gateway too
                    answer = {"statusCode": 500, "body": json.dumps({"message": f"Internal Server Error: {exc!r}"})}
                self._answer(request, answer)
                return
        self._answer(request, {"statusCode": 404, "body": json.dumps({"message": "Not Found"})})

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, answer: dict[str, Any]) -> None:
        raw = answer.get("body") or ""
        data = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
        headers = {k.lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        headers.setdefault("content-type", "application/json")
        try:
            request.send_response(int(answer.get("statusCode", 200)))
            for name, value in headers.items():
                if name != "content-length":
                    request.send_header(name, value)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
