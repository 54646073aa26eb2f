"""BulkSMS JSON API: Message statuses and webhooks; the ``/callbacks/bulksms`` route also takes EAPI pushes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from dlrwatch import strictjson
from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import InvalidTime, from_iso
from dlrwatch.errors import BadInput
from dlrwatch.providers import bulksms_eapi
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
)

NAME = "bulksms"
CALLBACK = "bulksms"  # /callbacks/bulksms: JSON webhooks and EAPI pushes
# JSON API times carry their zone; the zone is that of the EAPI pushes this route also takes.
DEFAULT_ZONE = bulksms_eapi.DEFAULT_ZONE
ZONE_SETTING = bulksms_eapi.ZONE_SETTING

STATUSES = {
    "ACCEPTED": Status.PENDING,
    "SCHEDULED": Status.PENDING,
    "SENT": Status.SENT,
    "DELIVERED": Status.DELIVERED,
    "UNKNOWN": Status.UNKNOWN,
    "FAILED": Status.FAILED,
    "FAILED.EXPIRED": Status.EXPIRED,
    "FAILED.HANDSET_ERROR": Status.FAILED,
    "FAILED.BLOCKED": Status.REJECTED,
    "FAILED.NOT_SENT": Status.FAILED,
}


def normalize(raw: str) -> Status:
    """``TYPE`` or ``TYPE.SUBTYPE``; an unlisted FAILED subtype is still a failure."""
    raw = raw.strip().upper()
    if raw in STATUSES:
        return STATUSES[raw]
    return Status.FAILED if raw.startswith("FAILED.") else Status.UNKNOWN


def message(item: Any, source: Source, where: str = "") -> Report | None:
    """A JSON API Message to a report; None for a received (inbound) message, which has no delivery."""
    if not isinstance(item, dict):
        raise BadInput(f"message{where} is not an object")
    if str(item.get("type", "SENT")).upper() == "RECEIVED":
        return None
    status = item.get("status")
    if not isinstance(status, dict):
        raise BadInput(f"field 'status'{where} is missing or not an object")
    kind = required(status, "type", f" of status{where}").upper()
    subtype = optional(status, "subtype", f" of status{where}")
    raw = raw_status(f"{kind}.{subtype.upper()}" if subtype else kind)
    # The documented Message carries no time of its status; accept one should a hook ever send it.
    when = optional(status, "date", f" of status{where}")
    try:
        at = from_iso(when) if when else None
    except InvalidTime as exc:
        raise BadInput(f"field 'status.date'{where}: {exc}") from None
    uid = optional(item, "userSuppliedId", where)
    extra = {"user_supplied_id": raw_text(uid, "userSuppliedId")} if uid else {}
    return Report(NAME, message_id(required(item, "id", where), "id"), normalize(raw), raw, at, source, extra)


def parse_callback(request: PushRequest, tz: str = DEFAULT_ZONE) -> list[Report]:
    """A JSON webhook (an array of Messages; ``[]`` is the URL probe) or an EAPI push (fields, no JSON)."""
    if request.body and request.is_json():
        payload = request.json()
        if not isinstance(payload, list):
            raise BadInput("a BulkSMS webhook body must be a JSON array of messages")
        reports = [message(item, Source.PUSH, f" in item {i}") for i, item in enumerate(payload)]
        return [r for r in reports if r is not None]
    fields = request.fields()
    if not fields:
        raise BadInput("no report in the request: expected a JSON array or EAPI fields msisdn, batch_id, status")
    return [bulksms_eapi.parse_push(fields, Source.PUSH, tz)]


# -- pulling: GET /messages/{id}, one call per message ---------------------------------------------------

URL_SETTING = "BULKSMS_API_URL"
DEFAULT_URL = "https://api.bulksms.com/v1"
CREDENTIALS = ("BULKSMS_TOKEN_ID", "BULKSMS_TOKEN_SECRET")
POLL_CONCURRENCY = 4
POLL_CONCURRENCY_MAX = 16  # the most the POLL_CONCURRENCY setting may ask for: still a handful of connections


def poll_groups(message_ids: list[str]) -> list[list[str]]:
    return [[mid] for mid in message_ids]


def poll(session: HttpSession, config: PollConfig, message_ids: list[str]) -> dict[str, PollResult]:
    (mid,) = message_ids
    response = session.get(
        f"{config.base_url.rstrip('/')}/messages/{quote(mid, safe='')}",
        auth=(config.credentials["BULKSMS_TOKEN_ID"], config.credentials["BULKSMS_TOKEN_SECRET"]),
        headers={"Accept": "application/json"},
    )
    if response.status_code == 404:
        return {mid: None}  # BulkSMS does not know it (yet)
    check_http(response)
    try:
        found = message(strictjson.loads(response.text), Source.POLL)
    except (strictjson.InvalidJson, BadInput):
        raise ProviderError("garbage") from None
    if found is not None and found.message_id != mid:
        raise ProviderError("garbage")
    return {mid: found}
