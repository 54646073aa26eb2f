"""BulkSMS legacy EAPI: numeric status codes and the HTTP push. A message is ``{batch_id}:{msisdn}``."""

from __future__ import annotations

import re
from collections.abc import Mapping

from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import InvalidTime, from_short
from dlrwatch.errors import BadInput
from dlrwatch.providers.base import optional, required

NAME = "bulksms-eapi"
# The EAPI's yy-MM-dd times carry no zone; South African time (UTC+2, no daylight saving) is assumed.
DEFAULT_ZONE = "Africa/Johannesburg"

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

_BATCH = re.compile(r"^[0-9A-Za-z]{1,40}$")
_MSISDN = re.compile(r"^[0-9]{5,20}$")


def normalize(raw: str) -> Status:
    return STATUSES.get(raw.strip(), Status.UNKNOWN)


def msisdn(value: str) -> str:
    """The recipient as the EAPI writes it: digits only, no ``+``, no spaces."""
    digits = value.strip().lstrip("+").replace(" ", "")
    if not _MSISDN.match(digits):
        raise BadInput(f"msisdn {value!r} is not 5-20 digits")
    return digits


def message_id(batch_id: str, recipient: str) -> str:
    if not _BATCH.match(batch_id):
        raise BadInput(f"batch_id {batch_id!r} is not 1-40 letters or digits")
    return f"{batch_id}:{msisdn(recipient)}"


def canonical_id(value: str) -> str:
    """A ``"{batch_id}:{msisdn}"`` id in the form reports use; registrations go through here too."""
    batch_id, sep, recipient = value.partition(":")
    if not sep:
        raise BadInput(f"bulksms-eapi message id {value!r} is not of the form '{{batch_id}}:{{msisdn}}'")
    return message_id(batch_id, recipient)


def status_code(value: str) -> str:
    if not value.isdigit() or len(value) > 4:
        raise BadInput(f"status {value!r} is not a numeric EAPI status code")
    return str(int(value))


def parse_push(fields: Mapping[str, str], source: Source = Source.PUSH, tz: str = DEFAULT_ZONE) -> Report:
    """The legacy HTTP push: ``msisdn``, ``batch_id``, ``status``, optional ``completed_time``; others ignored."""
    raw = status_code(required(fields, "status"))
    completed = optional(fields, "completed_time")
    try:
        at = from_short(completed, tz) if completed else None
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
