"""The callback and messages functions over the sample events (events/*.json), against DynamoDB Local.

The component tier pins what each event must store, on moto; here each event runs through the same handler on
DynamoDB Local and on moto, and the two tables must end item for item alike.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from support.dynamo import RequestCounter, create_table
from support.lambda_context import FakeContext

from dlrwatch.store import CLIENT_CONFIG, DUE_INDEX, Store, from_dynamo, to_dynamo

EVENTS = Path(__file__).resolve().parents[2] / "events"
CALLBACK_EVENTS = sorted(p.stem for pattern in ("sevenio-*.json", "bulksms-*.json") for p in EVENTS.glob(pattern))
TOKEN = "test-token"
SIGNING_KEY = "test-signing-key"  # what events/sevenio-webhook-signed.json is signed with
SIGNED_AT = datetime.fromtimestamp(1795341960, tz=UTC)  # and when
NOW = datetime(2026, 11, 22, 10, 1, tzinfo=UTC)  # a minute after the sample batch was sent


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def invoke(module: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = module.handler(event, FakeContext())
    return answer["statusCode"], json.loads(answer["body"])


def items(store: Store) -> list[dict[str, Any]]:
    """Every item of the table, plain and in key order."""
    scanned = store.client.scan(TableName=store.table_name, ConsistentRead=True)["Items"]
    return sorted((from_dynamo(i) for i in scanned), key=lambda i: str(i["pk"]))


def message_items(store: Store) -> list[dict[str, Any]]:
    return [i for i in items(store) if not str(i["pk"]).startswith("nonce#")]


def due_pks(store: Store, shard: str) -> set[str]:
    answer = store.client.query(
        TableName=store.table_name,
        IndexName=DUE_INDEX,
        KeyConditionExpression="due_shard = :shard",
        ExpressionAttributeValues=to_dynamo({":shard": shard}),
    )
    return {i["pk"]["S"] for i in answer["Items"]}


def on_moto(monkeypatch: pytest.MonkeyPatch, module: Any, run: Callable[[], object]) -> list[dict[str, Any]]:
    """The items ``run`` leaves when ``module``'s store is moto's: what the component tier checks."""
    with monkeypatch.context() as patched, mock_aws():
        client = boto3.client("dynamodb", region_name="eu-central-1", config=CLIENT_CONFIG)
        create_table(client, "dlrwatch-moto")
        moto_store = Store("dlrwatch-moto", client=client)
        patched.setattr(module.service, "store", moto_store)
        run()
        return items(moto_store)


@pytest.fixture
def callback(monkeypatch: pytest.MonkeyPatch, store: Store) -> Any:
    """The deployed callback module, its store on DynamoDB Local and its clock at the signed event's time."""
    monkeypatch.setenv("CALLBACK_TOKEN", TOKEN)
    import callback as module

    monkeypatch.setattr(module.service, "store", store)
    monkeypatch.setattr(module.service, "clock", lambda: SIGNED_AT)
    return module


