"""What every provider module shares: the request it parses and small, strict field readers.

Every reader is total: whatever a request holds, it answers a value or raises ``BadInput`` naming the problem.
The bounds (docs/decisions.md, "Bounds on input") keep every stored raw field small, so a report can never grow
an item toward DynamoDB's 400 KB limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl

from dlrwatch import strictjson
from dlrwatch.domain.report import Report
from dlrwatch.domain.text import shown
from dlrwatch.errors import BadInput

# Ids are matched whole (``fullmatch``): a trailing newline is not part of an id.
MESSAGE_ID = re.compile(r"[A-Za-z0-9._@:+-]{1,128}")
RAW_STATUS_MAX = 64
# Raw extras kept in the history (seven.io foreign_id: at most 64 characters; BulkSMS userSuppliedId: 20).
RAW_FIELD_MAX = 64
# No field a report is made of is longer than this; longer values are refused before any other check.
FIELD_MAX = 256
# Form and query fields of one request: 100 reports of a few fields each, with room to spare.
MAX_FIELDS = 1000
# Bracketed form keys: ``data[0][msg_id]`` is three parts; list indexes are ASCII digits.
KEY_MAX = 200
KEY_PARTS_MAX = 4
_KEY_PART = re.compile(r"[^\[\]]+")
_INDEX = re.compile(r"[0-9]{1,4}")


def form_pairs(text: str, what: str = "form") -> list[tuple[str, str]]:
    """``a=1&b=2`` to pairs, at most ``MAX_FIELDS`` of them."""
    try:
        return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:
        raise BadInput(f"{what} has more than {MAX_FIELDS} fields") from None


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
            pairs += form_pairs(self.text())
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
            return strictjson.loads(self.body)
        except strictjson.InvalidJson as exc:
            raise BadInput(f"body is {exc}") from None


def unflatten(flat: Mapping[str, str]) -> dict[str, Any]:
    """Bracketed form keys to nested values: ``data[msg_id]`` -> ``{"data": {"msg_id": ...}}``.

    A level whose keys are all list indexes (``data[0][msg_id]``) becomes a list, in index order.
    """
    root: dict[str, Any] = {}
    for key, value in flat.items():
        parts = _KEY_PART.findall(key) if "[" in key else [key]
        if len(key) > KEY_MAX or len(parts) > KEY_PARTS_MAX:
            raise BadInput(f"field name {shown(key)} is longer than {KEY_MAX} characters or {KEY_PARTS_MAX} levels")
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise BadInput(f"field {shown(key)} conflicts with field {shown(part)}")
            node = child
        node[parts[-1]] = value
    nested: dict[str, Any] = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    """Recursion bounded by ``KEY_PARTS_MAX``."""
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v) for k, v in node.items()}
    if converted and all(_INDEX.fullmatch(k) for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def required(fields: Mapping[str, Any], name: str, where: str = "") -> str:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadInput(f"missing field {name!r}{where}")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadInput(f"field {name!r}{where} must be a string")
    text = str(value).strip()
    if len(text) > FIELD_MAX:
        raise BadInput(f"field {name!r}{where} is longer than {FIELD_MAX} characters")
    return text


def optional(fields: Mapping[str, Any], name: str, where: str = "") -> str | None:
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return required(fields, name, where)


def message_id(value: str, name: str = "message id") -> str:
    if not MESSAGE_ID.fullmatch(value):
        raise BadInput(f"{name} {shown(value)} is not 1-128 characters of A-Z a-z 0-9 . _ @ : + -")
    return value


def raw_status(value: str) -> str:
    return raw_text(value, "status", RAW_STATUS_MAX)


def raw_text(value: str, name: str, limit: int = RAW_FIELD_MAX) -> str:
    """A raw provider field kept as it came: printable, and short enough to store in every history entry."""
    if len(value) > limit or not value.isprintable():
        raise BadInput(f"field {name!r} is not a printable text of at most {limit} characters")
    return value


# -- pulling -------------------------------------------------------------------------------------------

# A provider's Retry-After is honoured up to an hour; a larger value is a fault, not a plan.
RETRY_AFTER_MAX = 3600.0
_SECONDS = re.compile(r"[0-9]{1,20}")


class ProviderError(Exception):
    """A status call, or one entry of its answer, that gave nothing usable, and what the poller should do."""

    def __init__(
        self,
        kind: str,
        *,
        transient: bool = True,
        auth: bool = False,
        config: bool = False,
        pause: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(kind)
        self.kind = kind
        self.transient = transient and not auth
        self.auth = auth
        # Our settings are wrong (a redirect: the provider's URL has moved); counted for an alarm, retried later.
        self.config = config
        # The provider asks us to slow down (429): no further call to it in this run.
        self.pause = pause
        self.retry_after = retry_after


# What a status call answers for each message asked: its report, None when the provider has none yet, or a
# ProviderError when the provider's entry for it could not be read (a transient fault for that message alone).
PollResult = Report | None | ProviderError


class HttpResponse(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...


class HttpSession(Protocol):
    """What a provider's status call needs of an HTTP client: dlrwatch.pull's, which never follows a redirect,
    bounds each call by a total deadline and caps the size of an answer."""

    def get(self, url: str, **kwargs: Any) -> HttpResponse: ...
    def post(self, url: str, **kwargs: Any) -> HttpResponse: ...


@dataclass(frozen=True)
class PollConfig:
    base_url: str
    credentials: Mapping[str, str]
    zone: str


def check_http(response: HttpResponse) -> None:
    """Classify a provider's HTTP error answer; return quietly on success."""
    code = response.status_code
    if 300 <= code < 400:
        raise ProviderError(f"http_{code}", config=True)
    if code in (401, 403):
        raise ProviderError(f"http_{code}", auth=True)
    if code in (429, 503):
        kind = "http_429" if code == 429 else "http_5xx"
        raise ProviderError(kind, pause=code == 429, retry_after=retry_after(response.headers.get("Retry-After")))
    if code >= 500:
        raise ProviderError("http_5xx")
    if code >= 400:
        raise ProviderError(f"http_{code}", transient=False)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date), at most an hour.

    Absent, invalid, negative, zero or past values are None: the poller's own backoff applies.
    """
    text = (value or "").strip()
    if _SECONDS.fullmatch(text):
        seconds = float(int(text))
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)  # "-0000": HTTP dates are GMT
        seconds = moment.timestamp() - (time.time() if now is None else now)
    return min(seconds, RETRY_AFTER_MAX) if seconds > 0 else None
