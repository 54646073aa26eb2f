"""What template.yaml promises: least-privilege roles, the publisher's stream source, alarms, exports, log groups."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.template import as_list, template

from dlrwatch import credentials
from dlrwatch.providers import PROVIDERS, sevenio
from dlrwatch.store import NONCE_PREFIX, WrittenBy, item_key, nonce_key

ROOT = Path(__file__).resolve().parents[2]
LAYER_CODE = ROOT / "layers" / "dlrwatch" / "dlrwatch"
TABLE_ARN = {"Fn::GetAtt": ["Table", "Arn"]}
DUE_INDEX_ARN = {"Fn::Sub": "${Table.Arn}/index/due"}
RECIPIENT_INDEX_ARN = {"Fn::Sub": "${Table.Arn}/index/recipient"}


def secrets_asked_for_in(path: Path) -> set[str]:
    """The secret names a module passes to ``secret(...)`` or ``self.secrets(...)`` as literals."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in {"secret", "secrets"} and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


# The secrets each function reads: the callback's are named in its code, the poller's are every provider's
# polling credentials.
CALLBACK_SECRETS = secrets_asked_for_in(LAYER_CODE / "callbacks.py")
POLLER_SECRETS = {name for module in PROVIDERS.values() for name in module.CREDENTIALS}


def stored_name(secret: str) -> str:
    """The name under ``SECRETS_PATH`` that the secret store reads for ``secret``, found by asking it."""
    asked: list[str] = []

    def recording(key: str) -> str:
        asked.append(key)
        return "value"

    credentials.SecretStore("/path", read=recording).get(secret)
    [key] = asked
    assert key.startswith("/path/"), key
    return key.removeprefix("/path/")


def secret_parameter(secret: str) -> dict[str, str]:
    return {
        "Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SecretsPath}/"
        + stored_name(secret)
    }


def secrets_manager_secret(secret: str) -> dict[str, str]:
    # A secret's ARN ends in "-" and six random characters after its name.
    return {
        "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretsPath}/"
        + stored_name(secret)
        + "-??????"
    }


def read_secrets(names: set[str]) -> list[tuple[str, Any]]:
    return [("ssm:GetParameter", secret_parameter(n)) for n in sorted(names)] + [
        ("secretsmanager:GetSecretValue", secrets_manager_secret(n)) for n in sorted(names)
    ]


# The partition key (dynamodb:LeadingKeys) of every item a callback writes must be present: ForAllValues alone
# would also allow a request without one.
LEADING_KEYS_PRESENT = {"Null": {"dynamodb:LeadingKeys": "false"}}
MESSAGE_ITEMS_ONLY = {
    "ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": [f"{NONCE_PREFIX}*"]},
    **LEADING_KEYS_PRESENT,
}
SEVENIO_NONCES_ONLY = {
    "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [nonce_key(sevenio.CALLBACK, "*")]},
    **LEADING_KEYS_PRESENT,
}

