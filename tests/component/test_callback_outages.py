"""Callbacks while what they stand on fails: DynamoDB or the secret store hanging, a request cut off half way.
A provider waits about 5 s and retries a 5xx: the answer must come in time, and nothing accepted may be lost."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from support.api_events import SIGNING_KEY, TOKEN
from support.dynamo import RequestCounter
from support.lambda_context import FakeContext
from support.servers import HangingServer

from dlrwatch.credentials import SecretStore
from dlrwatch.store import CALLBACK_CLIENT_CONFIG, Store

EVENTS = Path(__file__).resolve().parents[2] / "events"
PROVIDER_WAITS = 5.0  # seconds a provider waits for an answer (seven.io: 5 s)


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@pytest.fixture
def hanging_dynamodb() -> Iterator[Store]:
    with HangingServer() as server:
        client = boto3.client("dynamodb", endpoint_url=server.url, config=CALLBACK_CLIENT_CONFIG)
        yield Store("dlrwatch-test", client=client)


def timed(module: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    answer = module.handler(copy.deepcopy(event), FakeContext())
    return answer["statusCode"], json.loads(answer["body"]), time.monotonic() - started


def nonces(store: Store) -> list[str]:
    items = store.client.scan(TableName=store.table_name)["Items"]
    return [i["pk"]["S"] for i in items if i["pk"]["S"].startswith("nonce#")]


@pytest.mark.parametrize("name", ["bulksms-webhook", "sevenio-webhook-signed", "sevenio-legacy-get"])
def test_with_dynamodb_hanging_a_callback_answers_503_in_time_and_the_retry_stores_every_report(
    name: str, callback: Any, store: Store, hanging_dynamodb: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "sevenio-webhook-signed":
        monkeypatch.setenv("SEVENIO_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setattr(callback.service, "store", hanging_dynamodb)
    status, body, elapsed = timed(callback, load(name))
    assert status == 503, body
    assert "retry" in body["error"]
    assert elapsed < PROVIDER_WAITS, f"answered after {elapsed:.1f} s: the provider had given up"
    monkeypatch.setattr(callback.service, "store", store)  # DynamoDB is back; the provider retries
    status, body, _ = timed(callback, load(name))
    assert status == 200, body
    assert body["applied"] == body["received"] > 0, "every report of the failed request is stored on retry"


def test_a_signed_request_cut_off_at_its_deadline_never_leaves_its_nonce_used(
    callback: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reports' writes outlive the answer (a slow DynamoDB, or a Lambda killed at its timeout): the 503 goes
    out first, and the provider's retry, carrying the same nonce, must not be refused as a replay."""
    monkeypatch.setenv("SEVENIO_SIGNING_KEY", SIGNING_KEY)
    service = callback.service
    monkeypatch.setattr(service, "settings", dataclasses.replace(service.settings, answer_within_seconds=1.0))
    real_apply = store.apply

    def slow_apply(*args: Any, **kwargs: Any) -> Any:
        time.sleep(2.0)
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(store, "apply", slow_apply)
    status, _, _ = timed(callback, load("sevenio-webhook-signed"))
    assert status == 503
    time.sleep(2.5)  # the abandoned write has finished by now
    assert nonces(store) == [], "a request answered 503 recorded its nonce"
    monkeypatch.setattr(store, "apply", real_apply)
    status, body, _ = timed(callback, load("sevenio-webhook-signed"))
    assert status == 200, body
    assert len(nonces(store)) == 1
    status, body, _ = timed(callback, load("sevenio-webhook-signed"))
    assert (status, body["error"]) == (403, "replayed nonce"), "a replay of a stored request is still refused"


def test_with_the_secret_store_hanging_a_callback_answers_503_in_time(
    callback: Any, store: Store, monkeypatch: pytest.MonkeyPatch, requests_sent: RequestCounter
) -> None:
    monkeypatch.delenv("CALLBACK_TOKEN")
    with HangingServer() as ssm:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", ssm.url)
        monkeypatch.setattr(callback.service, "secrets", SecretStore("/dlrwatch/test").get)
        status, body, elapsed = timed(callback, load("bulksms-webhook"))
    assert status == 503, body
    assert elapsed < PROVIDER_WAITS, f"answered after {elapsed:.1f} s"
    assert requests_sent.writes == 0


def test_a_missing_optional_secret_is_asked_for_once_per_cache_period_not_per_request(
    callback: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLBACK_TOKEN")
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/dlrwatch/test/callback-token", Value=TOKEN, Type="SecureString")
    secrets = SecretStore("/dlrwatch/test")
    asked: list[str] = []
    secrets.client.meta.events.register(
        "before-send.ssm.GetParameter", lambda request, **_: asked.append(json.loads(request.body)["Name"])
    )
    monkeypatch.setattr(callback.service, "secrets", secrets.get)
    for _ in range(20):
        status, body, _ = timed(callback, load("sevenio-legacy-get"))
        assert status == 200, body
    # The token is cached by value; the signing key, which is not set, is cached as missing.
    assert sorted(asked) == ["/dlrwatch/test/callback-token", "/dlrwatch/test/sevenio-signing-key"]
