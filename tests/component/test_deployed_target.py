"""The deployed-stack tier's AWS target (tests/support/deployed.py) on moto: what it reads of the stack and its
secrets, the temporary rule and queue it watches status events with, and what it sends. moto answers as AWS is
documented to; it cannot show that the tier works on AWS, only that the tier asks for the right things."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest.mock import ANY
from urllib.parse import parse_qsl

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from support.deployed import PREFIX, AwsTarget, aws_target

from dlrwatch.providers.base import PushRequest
from dlrwatch.providers.sevenio import verify_signature

STACK = "dlrwatch-staging"
BUS = f"{STACK}-status"
SECRETS_PATH = "/dlrwatch/staging"
TOKEN_VALUE = "token-from-the-secret-store"
KEY_VALUE = "signing-key-from-the-secret-store"
AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class Recorder(BaseHTTPRequestHandler):
    """Answers every request 200 with an empty JSON object, and keeps what it was sent."""

    seen: list[dict[str, Any]]

    def handle_one(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)}
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = handle_one

    def log_message(self, *_: Any) -> None:
        return None


@pytest.fixture
def api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the stack's API on loopback: its URL, and the requests it received."""
    seen: list[dict[str, Any]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def aws(boto_session: boto3.Session) -> Iterator[boto3.Session]:
    with mock_aws():
        boto_session.client("events").create_event_bus(Name=BUS)
        yield boto_session


def deploy(
    session: boto3.Session, api_url: str = "https://abc123.execute-api.eu-central-1.amazonaws.com", **params: str
) -> None:
    """A stack with the Outputs and Parameters the tier reads (moto makes stacks; its resource is a stand-in)."""
    template = {
        "Parameters": {
            "SecretsPath": {"Type": "String"},
            "SecretsStore": {"Type": "String", "Default": "ssm"},
        },
        "Resources": {"Placeholder": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "placeholder"}}},
        "Outputs": {"ApiUrl": {"Value": api_url}, "EventBusName": {"Value": BUS}},
    }
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in {"SecretsPath": SECRETS_PATH, **params}.items()]
    session.client("cloudformation").create_stack(
        StackName=STACK, TemplateBody=json.dumps(template), Parameters=parameters
    )


def put_ssm(session: boto3.Session, name: str, value: str) -> None:
    session.client("ssm").put_parameter(Name=f"{SECRETS_PATH}/{name}", Value=value, Type="SecureString")


def left_over(session: boto3.Session) -> tuple[list[str], list[str]]:
    rules = session.client("events").list_rules(EventBusName=BUS, NamePrefix=PREFIX)["Rules"]
    queues = session.client("sqs").list_queues(QueueNamePrefix=PREFIX).get("QueueUrls", [])
    return [rule["Name"] for rule in rules], queues


def status_event(message_id: str, status: str = "delivered") -> dict[str, str]:
    detail = {"provider": "sevenio", "message_id": message_id, "status": status}
    return {
        "Source": "dlrwatch",
        "DetailType": "Delivery Status Changed",
        "Detail": json.dumps(detail),
        "EventBusName": BUS,
    }


def test_the_stack_and_its_token_are_read_from_cloudformation_and_ssm(aws: boto3.Session) -> None:
    deploy(aws)
    put_ssm(aws, "callback-token", TOKEN_VALUE)
    target = aws_target(STACK, aws, env={})
    try:
        assert target.api_url == "https://abc123.execute-api.eu-central-1.amazonaws.com"
        assert target.event_bus == BUS
        assert target.signs_sevenio is False, "no sevenio-signing-key parameter: the signed webhook test is skipped"
        assert target.mask(f"?token={TOKEN_VALUE}") == "?token=***"
        assert TOKEN_VALUE not in repr(target)
    finally:
        target.close()


def test_secrets_manager_and_the_environment_are_read_too(aws: boto3.Session) -> None:
    deploy(aws, SecretsStore="secretsmanager")
    manager = aws.client("secretsmanager")
    manager.create_secret(Name=f"{SECRETS_PATH}/callback-token", SecretString=TOKEN_VALUE)
    manager.create_secret(Name=f"{SECRETS_PATH}/sevenio-signing-key", SecretString=KEY_VALUE)
    from_store = aws_target(STACK, aws, env={})
    from_env = aws_target(STACK, aws, env={"DLRWATCH_CALLBACK_TOKEN": "given", "DLRWATCH_SEVENIO_SIGNING_KEY": "key"})
    try:
        assert from_store.signs_sevenio
        assert from_store.mask(f"{TOKEN_VALUE} {KEY_VALUE}") == "*** ***"
        assert from_env.mask("given key") == "*** ***"
    finally:
        from_store.close()
        from_env.close()


def test_a_stack_without_a_token_is_named_not_guessed(aws: boto3.Session) -> None:
    deploy(aws)
    with pytest.raises(RuntimeError, match="DLRWATCH_CALLBACK_TOKEN or /dlrwatch/staging/callback-token"):
        aws_target(STACK, aws, env={})


