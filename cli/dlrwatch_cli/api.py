"""dlrwatch's HTTP API as a client sees it: URLs built and encoded the way API Gateway and SigV4 read them,
requests signed for ``execute-api`` when there are credentials, answers read as JSON."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

SERVICE = "execute-api"
# A loaded API (a cold Lambda, a DynamoDB retry) gets time; no wait is unbounded.
TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)
# Connection failures are retried (nothing reached the API); a request that was sent is never sent twice.
RETRIES = urllib3.Retry(total=2, connect=2, read=0, status=0, other=0, redirect=0, raise_on_status=False)
# SigV4 signs the query string as sent; it must already be in the canonical form: RFC 3986 unreserved kept.
UNRESERVED = "-_.~"
EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$")


class ApiError(Exception):
    """The API refused or failed a request (``status`` its HTTP status), or could not be reached (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(url: str) -> bool:
    """A URL on this machine (``make run``'s stack): 127.0.0.0/8, ::1 or localhost."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_from_url(url: str) -> str | None:
    """The region of an API Gateway default endpoint (``{id}.execute-api.{region}.amazonaws.com``), else None."""
    matched = EXECUTE_API_HOST.fullmatch((urlsplit(url).hostname or "").lower())
    return matched.group(1) if matched else None


def host_of(url: str) -> str:
    return urlsplit(url).hostname or url


def segment(value: str) -> str:
    """One path segment, every reserved character encoded: an EAPI id ``4242:447700900001`` keeps its ``:`` as
    ``%3A``, and a ``/`` in an id cannot reach another route."""
    return quote(value, safe=UNRESERVED)


def query(params: Mapping[str, str | int | None]) -> str:
    """``?a=1&b=2`` (empty without parameters), each value encoded: a recipient's ``+`` is sent as ``%2B``, never a
    raw ``+`` that a server decodes to a space."""
    pairs = [f"{segment(name)}={segment(str(value))}" for name, value in params.items() if value is not None]
    return "?" + "&".join(pairs) if pairs else ""


def message_path(provider: str, message_id: str) -> str:
    return f"/messages/{segment(provider)}/{segment(message_id)}"


@dataclass
class Client:
    """The API at ``base_url``. With ``credentials`` every request is signed (SigV4, ``execute-api``, ``region``);
    without, it is sent unsigned, which only the local stack accepts."""

    base_url: str
    credentials: ReadOnlyCredentials | None
    region: str
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(timeout=TIMEOUT, retries=RETRIES))

    def url(self, path: str, params: Mapping[str, str | int | None] | None = None) -> str:
        return self.base_url.rstrip("/") + path + query(params or {})

    def headers(self, method: str, url: str, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.credentials is None:
            return headers
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(self.credentials, SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())

    def call(
        self, method: str, path: str, params: Mapping[str, str | int | None] | None = None, body: Any = None
    ) -> Any:
        """The answer's JSON; ``ApiError`` for a non-2xx answer (its ``error``, or API Gateway's ``message``) or
        an API out of reach."""
        url = self.url(path, params)
        data = None if body is None else json.dumps(body).encode()
        try:
            answer = self.http.request(method, url, body=data, headers=self.headers(method, url, data))
        except urllib3.exceptions.HTTPError as exc:
            raise ApiError(0, f"cannot reach {host_of(url)}: {type(exc).__name__}") from None
        try:
            document = json.loads(answer.data) if answer.data else None
        except ValueError:
            document = None
        if 200 <= answer.status < 300:
            return document
        raise ApiError(answer.status, error_message(answer.status, document))

    def register(self, body: Any) -> Any:
        """``body`` is ``{"messages": [...]}``, sent as it is: the API names whatever is wrong with it."""
        return self.call("POST", "/messages", body=body)

    def read(self, provider: str, message_id: str) -> Any:
        return self.call("GET", message_path(provider, message_id))

    def lookup(self, recipient: str, *, since: str | None, limit: int | None, next_token: str | None) -> Any:
        return self.call(
            "GET", "/messages", {"recipient": recipient, "since": since, "limit": limit, "next": next_token}
        )

    def forget(self, recipient: str) -> Any:
        return self.call("DELETE", "/messages", {"recipient": recipient})


def error_message(status: int, document: Any) -> str:
    """dlrwatch answers ``{"error": ...}``; API Gateway itself (a refused signature, a throttle) answers
    ``{"message": ...}``."""
    if isinstance(document, dict):
        for key in ("error", "message", "Message"):
            if isinstance(document.get(key), str):
                return str(document[key])
    return f"HTTP {status}"
