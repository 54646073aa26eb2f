"""The rules of a status update (SPEC.md), checked on the precedence key through an in-memory store.

``fold`` does what the table's conditional write does: a report is applied when its key supersedes the stored
one, and every applied report joins the history.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from dlrwatch.domain.report import PENDING_KEY, Report, Source, supersedes
from dlrwatch.providers import bulksms_eapi, sevenio

SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
GIVE_UP_AT = SENT_AT + timedelta(days=5)


def at(minutes: float) -> datetime:
    return SENT_AT + timedelta(minutes=minutes)


def seven(raw: str, when: datetime | None, source: Source = Source.PUSH) -> Report:
    return Report("sevenio", "77149843739", sevenio.normalize(raw), raw, when, source)


def give_up(when: datetime = GIVE_UP_AT) -> Report:
    return Report.give_up("sevenio", "77149843739", when)


@dataclass
class Item:
    key: str | None = None
    current: Report | None = None
    history: list[Report] = field(default_factory=list)

    @property
    def state(self) -> tuple[str, bool, str | None, str | None]:
        assert self.current is not None
        r = self.current
        return (str(r.status), r.final, r.provider_status, r.status_at)


def fold(reports: list[Report] | tuple[Report, ...], item: Item | None = None) -> Item:
    item = item or Item()
    for report in reports:
        if supersedes(report.key, item.key):
            item.key, item.current = report.key, report
            item.history.append(report)
    return item


def test_late_buffered_never_overwrites_delivered() -> None:
    item = fold([seven("DELIVERED", at(5)), seven("BUFFERED", at(9)), seven("BUFFERED", None, Source.POLL)])
    assert item.state == ("delivered", True, "DELIVERED", "2026-11-22T10:05:00.000Z")
    assert len(item.history) == 1


@pytest.mark.parametrize("final_raw", ["DELIVERED", "NOTDELIVERED", "EXPIRED", "REJECTED", "FAILED"])
@pytest.mark.parametrize("late_raw", ["ACCEPTED", "TRANSMITTED", "BUFFERED", "UNKNOWN", "WEIRD"])
@pytest.mark.parametrize("late_time", [at(60), None], ids=["later-time", "no-time"])
def test_nothing_moves_a_final_status_back_to_a_non_final_one(
    final_raw: str, late_raw: str, late_time: datetime | None
) -> None:
    final = seven(final_raw, at(5))
    assert fold([final, seven(late_raw, late_time)]).current == final


def test_real_final_beats_our_give_up() -> None:
    # the delivery happened on day one, its report only arrives after we gave up
    item = fold([seven("TRANSMITTED", at(1)), give_up(), seven("DELIVERED", at(3))])
    assert item.state == ("delivered", True, "DELIVERED", "2026-11-22T10:03:00.000Z")


def test_real_final_without_a_time_still_beats_our_give_up() -> None:
    item = fold([give_up(), seven("EXPIRED", None, Source.POLL)])
    assert item.state == ("expired", True, "EXPIRED", None)


def test_give_up_never_beats_a_provider_final() -> None:
    item = fold([seven("REJECTED", at(1)), give_up(), give_up(GIVE_UP_AT + timedelta(days=30))])
    assert item.state == ("rejected", True, "REJECTED", "2026-11-22T10:01:00.000Z")


def test_give_up_makes_a_pending_message_final_unknown_at_the_last_poll() -> None:
    item = fold([seven("BUFFERED", at(1)), seven("UNKNOWN", at(200)), give_up()])
    assert item.state == ("unknown", True, None, "2026-11-27T10:00:00.000Z")


def test_give_up_beats_a_non_final_reported_after_it() -> None:
    item = fold([give_up(), seven("BUFFERED", GIVE_UP_AT + timedelta(hours=1))])
    assert item.state == ("unknown", True, None, "2026-11-27T10:00:00.000Z")


@pytest.mark.parametrize("order", ["earlier-first", "later-first"])
def test_two_finals_resolve_to_the_later_provider_time(order: str) -> None:
    delivered, failed = seven("DELIVERED", at(5)), seven("NOTDELIVERED", at(7))
    reports = [delivered, failed] if order == "earlier-first" else [failed, delivered]
    assert fold(reports).state == ("failed", True, "NOTDELIVERED", "2026-11-22T10:07:00.000Z")


def test_two_finals_one_millisecond_apart_resolve_to_the_later() -> None:
    a = seven("FAILED", at(5) + timedelta(milliseconds=1))
    b = seven("DELIVERED", at(5))
    assert fold([a, b]).current == a
    assert fold([b, a]).current == a


def test_two_finals_at_the_same_time_resolve_to_the_delivery_receipt() -> None:
    a, b = seven("DELIVERED", at(5)), seven("FAILED", at(5))
    assert fold([a, b]).current == a
    assert fold([b, a]).current == a


@pytest.mark.parametrize(
    ("loser", "winner"),
    [
        (seven("BUFFERED", at(5)), seven("TRANSMITTED", at(6))),  # later time wins over a higher rank
        (seven("UNKNOWN", at(5)), seven("ACCEPTED", at(6))),
        (seven("BUFFERED", at(5)), seven("UNKNOWN", at(6))),
        (seven("TRANSMITTED", at(5)), seven("BUFFERED", at(5))),  # same time: rank decides
        (seven("UNKNOWN", at(5)), seven("TRANSMITTED", at(5))),
        (seven("TRANSMITTED", None), seven("BUFFERED", None)),  # no time: rank decides
        (seven("UNKNOWN", None), seven("ACCEPTED", None)),
        (seven("BUFFERED", None), seven("ACCEPTED", at(1))),  # a timed report beats a timeless one
        (seven("ACCEPTED", at(5)), seven("TRANSMITTED", at(5))),  # same status and time: total order
    ],
    ids=lambda r: f"{r.provider_status}@{r.status_at}",
)
def test_non_finals_order_by_time_then_rank(loser: Report, winner: Report) -> None:
    assert fold([loser, winner]).current == winner
    assert fold([winner, loser]).current == winner


def test_same_report_twice_is_applied_once() -> None:
    report = seven("DELIVERED", at(5))
    item = fold([report, report])
    assert item.history == [report]
    assert not supersedes(report.key, report.key)


def test_polled_report_equal_to_the_pushed_one_changes_nothing() -> None:
    pushed, polled = seven("TRANSMITTED", at(2)), seven("TRANSMITTED", at(2), Source.POLL)
    item = fold([pushed, polled])
    assert item.history == [pushed]


def test_a_registration_never_overwrites_a_report_that_came_first() -> None:
    report = seven("ACCEPTED", None)  # the weakest real report there is
    assert not supersedes(PENDING_KEY, report.key)
    assert supersedes(report.key, PENDING_KEY)


def test_the_first_report_is_always_stored() -> None:
    assert supersedes(seven("UNKNOWN", None).key, None)
    assert supersedes(PENDING_KEY, None)


# --- order of arrival never changes the end state -------------------------------------------------------

MIXED = [
    seven("ACCEPTED", at(0.5)),
    seven("BUFFERED", at(3), Source.POLL),
    seven("UNKNOWN", at(4)),
    seven("TRANSMITTED", None, Source.POLL),
    seven("DELIVERED", at(10)),
    seven("NOTDELIVERED", at(8), Source.POLL),
]
NO_FINAL = [
    seven("ACCEPTED", at(0.5)),
    seven("BUFFERED", at(3), Source.POLL),
    seven("UNKNOWN", at(4)),
    seven("TRANSMITTED", None, Source.POLL),
    seven("BUFFERED", at(3)),
    give_up(),
]
EAPI = [
    Report("bulksms-eapi", "123:27831234567", bulksms_eapi.normalize(c), c, t, s)
    for c, t, s in [
        ("10", None, Source.POLL),
        ("12", at(1), Source.PUSH),
        ("63", at(20), Source.PUSH),
        ("70", at(20), Source.POLL),
        ("53", at(2880), Source.PUSH),
        ("51", at(2000), Source.POLL),
    ]
]


@pytest.mark.parametrize(
    ("reports", "expected"),
    [
        ([*MIXED, give_up()], ("delivered", True, "DELIVERED", "2026-11-22T10:10:00.000Z")),
        (NO_FINAL, ("unknown", True, None, "2026-11-27T10:00:00.000Z")),
        (NO_FINAL[:-1], ("unknown", False, "UNKNOWN", "2026-11-22T10:04:00.000Z")),
        (EAPI, ("expired", True, "53", "2026-11-24T10:00:00.000Z")),
    ],
    ids=["two-finals-and-give-up", "give-up", "non-finals-only", "bulksms-eapi"],
)
def test_every_order_of_arrival_ends_in_the_same_state(reports: list[Report], expected: tuple[object, ...]) -> None:
    for order in itertools.permutations(reports):
        item = fold(order)
        assert item.state == expected, [r.provider_status for r in order]
        assert len({r.key for r in item.history}) == len(item.history)  # each report applied at most once


@pytest.mark.parametrize("duplicate", range(6))
def test_every_order_with_a_duplicated_report_ends_in_the_same_state(duplicate: int) -> None:
    reports = [*MIXED[:5], give_up()]
    reports.append(reports[duplicate])
    expected = ("delivered", True, "DELIVERED", "2026-11-22T10:10:00.000Z")
    for order in itertools.permutations(reports):
        item = fold(order)
        assert item.state == expected
        assert len({r.key for r in item.history}) == len(item.history)


def test_history_holds_each_applied_report_in_arrival_order() -> None:
    reports = [seven("ACCEPTED", at(1)), seven("BUFFERED", at(3)), seven("ACCEPTED", at(1)), seven("DELIVERED", at(4))]
    assert fold(reports).history == [reports[0], reports[1], reports[3]]


# --- the key as DynamoDB compares it ------------------------------------------------------------------

INTENDED_ORDER = [
    seven("UNKNOWN", None),
    seven("ACCEPTED", None),
    seven("TRANSMITTED", None),
    seven("BUFFERED", None),
    seven("BUFFERED", datetime(2001, 9, 8, tzinfo=UTC)),  # 12 digits of milliseconds
    seven("ACCEPTED", datetime(2001, 9, 10, tzinfo=UTC)),  # 13 digits
    seven("UNKNOWN", at(0)),
    seven("ACCEPTED", at(0)),
    seven("BUFFERED", at(0)),
    seven("TRANSMITTED", at(0) + timedelta(milliseconds=1)),
    seven("UNKNOWN", at(0) + timedelta(seconds=1)),
    seven("BUFFERED", datetime(2099, 1, 1, tzinfo=UTC)),
    seven("ACCEPTED", datetime(2300, 1, 1, tzinfo=UTC)),  # 14 digits
    give_up(GIVE_UP_AT - timedelta(days=3)),
    give_up(),
    seven("REJECTED", None),
    seven("DELIVERED", None),
    seven("REJECTED", at(0)),
    seven("FAILED", at(0)),
    seven("EXPIRED", at(0)),
    seven("DELIVERED", at(0)),
    seven("NOTDELIVERED", at(0) + timedelta(milliseconds=1)),
    seven("EXPIRED", datetime(2099, 1, 1, tzinfo=UTC)),
]


def test_key_strings_sort_in_the_intended_order() -> None:
    keys = [r.key for r in INTENDED_ORDER]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_key_bytes_sort_in_the_intended_order() -> None:
    """DynamoDB compares string attributes by their UTF-8 bytes."""
    keys = [r.key.encode() for r in INTENDED_ORDER]
    assert all(a < b for a, b in itertools.pairwise(keys))


def test_registration_key_sorts_below_every_report() -> None:
    assert all(r.key > PENDING_KEY for r in INTENDED_ORDER)
    assert all(PENDING_KEY.encode() < r.key.encode() for r in INTENDED_ORDER)


def test_key_order_matches_the_report_order_fold_applies() -> None:
    """Applying the intended order front to back applies every report; back to front applies only the last."""
    assert fold(INTENDED_ORDER).history == INTENDED_ORDER
    assert fold(list(reversed(INTENDED_ORDER))).history == [INTENDED_ORDER[-1]]
