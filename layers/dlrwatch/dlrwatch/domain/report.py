"""A status report, pushed or polled, and the precedence key that decides which report a message keeps.

The key orders by tier, then provider time, then status rank, then the raw provider status:

- tier 0: a non-final status; tier 1: our own give-up after the last poll; tier 2: a provider's final status;
- a report without a provider time sorts before every report of its tier that has one;
- the raw status only breaks ties between different raw statuses that normalize alike, so the order is total
  and any permutation of the same reports ends in the same state.

The key is a fixed-width string, so DynamoDB's ``<`` on strings compares it exactly as ``Report.key`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from dlrwatch.domain.status import Status
from dlrwatch.domain.times import epoch_ms, iso


class Source(StrEnum):
    PUSH = "push"
    POLL = "poll"
    GIVE_UP = "giveup"


class Tier(IntEnum):
    NON_FINAL = 0
    GIVE_UP = 1
    PROVIDER_FINAL = 2


@dataclass(frozen=True)
class Report:
    provider: str
    message_id: str
    status: Status
    provider_status: str | None
    provider_time: datetime | None
    source: Source = Source.PUSH
    # Raw fields worth keeping beside the normalized ones (kept in the history entry); never part of the key.
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def give_up(cls, provider: str, message_id: str, at: datetime) -> Report:
        """Our own final word after the last poll: ``unknown``, final, beaten by any later provider final."""
        return cls(provider, message_id, Status.UNKNOWN, None, at, Source.GIVE_UP)

    @property
    def tier(self) -> Tier:
        if self.source is Source.GIVE_UP:
            return Tier.GIVE_UP
        return Tier.PROVIDER_FINAL if self.status.final else Tier.NON_FINAL

    @property
    def final(self) -> bool:
        return self.tier is not Tier.NON_FINAL

    @property
    def status_at(self) -> str | None:
        return iso(self.provider_time) if self.provider_time else None

    @property
    def key(self) -> str:
        millis = epoch_ms(self.provider_time) if self.provider_time else 0
        return f"{self.tier:d}|{millis:014d}|{self.status.rank:02d}|{self.provider_status or ''}"

    def history_entry(self, received_at: datetime) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "status": str(self.status),
            "provider_status": self.provider_status,
            "status_at": self.status_at,
            "source": str(self.source),
            "received_at": iso(received_at),
        }
        entry.update(self.extra)
        return entry


# The key a registration writes when no report has arrived yet: below every real report.
PENDING_KEY = f"{Tier.NON_FINAL:d}|{0:014d}|{Status.PENDING.rank:02d}|"


_BY_RANK = {status.rank: status for status in Status}


def key_status(key: str) -> tuple[Tier, Status]:
    """The tier and normalized status a stored precedence key was made from (ranks are unique per status)."""
    tier, _, rank, _ = key.split("|", 3)
    return Tier(int(tier)), _BY_RANK[int(rank)]


def supersedes(candidate: str, stored: str | None) -> bool:
    """Whether a report with key ``candidate`` replaces the stored one (the store's write condition)."""
    return stored is None or stored < candidate
