"""Times as the providers write them: zone-less local times, in the provider's own zone, for pushes and stand-ins."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")  # seven.io's zone-less times
SAST = ZoneInfo("Africa/Johannesburg")  # BulkSMS EAPI's


def berlin(moment: datetime) -> str:
    """A time as seven.io writes it: Berlin local time, no zone, to the millisecond."""
    return moment.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def sast(moment: datetime) -> str:
    """A time as the BulkSMS EAPI writes it: South African local time, no zone."""
    return moment.astimezone(SAST).strftime("%y-%m-%d %H:%M:%S")