# What each function's code calls, and on what (and on which items): nothing more may be granted.
GRANTS: dict[str, list[tuple[Any, ...]]] = {
    # store.apply (UpdateItem) on message items only; a webhook nonce is put (PutItem) once the reports are
    # stored, and never deleted; the callback token and the seven.io signing key.
    "CallbackFunction": [
        ("dynamodb:UpdateItem", TABLE_ARN, MESSAGE_ITEMS_ONLY),
        ("dynamodb:PutItem", TABLE_ARN, SEVENIO_NONCES_ONLY),
        *read_secrets(CALLBACK_SECRETS),
    ],
    # store.register (UpdateItem), store.get (GetItem), store.by_recipient (Query on the recipient index, then
    # BatchGetItem), store.forget_recipient (BatchWriteItem deletions); the forward signing key, only to know
    # whether status callbacks are enabled.
    "MessagesFunction": [
        ("dynamodb:UpdateItem", TABLE_ARN),
        ("dynamodb:GetItem", TABLE_ARN),
        ("dynamodb:BatchGetItem", TABLE_ARN),
        ("dynamodb:Query", RECIPIENT_INDEX_ARN),
        ("dynamodb:BatchWriteItem", TABLE_ARN),
        *read_secrets({"FORWARD_SIGNING_KEY"}),
    ],
    # store.due (Query on the due index), store.apply and store.reschedule (UpdateItem), provider credentials.
    "PollerFunction": [
        ("dynamodb:Query", DUE_INDEX_ARN),
        ("dynamodb:UpdateItem", TABLE_ARN),
        *read_secrets(POLLER_SECRETS),
    ],
    # The stream read and the on-failure queue are granted by SAM from the DynamoDB event; the status callbacks
    # are queued for the forwarder.
    "PublisherFunction": [
        ("events:PutEvents", {"Fn::GetAtt": ["EventBus", "Arn"]}),
        ("sqs:SendMessage", {"Fn::GetAtt": ["ForwardQueue", "Arn"]}),
    ],
    # store.record_forward (UpdateItem) and store.forward_target (GetItem) on message items only; a retry is
    # delayed (ChangeMessageVisibility), a callback out of retries dead-lettered; the signing key. The queue's
    # read is granted by SAM from the SQS event.
    "ForwarderFunction": [
        ("dynamodb:UpdateItem", TABLE_ARN, MESSAGE_ITEMS_ONLY),
        ("dynamodb:GetItem", TABLE_ARN, MESSAGE_ITEMS_ONLY),
        ("sqs:ChangeMessageVisibility", {"Fn::GetAtt": ["ForwardQueue", "Arn"]}),
        ("sqs:SendMessage", {"Fn::GetAtt": ["ForwardDeadLetterQueue", "Arn"]}),
        *read_secrets({"FORWARD_SIGNING_KEY"}),
    ],
}
SERVICE = "dlrwatch"  # the metrics namespace
STACK = {"Ref": "AWS::StackName"}  # the service dimension: one per stack, so environments sharing an account stay apart


