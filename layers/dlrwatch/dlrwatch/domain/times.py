"""Provider times, parsed to aware UTC datetimes, and the one textual form we store."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from dlrwatch.domain.text import shown

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


class InvalidTime(ValueError):
    """A provider or client time that cannot be read."""


# Anything outside these years is a placeholder or a fault, never a real report time.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# Matched whole (``fullmatch``) and in ASCII digits only: ``\d`` would take Arabic-Indic digits, and float()
# reads them.
_UNIX = re.compile(r"[0-9]{9,11}(\.[0-9]{1,9})?")
# seven.io: "2020-01-09 15:41:30.656", "2021-08-24 08:08:00.000000"; the fraction is optional.
_LOCAL = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?")
# BulkSMS EAPI: "yy-MM-dd HH:mm:ss".
_SHORT = re.compile(r"([0-9]{2})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})")
# Longer than any time a provider writes; longer texts are refused before any parsing.
TEXT_MAX = 40


@cache
def zone(name: str) -> ZoneInfo:
    # Imported on first use: zoneinfo brings sysconfig, a few milliseconds of every cold start that reads no zone.
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def from_unix(text: str) -> datetime:
    if not _UNIX.fullmatch(text):
        raise InvalidTime(f"not a Unix timestamp: {shown(text)}")
    return _in_range(datetime.fromtimestamp(float(text), tz=UTC), text)


def from_local(text: str, tz: str) -> datetime:
    """A zone-less ``YYYY-MM-DD HH:MM:SS[.ffffff]`` read in the provider's zone ``tz``."""
    m = _LOCAL.fullmatch(text)
    if not m:
        raise InvalidTime(f"not a time of the form YYYY-MM-DD HH:MM:SS[.ffffff]: {shown(text)}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0"))
    return _localize(tz, text, (year, month, day, hour, minute, second, micro))


def from_short(text: str, tz: str) -> datetime:
    """BulkSMS's ``yy-MM-dd HH:mm:ss`` read in the zone ``tz`` (years 2000-2099)."""
    m = _SHORT.fullmatch(text)
    if not m:
        raise InvalidTime(f"not a time of the form yy-MM-dd HH:mm:ss: {shown(text)}")
    yy, month, day, hour, minute, second = (int(g) for g in m.groups())
    return _localize(tz, text, (2000 + yy, month, day, hour, minute, second, 0))


def from_iso(text: str) -> datetime:
    """ISO 8601 with a zone (``Z`` or an offset); a zone-less time is refused, never guessed."""
    if len(text) > TEXT_MAX:
        raise InvalidTime(f"not an ISO 8601 time: {shown(text)}")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidTime(f"not an ISO 8601 time: {shown(text)}") from None
    if parsed.tzinfo is None:
        raise InvalidTime(f"ISO 8601 time without a zone: {shown(text)}")
    try:
        return _in_range(parsed.astimezone(UTC), text)
    except OverflowError:
        raise InvalidTime(f"time out of range: {shown(text)}") from None


def provider_time(text: str, tz: str) -> datetime:
    """Any provider time form: Unix seconds, ISO 8601 with a zone, or a zone-less local time in ``tz``."""
    text = text.strip()
    if len(text) > TEXT_MAX:
        raise InvalidTime(f"not a time: {shown(text)}")
    if _UNIX.fullmatch(text):
        return from_unix(text)
    if _LOCAL.fullmatch(text):
        return from_local(text, tz)
    if _SHORT.fullmatch(text):
        return from_short(text, tz)
    return from_iso(text)


def _localize(tz: str, text: str, fields: tuple[int, int, int, int, int, int, int]) -> datetime:
    year, month, day, hour, minute, second, micro = fields
    try:
        local = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone(tz))
        return _in_range(local.astimezone(UTC), text)
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, InvalidTime):
            raise
        raise InvalidTime(f"not a valid date: {shown(text)}") from None


def _in_range(moment: datetime, text: str) -> datetime:
    if not EARLIEST <= moment < LATEST:
        raise InvalidTime(f"time out of range (years 2000-2099): {shown(text)}")
    return moment


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """The stored form: UTC, millisecond precision, fixed width, so strings sort as times do."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
