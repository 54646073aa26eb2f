"""The normalized delivery statuses: the public contract of the table and its stream."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    BUFFERED = "buffered"
    UNKNOWN = "unknown"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        """Whether a provider reporting this status ends the message's journey.

        ``unknown`` is not final when a provider reports it; it becomes final only through our own give-up
        after the last poll (see ``Report.give_up``).
        """
        return self in _FINAL

    @property
    def rank(self) -> int:
        """Order between two reports of the same tier and provider time (docs/decisions.md explains it)."""
        return _RANK[self]


_FINAL = frozenset({Status.DELIVERED, Status.FAILED, Status.EXPIRED, Status.REJECTED})

# Non-final: how far along the journey the status proves the message got. Final: which of two provider
# finals carrying the same time we believe; a delivery receipt comes from the handset, so it wins.
_RANK = {
    Status.PENDING: 0,
    Status.UNKNOWN: 1,
    Status.SENT: 2,
    Status.BUFFERED: 3,
    Status.REJECTED: 4,
    Status.FAILED: 5,
    Status.EXPIRED: 6,
    Status.DELIVERED: 7,
}
