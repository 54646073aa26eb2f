"""The callback function end to end over API Gateway events (events/*.json), against moto's DynamoDB."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from support.api_events import SIGNED_AT, SIGNING_KEY, TOKEN
from support.dynamo import RequestCounter
from support.lambda_context import FakeContext

from dlrwatch.providers import CALLBACKS
from dlrwatch.store import Store

EVENTS = Path(__file__).resolve().parents[2] / "events"

# event -> the items it must leave: (provider, message_id, status, provider_status, status_at)
EXPECTED: dict[str, list[tuple[str, str, str, str, str | None]]] = {
    "sevenio-legacy-get": [("sevenio", "77149843739", "delivered", "DELIVERED", "2020-01-09T14:41:30.656Z")],
    "sevenio-webhook-json": [("sevenio", "77149843740", "sent", "TRANSMITTED", "2021-08-24T06:08:00.000Z")],
    "sevenio-webhook-form": [("sevenio", "77149843741", "failed", "NOTDELIVERED", "2021-08-24T07:15:00.000Z")],
    "sevenio-webhook-get": [("sevenio", "77149843742", "buffered", "BUFFERED", "2021-08-24T08:00:00.000Z")],
    "sevenio-webhook-list": [
        ("sevenio", "77149843743", "delivered", "DELIVERED", "2026-11-22T10:01:00.000Z"),
        ("sevenio", "77149843744", "expired", "EXPIRED", "2026-11-22T10:02:00.000Z"),
    ],
    "sevenio-webhook-signed": [("sevenio", "77149843745", "rejected", "REJECTED", "2026-11-22T10:05:00.000Z")],
    "bulksms-eapi-push": [("bulksms-eapi", "123456789:447700900123", "delivered", "11", "2026-11-22T10:05:00.000Z")],
    "bulksms-eapi-push-no-time": [("bulksms-eapi", "123456789:447700900124", "buffered", "40", None)],
    "bulksms-webhook": [
        ("bulksms", "1380000001", "delivered", "DELIVERED", None),
        ("bulksms", "1380000002", "expired", "FAILED.EXPIRED", None),
    ],
    "bulksms-webhook-probe": [],
}


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def invoke(module: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = module.handler(event, FakeContext())
    return answer["statusCode"], json.loads(answer["body"])


def all_items(store: Store) -> list[dict[str, Any]]:
    return store.client.scan(TableName=store.table_name)["Items"]


def message_items(store: Store) -> list[dict[str, Any]]:
    return [i for i in all_items(store) if not i["pk"]["S"].startswith("nonce#")]


def with_query(event: dict[str, Any], query: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["rawQueryString"] = query
    return changed


def with_body(event: dict[str, Any], body: str, content_type: str = "application/json") -> dict[str, Any]:
    changed = copy.deepcopy(event)
    changed["body"] = body
    changed["isBase64Encoded"] = False
    changed["headers"]["content-type"] = content_type
    return changed


@pytest.fixture
def signing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEVENIO_SIGNING_KEY", SIGNING_KEY)


def test_every_callback_sample_event_has_an_expectation() -> None:
    callback_events = [p.stem for p in EVENTS.glob("*.json") if p.stem.split("-")[0] in CALLBACKS]
    assert sorted(callback_events) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_event_leaves_exactly_the_expected_status(
    name: str, callback: Any, store: Store, requests_sent: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "sevenio-webhook-signed":
        monkeypatch.setenv("SEVENIO_SIGNING_KEY", SIGNING_KEY)
    code, body = invoke(callback, load(name))
    assert code == 200
    assert body == {"received": len(EXPECTED[name]), "applied": len(EXPECTED[name])}
    found = sorted(
        (i["provider"], i["message_id"], i["status"], i["provider_status"], i["status_at"])
        for i in (store.get(*key[:2]) for key in EXPECTED[name])
        if i is not None
    )
    assert found == sorted(EXPECTED[name])
    assert len(message_items(store)) == len(EXPECTED[name])
    nonce_writes = 1 if name == "sevenio-webhook-signed" else 0
    assert requests_sent.writes == len(EXPECTED[name]) + nonce_writes, "one write request per report"


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n != "sevenio-webhook-signed"))
def test_a_duplicate_delivery_changes_nothing(
    name: str, callback: Any, store: Store, requests_sent: RequestCounter
) -> None:
    invoke(callback, load(name))
    before = all_items(store)
    requests_sent.reset()
    code, body = invoke(callback, load(name))
    assert (code, body["applied"]) == (200, 0)
    assert all_items(store) == before
    assert requests_sent.writes == len(EXPECTED[name])


def test_a_stale_report_changes_nothing(callback: Any, store: Store) -> None:
    invoke(callback, load("sevenio-webhook-list"))  # 77149843743 delivered at 10:01 UTC
    stale = load("sevenio-webhook-get")
    stale["rawQueryString"] = stale["rawQueryString"].replace("77149843742", "77149843743")
    code, body = invoke(callback, stale)
    assert (code, body["applied"]) == (200, 0)
    item = store.get("sevenio", "77149843743")
    assert item is not None
    assert item["status"] == "delivered"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("msg_id=1&status=DELIVERED", 401),
        ("token=&msg_id=1&status=DELIVERED", 401),
        ("token=wrong&msg_id=1&status=DELIVERED", 403),
        ("token=test-tokenX&msg_id=1&status=DELIVERED", 403),
    ],
    ids=["missing", "empty", "wrong", "longer"],
)
@pytest.mark.parametrize("route", ["sevenio-legacy-get", "bulksms-eapi-push"])
def test_a_wrong_or_missing_token_is_refused_and_writes_nothing(
    route: str, query: str, code: int, callback: Any, store: Store, requests_sent: RequestCounter
) -> None:
    status, body = invoke(callback, with_query(load(route), query))
    assert status == code
    assert "token" in body["error"]
    assert requests_sent.writes == 0
    assert all_items(store) == []


def test_an_unconfigured_token_answers_503_so_the_provider_retries(
    callback: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLBACK_TOKEN")
    status, _ = invoke(callback, load("sevenio-legacy-get"))
    assert status == 503
    assert all_items(store) == []


MALFORMED = {
    "invalid JSON": ("sevenio-webhook-json", '{"data": ', "application/json", "not valid JSON"),
    "empty data": ("sevenio-webhook-json", '{"webhook_event": "dlr", "data": {}}', "application/json", "'data'"),
    "missing msg_id": (
        "sevenio-webhook-json",
        '{"webhook_event": "dlr", "data": {"status": "DELIVERED"}}',
        "application/json",
        "msg_id",
    ),
    "missing status": ("sevenio-webhook-json", '{"data": {"msg_id": "1"}}', "application/json", "status"),
    "bad timestamp": (
        "sevenio-webhook-json",
        '{"data": {"msg_id": "1", "status": "DELIVERED", "timestamp": "soon"}}',
        "application/json",
        "timestamp",
    ),
    "bad message id": (
        "sevenio-webhook-json",
        '{"data": {"msg_id": "1#2", "status": "DELIVERED"}}',
        "application/json",
        "msg_id",
    ),
    "bulksms object": ("bulksms-webhook", '{"id": "1"}', "application/json", "JSON array"),
    "bulksms no status": ("bulksms-webhook", '[{"id": "1", "type": "SENT"}]', "application/json", "status"),
    "form without fields": ("sevenio-webhook-form", "", "application/x-www-form-urlencoded", "no report"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_gets_a_400_naming_the_problem_and_writes_nothing(
    case: str, callback: Any, store: Store, requests_sent: RequestCounter
) -> None:
    name, body, content_type, named = MALFORMED[case]
    status, answer = invoke(callback, with_body(load(name), body, content_type))
    assert status == 400
    assert named in answer["error"]
    assert requests_sent.writes == 0
    assert all_items(store) == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("token=test-token&msisdn=447700900123&batch_id=1&status=delivered", "status"),
        ("token=test-token&msisdn=447700900123&status=11", "batch_id"),
        ("token=test-token&msisdn=44x&batch_id=1&status=11", "msisdn"),
        ("token=test-token&msisdn=447700900123&batch_id=1&status=11&completed_time=yesterday", "completed_time"),
        ("token=test-token", "no report"),
    ],
)
def test_malformed_eapi_push_gets_a_400_and_writes_nothing(
    query: str, named: str, callback: Any, store: Store, requests_sent: RequestCounter
) -> None:
    status, answer = invoke(callback, with_query(load("bulksms-eapi-push"), query))
    assert status == 400
    assert named in answer["error"]
    assert requests_sent.writes == 0


def test_an_oversized_body_gets_a_413_and_writes_nothing(callback: Any, store: Store) -> None:
    status, answer = invoke(callback, with_body(load("bulksms-webhook"), "[" + " " * 70_000 + "]"))
    assert status == 413
    assert "larger" in answer["error"]
    assert all_items(store) == []


def test_an_unreachable_table_gives_503_so_the_provider_retries(callback: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    down = boto3.client(
        "dynamodb",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=2, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    monkeypatch.setattr(callback.service, "store", Store("dlrwatch-test", client=down))
    status, answer = invoke(callback, load("bulksms-webhook"))
    assert status == 503
    assert "retry" in answer["error"]


def test_a_signed_webhook_is_refused_when_unsigned_stale_tampered_or_replayed(
    callback: Any, store: Store, signing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = load("sevenio-webhook-signed")
    unsigned = copy.deepcopy(signed)
    for header in ("x-signature", "x-timestamp", "x-nonce"):
        del unsigned["headers"][header]
    assert invoke(callback, unsigned)[0] == 401
    tampered = copy.deepcopy(signed)
    tampered["body"] = tampered["body"].replace("REJECTED", "DELIVERED")
    assert invoke(callback, tampered)[0] == 403
    monkeypatch.setattr(callback.service, "clock", lambda: datetime.fromtimestamp(1795341960 + 301, tz=UTC))
    assert invoke(callback, signed)[0] == 403
    assert message_items(store) == []
    monkeypatch.setattr(callback.service, "clock", lambda: SIGNED_AT)
    assert invoke(callback, signed)[0] == 200
    status, answer = invoke(callback, signed)
    assert (status, answer["error"]) == (403, "replayed nonce")


def test_a_signed_request_whose_storage_failed_is_let_in_on_retry(
    callback: Any, store: Store, signing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_apply = store.apply

    def failing_apply(*args: Any, **kwargs: Any) -> Any:
        from dlrwatch.errors import StorageUnavailable

        raise StorageUnavailable("simulated")

    monkeypatch.setattr(store, "apply", failing_apply)
    assert invoke(callback, load("sevenio-webhook-signed"))[0] == 503
    monkeypatch.setattr(store, "apply", real_apply)
    assert invoke(callback, load("sevenio-webhook-signed"))[0] == 200
    item = store.get("sevenio", "77149843745")
    assert item is not None
    assert item["status"] == "rejected"


def test_the_form_event_is_base64_encoded_like_api_gateway_sends_it() -> None:
    event = load("sevenio-webhook-form")
    assert event["isBase64Encoded"]
    assert b"data%5Bmsg_id%5D" in base64.b64decode(event["body"])


def test_secrets_never_reach_a_log_line(
    callback: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    signing: None,
) -> None:
    callback.logger.setLevel("DEBUG")
    caplog.set_level("DEBUG")
    for name in EXPECTED:
        invoke(callback, load(name))
    invoke(callback, with_query(load("sevenio-legacy-get"), "token=wrong-guess&msg_id=1&status=DELIVERED"))
    # Each record as the function writes it to CloudWatch: the JSON line with every extra field.
    lines = [callback.logger.registered_formatter.format(record) for record in caplog.records]
    assert any('"message":"report"' in line for line in lines), "the handler logs each report at DEBUG"
    # The metric records (EMF, printed) carry the reports' outcomes at INFO.
    lines += capsys.readouterr().out.splitlines()
    assert any(json.loads(line).get("message") == "reports" for line in lines if line.startswith('{"_aws"'))
    logged = "\n".join(lines)
    assert TOKEN not in logged
    assert SIGNING_KEY not in logged
    assert "wrong-guess" not in logged


def test_each_writer_of_a_full_request_keeps_a_pooled_connection() -> None:
    # A writer beyond the store client's pool opens, and then drops, a connection for every write it makes.
    from dlrwatch.callbacks import WRITERS
    from dlrwatch.store import CALLBACK_CLIENT_CONFIG

    assert CALLBACK_CLIENT_CONFIG.max_pool_connections >= WRITERS
