"""Input nobody here wrote, through the deployed handlers: every case an outside fuzzer once answered with a 500
is now a 4xx naming the problem, with nothing stored. (tests/component/test_fuzz_routes.py generates more.)"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from support.api_events import SIGNED_AT, TOKEN, answer_of, http_event
from support.dynamo import RequestCounter

from dlrwatch.callbacks import MAX_REPORTS
from dlrwatch.domain.report import Report, Source
from dlrwatch.domain.status import Status
from dlrwatch.providers.base import RAW_FIELD_MAX
from dlrwatch.store import HISTORY_MAX, Store, to_dynamo

NOW = SIGNED_AT
DEEP = "[" * 20_000 + "]" * 20_000
HUGE = "7" * 5_000


def send(
    handlers: dict[str, Any], method: str, path: str, query: str = "", body: str | bytes = b"", content_type: str = ""
) -> tuple[int, Any]:
    data = body.encode() if isinstance(body, str) else body
    name, event = http_event(method, path, query, {"content-type": content_type} if content_type else {}, data)
    return answer_of(handlers[name], event)


def refused(answer: tuple[int, Any], named: str, code: int = 400) -> None:
    status, body = answer
    assert status == code, body
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str), body
    assert named in body["error"], body["error"]


JSON_ROUTES = [
    ("/callbacks/sevenio", f"token={TOKEN}"),
    ("/callbacks/bulksms", f"token={TOKEN}"),
    ("/messages", ""),
]


@pytest.mark.parametrize(("path", "query"), JSON_ROUTES)
@pytest.mark.parametrize(
    ("body", "named"),
    [
        (DEEP, "nested deeper"),  # RecursionError
        ('{"a": ' * 40 + "1" + "}" * 40, "nested deeper"),
        (f'{{"messages": [{HUGE}]}}', "digits"),  # ValueError: more than 4,300 digits
        (f"[{HUGE}]", "digits"),
        ('{"messages": [NaN]}', "NaN"),
        ('{"messages": [1e999]}', "out of range"),
        (b'{"messages": ["\xff"]}', "UTF-8"),
    ],
    ids=["deep-array", "deep-object", "huge-int-object", "huge-int-array", "nan", "infinity", "not-utf8"],
)
def test_json_that_no_parser_should_take_gets_a_400_on_every_json_route(
    path: str, query: str, body: str | bytes, named: str, handlers: dict[str, Any], requests_sent: RequestCounter
) -> None:
    refused(send(handlers, "POST", path, query, body, "application/json"), named)
    assert requests_sent.writes == 0


@pytest.mark.parametrize(
    ("form", "named"),
    [
        ("data[²][msg_id]=1&data[²][status]=DELIVERED", "msg_id"),  # '²'.isdigit(), int('²') fails
        (f"data[{'9' * 5_000}][msg_id]=1&data[0][status]=DELIVERED", "field name"),
        ("data" + "[a]" * 5_000 + "=1", "field name"),
        ("data[0][msg_id]=1&data[0][msg_id][x]=2", "conflicts"),
        ("&".join(f"f{n}=1" for n in range(1_001)), "1000 fields"),
    ],
    ids=["superscript-index", "5000-digit-index", "5000-deep-key", "conflicting-keys", "too-many-fields"],
)
def test_odd_seven_io_form_keys_get_a_400(
    form: str, named: str, handlers: dict[str, Any], requests_sent: RequestCounter
) -> None:
    refused(
        send(handlers, "POST", "/callbacks/sevenio", f"token={TOKEN}", form, "application/x-www-form-urlencoded"),
        named,
    )
    assert requests_sent.writes == 0


def test_a_query_string_of_more_than_a_thousand_fields_gets_a_400(
    handlers: dict[str, Any], requests_sent: RequestCounter
) -> None:
    query = f"token={TOKEN}&" + "&".join(f"f{n}=1" for n in range(1_001))
    refused(send(handlers, "GET", "/callbacks/bulksms", query), "query string")
    assert requests_sent.writes == 0


def sevenio_reports(count: int, **extra: str) -> str:
    return json.dumps([{"data": {"msg_id": str(7000 + n), "status": "DELIVERED", **extra}} for n in range(count)])


def test_more_reports_than_the_bound_in_one_request_get_a_413_and_nothing_stored(
    handlers: dict[str, Any], requests_sent: RequestCounter
) -> None:
    refused(
        send(
            handlers,
            "POST",
            "/callbacks/sevenio",
            f"token={TOKEN}",
            sevenio_reports(MAX_REPORTS + 1),
            "application/json",
        ),
        f"at most {MAX_REPORTS} reports",
        413,
    )
    assert requests_sent.writes == 0


def test_a_request_of_exactly_the_bound_is_stored_one_write_per_report(
    handlers: dict[str, Any], store: Store, requests_sent: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process moto writes ~30 per second; the answer budget is sized for DynamoDB (benchmarks measure it).
    service = handlers["callback"].service
    monkeypatch.setattr(service, "settings", dataclasses.replace(service.settings, answer_within_seconds=60.0))
    status, body = send(
        handlers, "POST", "/callbacks/sevenio", f"token={TOKEN}", sevenio_reports(MAX_REPORTS), "application/json"
    )
    assert (status, body) == (200, {"received": MAX_REPORTS, "applied": MAX_REPORTS})
    assert requests_sent.writes == MAX_REPORTS
    stored = store.get("sevenio", str(7000 + MAX_REPORTS - 1))
    assert stored is not None
    assert stored["status"] == "delivered"


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/callbacks/sevenio", sevenio_reports(1, foreign_id="f" * 60_000), "foreign_id"),
        ("/callbacks/sevenio", sevenio_reports(1, foreign_id="f" * (RAW_FIELD_MAX + 1)), "foreign_id"),
        ("/callbacks/sevenio", sevenio_reports(1, foreign_id="bad\x00id"), "foreign_id"),
        (
            "/callbacks/bulksms",
            json.dumps([{"id": "1", "type": "SENT", "status": {"type": "DELIVERED"}, "userSuppliedId": "u" * 65}]),
            "userSuppliedId",
        ),
        ("/callbacks/sevenio", json.dumps({"data": {"msg_id": "1", "status": "D" * 65}}), "status"),
        (
            "/callbacks/sevenio",
            json.dumps({"data": {"msg_id": "1", "status": "DELIVERED", "timestamp": "1" * 300}}),
            "timestamp",
        ),
    ],
    ids=[
        "60kb-foreign-id",
        "65-char-foreign-id",
        "control-char-foreign-id",
        "long-user-supplied-id",
        "long-status",
        "long-time",
    ],
)
def test_a_raw_field_beyond_its_bound_gets_a_400_naming_it(
    path: str, body: str, named: str, handlers: dict[str, Any], requests_sent: RequestCounter
) -> None:
    refused(send(handlers, "POST", path, f"token={TOKEN}", body, "application/json"), named)
    assert requests_sent.writes == 0


def test_a_message_with_the_longest_fields_and_a_full_history_stays_far_below_dynamodb_item_limit(
    store: Store,
) -> None:
    """Eight 60 KB foreign_ids once pushed an item past 400 KB, and every later report for it failed for good."""
    longest = "x" * RAW_FIELD_MAX
    for n in range(HISTORY_MAX + 10):
        at = NOW + timedelta(seconds=n)
        report = Report("sevenio", "7" * 128, Status.BUFFERED, "B" * 64, at, Source.PUSH, {"foreign_id": longest})
        store.apply(report, at)
    item = store.get("sevenio", "7" * 128)
    assert item is not None
    assert len(item["history"]) == HISTORY_MAX
    size = len(json.dumps(to_dynamo(item), default=str))
    assert size < 40_000, f"{size} bytes: a tenth of DynamoDB's limit is the budget"


@pytest.mark.parametrize("provider", [{}, [], 1, None, True, "SEVENIO"])
def test_a_registration_whose_provider_is_not_a_provider_name_gets_a_400(
    provider: Any, handlers: dict[str, Any], requests_sent: RequestCounter
) -> None:
    body = json.dumps({"messages": [{"provider": provider, "message_id": "1"}]})
    refused(send(handlers, "POST", "/messages", body=body, content_type="application/json"), "provider must be one of")
    assert requests_sent.writes == 0


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"provider": "sevenio", "message_id": "nl123\n"}, "message id"),  # "$" matched before the newline
        ({"provider": "bulksms-eapi", "message_id": "1:447700900123\n"}, "msisdn"),
        ({"provider": "bulksms-eapi", "message_id": "1\n:447700900123"}, "batch_id"),
        ({"provider": "sevenio", "message_id": "1", "recipient": "+49\x00170"}, "recipient"),
        ({"provider": "sevenio", "message_id": "1", "sent_at": "2026-11-22T10:00:00Z" + " " * 500}, "sent_at"),
        ({"provider": "sevenio", "message_id": "1", "sent_at": "\u0662\u0660\u0662\u0666-11-22T10:00:00Z"}, "sent_at"),
        ({"provider": "sevenio", "message_id": ["1"]}, "message_id"),
    ],
    ids=[
        "trailing-newline",
        "eapi-trailing-newline",
        "eapi-batch-newline",
        "control-recipient",
        "long-sent-at",
        "arabic-digits",
        "list-id",
    ],
)
def test_a_registration_with_an_id_or_field_that_is_not_whole_gets_a_400(
    entry: dict[str, Any], named: str, handlers: dict[str, Any], requests_sent: RequestCounter
) -> None:
    body = json.dumps({"messages": [entry]})
    refused(send(handlers, "POST", "/messages", body=body, content_type="application/json"), named)
    assert requests_sent.writes == 0


@pytest.mark.parametrize("message_id", ["nl123%0A", "%00", quote("\u0663" * 5), "x" * 300, "%ED%A0%80"])
def test_reading_an_id_that_cannot_exist_answers_404(message_id: str, handlers: dict[str, Any]) -> None:
    status, body = send(handlers, "GET", f"/messages/sevenio/{message_id}")
    assert status == 404
    assert "no message" in body["error"]


def test_an_error_quotes_at_most_a_few_dozen_characters_of_what_it_refuses(handlers: dict[str, Any]) -> None:
    body = json.dumps({"messages": [{"provider": "sevenio", "message_id": "#" * 10_000}]})
    status, answer = send(handlers, "POST", "/messages", body=body, content_type="application/json")
    assert status == 400
    assert len(answer["error"]) < 200
