"""seven.io (formerly sms77.io): statuses, push callbacks and webhooks, and their signature."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

from dlrwatch import strictjson
from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import InvalidTime, provider_time
from dlrwatch.errors import BadInput, Unauthorized
from dlrwatch.providers.base import (
    HttpSession,
    PollConfig,
    PollResult,
    ProviderError,
    PushRequest,
    check_http,
    message_id,
    optional,
    raw_status,
    raw_text,
    required,
    unflatten,
)

NAME = "sevenio"
CALLBACK = "sevenio"  # /callbacks/sevenio
# seven.io writes zone-less times; its examples match Berlin local time.
DEFAULT_ZONE = "Europe/Berlin"
ZONE_SETTING = "SEVENIO_TIMEZONE"
SIGNATURE_MAX_AGE = 300  # seconds, as seven.io's own verifier allows

STATUSES = {
    "ACCEPTED": Status.SENT,
    "TRANSMITTED": Status.SENT,
    "BUFFERED": Status.BUFFERED,
    "DELIVERED": Status.DELIVERED,
    "NOTDELIVERED": Status.FAILED,
    "EXPIRED": Status.EXPIRED,
    "REJECTED": Status.REJECTED,
    "FAILED": Status.FAILED,
    # seven.io calls UNKNOWN final, yet later reports do come: keep polling.
    "UNKNOWN": Status.UNKNOWN,
}


def normalize(raw: str) -> Status:
    return STATUSES.get(raw.strip().upper(), Status.UNKNOWN)


def report(fields: dict[str, Any], source: Source, tz: str, where: str = "") -> Report:
    """One report from ``msg_id``, ``status`` and an optional ``timestamp`` (or ``status_time``)."""
    msg_id = message_id(required(fields, "msg_id", where), "msg_id")
    raw = raw_status(required(fields, "status", where))
    when = optional(fields, "timestamp", where) or optional(fields, "status_time", where)
    try:
        at = provider_time(when, tz) if when else None
    except InvalidTime as exc:
        raise BadInput(f"field 'timestamp'{where}: {exc}") from None
    extra = {"foreign_id": raw_text(fid, "foreign_id")} if (fid := optional(fields, "foreign_id", where)) else {}
    return Report(
        provider=NAME,
        message_id=msg_id,
        status=normalize(raw),
        provider_status=raw,
        provider_time=at,
        source=source,
        extra=extra,
    )


def parse_callback(request: PushRequest, tz: str = DEFAULT_ZONE) -> list[Report]:
    """Every push form: the legacy GET callback, webhooks as POST form, JSON or GET, and lists of either.

    Events other than ``dlr`` are acknowledged and ignored: they can never carry a delivery report.
    """
    payload = request.json() if request.body and request.is_json() else unflatten(request.fields())
    envelopes = payload if isinstance(payload, list) else [payload]
    if not envelopes or envelopes == [{}]:
        raise BadInput("no report in the request")
    reports: list[Report] = []
    for i, envelope in enumerate(envelopes):
        where = f" in item {i}" if isinstance(payload, list) else ""
        if not isinstance(envelope, dict):
            raise BadInput(f"item {i} is not an object")
        reports += _reports(envelope, tz, where)
    return reports


def _reports(envelope: dict[str, Any], tz: str, where: str) -> list[Report]:
    if envelope.get("webhook_event", "dlr") != "dlr":
        return []
    if "data" not in envelope:
        if "webhook_event" in envelope and "msg_id" not in envelope:
            raise BadInput(f"missing field 'data'{where}")
        return [report(envelope, Source.PUSH, tz, where)]  # the legacy callback, or a flattened webhook
    data = envelope["data"]
    if isinstance(data, str) and data.lstrip()[:1] in ("{", "["):
        data = _json_field(data, where)  # a form field carrying the JSON object
    if not data:
        raise BadInput(f"field 'data'{where} is empty")
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise BadInput(f"field 'data'{where} must be an object or a list of objects")
    return [
        report(item, Source.PUSH, tz, f"{where} data[{j}]" if isinstance(data, list) else where)
        for j, item in enumerate(items)
    ]


def _json_field(text: str, where: str) -> Any:
    try:
        return strictjson.loads(text)
    except strictjson.InvalidJson as exc:
        raise BadInput(f"field 'data'{where} is {exc}") from None


_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9]{8,128}")
_SIGNATURE = re.compile(r"[0-9A-Fa-f]{64}")


def verify_signature(request: PushRequest, key: str, now: float, max_age: int = SIGNATURE_MAX_AGE) -> str:
    """Check ``X-Signature`` over timestamp, nonce, method, URL and the body's MD5; answer the nonce.

    seven.io documents the complete URL while its own verifier signs path and query only: both are accepted.
    The caller must still reject a nonce it has seen before.
    """
    signature = request.header("x-signature")
    timestamp = request.header("x-timestamp")
    nonce = request.header("x-nonce")
    if not (signature and timestamp and nonce):
        raise Unauthorized("missing X-Signature, X-Timestamp or X-Nonce", missing=True)
    if not _TIMESTAMP.fullmatch(timestamp) or abs(now - int(timestamp)) > max_age:
        raise Unauthorized("stale or invalid X-Timestamp", missing=False)
    if not _NONCE.fullmatch(nonce):
        raise Unauthorized("invalid X-Nonce", missing=False)
    if not _SIGNATURE.fullmatch(signature.strip()):
        raise Unauthorized("signature does not match", missing=False)
    body_md5 = hashlib.md5(request.body, usedforsecurity=False).hexdigest()
    path_and_query = request.url.split("://", 1)[-1].partition("/")[1:]
    candidates = {request.url, "".join(path_and_query)}
    given = signature.strip().lower().encode()
    ok = False
    for url in candidates:
        expected = sign(key, timestamp, nonce, request.method, url, body_md5).encode()
        ok |= hmac.compare_digest(expected, given)
    if not ok:
        raise Unauthorized("signature does not match", missing=False)
    return nonce


def sign(key: str, timestamp: str, nonce: str, method: str, url: str, body_md5: str) -> str:
    message = "\n".join((timestamp, nonce, method.upper(), url, body_md5))
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


# -- pulling: GET /status?msg_id=ID1,ID2,... -----------------------------------------------------------

URL_SETTING = "SEVENIO_API_URL"
DEFAULT_URL = "https://gateway.seven.io/api"
CREDENTIALS = ("SEVENIO_API_KEY",)
IDS_PER_CALL = 50  # seven.io documents several ids a call and no limit; 50 keeps URLs short
POLL_CONCURRENCY = 2  # no published rate limit: poll gently
POLL_CONCURRENCY_MAX = 16  # the most the POLL_CONCURRENCY setting may ask for: still a handful of connections
# The legacy API's numeric error answers that mean the key is wrong (unverified; see docs/decisions.md).
_AUTH_CODES = {"900", "902", "903"}
_RAW = re.compile(r"[A-Z_]{2,20}")


def poll_groups(message_ids: list[str]) -> list[list[str]]:
    return [message_ids[i : i + IDS_PER_CALL] for i in range(0, len(message_ids), IDS_PER_CALL)]


def poll(session: HttpSession, config: PollConfig, message_ids: list[str]) -> dict[str, PollResult]:
    response = session.get(
        f"{config.base_url.rstrip('/')}/status",
        params={"msg_id": ",".join(message_ids)},
        headers={"X-Api-Key": config.credentials["SEVENIO_API_KEY"], "Accept": "application/json"},
    )
    check_http(response)
    return parse_status_answer(response.text, message_ids, config.zone)


def parse_status_answer(text: str, message_ids: list[str], tz: str = DEFAULT_ZONE) -> dict[str, PollResult]:
    """The JSON array ``[{"id", "status", "status_time"}]`` or the legacy ``STATUS\\n<time>`` for one id.

    An id whose entry has no status (null or empty) has no report yet, and so has an id the answer leaves out
    (an empty body too: the provider notes say "no status (null / empty)"). An entry that cannot be read is a
    transient fault for its id; an entry whose id cannot be read makes every id without a readable entry a
    transient fault, since it may have been theirs. An answer that cannot be read at all raises ProviderError.
    """
    found: dict[str, PollResult] = dict.fromkeys(message_ids)
    body = text.strip()
    if body[:1] in ("[", "{"):
        try:
            entries = strictjson.loads(body)
        except strictjson.InvalidJson:
            raise ProviderError("garbage") from None
        read: set[str] = set()
        anonymous = False
        for entry in entries if isinstance(entries, list) else [entries]:
            mid = _entry_id(entry)
            if mid is None:
                anonymous = True
            elif mid in found and isinstance(entry, dict):
                found[mid] = _entry_report(mid, entry, tz)
                read.add(mid)
        for mid in message_ids:
            if anonymous and mid not in read:
                found[mid] = ProviderError("malformed_entry")
        return found
    lines = [line.strip() for line in body.splitlines()]
    if not body:
        return found
    if lines[0] in _AUTH_CODES:
        raise ProviderError("sevenio_auth", auth=True)
    if len(message_ids) != 1 or not _RAW.fullmatch(lines[0]):
        raise ProviderError("garbage")
    fields = {"msg_id": message_ids[0], "status": lines[0], "timestamp": lines[1] if len(lines) > 1 else None}
    try:
        found[message_ids[0]] = report(fields, Source.POLL, tz)
    except BadInput:
        raise ProviderError("garbage") from None
    return found


def _entry_id(entry: Any) -> str | None:
    mid = entry.get("id") if isinstance(entry, dict) else None
    return str(mid) if isinstance(mid, str | int) and not isinstance(mid, bool) else None


def _entry_report(mid: str, entry: dict[str, Any], tz: str) -> PollResult:
    if entry.get("status") is None or entry.get("status") == "":
        return None  # no report yet
    fields = {"msg_id": mid, "status": entry["status"], "timestamp": entry.get("status_time")}
    try:
        return report(fields, Source.POLL, tz)
    except BadInput:
        return ProviderError("malformed_entry")
