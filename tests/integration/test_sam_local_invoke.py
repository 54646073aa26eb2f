"""`sam local invoke` as far as it goes without Docker: the environment the SAM CLI's own code gives a function from
samconfig.toml's local_invoke settings and events/env.json (scripts/sam_local_env.py), then the function run with
exactly that environment on the event files, against DynamoDB Local. Only the container is missing: its address for
the host (host.docker.internal) becomes 127.0.0.1 here, and the handler runs in a plain process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from dlrwatch_local.dynamodb_local import FAKE_KEY, DynamoDBLocal
from dlrwatch_local.template import ROOT, table_definition
from dlrwatch_local.translate import translated

SAM_PYTHON = ROOT / ".tools" / "sam" / "bin" / "python"
LOCAL_HOSTS = {"127.0.0.1", "host.docker.internal"}
FUNCTION_DIRS = {"CallbackFunction": "callback", "MessagesFunction": "messages"}

# The handler in a process of its own, as in the container: the environment is the one SAM would give it.
INVOKE = """
import json, sys
sys.path[:0] = sys.argv[1:4]
from support.lambda_context import FakeContext
import {module} as function
print(json.dumps(function.handler(json.load(open(sys.argv[4])), FakeContext())))
"""


def sam_environment(function: str) -> dict[str, str]:
    if not SAM_PYTHON.exists():
        pytest.fail("the SAM CLI is not installed in .tools/sam: run `make build` first")
    answer = subprocess.run(  # noqa: S603 - the SAM CLI's interpreter, a script of the repository
        [str(SAM_PYTHON), str(ROOT / "scripts" / "sam_local_env.py"), function],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        check=True,
    )
    found: dict[str, str] = json.loads(answer.stdout)
    return found


@pytest.fixture(scope="module")
def environments() -> dict[str, dict[str, str]]:
    return {function: sam_environment(function) for function in FUNCTION_DIRS}


@pytest.mark.parametrize("function", sorted(FUNCTION_DIRS))
def test_a_local_invocation_reaches_no_aws_account(environments: dict[str, dict[str, str]], function: str) -> None:
    environment = environments[function]
    endpoints = {name: value for name, value in environment.items() if name.startswith("AWS_ENDPOINT_URL")}
    assert set(endpoints) >= {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"}
    for name, url in endpoints.items():
        assert urlsplit(url).hostname in LOCAL_HOSTS, (name, url)
    assert environment["SECRETS_PATH"] == ""  # secrets from the environment only, never a secret store
    assert environment["CALLBACK_TOKEN"]
    assert environment["TABLE_NAME"] == "dlrwatch-local"


def test_the_local_only_variables_are_absent_on_aws() -> None:
    cloudformation = translated()
    assert cloudformation["Conditions"]["IsSamLocal"] == {"Fn::Equals": [{"Ref": "AWS::StackName"}, "sam local"]}
    for function in FUNCTION_DIRS:
        variables = cloudformation["Resources"][function]["Properties"]["Environment"]["Variables"]
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "CALLBACK_TOKEN", "SEVENIO_SIGNING_KEY"):
            assert variables[name] == {"Fn::If": ["IsSamLocal", "", {"Ref": "AWS::NoValue"}]}, name


def invoke(function: str, event: str, environment: dict[str, str], ddb: DynamoDBLocal) -> dict[str, Any]:
    here = {
        name: value.replace("host.docker.internal:8000", urlsplit(ddb.endpoint_url).netloc)
        for name, value in environment.items()
    }
    here |= {"AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_KEY, "PATH": os.environ["PATH"]}
    paths = [str(ROOT / "layers" / "dlrwatch"), str(ROOT / "functions" / FUNCTION_DIRS[function]), str(ROOT / "tests")]
    answer = subprocess.run(  # noqa: S603 - this interpreter, the repository's handler
        [sys.executable, "-c", INVOKE.format(module=FUNCTION_DIRS[function]), *paths, str(ROOT / "events" / event)],
        capture_output=True,
        text=True,
        timeout=120,
        env=here,
        check=True,
    )
    result: dict[str, Any] = json.loads(answer.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def local_invoke_table(dynamodb_local: DynamoDBLocal) -> Iterator[str]:
    """The table events/env.json names, on the tier's DynamoDB Local."""
    name = "dlrwatch-local"
    dynamodb_local.client().create_table(**table_definition(name))
    yield name
    dynamodb_local.client().delete_table(TableName=name)


def test_the_documented_invocations_store_and_read_through_dynamodb_local(
    environments: dict[str, dict[str, str]], dynamodb_local: DynamoDBLocal, local_invoke_table: str
) -> None:
    pushed = invoke("CallbackFunction", "sevenio-legacy-get.json", environments["CallbackFunction"], dynamodb_local)
    assert pushed["statusCode"] == 200, pushed
    item = dynamodb_local.client().get_item(TableName=local_invoke_table, Key={"pk": {"S": "sevenio#77149843739"}})
    assert item["Item"]["status"]["S"] == "delivered"

    registered = invoke("MessagesFunction", "messages-register.json", environments["MessagesFunction"], dynamodb_local)
    assert registered["statusCode"] == 200, registered
    read = invoke("MessagesFunction", "messages-read.json", environments["MessagesFunction"], dynamodb_local)
    assert read["statusCode"] == 200, read
    assert json.loads(read["body"])["status"] == "delivered"  # the report pushed before the registration is kept