def signing_key_for(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a signing key set every seven.io request must be signed: set it only for the signed sample."""
    if name == "sevenio-webhook-signed":
        monkeypatch.setenv("SEVENIO_SIGNING_KEY", SIGNING_KEY)


@pytest.fixture
def messages(monkeypatch: pytest.MonkeyPatch, store: Store) -> Any:
    """The deployed messages module, its store on DynamoDB Local and its clock a minute after sending."""
    import messages as module

    monkeypatch.setattr(module.service, "store", store)
    monkeypatch.setattr(module.service, "clock", lambda: NOW)
    return module


# -- callbacks -------------------------------------------------------------------------------------------


def test_there_are_sample_events_of_both_providers() -> None:
    assert {name.split("-")[0] for name in CALLBACK_EVENTS} == {"sevenio", "bulksms"}


@pytest.mark.parametrize("name", CALLBACK_EVENTS)
def test_each_callback_event_stores_on_dynamodb_local_what_it_stores_on_moto(
    name: str, callback: Any, store: Store, requests_sent: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    signing_key_for(name, monkeypatch)
    code, body = invoke(callback, load(name))
    assert code == 200
    assert body["applied"] == body["received"] == len(message_items(store))
    assert all(i["status"] and i["prec"] for i in message_items(store))
    signed = requests_sent.calls["PutItem"]
    assert requests_sent.calls["UpdateItem"] == body["received"], "one write request per report"
    assert requests_sent.writes == body["received"] + signed
    assert items(store) == on_moto(monkeypatch, callback, lambda: invoke(callback, load(name)))


@pytest.mark.parametrize("name", CALLBACK_EVENTS)
def test_a_duplicate_callback_changes_nothing(
    name: str, callback: Any, store: Store, requests_sent: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    signing_key_for(name, monkeypatch)
    _, first = invoke(callback, load(name))
    before = items(store)
    requests_sent.reset()
    code, again = invoke(callback, load(name))
    if name == "sevenio-webhook-signed":
        assert (code, again["error"]) == (403, "replayed nonce")
        # The nonce is recorded after the reports (so a failed request never leaves it used): a replay's report
        # is a duplicate whose condition fails, then its nonce is refused. Neither changes an item.
        assert requests_sent.calls == {"UpdateItem": first["received"], "PutItem": 1}
    else:
        assert (code, again) == (200, {"received": first["received"], "applied": 0})
        assert requests_sent.calls == ({"UpdateItem": first["received"]} if first["received"] else {})
    assert items(store) == before


# -- the sender API --------------------------------------------------------------------------------------


def test_registering_the_sample_batch_makes_each_message_pending_and_due(messages: Any, store: Store) -> None:
    code, body = invoke(messages, load("messages-register"))
    assert code == 200
    assert [r["result"] for r in body["results"]] == ["registered"] * 3
    for item in message_items(store):
        assert (item["status"], item["final"], item["due_at"]) == ("pending", False, "2026-11-22T10:05:00.000Z")
        assert item["pk"] in due_pks(store, item["due_shard"])
    code, again = invoke(messages, load("messages-register"))
    assert [r["result"] for r in again["results"]] == ["already registered"] * 3


def test_registration_and_read_store_on_dynamodb_local_what_they_store_on_moto(
    messages: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def register_and_read() -> tuple[dict[str, Any], dict[str, Any]]:
        return invoke(messages, load("messages-register"))[1], invoke(messages, load("messages-read"))[1]

    answers = register_and_read()
    moto_answers: list[tuple[dict[str, Any], dict[str, Any]]] = []
    moto_items = on_moto(monkeypatch, messages, lambda: moto_answers.append(register_and_read()))
    assert items(store) == moto_items
    assert [answers] == moto_answers


def test_a_registered_message_reads_pending_then_delivered_after_its_callback(
    messages: Any, callback: Any, store: Store
) -> None:
    invoke(messages, load("messages-register"))
    code, pending = invoke(messages, load("messages-read"))
    assert code == 200
    assert (pending["provider"], pending["message_id"]) == ("sevenio", "77149843739")
    assert (pending["status"], pending["final"], pending["next_poll_at"]) == (
        "pending",
        False,
        "2026-11-22T10:05:00.000Z",
    )
    assert pending["history"] == []
    shard = next(i["due_shard"] for i in message_items(store) if i["message_id"] == "77149843739")

    assert invoke(callback, load("sevenio-legacy-get"))[0] == 200  # 77149843739 delivered
    code, delivered = invoke(messages, load("messages-read"))
    assert code == 200
    assert (delivered["status"], delivered["final"], delivered["provider_status"]) == ("delivered", True, "DELIVERED")
    assert delivered["next_poll_at"] is None
    assert [h["status"] for h in delivered["history"]] == ["delivered"]
    assert (delivered["sent_at"], delivered["recipient"]) == ("2026-11-22T10:00:00.000Z", "+491701234567")
    assert "sevenio#77149843739" not in due_pks(store, shard)


def test_reading_an_unknown_message_answers_404(messages: Any) -> None:
    event = copy.deepcopy(load("messages-read"))
    event["pathParameters"]["message_id"] = "77149843700"
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/messages/sevenio/77149843700"
    code, body = invoke(messages, event)
    assert code == 404
    assert "77149843700" in body["error"]
