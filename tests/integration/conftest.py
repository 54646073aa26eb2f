"""The DynamoDB Local tier: Amazon's own DynamoDB Local, one for the session, a fresh table per test.

Every test here is marked ``dynamodb_local``, except in suites that run on both engines (``engine``): there each
DynamoDB Local case carries the mark, and the moto cases do not. When java or the jar is missing the tests fail,
never skip: a CI run that cannot start DynamoDB Local must not look green.
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
# Tests of both engines: the DynamoDB Local case carries the mark, the moto case does not.
ENGINES = ("moto", pytest.param("dynamodb_local", marks=pytest.mark.dynamodb_local))
STORE_SUITE = HERE / "test_store.py"
_tables = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE) and not _marked_by_engine(item):
            item.add_marker(pytest.mark.dynamodb_local)


def _marked_by_engine(item: pytest.Item) -> bool:
    """A test of both engines is marked through its ``engine`` parameter (ENGINES); the store suite's one test that
    reaches no engine at all (an endpoint that refuses) needs no DynamoDB Local and carries no mark."""
    return "engine" in getattr(item, "fixturenames", ()) or item.path == STORE_SUITE


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
def dynamodb_local_store(ddb_client: DynamoDBClient, table: str) -> Store:
    return Store(table, retention=timedelta(days=90), client=ddb_client)


@pytest.fixture
def store(dynamodb_local_store: Store) -> Store:
    return dynamodb_local_store


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Which DynamoDB a test of both engines runs on: moto's, in process, or Amazon's DynamoDB Local."""
    name: str = request.param
    return name


@pytest.fixture
def engine_store(engine: str, request: pytest.FixtureRequest) -> Store:
    """The store on ``engine``: a fresh table either way (moto's own per test, or one of DynamoDB Local's)."""
    store: Store = request.getfixturevalue(f"{engine}_store")
    return store
