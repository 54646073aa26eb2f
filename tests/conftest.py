"""Fixtures shared by every tier: AWS settings that can never reach AWS, and moto-backed stores."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws
from support.dynamo import RequestCounter, create_table

from dlrwatch.store import CLIENT_CONFIG, Store

TABLE = "dlrwatch-test"


@pytest.fixture(autouse=True)
def aws_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a fixed region for every test; no test talks to a real AWS account."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name in {"SECRETS_PATH", "CALLBACK_TOKEN", "SEVENIO_SIGNING_KEY"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("TABLE_NAME", TABLE)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "dlrwatch")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "dlrwatch")


@pytest.fixture(autouse=True)
def no_metrics_left_over() -> Iterator[None]:
    """Each test starts with no metrics buffered. In Lambda a process serves one function and every invocation
    flushes its metrics; in a test process a poller run called without its handler leaves them for the next
    handler's flush to print."""
    from dlrwatch.observability import metrics

    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


@pytest.fixture(scope="session")
def boto_session() -> boto3.Session:
    """One boto3 session for the run, with fake credentials of its own. moto resets boto3's default session each
    time it starts, and a fresh session loads the service models again: a quarter second per test, loaded."""
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-central-1")


@pytest.fixture
def moto_client(boto_session: boto3.Session) -> Iterator[object]:
    with mock_aws():
        client = boto_session.client("dynamodb", config=CLIENT_CONFIG)
        create_table(client, TABLE)
        yield client


@pytest.fixture
def requests_sent(moto_client: object) -> RequestCounter:
    return RequestCounter(moto_client)


@pytest.fixture
def moto_store(moto_client: object) -> Store:
    """The store on moto, under its own name: the store suite (tests/integration) runs on it and on DynamoDB Local."""
    return Store(TABLE, retention=timedelta(days=90), client=moto_client)  # type: ignore[arg-type]


@pytest.fixture
def store(moto_store: Store) -> Store:
    return moto_store
