"""The DynamoDB Local tier: Amazon's own DynamoDB Local, one for the session, a fresh table per test.

Every test here is marked ``dynamodb_local``. When java or the jar is missing the tests fail, never skip:
a CI run that cannot start DynamoDB Local must not look green.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dlrwatch_local.dynamodb_local import DynamoDBLocal, DynamoDBLocalError
from support.dynamo import RequestCounter, create_table

from dlrwatch.store import CLIENT_CONFIG, Store

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

HERE = Path(__file__).resolve().parent
_tables = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.dynamodb_local)


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    launcher = DynamoDBLocal()
    try:
        launcher.start()
    except DynamoDBLocalError as failure:
        raise pytest.fail.Exception(f"the DynamoDB Local tier cannot run: {failure}", pytrace=False) from None
    try:
        yield launcher
    finally:
        launcher.stop()


@pytest.fixture
def ddb_client(dynamodb_local: DynamoDBLocal) -> DynamoDBClient:
    """A client of its own per test, so a test's request counter sees only its own requests."""
    return dynamodb_local.client(CLIENT_CONFIG)


@pytest.fixture
def table(ddb_client: DynamoDBClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A table made from template.yaml's definition, named after the test (names: 3-255 of [a-zA-Z0-9_.-])."""
    name = f"{next(_tables):04d}-{re.sub(r'[^a-zA-Z0-9_.-]+', '-', request.node.name)}"[:255]
    create_table(ddb_client, name)
    yield name
    ddb_client.delete_table(TableName=name)


@pytest.fixture
def requests_sent(ddb_client: DynamoDBClient) -> RequestCounter:
    return RequestCounter(ddb_client)


@pytest.fixture
def store(ddb_client: DynamoDBClient, table: str) -> Store:
    return Store(table, retention=timedelta(days=90), client=ddb_client)
