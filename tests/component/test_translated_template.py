"""The stack as CloudFormation receives it: template.yaml packaged and put through the AWS::Serverless transform
offline (dlrwatch_local.translate, the aws-sam-translator behind the transform). What SAM generates from the short
forms (routes and their authorizers, the schedule, the stream mapping, the invoke config) is checked here, where it
exists, rather than in the SAM source. `make lint-template` runs cfn-lint on the same translation.

This is as far as a deploy can be checked without an account: CloudFormation's own validation, IAM and the services'
answers are exercised only by the deployed-stack tier (tests/deployed) against a real stack.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from dlrwatch_local.streams import filter_patterns
from dlrwatch_local.template import ROOT
from dlrwatch_local.translate import translate, translated

FUNCTIONS = {
    "CallbackFunction": "callback",
    "MessagesFunction": "messages",
    "PollerFunction": "poller",
    "PublisherFunction": "publisher",
}
IAM_ROUTES = {
    ("/messages", "post"),
    ("/messages", "get"),
    ("/messages", "delete"),
    ("/messages/{provider}/{message_id}", "get"),
}
OPEN_ROUTES = {(f"/callbacks/{p}", m) for p in ("sevenio", "bulksms") for m in ("get", "post")}


def resources(kind: str | None = None, cloudformation: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = (cloudformation or translated())["Resources"]
    return {name: r for name, r in found.items() if kind is None or r["Type"] == kind}


def the(kind: str, cloudformation: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    (found,) = resources(kind, cloudformation).items()
    return found


def routes() -> dict[tuple[str, str], dict[str, Any]]:
    paths = resources()["HttpApi"]["Properties"]["Body"]["paths"]
    return {(path, method): operation for path, methods in paths.items() for method, operation in methods.items()}


def test_only_the_messages_routes_require_sigv4_and_the_callbacks_stay_open() -> None:
    body = resources()["HttpApi"]["Properties"]["Body"]
    assert body["components"]["securitySchemes"]["AWS_IAM"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert set(routes()) == IAM_ROUTES | OPEN_ROUTES
    for route in IAM_ROUTES:
        assert routes()[route]["security"] == [{"AWS_IAM": []}], route
    for route in OPEN_ROUTES:
        assert "security" not in routes()[route], route  # the token is checked in code
    for (path, _), operation in routes().items():
        function = "MessagesFunction" if path.startswith("/messages") else "CallbackFunction"
        assert f"${{{function}.Arn}}" in operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]


def test_api_gateway_may_invoke_each_function_on_its_own_routes_only() -> None:
    granted = set()
    for permission in resources("AWS::Lambda::Permission").values():
        properties = permission["Properties"]
        assert properties["Principal"] == "apigateway.amazonaws.com"
        arn, values = properties["SourceArn"]["Fn::Sub"]
        assert values["__ApiId__"] == {"Ref": "HttpApi"}
        method, path = arn.split("${__Stage__}/", 1)[1].split("/", 1)
        function = properties["FunctionName"]["Ref"]
        granted.add((function, f"/{path}", method.lower()))
    expected = {("MessagesFunction", *route) for route in IAM_ROUTES}
    expected |= {("CallbackFunction", *route) for route in OPEN_ROUTES}
    assert granted == {(f, p.replace("{provider}", "*").replace("{message_id}", "*"), m) for f, p, m in expected}


def mapping_of(function: str) -> dict[str, Any]:
    [properties] = [
        m["Properties"]
        for m in resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function}
    ]
    return properties


def test_the_stream_mapping_filters_as_the_local_stack_does_and_keeps_what_fails() -> None:
    properties = mapping_of("PublisherFunction")
    assert properties["FunctionName"] == {"Ref": "PublisherFunction"}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    (pattern,) = filter_patterns(properties)
    assert pattern == {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {"written_by": {"S": ["report", "registration"]}}},
    }
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["PublisherFailureQueue", "Arn"]
    }
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_forwarder_reads_its_queue_reporting_each_callback_and_bounded_in_concurrency() -> None:
    properties = mapping_of("ForwarderFunction")
    assert properties["EventSourceArn"] == {"Fn::GetAtt": ["ForwardQueue", "Arn"]}
    # Each failed callback stays in the queue alone, with the delay the forwarder gave it; the others are deleted.
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BatchSize"] == 10
    assert properties["ScalingConfig"] == {"MaximumConcurrency": 10}
    queue = resources()["ForwardQueue"]["Properties"]
    timeout = resources()["ForwarderFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout, "Lambda's advice for a queue a function reads"
    assert queue["MessageRetentionPeriod"] > 24 * 3600, "outlives the retry schedule's day"
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ForwardDeadLetterQueue", "Arn"]}


def test_the_poller_runs_every_minute_once_with_no_retry_from_the_scheduler_or_lambda() -> None:
    _, schedule = the("AWS::Scheduler::Schedule")
    properties = schedule["Properties"]
    assert properties["State"] == "ENABLED"
    assert properties["ScheduleExpression"] == "rate(1 minute)"
    assert properties["Name"] == {"Fn::Sub": "${AWS::StackName}-poller"}
    assert properties["Target"]["Arn"] == {"Fn::GetAtt": ["PollerFunction", "Arn"]}
    assert properties["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    role = resources()[properties["Target"]["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert statements == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Fn::GetAtt": ["PollerFunction", "Arn"]}}
    ]
    _, config = the("AWS::Lambda::EventInvokeConfig")
    assert config["Properties"]["FunctionName"] == {"Ref": "PollerFunction"}
    assert config["Properties"]["MaximumRetryAttempts"] == 0


@pytest.mark.parametrize(("function", "short"), sorted(FUNCTIONS.items()))
def test_each_function_logs_to_a_group_the_stack_creates_first(function: str, short: str) -> None:
    properties = resources()[function]["Properties"]
    group = properties["LoggingConfig"]["LogGroup"]["Ref"]
    assert properties["LoggingConfig"]["LogFormat"] == "JSON"
    created = resources()[group]
    assert created["Type"] == "AWS::Logs::LogGroup"
    assert created["Properties"]["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{AWS::StackName}}/{short}"}
    assert created["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    # The group's name does not depend on the function, so CloudFormation creates it before the function runs.
    assert function not in json.dumps(created["Properties"])


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_no_function_is_traced(function: str) -> None:
    properties = resources()[function]["Properties"]
    assert properties.get("TracingConfig", {"Mode": "PassThrough"}) == {"Mode": "PassThrough"}
    assert "xray" not in json.dumps(resources()[f"{function}Role"]).lower()


@pytest.mark.parametrize("resource", ["Table", "PublisherFailureQueue", "AlarmTopicKey"])
def test_stateful_resources_outlive_their_stack_and_their_replacement(resource: str) -> None:
    assert resources()[resource]["DeletionPolicy"] == "Retain"
    assert resources()[resource]["UpdateReplacePolicy"] == "Retain"


def test_the_status_bus_is_archived_for_replay_for_as_long_as_the_parameter_says() -> None:
    _, archive = the("AWS::Events::Archive")
    properties = archive["Properties"]
    assert properties["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert properties["EventPattern"] == {"source": ["dlrwatch"]}
    assert properties["RetentionDays"] == {"Ref": "EventArchiveRetentionDays"}
    assert translated()["Parameters"]["EventArchiveRetentionDays"]["Default"] == 30


def layer_ids(cloudformation: dict[str, Any]) -> dict[str, str]:
    """Each layer by the start of its logical id (DependenciesLayer, DlrwatchLayer): SAM ends the id with a hash of
    the layer's content, so a new id is a new layer version published."""
    ids = resources("AWS::Lambda::LayerVersion", cloudformation)
    return {name[: name.index("Layer") + len("Layer")]: name for name in ids}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_runs_on_both_layers_dependencies_first(function: str) -> None:
    layers = resources()[function]["Properties"]["Layers"]
    ids = layer_ids(translated())
    assert layers == [{"Ref": ids["DependenciesLayer"]}, {"Ref": ids["DlrwatchLayer"]}]


def test_a_code_change_publishes_the_code_layer_only(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    for directory in ("layers", "functions"):
        shutil.copytree(ROOT / directory, copy / directory, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "template.yaml", copy / "template.yaml")
    before = layer_ids(translate(copy / "template.yaml"))
    assert before == layer_ids(translated())

    status = copy / "layers" / "dlrwatch" / "dlrwatch" / "domain" / "status.py"
    status.write_text(status.read_text() + "\n# a change of code\n")
    after_code = layer_ids(translate(copy / "template.yaml"))
    assert after_code["DependenciesLayer"] == before["DependenciesLayer"]
    assert after_code["DlrwatchLayer"] != before["DlrwatchLayer"]

    lock = copy / "layers" / "dependencies" / "requirements.txt"
    lock.write_text(lock.read_text().replace("tzdata==", "tzdata===", 1))
    assert layer_ids(translate(copy / "template.yaml"))["DependenciesLayer"] != before["DependenciesLayer"]
