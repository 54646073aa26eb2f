"""What every provider module shares: the request it parses and small, strict field readers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from dlrwatch.errors import BadInput

MESSAGE_ID = re.compile(r"^[A-Za-z0-9._@:+-]{1,128}$")
RAW_STATUS_MAX = 64


@dataclass(frozen=True)
class PushRequest:
    """A provider's HTTP request, reduced to what parsing needs (pure: no framework types)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    url: str = ""  # the full URL the provider called, for signatures

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def fields(self) -> dict[str, str]:
        """Query parameters, plus the body's when it is a form. Our own ``token`` is not a provider field."""
        pairs = list(self.query)
        if self.body and self.content_type == "application/x-www-form-urlencoded":
            pairs += parse_qsl(self.text(), keep_blank_values=True)
        return {k: v for k, v in pairs if k != "token"}

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("body is not UTF-8") from None

    def is_json(self) -> bool:
        return self.content_type == "application/json" or (
            self.content_type in ("", "text/plain") and self.body.lstrip()[:1] in (b"{", b"[")
        )

    def json(self) -> Any:
        try:
            return json.loads(self.text())
        except json.JSONDecodeError as exc:
            raise BadInput(f"body is not valid JSON: {exc.msg} at position {exc.pos}") from None


def unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """Bracketed form keys to nested values: ``data[msg_id]`` -> ``{"data": {"msg_id": ...}}``.

    A level whose keys are all digits (``data[0][msg_id]``) becomes a list, in index order.
    """
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = re.findall(r"[^\[\]]+", key) if "[" in key else [key]
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise BadInput(f"field {key!r} conflicts with field {part!r}")
            node = child
        node[parts[-1]] = value
    nested: dict[str, Any] = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def required(fields: Mapping[str, Any], name: str, where: str = "") -> str:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadInput(f"missing field {name!r}{where}")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadInput(f"field {name!r}{where} must be a string")
    return str(value).strip()


def optional(fields: Mapping[str, Any], name: str, where: str = "") -> str | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return required(fields, name, where)


def message_id(value: str, name: str = "message id") -> str:
    if not MESSAGE_ID.match(value):
        raise BadInput(f"{name} {value!r} is not 1-128 characters of A-Z a-z 0-9 . _ @ : + -")
    return value


def raw_status(value: str) -> str:
    if len(value) > RAW_STATUS_MAX or not value.isprintable():
        raise BadInput(f"status is not a printable text of at most {RAW_STATUS_MAX} characters")
    return value


# -- pulling -------------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A status call that gave no usable answer, and what the poller should do about it."""

    def __init__(self, kind: str, *, transient: bool = True, auth: bool = False, retry_after: float | None = None):
        super().__init__(kind)
        self.kind = kind
        self.transient = transient and not auth
        self.auth = auth
        self.retry_after = retry_after


class HttpResponse(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...


class HttpSession(Protocol):
    """What a provider's status call needs of an HTTP client (a ``requests.Session`` fits)."""

    def get(self, url: str, **kwargs: Any) -> HttpResponse: ...
    def post(self, url: str, **kwargs: Any) -> HttpResponse: ...


@dataclass(frozen=True)
class PollConfig:
    base_url: str
    credentials: Mapping[str, str]
    zone: str
    timeout: tuple[float, float] = (3.05, 10.0)  # connect, read


def check_http(response: HttpResponse) -> None:
    """Classify a provider's HTTP error answer; return quietly on success."""
    code = response.status_code
    if code in (401, 403):
        raise ProviderError(f"http_{code}", auth=True)
    if code == 429:
        raise ProviderError("http_429", retry_after=_retry_after(response.headers.get("Retry-After")))
    if code >= 500:
        raise ProviderError("http_5xx")
    if code >= 400:
        raise ProviderError(f"http_{code}", transient=False)


def _retry_after(value: str | None) -> float | None:
    return float(value) if value and value.strip().isdigit() else None