@pytest.fixture
def target(aws: boto3.Session, api: tuple[str, list[dict[str, Any]]]) -> Iterator[AwsTarget]:
    deploy(aws, api_url=api[0])
    put_ssm(aws, "callback-token", TOKEN_VALUE)
    put_ssm(aws, "sevenio-signing-key", KEY_VALUE)
    made = aws_target(STACK, aws, env={})
    yield made
    made.close()


def test_the_watch_is_a_rule_on_the_bus_for_one_message_and_a_queue_only_that_rule_may_fill(
    target: AwsTarget, aws: boto3.Session
) -> None:
    with target.watch("sevenio", "900000000000001") as watch:
        rule = aws.client("events").describe_rule(Name=watch.name, EventBusName=BUS)
        assert re.fullmatch(f"{PREFIX}[0-9a-f]{{8}}", watch.name)
        assert json.loads(rule["EventPattern"]) == {
            "source": ["dlrwatch"],
            "detail-type": ["Delivery Status Changed"],
            "detail": {"provider": ["sevenio"], "message_id": ["900000000000001"]},
        }
        assert rule["State"] == "ENABLED"
        sqs = aws.client("sqs")
        queue_url = sqs.get_queue_url(QueueName=watch.name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy", "QueueArn"])["Attributes"]
        (statement,) = json.loads(attributes["Policy"])["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == attributes["QueueArn"]
        assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule["Arn"]}}
        targets = aws.client("events").list_targets_by_rule(Rule=watch.name, EventBusName=BUS)["Targets"]
        assert [t["Arn"] for t in targets] == [attributes["QueueArn"]]

        aws.client("events").put_events(Entries=[status_event("900000000000002"), status_event("900000000000001")])
        arrived = watch.new_events(2)
        assert [e["detail"]["message_id"] for e in arrived] == ["900000000000001"]
        assert watch.new_events(1) == [], "each event is taken off the queue once"
    assert left_over(aws) == ([], [])


def test_the_rule_and_the_queue_are_removed_when_the_wait_fails(target: AwsTarget, aws: boto3.Session) -> None:
    with pytest.raises(AssertionError, match="no event"), target.watch("sevenio", "900000000000003") as watch:
        assert watch.new_events(1), "no event"
    assert left_over(aws) == ([], [])


def test_nothing_is_left_when_the_watch_cannot_be_set_up(
    target: AwsTarget, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "PutTargets")

    monkeypatch.setattr(target.events, "put_targets", refused)
    with pytest.raises(ClientError, match="AccessDenied"), target.watch("sevenio", "900000000000004"):
        pass
    assert left_over(aws) == ([], [])

    monkeypatch.setattr(target.sqs, "delete_queue", refused)
    with pytest.raises(ClientError, match="AccessDenied") as failed, target.watch("sevenio", "900000000000004"):
        pass
    assert "could not remove queue dlrwatch-test-" in "".join(failed.value.__notes__), "what is left is named"
    assert left_over(aws)[0] == [], "the rule is removed all the same"


def test_the_poller_schedule_is_read_by_the_stack_name(target: AwsTarget, aws: boto3.Session) -> None:
    aws.client("scheduler").create_schedule(
        Name=f"{STACK}-poller",
        ScheduleExpression="rate(1 minute)",
        State="ENABLED",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": "arn:aws:lambda:eu-central-1:123456789012:function:dlrwatch-staging-PollerFunction-X",
            "RoleArn": "arn:aws:iam::123456789012:role/scheduler",
        },
    )
    assert target.poller_schedule()["State"] == "ENABLED"


def test_requests_carry_sigv4_the_token_and_seven_io_signature_and_no_log_line_shows_a_secret(
    target: AwsTarget, api: tuple[str, list[dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    _, seen = api
    caplog.set_level(logging.DEBUG)
    target.register({"provider": "sevenio", "message_id": "900000000000005"})
    target.sevenio_legacy("900000000000005", "DELIVERED", AT)
    registration, push = seen

    authorization = registration["headers"]["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-central-1/execute-api/aws4_request" in authorization
    assert push["path"].endswith(f"&token={TOKEN_VALUE}")
    path, _, query = push["path"].partition("?")
    headers = {k.lower(): v for k, v in push["headers"].items()}
    signed = PushRequest("GET", path, tuple(parse_qsl(query)), headers, url=f"https://{headers['host']}{push['path']}")
    verify_signature(signed, KEY_VALUE, float(push["headers"]["X-Timestamp"]))  # the product's verifier
    assert target.registered == [("sevenio", "900000000000005")]

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/callbacks/sevenio" in logged, "the request was logged"
    assert TOKEN_VALUE not in logged
    assert KEY_VALUE not in logged


def test_finish_pushes_a_final_status_to_each_registered_message_that_has_none(
    target: AwsTarget, api: tuple[str, list[dict[str, Any]]]
) -> None:
    _, seen = api
    target.register({"provider": "sevenio", "message_id": "900000000000006"})
    assert target.finish() == []
    read, push = seen[1:]
    assert (read["method"], read["path"]) == ("GET", "/messages/sevenio/900000000000006")
    assert json.loads(push["body"])["data"] == {"msg_id": "900000000000006", "status": "EXPIRED", "timestamp": ANY}
    assert target.registered == []
