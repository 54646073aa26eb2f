"""BulkSMS legacy EAPI: numeric status codes and the HTTP push. A message is ``{batch_id}:{msisdn}``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.text import shown
from dlrwatch.domain.times import InvalidTime, provider_time
from dlrwatch.errors import BadInput
from dlrwatch.providers.base import (
    HttpSession,
    PollConfig,
    PollResult,
    ProviderError,
    check_http,
    optional,
    required,
)

NAME = "bulksms-eapi"
# The EAPI's yy-MM-dd times carry no zone; South African time (UTC+2, no daylight saving) is assumed.
DEFAULT_ZONE = "Africa/Johannesburg"
ZONE_SETTING = "BULKSMS_TIMEZONE"

_CODES: dict[Status, tuple[int, ...]] = {
    Status.PENDING: (0,),
    Status.SENT: (10, 12, 60, 61, 62),
    Status.DELIVERED: (11,),
    Status.FAILED: (22, 23, 24, 25, 26, 27, 28, 29, 50, 51, 52, 54, 57),
    Status.REJECTED: (31, 32, 33, 55, 56),
    Status.BUFFERED: (40, 63, 64),
    Status.EXPIRED: (53,),
    Status.UNKNOWN: (70,),
}
STATUSES = {str(code): status for status, codes in _CODES.items() for code in codes}

# Matched whole (``fullmatch``).
_CODE = re.compile(r"[0-9]{1,4}")
_BATCH = re.compile(r"[0-9A-Za-z]{1,40}")
_MSISDN = re.compile(r"[0-9]{5,20}")


def normalize(raw: str) -> Status:
    return STATUSES.get(raw.strip(), Status.UNKNOWN)


def msisdn(value: str) -> str:
    """The recipient as the EAPI writes it: digits only, no ``+``, no spaces (other whitespace is refused)."""
    digits = value.strip(" ").lstrip("+").replace(" ", "")
    if not _MSISDN.fullmatch(digits):
        # Not echoed: a near-miss is still somebody's phone number, and refusals are logged.
        raise BadInput(f"msisdn is not 5-20 digits ({len(value)} characters given)")
    return digits


def message_id(batch_id: str, recipient: str) -> str:
    if not _BATCH.fullmatch(batch_id):
        raise BadInput(f"batch_id {shown(batch_id)} is not 1-40 letters or digits")
    return f"{batch_id}:{msisdn(recipient)}"


def canonical_id(value: str) -> str:
    """A ``"{batch_id}:{msisdn}"`` id in the form reports use; registrations go through here too."""
    batch_id, sep, recipient = value.partition(":")
    if not sep:
        raise BadInput("bulksms-eapi message id is not of the form '{batch_id}:{msisdn}'")
    return message_id(batch_id, recipient)


def status_code(value: str) -> str:
    if not _CODE.fullmatch(value):
        raise BadInput(f"status {shown(value)} is not a numeric EAPI status code")
    return str(int(value))


def parse_push(fields: Mapping[str, str], source: Source = Source.PUSH, tz: str = DEFAULT_ZONE) -> Report:
    """The legacy HTTP push: ``msisdn``, ``batch_id``, ``status``, optional ``completed_time``; others ignored."""
    raw = status_code(required(fields, "status"))
    completed = optional(fields, "completed_time")
    try:
        at = provider_time(completed, tz) if completed else None
    except InvalidTime as exc:
        raise BadInput(f"field 'completed_time': {exc}") from None
    return Report(
        provider=NAME,
        message_id=message_id(required(fields, "batch_id"), required(fields, "msisdn")),
        status=normalize(raw),
        provider_status=raw,
        provider_time=at,
        source=source,
    )


# -- pulling: get_report, one call per batch -----------------------------------------------------------

URL_SETTING = "BULKSMS_EAPI_URL"
DEFAULT_URL = "https://bulksms.vsms.net/eapi"
CREDENTIALS = ("BULKSMS_USERNAME", "BULKSMS_PASSWORD")
POLL_CONCURRENCY = 1  # BulkSMS asks for one connection at a time
POLL_CONCURRENCY_MAX = 1  # and no setting changes that
_ERRORS = {
    "22": {},  # internal error: transient
    "23": {"auth": True},
    "24": {"transient": False},
}


def batch_of(message_id: str) -> str:
    return message_id.partition(":")[0]


def poll_groups(message_ids: list[str]) -> list[list[str]]:
    """One group per batch: a single get_report answers for every recipient of it."""
    batches: dict[str, list[str]] = {}
    for mid in message_ids:
        batches.setdefault(batch_of(mid), []).append(mid)
    return list(batches.values())


def poll(session: HttpSession, config: PollConfig, message_ids: list[str]) -> dict[str, PollResult]:
    # POST keeps the password out of URLs and their logs.
    response = session.post(
        f"{config.base_url.rstrip('/')}/status_reports/get_report/2/2.0",
        data={
            "username": config.credentials["BULKSMS_USERNAME"],
            "password": config.credentials["BULKSMS_PASSWORD"],
            "batch_id": batch_of(message_ids[0]),
            "optional_fields": "completed_time",
        },
    )
    check_http(response)
    rows, anonymous = parse_report(response.text, batch_of(message_ids[0]), config.zone)
    # A row whose recipient cannot be read may have been that of any recipient without a readable row.
    return {mid: rows.get(mid, ProviderError("malformed_entry") if anonymous else None) for mid in message_ids}


def parse_report(text: str, batch_id: str, tz: str = DEFAULT_ZONE) -> tuple[dict[str, PollResult], bool]:
    """``0|Returns to follow`` (or ``Results``), then ``msisdn|status_code[|completed_time]`` rows.

    Answers the rows by message id, and whether a row's recipient could not be read. Blank lines are skipped;
    a row with a readable recipient but an unreadable status or time is a transient fault for that message.
    An error line ``code|text`` raises: 22 is transient, 23 an authentication failure, 24 a request BulkSMS
    will never answer.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ProviderError("garbage")
    code, _, _ = lines[0].partition("|")
    if code != "0":
        raise ProviderError(f"eapi_{code}", **_ERRORS[code]) if code in _ERRORS else ProviderError("garbage")
    found: dict[str, PollResult] = {}
    anonymous = False
    for row in lines[1:]:
        fields = row.split("|")
        try:
            mid = message_id(batch_id, fields[0])
        except BadInput:
            anonymous = True
            continue
        push = {"msisdn": fields[0], "batch_id": batch_id, "status": fields[1] if len(fields) > 1 else ""}
        if len(fields) > 2 and fields[2]:
            push["completed_time"] = fields[2]
        try:
            report = parse_push(push, Source.POLL, tz)
        except BadInput:
            found.setdefault(mid, ProviderError("malformed_entry"))
            continue
        kept = found.get(mid)
        if not isinstance(kept, Report) or kept.key < report.key:  # the same recipient twice in one batch
            found[mid] = report
    return found, anonymous
