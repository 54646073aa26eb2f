"""Provider times become UTC, stored in one sortable form; the poll schedule is read strictly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dlrwatch.domain.schedule import DEFAULT_SCHEDULE, Schedule
from dlrwatch.domain.times import InvalidTime, from_iso, from_local, from_short, from_unix, iso, provider_time
from dlrwatch.providers import bulksms_eapi, sevenio

BERLIN = sevenio.DEFAULT_ZONE
JOHANNESBURG = bulksms_eapi.DEFAULT_ZONE


def test_provider_zones_are_the_documented_ones() -> None:
    assert BERLIN == "Europe/Berlin"
    assert JOHANNESBURG == "Africa/Johannesburg"


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2020-01-09 15:41:30.656", "2020-01-09T14:41:30.656Z"),  # winter, UTC+1
        ("2021-08-24 08:08:00.000000", "2021-08-24T06:08:00.000Z"),  # summer, UTC+2
        ("2021-08-24 08:08:00", "2021-08-24T06:08:00.000Z"),  # no fraction
        ("2021-08-24T08:08:00.5", "2021-08-24T06:08:00.500Z"),
        ("2021-03-28 01:59:59", "2021-03-28T00:59:59.000Z"),  # last second of winter time
        ("2021-03-28 03:00:00", "2021-03-28T01:00:00.000Z"),  # first second of summer time
        ("2021-12-31 23:30:00", "2021-12-31T22:30:00.000Z"),  # local date is not the UTC date
    ],
)
def test_sevenio_zoneless_time_is_berlin_local_time(text: str, utc: str) -> None:
    assert iso(from_local(text, BERLIN)) == utc
    assert iso(provider_time(text, BERLIN)) == utc


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("26-11-22 12:00:05", "2026-11-22T10:00:05.000Z"),
        ("26-06-22 12:00:05", "2026-06-22T10:00:05.000Z"),  # no daylight saving in South Africa
        ("26-01-01 01:00:00", "2025-12-31T23:00:00.000Z"),
    ],
)
def test_bulksms_short_time_is_south_african_time(text: str, utc: str) -> None:
    assert iso(from_short(text, JOHANNESBURG)) == utc
    assert iso(provider_time(text, JOHANNESBURG)) == utc


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("1578580890", "2020-01-09T14:41:30.000Z"),
        ("1578580890.656", "2020-01-09T14:41:30.656Z"),
        ("1629785280.5", "2021-08-24T06:08:00.500Z"),
    ],
)
def test_unix_seconds_are_utc_whatever_the_provider_zone(text: str, utc: str) -> None:
    assert iso(from_unix(text)) == utc
    assert iso(provider_time(text, BERLIN)) == utc
    assert iso(provider_time(f" {text}\n", JOHANNESBURG)) == utc


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2021-08-24T08:08:00+02:00", "2021-08-24T06:08:00.000Z"),
        ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00.000Z"),
        ("2026-11-22T10:00:00.250-05:00", "2026-11-22T15:00:00.250Z"),
    ],
)
def test_iso_time_with_a_zone_keeps_its_zone(text: str, utc: str) -> None:
    assert iso(from_iso(text)) == utc
    assert iso(provider_time(text, BERLIN)) == utc


@pytest.mark.parametrize("text", ["2026-11-22T10:00:00", "2026-11-22", "2026-11-22T10:00:00.123"])
def test_iso_time_without_a_zone_is_refused_not_guessed(text: str) -> None:
    with pytest.raises(InvalidTime, match="zone"):
        from_iso(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "12345",
        "2026-02-30 10:00:00",
        "2026-13-01 10:00:00",
        "2026-11-22 24:00:00",
        "2026-11-22 10:60:00",
        "26-02-30 10:00:00",
        "2026-11-22 10:00:00.1234567",
        "2026-11-22T10:00:00+25:00",
        "1578580890.",
    ],
)
def test_garbage_and_impossible_dates_raise_invalid_time(text: str) -> None:
    with pytest.raises(InvalidTime):
        provider_time(text, BERLIN)


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (lambda t: from_local(t, BERLIN), "2026-02-30 10:00:00"),
        (lambda t: from_short(t, JOHANNESBURG), "26-02-30 10:00:00"),
        (lambda t: from_short(t, JOHANNESBURG), "2026-11-22 10:00:00"),
        (from_unix, "2026-11-22"),
        (from_iso, "not a time"),
    ],
)
def test_each_reader_refuses_what_it_cannot_read(parse: object, text: str) -> None:
    with pytest.raises(InvalidTime):
        parse(text)  # type: ignore[operator]


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01 00:00:00",  # a "no date" placeholder: local Berlin midnight is before year 1 in UTC
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_dates_at_the_edge_of_the_calendar_raise_invalid_time(text: str) -> None:
    """Anything else than InvalidTime escapes the parsers' BadInput and answers a provider 5xx."""
    with pytest.raises(InvalidTime):
        provider_time(text, BERLIN)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 22, 10, 0, tzinfo=UTC), "2026-11-22T10:00:00.000Z"),
        (datetime(2026, 11, 22, 10, 0, 0, 999_999, tzinfo=UTC), "2026-11-22T10:00:00.999Z"),  # truncated
        (datetime(2026, 1, 2, 3, 4, 5, 6_000, tzinfo=UTC), "2026-01-02T03:04:05.006Z"),
        (datetime(2026, 11, 22, 1, 0, tzinfo=timezone(timedelta(hours=2))), "2026-11-21T23:00:00.000Z"),
    ],
)
def test_iso_is_utc_with_milliseconds_and_z(moment: datetime, text: str) -> None:
    assert iso(moment) == text
    assert len(iso(moment)) == 24


