"""The pure readers under hostile input: each is total, bounded and exact (no network, no mocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dlrwatch import strictjson
from dlrwatch.domain.schedule import RETRY_MAX, RETRY_MIN, Schedule, retry_delay
from dlrwatch.domain.text import shown
from dlrwatch.domain.times import InvalidTime, provider_time
from dlrwatch.errors import BadInput
from dlrwatch.providers import bulksms_eapi, sevenio
from dlrwatch.providers.base import RETRY_AFTER_MAX, ProviderError, message_id, retry_after, unflatten

NOW = 1_795_341_960.0


def arabic_indic(text: str) -> str:
    """``text`` with its ASCII digits written as Arabic-Indic digits, which ``\\d``, int() and float() all take."""
    return "".join(chr(0x0660 + int(c)) if c.isascii() and c.isdigit() else c for c in text)


# -- JSON ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[" * 20_000 + "]" * 20_000, "nested deeper"),
        ("[" * (strictjson.MAX_DEPTH + 1) + "]" * (strictjson.MAX_DEPTH + 1), "nested deeper"),
        ("1" * 5_000, "digits"),
        ("-" + "1" * 33, "digits"),
        ("NaN", "NaN"),
        ("[-Infinity]", "Infinity"),
        ("1e999", "out of range"),
        ("0." + "1" * 100, "out of range"),
        ('{"a": ', "not valid JSON"),
        (b"\xff", "not UTF-8"),
    ],
)
def test_json_the_routes_cannot_use_raises_one_error_naming_why(text: str | bytes, named: str) -> None:
    with pytest.raises(strictjson.InvalidJson, match=named):
        strictjson.loads(text)


def test_json_within_the_bounds_reads_as_usual() -> None:
    deepest = "[" * strictjson.MAX_DEPTH + "7" + "]" * strictjson.MAX_DEPTH
    assert strictjson.loads(deepest) is not None
    assert strictjson.loads('{"id": 77149843739, "n": -1.5, "ok": true}') == {"id": 77149843739, "n": -1.5, "ok": True}
    assert strictjson.loads("9" * strictjson.MAX_INTEGER_DIGITS) == int("9" * strictjson.MAX_INTEGER_DIGITS)


# -- form keys, ids, times ---------------------------------------------------------------------------------


def test_list_indexes_are_ascii_digits_only() -> None:
    assert unflatten({"data[0][msg_id]": "1", "data[1][msg_id]": "2"}) == {"data": [{"msg_id": "1"}, {"msg_id": "2"}]}
    assert unflatten({"data[²][msg_id]": "1"}) == {"data": {"²": {"msg_id": "1"}}}, "'²'.isdigit() is True"
    three = arabic_indic("3")
    assert unflatten({f"data[{three}][msg_id]": "1"}) == {"data": {three: {"msg_id": "1"}}}


@pytest.mark.parametrize("key", ["data[" + "9" * 5_000 + "][msg_id]", "data" + "[a]" * 5_000, "x" * 201])
def test_form_keys_too_long_or_too_deep_are_refused(key: str) -> None:
    with pytest.raises(BadInput, match="field name"):
        unflatten({key: "1"})


@pytest.mark.parametrize("value", ["nl123\n", "nl123\r", " nl123", arabic_indic("333"), "a" * 129, ""])
def test_a_message_id_matches_whole_and_in_ascii(value: str) -> None:
    with pytest.raises(BadInput):
        message_id(value)


def test_eapi_ids_refuse_whitespace_other_than_spaces() -> None:
    assert bulksms_eapi.canonical_id("123:+44 7700 900123") == "123:447700900123"
    for value in ("123:447700900123\n", "123\n:447700900123", arabic_indic("123:447700900123")):
        with pytest.raises(BadInput):
            bulksms_eapi.canonical_id(value)


@pytest.mark.parametrize(
    "text",
    [arabic_indic("1795341960"), arabic_indic("2026-11-22 10:00:00"), "1795341960.1234567890", "2026-11-22 10:00"],
)
def test_provider_times_are_ascii_digits_matched_whole(text: str) -> None:
    with pytest.raises(InvalidTime):
        provider_time(text, "Europe/Berlin")


def test_an_error_quotes_a_long_value_shortened() -> None:
    assert len(shown("x" * 60_000)) == 40
    with pytest.raises(InvalidTime) as refused:
        provider_time("y" * 60_000, "Europe/Berlin")
    assert len(str(refused.value)) < 100


def test_schedule_offsets_are_ascii_digits() -> None:
    with pytest.raises(ValueError, match="is not a number"):
        Schedule.parse(arabic_indic("5") + "m")


# -- provider answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("315360000", RETRY_AFTER_MAX),
        ("999999999999", RETRY_AFTER_MAX),
        ("9" * 20, RETRY_AFTER_MAX),
        (format_datetime(datetime.fromtimestamp(NOW + 600, UTC), usegmt=True), 600.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_MAX),
        (format_datetime(datetime.fromtimestamp(NOW - 600, UTC), usegmt=True), None),
        ("0", None),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("9" * 5_000, None),
    ],
)
def test_retry_after_is_seconds_or_a_date_capped_at_an_hour_and_none_when_unusable(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after(value, now=NOW) == seconds


def test_a_transient_retry_waits_as_long_again_as_the_poll_was_put_off_between_a_minute_and_an_hour() -> None:
    scheduled = datetime(2026, 11, 22, 10, 5, tzinfo=UTC)
    first = retry_delay(scheduled, scheduled, None, jitter=0.0)
    assert first == RETRY_MIN
    assert retry_delay(scheduled, scheduled + timedelta(minutes=8), None, jitter=0.0) == timedelta(minutes=8)
    assert retry_delay(scheduled, scheduled + timedelta(days=3), None, jitter=0.0) == RETRY_MAX
    assert retry_delay(scheduled, scheduled, 600.0, jitter=0.0) == timedelta(minutes=10), "Retry-After is a floor"
    assert retry_delay(scheduled, scheduled, 10.0**12, jitter=0.0) == RETRY_MAX, "capped before jitter"
    assert retry_delay(scheduled, scheduled, None, jitter=0.999) < RETRY_MIN + timedelta(minutes=2)


def test_a_seven_io_answer_with_an_unreadable_entry_makes_the_ids_without_one_transient() -> None:
    text = '[{"id": "1", "status": "DELIVERED"}, {"id": null}, {"id": "3", "status": {"x": 1}}, {"id": "4"}]'
    found = sevenio.parse_status_answer(text, ["1", "2", "3", "4"], "Europe/Berlin")
    assert found["1"] is not None
    assert not isinstance(found["1"], ProviderError)
    assert isinstance(found["2"], ProviderError), "absent, and an entry without an id may have been its"
    assert isinstance(found["3"], ProviderError), "its entry cannot be read"
    assert found["4"] is None, "its entry says: no report yet"


def test_a_seven_io_answer_without_unreadable_entries_means_no_report_yet_for_absent_ids() -> None:
    found = sevenio.parse_status_answer('[{"id": "1", "status": null}]', ["1", "2"], "Europe/Berlin")
    assert found == {"1": None, "2": None}
    assert sevenio.parse_status_answer("", ["1"], "Europe/Berlin") == {"1": None}


def test_an_eapi_report_with_an_unreadable_row_makes_the_recipients_without_one_transient() -> None:
    rows, anonymous = bulksms_eapi.parse_report(
        "0|Returns to follow\n447700900001|11\n447700900002|eleven\n|11\n", "555", "Africa/Johannesburg"
    )
    assert anonymous
    assert not isinstance(rows["555:447700900001"], ProviderError)
    assert isinstance(rows["555:447700900002"], ProviderError)
