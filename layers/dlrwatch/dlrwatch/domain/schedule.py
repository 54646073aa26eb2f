"""The backoff schedule: poll offsets from ``sent_at``."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_SCHEDULE = "5m,30m,2h,5h,1d,2d,5d"

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_OFFSET = re.compile(r"([0-9]{1,9})([smhd])")


@dataclass(frozen=True)
class Schedule:
    offsets: tuple[timedelta, ...]

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """``"5m,30m,2h"``: strictly increasing offsets in seconds, minutes, hours or days."""
        offsets = []
        for part in text.split(","):
            m = _OFFSET.fullmatch(part.strip())
            if not m:
                raise ValueError(f"poll schedule entry {part.strip()!r} is not a number followed by s, m, h or d")
            try:
                offsets.append(timedelta(**{_UNITS[m.group(2)]: int(m.group(1))}))
            except OverflowError:
                raise ValueError(f"poll schedule entry {part.strip()!r} is too large") from None
        if any(b <= a for a, b in itertools.pairwise(offsets)) or offsets[0] <= timedelta(0):
            raise ValueError(f"poll schedule {text!r} must be positive and strictly increasing")
        return cls(tuple(offsets))

    def poll_at(self, sent_at: datetime, attempt: int) -> datetime | None:
        """When poll number ``attempt`` (0-based) is due, or None once the schedule has run out."""
        if attempt >= len(self.offsets):
            return None
        return sent_at + self.offsets[attempt]

    def give_up_at(self, sent_at: datetime) -> datetime:
        """The moment of the last poll: the time a give-up report carries, whoever writes it and when."""
        return sent_at + self.offsets[-1]

    def next_poll(self, sent_at: datetime, now: datetime) -> tuple[int, datetime] | None:
        """The first poll of the schedule still ahead of ``now``, or None once the schedule has run out.

        Offsets already past are skipped: polling several times in a row for one late message helps nobody.
        """
        for attempt, offset in enumerate(self.offsets):
            if sent_at + offset > now:
                return attempt, sent_at + offset
        return None


# -- retries after a transient provider fault ----------------------------------------------------------

RETRY_MIN = timedelta(minutes=1)
RETRY_JITTER = timedelta(minutes=2)
# No provider answer ever moves a message's next poll further than this (plus jitter).
RETRY_MAX = timedelta(hours=1)
# A message still failing this long after its last scheduled poll is given up, whatever the provider says.
GIVE_UP_GRACE = RETRY_MAX


def retry_delay(scheduled_at: datetime, due_at: datetime, retry_after: float | None, jitter: float) -> timedelta:
    """How long to wait before asking again after a transient fault.

    The poll was scheduled for ``scheduled_at`` and has been put off to ``due_at`` by earlier faults; waiting
    as long again doubles the delay each time (1-3 minutes the first time, at most an hour), with no retry
    count to store. A provider's ``Retry-After`` (seconds) is a floor, capped like the rest. ``jitter`` is a
    draw from [0, 1), so messages failed together are not retried together.
    """
    backoff = min(max(RETRY_MIN, due_at - scheduled_at), RETRY_MAX)
    asked = min(timedelta(seconds=retry_after or 0), RETRY_MAX)
    return max(backoff, asked) + RETRY_JITTER * jitter