def test_iso_strings_sort_like_the_times_they_name() -> None:
    base = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    offsets = [
        timedelta(milliseconds=1),
        timedelta(milliseconds=10),
        timedelta(milliseconds=999),
        timedelta(seconds=9),
        timedelta(seconds=10),
        timedelta(hours=1),
        timedelta(hours=14),
        timedelta(days=9),
        timedelta(days=40),
        timedelta(days=400),
        timedelta(days=30_000),
        -timedelta(days=9_000),
    ]
    moments = [base] + [base + o for o in offsets]
    # the same instants seen from other zones sort the same
    moments += [
        m.astimezone(timezone(timedelta(hours=h))) for m, h in zip(moments[:6], (5, -7, 2, 1, -1, 14), strict=True)
    ]
    by_time = sorted({iso(m): m for m in moments}.values())
    assert sorted(iso(m) for m in by_time) == [iso(m) for m in by_time]
    assert len({len(iso(m)) for m in moments}) == 1


def test_the_stored_form_reads_back_to_the_same_instant() -> None:
    moment = from_local("2020-01-09 15:41:30.656", BERLIN)
    assert from_iso(iso(moment)) == moment


# --- the poll schedule -------------------------------------------------------------------------------------


def test_default_schedule_is_the_backoff_bulksms_asks_for() -> None:
    assert DEFAULT_SCHEDULE == "5m,30m,2h,5h,1d,2d,5d"
    assert Schedule.parse(DEFAULT_SCHEDULE).offsets == (
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(days=1),
        timedelta(days=2),
        timedelta(days=5),
    )


def test_compressed_schedule_in_seconds_and_with_spaces() -> None:
    assert Schedule.parse(" 2s, 5s ,1m").offsets == (timedelta(seconds=2), timedelta(seconds=5), timedelta(minutes=1))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5m,,30m",
        "5m,30m,",
        "5x",
        "5",
        "m5",
        "-5m",
        "5.5m",
        "30m,5m",
        "5m,30m,2h,1h",
        "5m,5m",
        "0m",
        "0s,5m",
        "1000000000d",  # an absurd offset is a configuration error, not a crash
    ],
)
def test_bad_schedule_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="poll schedule"):
        Schedule.parse(text)


def test_poll_times_are_offsets_from_sent_at_until_the_schedule_runs_out() -> None:
    schedule = Schedule.parse(DEFAULT_SCHEDULE)
    sent_at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    polls = [schedule.poll_at(sent_at, attempt) for attempt in range(7)]
    assert [iso(p) for p in polls if p] == [
        "2026-11-22T10:05:00.000Z",
        "2026-11-22T10:30:00.000Z",
        "2026-11-22T12:00:00.000Z",
        "2026-11-22T15:00:00.000Z",
        "2026-11-23T10:00:00.000Z",
        "2026-11-24T10:00:00.000Z",
        "2026-11-27T10:00:00.000Z",
    ]
    assert schedule.poll_at(sent_at, 7) is None
    assert schedule.poll_at(sent_at, 100) is None


def test_give_up_happens_at_the_last_poll() -> None:
    schedule = Schedule.parse(DEFAULT_SCHEDULE)
    sent_at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert schedule.give_up_at(sent_at) == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert schedule.give_up_at(sent_at) == schedule.poll_at(sent_at, len(schedule.offsets) - 1)