def resources(kind: str | None = None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = template()["Resources"]
    return {name: r for name, r in found.items() if kind is None or r["Type"] == kind}


def functions() -> dict[str, dict[str, Any]]:
    return resources("AWS::Serverless::Function")


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def statements(function: str) -> list[dict[str, Any]]:
    found = []
    for policy in functions()[function]["Properties"].get("Policies", []):
        # Inline statements only: a managed policy or SAM policy template would grant what this file cannot see.
        assert isinstance(policy, dict), f"{function}: {policy!r} is not an inline statement"
        assert set(policy) == {"Statement"}, f"{function}: {sorted(policy)} is not an inline statement"
        found += policy["Statement"]
    return found


def grants(function: str) -> set[tuple[str, str, str]]:
    """(action, resource, condition) for every action and resource a function's statements allow."""
    found = set()
    for statement in statements(function):
        assert statement["Effect"] == "Allow"
        assert not {"NotAction", "NotResource"} & statement.keys()
        for action in as_list(statement["Action"]):
            for resource in as_list(statement["Resource"]):
                found.add((action, canonical(resource), canonical(statement.get("Condition"))))
    return found


def expected_grants(function: str) -> set[tuple[str, str, str]]:
    found = set()
    for action, resource, *condition in GRANTS[function]:
        found.add((action, canonical(resource), canonical(condition[0] if condition else None)))
    return found


def like(value: str, pattern: str) -> bool:
    """IAM's StringLike: ``*`` any run of characters, ``?`` one character, case-sensitive, nothing else special."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def condition_holds(condition: dict[str, Any], context: dict[str, list[str]]) -> bool:
    """IAM's evaluation of the operators these policies use, for multivalued context keys (a missing key is [])."""
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            values, patterns = context.get(key, []), as_list(wanted)
            if operator == "Null":
                holds = (not values) == (str(wanted).lower() == "true")
            elif operator == "ForAllValues:StringLike":
                holds = all(any(like(v, p) for p in patterns) for v in values)
            elif operator == "ForAllValues:StringNotLike":
                holds = all(not any(like(v, p) for p in patterns) for v in values)
            else:
                raise AssertionError(f"operator {operator} is not evaluated here")
            if not holds:
                return False
    return True


def allowed(function: str, action: str, leading_keys: list[str]) -> bool:
    """Whether the function may call ``action`` on the table for items with these partition keys."""
    return any(
        action in as_list(s["Action"])
        and TABLE_ARN in as_list(s["Resource"])
        and condition_holds(s.get("Condition", {}), {"dynamodb:LeadingKeys": leading_keys})
        for s in statements(function)
    )


# -- IAM ----------------------------------------------------------------------------------------------


def test_every_function_has_its_grants_declared_here() -> None:
    assert set(functions()) == set(GRANTS)


@pytest.mark.parametrize("function", sorted(GRANTS))
def test_function_may_do_exactly_what_its_code_does(function: str) -> None:
    assert grants(function) == expected_grants(function)


@pytest.mark.parametrize("function", sorted(GRANTS))
def test_function_role_is_generated_from_its_statements(function: str) -> None:
    properties = functions()[function]["Properties"]
    assert "Role" not in properties
    assert "PermissionsBoundary" not in properties


def identity_statements() -> list[dict[str, Any]]:
    """Every permission statement given to a principal of this stack (resource policies such as a key's excluded)."""
    found = [s for name in functions() for s in statements(name)]
    for resource in resources().values():
        properties = resource.get("Properties", {})
        if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            found += properties["PolicyDocument"]["Statement"]
        if resource["Type"] == "AWS::IAM::Role":
            found += [s for p in properties.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    return found


def test_no_wildcard_actions_and_no_star_resources() -> None:
    for statement in identity_statements():
        assert not [a for a in as_list(statement["Action"]) if "*" in a], statement
        assert "*" not in as_list(statement["Resource"]), statement


def test_both_secret_stores_stay_readable() -> None:
    assert set(template()["Parameters"]["SecretsStore"]["AllowedValues"]) == {"ssm", "secretsmanager"}
    for function in ("CallbackFunction", "PollerFunction"):
        assert {a for a, *_ in grants(function)} >= {"ssm:GetParameter", "secretsmanager:GetSecretValue"}


def test_callback_reads_the_token_and_the_signing_key_and_no_provider_credential() -> None:
    assert sorted(CALLBACK_SECRETS) == ["CALLBACK_TOKEN", "SEVENIO_SIGNING_KEY"]
    readable = {resource for action, resource, _ in grants("CallbackFunction") if action == "ssm:GetParameter"}
    assert all(json.loads(r)["Fn::Sub"].endswith(("/callback-token", "/sevenio-signing-key")) for r in readable)
    assert len(readable) == 2


def test_poller_reads_the_provider_credentials_and_not_the_callback_secrets() -> None:
    assert {stored_name(n) for n in POLLER_SECRETS} == {
        "sevenio-api-key",
        "bulksms-username",
        "bulksms-password",
        "bulksms-token-id",
        "bulksms-token-secret",
    }
    readable = " ".join(resource for action, resource, _ in grants("PollerFunction") if "secret" in action.lower())
    assert "callback-token" not in readable
    assert "signing-key" not in readable
    assert "/*" not in readable


@pytest.mark.parametrize("function", ["CallbackFunction", "PollerFunction"])
def test_secret_grants_name_each_secret_exactly(function: str) -> None:
    for action, resource, _ in grants(function):
        if action.startswith(("ssm:", "secretsmanager:")):
            assert "*" not in json.loads(resource)["Fn::Sub"], resource


MESSAGE_KEYS = [item_key(name, "77149843739") for name in PROVIDERS] + [item_key("bulksms-eapi", "4421:447700900123")]
SEVENIO_NONCE = nonce_key(sevenio.CALLBACK, "3f2a9c0b7d1e")


def test_callback_updates_message_items_only() -> None:
    for key in MESSAGE_KEYS:
        assert allowed("CallbackFunction", "dynamodb:UpdateItem", [key]), key
    assert not allowed("CallbackFunction", "dynamodb:UpdateItem", [SEVENIO_NONCE])
    assert not allowed("CallbackFunction", "dynamodb:UpdateItem", [nonce_key("bulksms", "3f2a9c0b7d1e")])
    assert not allowed("CallbackFunction", "dynamodb:UpdateItem", [])


def test_callback_puts_seven_io_webhook_nonces_only() -> None:
    assert allowed("CallbackFunction", "dynamodb:PutItem", [SEVENIO_NONCE])
    for key in MESSAGE_KEYS:
        assert not allowed("CallbackFunction", "dynamodb:PutItem", [key]), key
    assert not allowed("CallbackFunction", "dynamodb:PutItem", [nonce_key("bulksms", "3f2a9c0b7d1e")])
    assert not allowed("CallbackFunction", "dynamodb:PutItem", [])


def test_callback_deletes_nothing_and_reads_nothing() -> None:
    for action in ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"):
        assert not allowed("CallbackFunction", action, [SEVENIO_NONCE]), action
        assert not allowed("CallbackFunction", action, [MESSAGE_KEYS[0]]), action


# -- reserved concurrency of the public callback -----------------------------------------------------------


def resolve(value: Any, parameters: dict[str, str]) -> Any:
    """Ref, Fn::If, Fn::Not and Fn::Equals as CloudFormation resolves them for the given parameter values."""
    if isinstance(value, dict) and len(value) == 1:
        [(name, argument)] = value.items()
        if name == "Ref":
            return parameters.get(argument, argument)
        if name == "Fn::Equals":
            left, right = (str(resolve(v, parameters)) for v in argument)
            return left == right
        if name == "Fn::Not":
            return not resolve(argument[0], parameters)
        if name == "Fn::If":
            condition, then, otherwise = argument
            holds = resolve(template()["Conditions"][condition], parameters)
            return resolve(then if holds else otherwise, parameters)
    return value


def callback_reserved_concurrency(value: str | None) -> Any:
    declared = template()["Parameters"]["CallbackReservedConcurrency"]
    parameters = {"CallbackReservedConcurrency": str(declared["Default"] if value is None else value)}
    return resolve(functions()["CallbackFunction"]["Properties"]["ReservedConcurrentExecutions"], parameters)


def test_callback_concurrency_is_not_reserved_by_default() -> None:
    # An account on the default concurrency quota cannot reserve any: the default must deploy everywhere.
    declared = template()["Parameters"]["CallbackReservedConcurrency"]
    assert declared["Type"] == "Number"
    assert declared["MinValue"] == 0
    assert callback_reserved_concurrency(None) == "AWS::NoValue"
    assert callback_reserved_concurrency("0") == "AWS::NoValue"


def test_callback_concurrency_is_reserved_when_asked() -> None:
    assert callback_reserved_concurrency("25") == "25"
    assert callback_reserved_concurrency("1") == "1"


# -- the publisher's stream source ---------------------------------------------------------------------


def stream_source() -> dict[str, Any]:
    events = functions()["PublisherFunction"]["Properties"]["Events"]
    [source] = [e["Properties"] for e in events.values() if e["Type"] == "DynamoDB"]
    return source


def test_publisher_reads_the_table_stream_from_its_start() -> None:
    source = stream_source()
    assert source["Stream"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["BatchSize"] == 100
    assert source["MaximumBatchingWindowInSeconds"] == 1


def test_publisher_failures_are_isolated_bounded_and_kept() -> None:
    source = stream_source()
    assert source["BisectBatchOnFunctionError"] is True
    assert source["MaximumRetryAttempts"] == 5
    assert source["MaximumRecordAgeInSeconds"] == 86400
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # Type SQS is what makes SAM grant sqs:SendMessage on that queue, and on nothing else.
    assert source["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["PublisherFailureQueue", "Arn"]},
    }


def test_publisher_writes_to_its_own_bus() -> None:
    publisher = functions()["PublisherFunction"]["Properties"]
    assert publisher["Environment"]["Variables"]["EVENT_BUS_NAME"] == {"Ref": "EventBus"}
    bus = resources()["EventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert bus["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-status"}


def test_publisher_failure_queue_is_encrypted_and_keeps_two_weeks() -> None:
    queue = resources()["PublisherFailureQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600


def matches(pattern: Any, value: Any) -> bool:
    """The part of the event-pattern syntax the filter uses: nested keys, and lists of exact string values."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and matches(p, value[k]) for k, p in pattern.items())
    assert isinstance(pattern, list), f"not a list of values: {pattern!r}"
    assert all(isinstance(v, str) for v in pattern), f"only exact values are evaluated here: {pattern!r}"
    return value in pattern


def admitted(record: dict[str, Any]) -> bool:
    filters = stream_source()["FilterCriteria"]["Filters"]
    return any(matches(json.loads(f["Pattern"]), record) for f in filters)


def stream_record(name: str, new: dict[str, Any] | None = None, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """A DynamoDB stream record as the event source mapping sees it."""
    image = new or old or {}
    data: dict[str, Any] = {
        "Keys": {"pk": image.get("pk", {"S": "sevenio#77149843739"})},
        "SequenceNumber": "4421584500000000017450439091",
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        data["NewImage"] = new
    if old is not None:
        data["OldImage"] = old
    record = {"eventID": "c4ca4238a0b9", "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": data}
    if name == "REMOVE" and new is None:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


def message(written_by: str, status: str = "delivered") -> dict[str, Any]:
    return {
        "pk": {"S": "sevenio#77149843739"},
        "provider": {"S": "sevenio"},
        "message_id": {"S": "77149843739"},
        "status": {"S": status},
        "final": {"BOOL": status == "delivered"},
        "written_by": {"S": written_by},
    }


def test_report_before_registration_invokes_the_publisher() -> None:
    assert admitted(stream_record("INSERT", new=message(WrittenBy.REPORT)))


def test_report_changing_a_status_invokes_the_publisher() -> None:
    assert admitted(stream_record("MODIFY", new=message(WrittenBy.REPORT), old=message(WrittenBy.REGISTRATION, "sent")))


def test_registration_invokes_the_publisher() -> None:
    assert admitted(stream_record("INSERT", new=message(WrittenBy.REGISTRATION, "pending")))
    assert admitted(stream_record("MODIFY", new=message(WrittenBy.REGISTRATION), old=message(WrittenBy.REPORT)))


def test_poll_reschedule_never_invokes_the_publisher() -> None:
    assert not admitted(stream_record("MODIFY", new=message(WrittenBy.SCHEDULE, "sent"), old=message(WrittenBy.REPORT)))


def test_webhook_nonce_never_invokes_the_publisher() -> None:
    nonce = {"pk": {"S": f"{NONCE_PREFIX}sevenio#3f2a9c"}, "expires_at": {"N": "1795000000"}}
    assert not admitted(stream_record("INSERT", new=nonce))
    assert not admitted(stream_record("MODIFY", new=nonce, old=nonce))


def test_ttl_expiry_never_invokes_the_publisher() -> None:
    assert not admitted(stream_record("REMOVE", old=message(WrittenBy.REPORT)))


def test_filter_decides_every_kind_of_write() -> None:
    # A new kind of write must be placed on one side of the filter on purpose.
    assert set(WrittenBy) == {
        WrittenBy.REPORT,
        WrittenBy.REGISTRATION,
        WrittenBy.SCHEDULE,
        WrittenBy.FORWARD,
        WrittenBy.BACKFILL,
    }


def test_forwarding_state_and_maintenance_writes_never_invoke_the_publisher() -> None:
    for kind in (WrittenBy.FORWARD, WrittenBy.BACKFILL):
        assert not admitted(stream_record("MODIFY", new=message(kind, "sent"), old=message(WrittenBy.REPORT)))


# -- alarms -------------------------------------------------------------------------------------------


def alarms() -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources("AWS::CloudWatch::Alarm").items()}


def dimensions(alarm: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: canonical(d["Value"]) for d in alarm.get("Dimensions", [])}


def alarm_on(namespace: str, metric: str, **dims: Any) -> dict[str, Any]:
    wanted = {k: canonical(v) for k, v in dims.items()}
    found = [
        a
        for a in alarms().values()
        if a.get("Namespace") == namespace and a.get("MetricName") == metric and dimensions(a) == wanted
    ]
    assert len(found) == 1, f"{len(found)} alarms on {namespace} {metric} {dims}"
    return found[0]


def fires_at(alarm: dict[str, Any], value: float) -> bool:
    compare = {
        "GreaterThanOrEqualToThreshold": value >= alarm["Threshold"],
        "GreaterThanThreshold": value > alarm["Threshold"],
    }
    return compare[alarm["ComparisonOperator"]]


def test_every_alarm_notifies_the_alarm_topic() -> None:
    assert alarms()
    for name, alarm in alarms().items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["OKActions"] == [{"Ref": "AlarmTopic"}], name


def test_alarm_email_subscription_only_when_an_address_is_given() -> None:
    assert template()["Parameters"]["AlarmEmail"]["Default"] == ""
    assert template()["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    [subscription] = resources("AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert subscription["Properties"]["TopicArn"] == {"Ref": "AlarmTopic"}


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    # With the AWS managed key alias/aws/sns, CloudWatch cannot publish and every notification is lost.
    topic = resources()["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = resources()["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    [grant] = [s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert set(grant["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}


def heading_anchors(markdown: str) -> set[str]:
    """The anchors a Markdown renderer gives the headings: lower case, punctuation dropped, spaces as dashes."""
    titles = [line.lstrip("#").strip().lower() for line in markdown.splitlines() if line.startswith("#")]
    return {re.sub(r"[^\w\- ]", "", title).replace(" ", "-") for title in titles}


def test_every_alarm_links_to_what_to_do_in_operations() -> None:
    anchors = heading_anchors((ROOT / "docs" / "operations.md").read_text())
    for name, alarm in alarms().items():
        links = re.findall(r"docs/operations\.md#([\w-]+)", alarm["AlarmDescription"])
        assert links, f"{name} names no section of docs/operations.md"
        assert set(links) <= anchors, f"{name}: no section {sorted(set(links) - anchors)} in docs/operations.md"


def test_callback_5xx_alarm() -> None:
    alarm = alarm_on("AWS/ApiGateway", "5xx", ApiId={"Ref": "HttpApi"})
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert fires_at(alarm, 1)
    assert not fires_at(alarm, 0)


@pytest.mark.parametrize("metric", ["ProviderAuthFailures", "ProviderConfigFaults", "StorageFailures"])
def test_any_failure_counted_by_the_code_alarms_within_5_minutes(metric: str) -> None:
    alarm = alarm_on(SERVICE, metric, service=STACK)
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Sum", 300, 1)
    assert fires_at(alarm, 1)
    assert not fires_at(alarm, 0)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_oldest_due_age_alarms_when_polling_lags_or_stops() -> None:
    alarm = alarm_on(SERVICE, "OldestDueAgeSeconds", service=STACK)
    assert (alarm["Statistic"], alarm["Period"]) == ("Maximum", 300)
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3
    assert fires_at(alarm, 901)
    assert not fires_at(alarm, 900)
    # Every run reports the age (0 when nothing is due): no data means the poller is not running.
    assert alarm["TreatMissingData"] == "breaching"


def test_publisher_alarms_on_errors_and_iterator_age() -> None:
    publisher = {"Ref": "PublisherFunction"}
    errors = alarm_on("AWS/Lambda", "Errors", FunctionName=publisher)
    assert (errors["Statistic"], errors["Period"]) == ("Sum", 300)
    assert fires_at(errors, 1)
    age = alarm_on("AWS/Lambda", "IteratorAge", FunctionName=publisher)
    assert age["Statistic"] == "Maximum"
    assert fires_at(age, 300_001)
    assert not fires_at(age, 300_000)


@pytest.mark.parametrize("function", ["CallbackFunction", "MessagesFunction", "PollerFunction"])
def test_function_errors_alarm(function: str) -> None:
    alarm = alarm_on("AWS/Lambda", "Errors", FunctionName={"Ref": function})
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
    assert fires_at(alarm, 1)


def test_every_failure_queue_has_a_depth_alarm() -> None:
    destinations = [
        event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        for function in functions().values()
        for event in function["Properties"].get("Events", {}).values()
        if "DestinationConfig" in event.get("Properties", {})
    ]
    dead_letters = [
        queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for queue in resources("AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    ]
    queues = set(resources("AWS::SQS::Queue"))
    assert destinations
    assert dead_letters == ["ForwardDeadLetterQueue"]
    # The forward queue is a work queue, not a failure queue: what fails there ends in its dead-letter queue.
    assert queues == {*destinations, *dead_letters, "ForwardQueue"}
    for queue in {*destinations, *dead_letters}:
        alarm = alarm_on(
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName={"Fn::GetAtt": [queue, "QueueName"]}
        )
        assert fires_at(alarm, 1)
        assert not fires_at(alarm, 0)


def test_custom_metric_alarms_watch_what_the_code_emits() -> None:
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == SERVICE
    assert variables["POWERTOOLS_SERVICE_NAME"] == STACK
    code = "\n".join(path.read_text() for path in LAYER_CODE.rglob("*.py"))
    custom = [a for a in alarms().values() if a["Namespace"] == SERVICE]
    assert custom
    for alarm in custom:
        assert f'"{alarm["MetricName"]}"' in code, alarm["MetricName"]
        assert dimensions(alarm) == {"service": canonical(STACK)}


# -- stream ARN for other stacks, outputs --------------------------------------------------------------


def test_stream_arn_is_published_in_ssm() -> None:
    parameter = resources()["TableStreamArnParameter"]
    assert parameter["Type"] == "AWS::SSM::Parameter"
    assert parameter["Properties"]["Type"] == "String"
    assert parameter["Properties"]["Name"] == {"Fn::Sub": "/dlrwatch/${Environment}/table-stream-arn"}
    assert parameter["Properties"]["Value"] == {"Fn::GetAtt": ["Table", "StreamArn"]}


def test_outputs_other_stacks_rely_on() -> None:
    outputs = template()["Outputs"]
    assert outputs["TableStreamArn"]["Value"] == {"Fn::GetAtt": ["Table", "StreamArn"]}
    assert outputs["TableStreamArn"]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-TableStreamArn"}
    assert outputs["EventBusName"]["Value"] == {"Ref": "EventBus"}
    assert outputs["EventBusArn"]["Value"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert outputs["PublisherFailureQueueUrl"]["Value"] == {"Ref": "PublisherFailureQueue"}


# -- logs, table, API, code ------------------------------------------------------------------------------


@pytest.mark.parametrize("function", sorted(GRANTS))
def test_function_has_a_log_group_with_retention(function: str) -> None:
    group = resources()[functions()[function]["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_table_is_protected_outside_the_default_environment() -> None:
    assert template()["Conditions"]["IsProtected"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "Environment"}, "default"]}]}
    table = resources()["Table"]["Properties"]
    assert table["DeletionProtectionEnabled"] == {"Fn::If": ["IsProtected", True, False]}
    assert table["PointInTimeRecoverySpecification"] == {
        "PointInTimeRecoveryEnabled": {"Fn::If": ["IsProtected", True, False]}
    }


def test_api_is_throttled() -> None:
    settings = resources()["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingBurstLimit"] > 0
    assert settings["ThrottlingRateLimit"] > 0


@pytest.mark.parametrize("function", sorted(GRANTS))
def test_function_handler_exists_on_disk(function: str) -> None:
    properties = functions()[function]["Properties"]
    module, name = properties["Handler"].rsplit(".", 1)
    path = ROOT / properties["CodeUri"] / f"{module}.py"
    assert path.is_file(), path
    tree = ast.parse(path.read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert name in defined, f"{path} defines no {name}"


# -- infrastructure scan ----------------------------------------------------------------------------------


def scan_skips() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, skip)
        for name, resource in resources().items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


def test_every_scan_finding_skipped_is_skipped_on_its_resource_with_a_reason() -> None:
    assert scan_skips()
    for name, skip in scan_skips():
        assert set(skip) == {"id", "comment"}, name
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip["comment"].split()) >= 12, f"{name} {skip['id']}: say why it does not apply"
    ids = [(name, skip["id"]) for name, skip in scan_skips()]
    assert len(ids) == len(set(ids))


def test_the_scan_suppresses_nothing_globally() -> None:
    recipe = [line for line in (ROOT / "Makefile").read_text().splitlines() if "bin/checkov " in line]
    assert len(recipe) == 1
    for flag in ("--skip-check", "--soft-fail", "--baseline", "--config-file", "--check "):
        assert flag not in recipe[0], flag
    assert "--skip-download" in recipe[0]  # offline: nothing is fetched, nothing is uploaded
    assert not [p.name for p in ROOT.iterdir() if p.name.startswith((".checkov", "checkov"))]


# -- dashboard -----------------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    """The dashboard body with its ${...} references checked and replaced by placeholders."""
    [resource] = resources("AWS::CloudWatch::Dashboard").values()
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(body, str)
    for reference in re.findall(r"\$\{([^}!]+)\}", body):
        assert reference.startswith("AWS::") or reference.split(".")[0] in resources(), reference
    loaded: dict[str, Any] = json.loads(re.sub(r"\$\{[^}!]+\}", "placeholder", body))
    return loaded


def test_dashboard_body_is_valid_json_with_a_region_on_every_metric_widget() -> None:
    widgets = dashboard()["widgets"]
    assert widgets
    for widget in widgets:
        assert widget["type"] in {"metric", "text"}
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == "placeholder"
            assert widget["properties"]["metrics"]


def test_dashboard_shows_what_operators_read() -> None:
    text = json.dumps(dashboard())
    for metric in (
        "Reports",
        "StatusChanges",
        "FinalStatuses",
        "TimeToFinalSeconds",
        "DueMessages",
        "OldestDueAgeSeconds",
        "ProviderErrors",
        "ProviderAuthFailures",
        "ProviderConfigFaults",
    ):
        assert metric in text, metric
    for api_metric in ("Count", "4xx", "5xx", "Latency"):
        assert f'["AWS/ApiGateway", "{api_metric}", "ApiId"' in text, api_metric
    assert "'p50'" in text
    assert "'p95'" in text


def test_dashboard_computes_the_share_of_finals_learned_by_polling() -> None:
    metrics = [m for w in dashboard()["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]]
    expressions = {m[0]["id"]: m[0]["expression"] for m in metrics if isinstance(m[0], dict)}
    assert 'MetricName="FinalStatuses" source="poll"' in expressions["poll"]
    assert 'MetricName="FinalStatuses" source="push"' in expressions["push"]
    assert re.search(r"poll.*/.*push.*\+.*poll", expressions["share"])
    notes = [w["properties"]["markdown"] for w in dashboard()["widgets"] if w["type"] == "text"]
    assert any("misconfigured or failing" in note for note in notes)


def test_the_dashboard_reads_only_this_stacks_metrics() -> None:
    """Every custom metric the dashboard shows is filtered to this stack's service, so environments sharing an
    account each see their own."""
    [resource] = resources("AWS::CloudWatch::Dashboard").values()
    body = resource["Properties"]["DashboardBody"]["Fn::Sub"]
    searches = re.findall(r"SEARCH\('(\{dlrwatch[^']*)'", body)
    insights = re.findall(r"FROM SCHEMA\(dlrwatch[^\"]*", body)
    plain = re.findall(r'\["dlrwatch", "\w+", "service", "([^"]+)"', body)
    assert searches
    assert insights
    assert plain
    assert all('service=\\"${AWS::StackName}\\"' in query for query in searches), searches
    assert all("WHERE service = '${AWS::StackName}'" in query for query in insights), insights
    assert set(plain) == {"${AWS::StackName}"}
