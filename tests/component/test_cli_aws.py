"""`dlrwatch --stack NAME` on moto: the stack's outputs found with DescribeStacks (a stack made in moto's
CloudFormation, not a stub), and `tail` through a temporary queue, policy and rule on the stack's bus that are
gone afterwards however the tail ended: Ctrl-C, SIGTERM or a failing AWS call."""

from __future__ import annotations

import io
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from dlrwatch_cli.main import main
from dlrwatch_cli.target import new_session, resolve
from moto import mock_aws

STACK = "dlrwatch-cli-test"
BUS = f"{STACK}-status"
API_URL = "https://abc123defg.execute-api.eu-central-1.amazonaws.com"


def stack_template(api_url: str) -> str:
    return json.dumps(
        {
            "Resources": {"EventBus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": BUS}}},
            "Outputs": {
                "ApiUrl": {"Value": api_url},
                # moto renders !Ref of a bus as its object: the name, as the real template's Ref gives it
                "EventBusName": {"Value": BUS},
            },
        }
    )


@pytest.fixture
def aws(boto_session: boto3.Session) -> Iterator[boto3.Session]:
    """moto, with a dlrwatch-like stack whose bus exists."""
    with mock_aws():
        boto_session.client("cloudformation").create_stack(StackName=STACK, TemplateBody=stack_template(API_URL))
        yield boto_session


def event(provider: str, message_id: str, source: str = "dlrwatch") -> dict[str, Any]:
    detail = {"provider": provider, "message_id": message_id, "status": "delivered", "final": True,
              "previous_status": "sent", "source": "push", "changed_at": "2026-11-22T10:00:02.000Z"}  # fmt: skip
    return {
        "Source": source,
        "DetailType": "Delivery Status Changed",
        "Detail": json.dumps(detail),
        "EventBusName": BUS,
    }


class Stream(io.StringIO):
    """An output stream that acts once a line holding ``text`` is written: what an operator does on seeing it."""

    def __init__(self, text: str, act: Callable[[], None]) -> None:
        super().__init__()
        self.text = text
        self.act = act

    def write(self, s: str) -> int:
        written = super().write(s)
        if s.endswith("\n") and self.text in self.getvalue().splitlines()[-1]:
            self.act()
        return written


def left_behind(session: boto3.Session) -> tuple[list[str], list[str]]:
    queues = session.client("sqs").list_queues().get("QueueUrls", [])
    rules = [rule["Name"] for rule in session.client("events").list_rules(EventBusName=BUS)["Rules"]]
    return queues, rules


def test_stack_outputs_give_the_api_url_its_region_and_the_bus(aws: boto3.Session) -> None:
    target = resolve(new_session(None), url=None, stack=STACK, region=None)
    assert (target.api_url, target.region, target.event_bus, target.stack) == (API_URL, "eu-central-1", BUS, STACK)


def test_an_unknown_stack_is_an_error_naming_it(aws: boto3.Session) -> None:
    err = io.StringIO()
    assert main(["--stack", "no-such-stack", "status", "sevenio", "1"], out=io.StringIO(), err=err) == 1
    assert "no-such-stack" in err.getvalue()


def test_tail_prints_the_bus_s_dlrwatch_events_and_removes_queue_rule_and_target_on_ctrl_c(aws: boto3.Session) -> None:
    events, sqs = aws.client("events"), aws.client("sqs")
    seen: dict[str, Any] = {}

    def publish() -> None:
        # what the tail made, while it runs: a queue only the rule may send to, the rule, its target
        (queue_url,) = sqs.list_queues()["QueueUrls"]
        (rule,) = events.list_rules(EventBusName=BUS)["Rules"]
        seen["pattern"] = json.loads(rule["EventPattern"])
        seen["targets"] = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=BUS)["Targets"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["Policy", "QueueArn"])["Attributes"]
        seen["queue_arn"] = attributes["QueueArn"]
        seen["policy"] = json.loads(attributes["Policy"])["Statement"][0]
        seen["rule_arn"] = rule["Arn"]
        events.put_events(Entries=[event("bulksms", "9"), event("sevenio", "77149843739"), event("other", "1", "x")])

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    out = Stream("77149843739", ctrl_c)
    err = Stream("following status events", publish)
    code = main(["--stack", STACK, "tail", "--provider", "sevenio"], out=out, err=err)

    assert code == 0
    assert out.getvalue() == "2026-11-22T10:00:02.000Z  sevenio  77149843739  sent -> delivered (final)  push\n"
    assert seen["pattern"] == {"source": ["dlrwatch"]}
    assert [target["Arn"] for target in seen["targets"]] == [seen["queue_arn"]]
    assert seen["policy"]["Principal"] == {"Service": "events.amazonaws.com"}
    assert seen["policy"]["Condition"] == {"ArnEquals": {"aws:SourceArn": seen["rule_arn"]}}
    said = err.getvalue()
    for made in ("created queue dlrwatch-tail-", "created rule dlrwatch-tail-", "created target"):
        assert made in said
    for removed in ("removed target", "removed rule", "removed queue"):
        assert removed in said
    assert left_behind(aws) == ([], [])


def test_tail_json_prints_each_event_as_one_json_line_and_sigterm_cleans_up(aws: boto3.Session) -> None:
    def publish() -> None:
        aws.client("events").put_events(Entries=[event("sevenio", "1"), event("sevenio", "2")])

    def sigterm() -> None:
        if out.getvalue().count("\n") == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    out = Stream("", sigterm)
    err = Stream("following status events", publish)
    code = main(["--stack", STACK, "--json", "tail"], out=out, err=err)

    assert code == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["source"], e["detail"]["message_id"]) for e in lines] == [("dlrwatch", "1"), ("dlrwatch", "2")]
    assert left_behind(aws) == ([], [])
    assert signal.getsignal(signal.SIGTERM) is before


def test_tail_removes_what_it_made_when_an_aws_call_fails(aws: boto3.Session) -> None:
    sqs = aws.client("sqs")

    def pull_the_queue_away() -> None:
        (queue_url,) = sqs.list_queues()["QueueUrls"]
        sqs.delete_queue(QueueUrl=queue_url)

    err = Stream("following status events", pull_the_queue_away)
    code = main(["--stack", STACK, "tail"], out=io.StringIO(), err=err)

    assert code == 1
    said = err.getvalue()
    assert "removed target" in said
    assert "removed rule" in said
    assert "dlrwatch: error" in said.splitlines()[-1]
    assert left_behind(aws) == ([], [])
