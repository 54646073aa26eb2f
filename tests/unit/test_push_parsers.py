"""Every push form the providers document becomes reports; input that can never succeed is BadInput."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from dlrwatch.domain.report import Source
from dlrwatch.errors import BadInput
from dlrwatch.providers import CALLBACKS, bulksms, bulksms_eapi, sevenio
from dlrwatch.providers.base import PushRequest

TOKEN = ("token", "s3cret-callback-token")
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}


def get(path: str, *pairs: tuple[str, str]) -> PushRequest:
    return PushRequest("GET", path, query=(TOKEN, *pairs))


def post_form(path: str, *pairs: tuple[str, str]) -> PushRequest:
    return PushRequest("POST", path, query=(TOKEN,), headers=FORM, body=urlencode(pairs).encode())


def post_json(path: str, payload: Any) -> PushRequest:
    return PushRequest("POST", path, query=(TOKEN,), headers=JSON, body=json.dumps(payload).encode())


def summary(reports: list[Any]) -> list[tuple[str, str, str, str | None, str | None]]:
    return [(r.provider, r.message_id, str(r.status), r.provider_status, r.status_at) for r in reports]


def test_each_callback_route_has_its_parser() -> None:
    assert {"sevenio": sevenio, "bulksms": bulksms} == CALLBACKS


# --- seven.io --------------------------------------------------------------------------------------------

SEVEN = "/callbacks/sevenio"
DLR = {"msg_id": "77149843739", "status": "TRANSMITTED", "timestamp": "2021-08-24 08:08:00.000000"}
TRANSMITTED = ("sevenio", "77149843739", "sent", "TRANSMITTED", "2021-08-24T06:08:00.000Z")


def envelope(data: Any) -> dict[str, Any]:
    return {"webhook_event": "dlr", "webhook_timestamp": "2021-08-24T08:08:00+02:00", "data": data}


def test_sevenio_legacy_get_callback() -> None:
    request = get(SEVEN, ("msg_id", "77149843739"), ("status", "DELIVERED"), ("timestamp", "2020-01-09 15:41:30.656"))
    reports = sevenio.parse_callback(request)
    assert summary(reports) == [("sevenio", "77149843739", "delivered", "DELIVERED", "2020-01-09T14:41:30.656Z")]
    assert reports[0].source is Source.PUSH
    assert reports[0].final


def test_sevenio_legacy_get_callback_without_timestamp() -> None:
    reports = sevenio.parse_callback(get(SEVEN, ("msg_id", "77149843739"), ("status", "BUFFERED")))
    assert summary(reports) == [("sevenio", "77149843739", "buffered", "BUFFERED", None)]


def test_sevenio_webhook_json_body() -> None:
    assert summary(sevenio.parse_callback(post_json(SEVEN, envelope(DLR)))) == [TRANSMITTED]


def test_sevenio_webhook_json_with_numeric_id_and_unix_time_keeps_the_id_as_text() -> None:
    data = {"msg_id": 77149843739, "status": "DELIVERED", "timestamp": 1578580890}
    reports = sevenio.parse_callback(post_json(SEVEN, envelope(data)))
    assert summary(reports) == [("sevenio", "77149843739", "delivered", "DELIVERED", "2020-01-09T14:41:30.000Z")]


def test_sevenio_webhook_json_with_charset_in_content_type() -> None:
    request = PushRequest(
        "POST",
        SEVEN,
        headers={"content-type": "application/json; charset=utf-8"},
        body=json.dumps(envelope(DLR)).encode(),
    )
    assert summary(sevenio.parse_callback(request)) == [TRANSMITTED]


def test_sevenio_webhook_form_post_with_bracketed_keys() -> None:
    request = post_form(
        SEVEN,
        ("webhook_event", "dlr"),
        ("webhook_timestamp", "2021-08-24T08:08:00+02:00"),
        ("data[msg_id]", "77149843739"),
        ("data[status]", "TRANSMITTED"),
        ("data[timestamp]", "2021-08-24 08:08:00.000000"),
    )
    assert summary(sevenio.parse_callback(request)) == [TRANSMITTED]


def test_sevenio_webhook_get_with_bracketed_query() -> None:
    request = get(
        SEVEN,
        ("webhook_event", "dlr"),
        ("data[msg_id]", "77149843739"),
        ("data[status]", "TRANSMITTED"),
        ("data[timestamp]", "2021-08-24 08:08:00.000000"),
    )
    assert summary(sevenio.parse_callback(request)) == [TRANSMITTED]


@pytest.mark.parametrize("build", [post_form, get], ids=["form-post", "get"])
def test_sevenio_webhook_flattened_top_level_fields(build: Any) -> None:
    request = build(SEVEN, ("webhook_event", "dlr"), *DLR.items())
    assert summary(sevenio.parse_callback(request)) == [TRANSMITTED]


def test_sevenio_json_list_of_envelopes() -> None:
    second = {"msg_id": "77149843740", "status": "REJECTED", "timestamp": "2021-08-24 08:09:00.000000"}
    reports = sevenio.parse_callback(post_json(SEVEN, [envelope(DLR), envelope(second)]))
    assert summary(reports) == [
        TRANSMITTED,
        ("sevenio", "77149843740", "rejected", "REJECTED", "2021-08-24T06:09:00.000Z"),
    ]


def test_sevenio_json_list_of_legacy_reports() -> None:
    reports = sevenio.parse_callback(post_json(SEVEN, [DLR, {"msg_id": "1", "status": "DELIVERED"}]))
    assert summary(reports) == [TRANSMITTED, ("sevenio", "1", "delivered", "DELIVERED", None)]


def test_sevenio_data_as_a_list() -> None:
    second = {"msg_id": "77149843740", "status": "EXPIRED"}
    reports = sevenio.parse_callback(post_json(SEVEN, envelope([DLR, second])))
    assert summary(reports) == [TRANSMITTED, ("sevenio", "77149843740", "expired", "EXPIRED", None)]


def test_sevenio_indexed_form_keys_become_a_list() -> None:
    request = post_form(
        SEVEN,
        ("webhook_event", "dlr"),
        ("data[1][msg_id]", "77149843740"),
        ("data[1][status]", "DELIVERED"),
        ("data[0][msg_id]", "77149843739"),
        ("data[0][status]", "TRANSMITTED"),
        ("data[0][timestamp]", "2021-08-24 08:08:00.000000"),
    )
    assert summary(sevenio.parse_callback(request)) == [
        TRANSMITTED,
        ("sevenio", "77149843740", "delivered", "DELIVERED", None),
    ]


def test_sevenio_data_as_json_text_inside_a_form_field() -> None:
    request = post_form(SEVEN, ("webhook_event", "dlr"), ("data", json.dumps(DLR)))
    assert summary(sevenio.parse_callback(request)) == [TRANSMITTED]


def test_sevenio_unlisted_status_is_kept_raw_as_unknown() -> None:
    reports = sevenio.parse_callback(get(SEVEN, ("msg_id", "77149843739"), ("status", "WEIRD")))
    assert summary(reports) == [("sevenio", "77149843739", "unknown", "WEIRD", None)]


def test_sevenio_foreign_id_is_kept_beside_the_report() -> None:
    reports = sevenio.parse_callback(post_json(SEVEN, envelope({**DLR, "foreign_id": "order-42@shop"})))
    assert reports[0].extra == {"foreign_id": "order-42@shop"}


@pytest.mark.parametrize("event", ["sms_mo", "tracking", "voice_status", "voice_call"])
def test_sevenio_non_dlr_webhook_event_is_ignored(event: str) -> None:
    payload = {"webhook_event": event, "data": {"id": "1", "sender": "49170", "text": "hi"}}
    assert sevenio.parse_callback(post_json(SEVEN, payload)) == []
    assert sevenio.parse_callback(post_form(SEVEN, ("webhook_event", event), ("data[text]", "hi"))) == []


@pytest.mark.parametrize(
    "request_",
    [
        post_json(SEVEN, envelope({})),
        post_json(SEVEN, envelope([])),
        post_json(SEVEN, envelope("")),
        post_json(SEVEN, envelope(None)),
        post_form(SEVEN, ("webhook_event", "dlr"), ("data", "")),
        get(SEVEN, ("webhook_event", "dlr"), ("data", "")),
    ],
    ids=["json-{}", "json-[]", "json-empty-text", "json-null", "form-empty", "get-empty"],
)
def test_sevenio_empty_data_is_bad_input_naming_data(request_: PushRequest) -> None:
    with pytest.raises(BadInput, match="'data'"):
        sevenio.parse_callback(request_)


def test_sevenio_json_envelope_without_data_is_bad_input_naming_data() -> None:
    payload = {"webhook_event": "dlr", "webhook_timestamp": "2021-08-24T08:08:00+02:00"}
    with pytest.raises(BadInput, match="'data'"):
        sevenio.parse_callback(post_json(SEVEN, payload))


@pytest.mark.parametrize("missing", ["msg_id", "status"])
def test_sevenio_missing_field_is_bad_input_naming_it(missing: str) -> None:
    data = {k: v for k, v in DLR.items() if k != missing}
    with pytest.raises(BadInput, match=f"'{missing}'"):
        sevenio.parse_callback(post_json(SEVEN, envelope(data)))
    with pytest.raises(BadInput, match=f"'{missing}'"):
        sevenio.parse_callback(get(SEVEN, *data.items()))
    with pytest.raises(BadInput, match=f"'{missing}'"):
        sevenio.parse_callback(get(SEVEN, *{**data, missing: " "}.items()))


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "2026-02-30 10:00:00", "2026-11-22T10:00:00+25:00", "0001-01-01 00:00:00"],
)
def test_sevenio_invalid_timestamp_is_bad_input(timestamp: str) -> None:
    with pytest.raises(BadInput, match="'timestamp'"):
        sevenio.parse_callback(get(SEVEN, ("msg_id", "77149843739"), ("status", "DELIVERED"), ("timestamp", timestamp)))


@pytest.mark.parametrize("msg_id", ["77149843739 OR 1=1", "<script>", "x" * 129])
def test_sevenio_message_id_that_cannot_be_one_is_bad_input(msg_id: str) -> None:
    with pytest.raises(BadInput, match="msg_id"):
        sevenio.parse_callback(get(SEVEN, ("msg_id", msg_id), ("status", "DELIVERED")))


@pytest.mark.parametrize("body", [b'{"webhook_event": "dlr", "data": {', b"[not json]", b"\xff\xfe{}"])
def test_sevenio_invalid_json_is_bad_input(body: bytes) -> None:
    with pytest.raises(BadInput):
        sevenio.parse_callback(PushRequest("POST", SEVEN, query=(TOKEN,), headers=JSON, body=body))


@pytest.mark.parametrize("payload", [[1, 2], ["DELIVERED"], envelope(["77149843739"])])
def test_sevenio_items_that_are_not_objects_are_bad_input(payload: Any) -> None:
    with pytest.raises(BadInput):
        sevenio.parse_callback(post_json(SEVEN, payload))


def test_sevenio_empty_json_list_is_bad_input() -> None:
    with pytest.raises(BadInput):
        sevenio.parse_callback(post_json(SEVEN, []))


def test_token_query_parameter_is_never_a_provider_field() -> None:
    request = get(SEVEN, ("msg_id", "77149843739"), ("status", "DELIVERED"))
    assert "token" not in request.fields()
    form = post_form(SEVEN, ("token", "also-in-the-body"), ("msg_id", "1"), ("status", "DELIVERED"))
    assert "token" not in form.fields()


def test_a_request_carrying_only_the_token_is_bad_input() -> None:
    with pytest.raises(BadInput):
        sevenio.parse_callback(get(SEVEN))
    with pytest.raises(BadInput, match="no report"):
        bulksms.parse_callback(get("/callbacks/bulksms"))


# --- BulkSMS EAPI push -----------------------------------------------------------------------------------

BULK = "/callbacks/bulksms"
EAPI_PUSH = (
    ("msisdn", "27831234567"),
    ("batch_id", "123456789"),
    ("status", "11"),
    ("completed_time", "26-11-22 12:00:05"),
    ("source_id", "campaign-7"),
    ("unique_id", "abc123"),
    ("referring_batch_id", "1"),
)
EAPI_DELIVERED = ("bulksms-eapi", "123456789:27831234567", "delivered", "11", "2026-11-22T10:00:05.000Z")


def eapi_push(**changes: str | None) -> tuple[tuple[str, str], ...]:
    fields = {**dict(EAPI_PUSH), **changes}
    return tuple((k, v) for k, v in fields.items() if v is not None)


def test_bulksms_eapi_push_get_ignores_unknown_parameters() -> None:
    reports = bulksms.parse_callback(get(BULK, *EAPI_PUSH))
    assert summary(reports) == [EAPI_DELIVERED]
    assert reports[0].source is Source.PUSH


def test_bulksms_eapi_push_as_form_post() -> None:
    assert summary(bulksms.parse_callback(post_form(BULK, *EAPI_PUSH))) == [EAPI_DELIVERED]


@pytest.mark.parametrize("completed_time", [None, ""], ids=["omitted", "empty"])
def test_bulksms_eapi_push_without_completed_time(completed_time: str | None) -> None:
    reports = bulksms.parse_callback(get(BULK, *eapi_push(completed_time=completed_time, status="63")))
    assert summary(reports) == [("bulksms-eapi", "123456789:27831234567", "buffered", "63", None)]


@pytest.mark.parametrize("msisdn", ["+27831234567", " 27831234567"], ids=["plus", "plus-decoded-as-space"])
def test_bulksms_eapi_message_id_drops_the_plus(msisdn: str) -> None:
    reports = bulksms.parse_callback(get(BULK, *eapi_push(msisdn=msisdn)))
    assert reports[0].message_id == "123456789:27831234567"


def test_bulksms_eapi_push_matches_the_registered_id() -> None:
    reports = bulksms.parse_callback(get(BULK, *eapi_push(msisdn="+27831234567")))
    assert reports[0].message_id == bulksms_eapi.canonical_id("123456789:+27831234567")


def test_bulksms_eapi_unlisted_code_is_kept_raw_as_unknown() -> None:
    reports = bulksms.parse_callback(get(BULK, *eapi_push(status="99")))
    assert (str(reports[0].status), reports[0].provider_status) == ("unknown", "99")


@pytest.mark.parametrize("status", ["DELIVERED", "11a", "-1", "1.0", "99999", "\u00b2"])
def test_bulksms_eapi_non_numeric_status_is_bad_input(status: str) -> None:
    with pytest.raises(BadInput, match="status"):
        bulksms.parse_callback(get(BULK, *eapi_push(status=status)))


@pytest.mark.parametrize("missing", ["msisdn", "batch_id", "status"])
def test_bulksms_eapi_missing_field_is_bad_input_naming_it(missing: str) -> None:
    with pytest.raises(BadInput, match=f"'{missing}'"):
        bulksms.parse_callback(get(BULK, *eapi_push(**{missing: None})))


@pytest.mark.parametrize("completed_time", ["26-02-30 12:00:05", "soon", "00-01-01 00:00:00 PM"])
def test_bulksms_eapi_invalid_completed_time_is_bad_input(completed_time: str) -> None:
    with pytest.raises(BadInput, match="completed_time"):
        bulksms.parse_callback(get(BULK, *eapi_push(completed_time=completed_time)))


def test_bulksms_eapi_completed_time_with_a_four_digit_year_is_read_in_south_african_time() -> None:
    """The documented form is yy-MM-dd; a report in the long form is kept rather than refused (BulkSMS
    discards a report answered 4xx)."""
    (report,) = bulksms.parse_callback(get(BULK, *eapi_push(completed_time="2026-11-22 12:00:05")))
    assert report.status_at == "2026-11-22T10:00:05.000Z"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("123456789:27831234567", "123456789:27831234567"),
        ("123456789:+27831234567", "123456789:27831234567"),
        ("123456789:+27 83 123 4567", "123456789:27831234567"),
        ("AbC123:4412345", "AbC123:4412345"),
    ],
)
def test_bulksms_eapi_canonical_id(given: str, canonical: str) -> None:
    assert bulksms_eapi.canonical_id(given) == canonical


@pytest.mark.parametrize(
    "given",
    ["27831234567", ":27831234567", "123456789:", "12-34:27831234567", "123:abc", "123:1234", "123:27831234567:9"],
)
def test_bulksms_eapi_id_not_of_the_form_batch_msisdn_is_bad_input(given: str) -> None:
    with pytest.raises(BadInput):
        bulksms_eapi.canonical_id(given)


# --- BulkSMS JSON API webhook ----------------------------------------------------------------------------


def message(number: int, status_type: str = "DELIVERED", subtype: str | None = None, **more: Any) -> dict[str, Any]:
    status_id = f"{status_type}.{subtype}" if subtype else f"{status_type}.null"
    return {
        "id": f"15839208{number:02d}",
        "type": "SENT",
        "from": "+27830000000",
        "to": f"+278312345{number:02d}",
        "body": "hello",
        "encoding": "TEXT",
        "submission": {"id": "2-00000000001234", "date": "2026-11-22T10:00:00Z"},
        "status": {"id": status_id, "type": status_type, "subtype": subtype},
        **more,
    }


def test_bulksms_webhook_array_of_one() -> None:
    reports = bulksms.parse_callback(post_json(BULK, [message(1, userSuppliedId="order-42")]))
    assert summary(reports) == [("bulksms", "1583920801", "delivered", "DELIVERED", None)]
    assert reports[0].extra == {"user_supplied_id": "order-42"}
    assert reports[0].source is Source.PUSH


def test_bulksms_webhook_array_of_ten() -> None:
    kinds = ["SENT", "DELIVERED", "UNKNOWN", "ACCEPTED", "SCHEDULED", "FAILED", "DELIVERED", "SENT", "FAILED", "FAILED"]
    subtypes = [None, None, None, None, None, "HANDSET_ERROR", None, None, "BLOCKED", "NOT_SENT"]
    payload = [message(i, k, s) for i, (k, s) in enumerate(zip(kinds, subtypes, strict=True))]
    reports = bulksms.parse_callback(post_json(BULK, payload))
    assert [r.message_id for r in reports] == [f"15839208{i:02d}" for i in range(10)]
    assert [str(r.status) for r in reports] == [
        "sent",
        "delivered",
        "unknown",
        "pending",
        "pending",
        "failed",
        "delivered",
        "sent",
        "rejected",
        "failed",
    ]
    assert reports[5].provider_status == "FAILED.HANDSET_ERROR"


def test_bulksms_webhook_probe_is_accepted_and_yields_nothing() -> None:
    assert bulksms.parse_callback(post_json(BULK, [])) == []


def test_bulksms_webhook_received_message_is_ignored() -> None:
    inbound = {**message(2), "type": "RECEIVED", "status": {"id": "RECEIVED.null", "type": "RECEIVED"}}
    reports = bulksms.parse_callback(post_json(BULK, [inbound, message(3, "SENT")]))
    assert summary(reports) == [("bulksms", "1583920803", "sent", "SENT", None)]


def test_bulksms_webhook_failed_expired_is_expired() -> None:
    reports = bulksms.parse_callback(post_json(BULK, [message(4, "FAILED", "EXPIRED")]))
    assert summary(reports) == [("bulksms", "1583920804", "expired", "FAILED.EXPIRED", None)]
    assert reports[0].final


def test_bulksms_webhook_unlisted_failed_subtype_is_still_a_failure() -> None:
    reports = bulksms.parse_callback(post_json(BULK, [message(5, "FAILED", "NEW_SUBTYPE")]))
    assert (str(reports[0].status), reports[0].provider_status) == ("failed", "FAILED.NEW_SUBTYPE")


def test_bulksms_webhook_status_time_is_used_when_given() -> None:
    item = message(6)
    item["status"]["date"] = "2026-11-22T10:01:02.345+02:00"
    assert bulksms.parse_callback(post_json(BULK, [item]))[0].status_at == "2026-11-22T08:01:02.345Z"


def test_bulksms_webhook_object_instead_of_array_is_bad_input() -> None:
    with pytest.raises(BadInput, match="array"):
        bulksms.parse_callback(post_json(BULK, message(1)))


@pytest.mark.parametrize("status", [None, "DELIVERED", {}], ids=["missing", "text", "no-type"])
def test_bulksms_webhook_message_without_status_is_bad_input(status: Any) -> None:
    item = message(1)
    if status is None:
        del item["status"]
    else:
        item["status"] = status
    with pytest.raises(BadInput, match="status"):
        bulksms.parse_callback(post_json(BULK, [message(0), item]))


@pytest.mark.parametrize("payload", [[message(1, id=None)], [message(1, id="bad id!")], ["DELIVERED"]])
def test_bulksms_webhook_message_without_usable_id_is_bad_input(payload: Any) -> None:
    with pytest.raises(BadInput):
        bulksms.parse_callback(post_json(BULK, payload))


def test_bulksms_webhook_invalid_json_is_bad_input() -> None:
    with pytest.raises(BadInput, match="JSON"):
        bulksms.parse_callback(PushRequest("POST", BULK, query=(TOKEN,), headers=JSON, body=b'[{"id": "1",'))
