"""The deployed-stack tier's target: a dlrwatch stack deployed on AWS, or `make run`'s stack on this machine.

The AWS target is chosen when ``DLRWATCH_STACK_NAME`` names a deployed stack; the region comes from
``AWS_REGION`` or ``AWS_DEFAULT_REGION``, the credentials from the default boto3 chain. These are all the AWS calls
it makes, and so all the permissions it needs:

- ``cloudformation:DescribeStacks`` on the stack (``arn:aws:cloudformation:{region}:{account}:stack/{stack}/*``):
  its Outputs ``ApiUrl`` and ``EventBusName``, its Parameters ``SecretsPath`` and ``SecretsStore``;
- ``ssm:GetParameter`` (WithDecryption) on ``{SecretsPath}/callback-token`` and ``{SecretsPath}/sevenio-signing-key``
  (``arn:aws:ssm:{region}:{account}:parameter{SecretsPath}/...``), or with ``SecretsStore=secretsmanager``
  ``secretsmanager:GetSecretValue`` on the secrets of those names (``...:secret:{SecretsPath}/callback-token-??????``);
  neither for a secret given in ``DLRWATCH_CALLBACK_TOKEN`` or ``DLRWATCH_SEVENIO_SIGNING_KEY``. (A SecureString
  under a customer managed KMS key also needs ``kms:Decrypt`` on that key; the ``aws/ssm`` key needs nothing.);
- ``execute-api:Invoke`` on the stack's ``/messages`` routes
  (``arn:aws:execute-api:{region}:{account}:{api id}/*/POST/messages`` and ``.../*/GET/messages/*``);
- ``events:PutRule``, ``events:PutTargets``, ``events:RemoveTargets``, ``events:DeleteRule`` on rules named
  ``dlrwatch-test-*`` on the stack's bus (``arn:aws:events:{region}:{account}:rule/{EventBusName}/dlrwatch-test-*``);
- ``sqs:CreateQueue``, ``sqs:SetQueueAttributes``, ``sqs:GetQueueAttributes``, ``sqs:ReceiveMessage``,
  ``sqs:DeleteMessage``, ``sqs:DeleteQueue`` on queues named ``dlrwatch-test-*``
  (``arn:aws:sqs:{region}:{account}:dlrwatch-test-*``);
- ``scheduler:GetSchedule`` on the poller's schedule
  (``arn:aws:scheduler:{region}:{account}:schedule/default/{stack}-poller``).

The callback routes need no AWS permission: they are called with the callback token, as providers call them.

Otherwise the target is the local stack (``support.local_stack``), with a callback token and a seven.io signing key
of its own, its provider URLs on a closed port, and its events file in place of the bus.

Every message id a target hands out is unique per run, and every message a test registers ends with a final status
(``Target.finish``), so that a deployed stack never polls a real provider about a made-up id. The token and the
signing key are never an argument of a call, and never appear in an error message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from support.local_stack import RunningStack, running
from support.provider_times import BERLIN, berlin, sast

STACK_VARIABLE = "DLRWATCH_STACK_NAME"
TOKEN_VARIABLE = "DLRWATCH_CALLBACK_TOKEN"
SIGNING_KEY_VARIABLE = "DLRWATCH_SEVENIO_SIGNING_KEY"
PREFIX = "dlrwatch-test-"  # the rules and queues the tier makes; the permissions above are scoped to it
TIMEOUT = (10.0, 30.0)  # connect, read: a loaded CI runner or a cold Lambda gets time, and no wait is unbounded
AWS_CONFIG = Config(connect_timeout=10, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
EVENT_SOURCE = "dlrwatch"
DETAIL_TYPE = "Delivery Status Changed"
CALLBACK_TOKEN = "<the callback token>"  # a marker: send the target's own token
RECIPIENT = "+447700900123"  # a number reserved for fiction
# Loggers that print request URLs (with the token) or response bodies (the secrets read) at DEBUG level.
LOGGERS_THAT_SEE_SECRETS = ("urllib3.connectionpool", "botocore.endpoint", "botocore.parsers")


def aws_target_wanted(env: Mapping[str, str] = os.environ) -> bool:
    return bool(env.get(STACK_VARIABLE))


class Secret:
    """A secret value whose repr and str never show it (pytest prints function arguments of a failing call)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class SecretMask(logging.Filter):
    """Rewrites any log record that holds one of the secrets, so that no log line shows it."""

    def __init__(self, *values: Secret | None) -> None:
        super().__init__()
        self.values = [v.reveal() for v in values if v is not None and v.reveal()]

    def mask(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class Unreachable(RuntimeError):
    """The target's API did not answer (the message names the route, never the token)."""


def utc_text(moment: datetime) -> str:
    """A time as dlrwatch writes it: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def unambiguous(moment: datetime) -> datetime:
    """``moment`` at whole milliseconds; three hours earlier if Berlin's clock shows it, or the ten minutes after
    it, twice (the autumn night the clocks go back), so that zone-less seven.io times name one instant each."""
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    for probe in (moment, moment + timedelta(minutes=10)):
        local = probe.astimezone(BERLIN).replace(tzinfo=None)
        if local.replace(fold=0, tzinfo=BERLIN).utcoffset() != local.replace(fold=1, tzinfo=BERLIN).utcoffset():
            return moment - timedelta(hours=3)
    return moment


def sevenio_signature(key: Secret, timestamp: str, nonce: str, method: str, url: Secret, body: bytes) -> str:
    """seven.io's webhook signature: HMAC-SHA256 over timestamp, nonce, method, URL and the body's MD5, one a line.
    The URL carries the callback token: it is passed as a Secret too."""
    digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
    message = "\n".join((timestamp, nonce, method.upper(), url.reveal(), digest))
    return hmac.new(key.reveal().encode(), message.encode(), hashlib.sha256).hexdigest()


# -- watching status events ----------------------------------------------------------------------------------------


class BusWatch:
    """A message's status events on the stack's EventBridge bus: a temporary rule matching only that message,
    targeting a temporary SQS queue that only the rule may send to. Both are removed when the block ends, whatever
    happened in it."""

    def __init__(self, events: Any, sqs: Any, bus: str, provider: str, message_id: str) -> None:
        self.events = events
        self.sqs = sqs
        self.bus = bus
        self.name = f"{PREFIX}{secrets.token_hex(4)}"
        self.pattern = {
            "source": [EVENT_SOURCE],
            "detail-type": [DETAIL_TYPE],
            "detail": {"provider": [provider], "message_id": [message_id]},
        }
        self.queue_url: str | None = None
        self.rule_arn: str | None = None
        self._asked: set[str] = set()  # what was asked for: an answer lost on the way still made it

    def policy(self, queue_arn: str, rule_arn: str) -> dict[str, Any]:
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "FromTheTestRuleOnly",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }

    def __enter__(self) -> BusWatch:
        try:
            self.create()
        except BaseException as error:
            self._remove_after(error)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._remove_after(error)

    def _remove_after(self, error: BaseException | None) -> None:
        try:
            self.remove()
        except RuntimeError as failed:
            if error is None:
                raise
            error.add_note(str(failed))  # the failure that came first stays the one reported

    def _create_queue(self) -> str:
        """The queue (CreateQueue answers the existing queue of that name and attributes: it is idempotent)."""
        url: str = self.sqs.create_queue(QueueName=self.name, Attributes={"MessageRetentionPeriod": "3600"})["QueueUrl"]
        return url

    def create(self) -> None:
        self._asked.add("queue")
        self.queue_url = self._create_queue()
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        queue_arn = attributes["Attributes"]["QueueArn"]
        self._asked.add("rule")
        self.rule_arn = self.events.put_rule(
            Name=self.name,
            EventBusName=self.bus,
            EventPattern=json.dumps(self.pattern),
            State="ENABLED",
            Description="dlrwatch deployed-stack test: one message's status events; removed by the test",
        )["RuleArn"]
        self.sqs.set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"Policy": json.dumps(self.policy(queue_arn, self.rule_arn))}
        )
        answer = self.events.put_targets(
            Rule=self.name, EventBusName=self.bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )
        if answer.get("FailedEntryCount"):
            raise RuntimeError(f"the rule {self.name} refused its queue: {answer.get('FailedEntries')}")

    def remove(self) -> None:
        """Targets, rule and queue, each tried even when an earlier one fails; raises naming what is left."""
        left: list[str] = []
        if "rule" in self._asked:
            gone = self.events.exceptions.ResourceNotFoundException
            try:
                self.events.remove_targets(Rule=self.name, EventBusName=self.bus, Ids=["queue"])
            except gone:
                pass
            except Exception as exc:
                left.append(f"the target of rule {self.name} ({exc!r})")
            try:
                self.events.delete_rule(Name=self.name, EventBusName=self.bus)
                self._asked.discard("rule")
            except gone:
                self._asked.discard("rule")
            except Exception as exc:
                left.append(f"rule {self.name} on {self.bus} ({exc!r})")
        if "queue" in self._asked:
            try:
                self.sqs.delete_queue(QueueUrl=self.queue_url or self._create_queue())
                self._asked.discard("queue")
            except Exception as exc:
                left.append(f"queue {self.name} ({exc!r})")
        if left:
            raise RuntimeError("could not remove " + "; ".join(left))

    def new_events(self, seconds: float) -> list[dict[str, Any]]:
        """The events that arrived since the last call, waiting at most ``seconds`` for the first."""
        assert self.queue_url is not None, "the watch is not set up"
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(1, min(20, int(left)))
            )
            found = []
            for message in answer.get("Messages", []):
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            if found or time.monotonic() >= deadline:
                return found


class FileWatch:
    """A message's status events in the local stack's events file: the local stack's EventBridge bus."""

    def __init__(self, stack: RunningStack, provider: str, message_id: str) -> None:
        self.stack = stack
        self.provider = provider
        self.message_id = message_id
        self.seen: set[str] = set()

    def __enter__(self) -> FileWatch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        return None

    def new_events(self, seconds: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while True:
            found = [
                event
                for event in self.stack.envelopes()
                if event["detail"].get("provider") == self.provider
                and event["detail"].get("message_id") == self.message_id
                and event["id"] not in self.seen
            ]
            self.seen.update(event["id"] for event in found)
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)


# -- the targets ---------------------------------------------------------------------------------------------------


class Target:
    """A running dlrwatch, driven as its users drive it: senders over the IAM-signed API, providers with the
    callback token (and seven.io's signature when the stack has a signing key)."""

    kind = "?"

    def __init__(self, api_url: str, token: Secret, signing_key: Secret | None, region: str) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._signing_key = signing_key
        self.region = region
        self.http = requests.Session()
        self._ids = itertools.count(1)
        self._id_base = f"9{secrets.randbelow(10**10):010d}"  # digits, as seven.io and BulkSMS ids are
        self.registered: list[tuple[str, str]] = []
        self._mask = SecretMask(token, signing_key)
        for name in LOGGERS_THAT_SEE_SECRETS:
            logging.getLogger(name).addFilter(self._mask)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.api_url})"

    def close(self) -> None:
        for name in LOGGERS_THAT_SEE_SECRETS:
            logging.getLogger(name).removeFilter(self._mask)
        self.http.close()

    @property
    def signs_sevenio(self) -> bool:
        """Whether the stack has a seven.io signing key (and so refuses every unsigned seven.io request)."""
        return self._signing_key is not None

    def message_id(self) -> str:
        """A message id no other run uses: 15 digits."""
        return f"{self._id_base}{next(self._ids):04d}"

    def mask(self, text: str) -> str:
        return self._mask.mask(text)

    def credentials(self) -> Credentials:
        raise NotImplementedError

    # -- HTTP --------------------------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
        iam: bool = False,
        token: str | None = None,
        signature: str | None = None,
    ) -> requests.Response:
        """One request to the API. ``iam`` signs it with SigV4 (service ``execute-api``) and the caller's credentials.
        ``token`` is the callback token to send: ``CALLBACK_TOKEN`` for the target's own, any other text as it is,
        None for none. ``signature`` is seven.io's: ``"valid"``, ``"bad"`` (valid, then altered) or None for none."""
        pairs = list(query)
        if token is not None:
            pairs.append(("token", self._token.reveal() if token == CALLBACK_TOKEN else token))
        encoded = urlencode(pairs)
        url = f"{self.api_url}{path}" + (f"?{encoded}" if encoded else "")
        headers = {"Content-Type": content_type} if content_type else {}
        if signature is not None:
            headers.update(self._sevenio_headers(method, Secret(url), body, bad=signature == "bad"))
        if iam:
            request = AWSRequest(method=method, url=url, data=body, headers=headers)
            SigV4Auth(self.credentials(), "execute-api", self.region).add_auth(request)
            headers = dict(request.headers.items())
        try:
            return self.http.request(
                method, url, data=body or None, headers=headers, timeout=TIMEOUT, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise Unreachable(self.mask(f"{method} {path}: {exc}")) from None

    def _sevenio_headers(self, method: str, url: Secret, body: bytes, *, bad: bool) -> dict[str, str]:
        if self._signing_key is None:
            raise RuntimeError("no seven.io signing key is known for this stack")
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        # seven.io documents the complete URL. The local API is plain HTTP and its handler sees the https URL API
        # Gateway would pass: there the path and query are signed, the form seven.io's own verifier signs.
        if not url.reveal().startswith("https://"):
            url = Secret(url.reveal()[len(self.api_url) :])
        signature = sevenio_signature(self._signing_key, timestamp, nonce, method, url, body)
        if bad:
            signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        return {"X-Signature": signature, "X-Timestamp": timestamp, "X-Nonce": nonce}

    def describe(self, answer: requests.Response) -> str:
        """An answer, for an assertion message: status and body, secrets masked."""
        return self.mask(f"{answer.status_code} {answer.text[:500]}")

    # -- the sender's API --------------------------------------------------------------------------------------

    def register(self, *messages: Mapping[str, Any], iam: bool = True) -> requests.Response:
        """``POST /messages``; every message sent is remembered, for ``finish``."""
        self.registered += [(m["provider"], m["message_id"]) for m in messages]
        body = json.dumps({"messages": list(messages)}).encode()
        return self.send("POST", "/messages", body=body, content_type="application/json", iam=iam)

    def read(self, provider: str, message_id: str, iam: bool = True) -> requests.Response:
        return self.send("GET", f"/messages/{provider}/{message_id}", iam=iam)

    def status_of(self, provider: str, message_id: str) -> dict[str, Any]:
        """The message as ``GET /messages/...`` shows it; an assertion error naming the answer unless it is a 200."""
        answer = self.read(provider, message_id)
        assert answer.status_code == 200, self.describe(answer)
        found: dict[str, Any] = answer.json()
        return found

    # -- the providers' pushes ---------------------------------------------------------------------------------

    def _signature(self, signature: str | None) -> str | None:
        """``"valid"``, ``"bad"``, ``"none"``; by default signed when the stack has a signing key (it then refuses
        every unsigned seven.io request)."""
        if signature is None:
            return "valid" if self.signs_sevenio else None
        return None if signature == "none" else signature

    def sevenio_webhook(
        self, message_id: str, raw: str, at: datetime, token: str | None = CALLBACK_TOKEN, signature: str | None = None
    ) -> requests.Response:
        """A seven.io ``dlr`` webhook, as JSON."""
        body = {
            "webhook_event": "dlr",
            "webhook_timestamp": at.astimezone(BERLIN).isoformat(timespec="seconds"),
            "data": {"msg_id": message_id, "status": raw, "timestamp": berlin(at)},
        }
        return self.send(
            "POST",
            "/callbacks/sevenio",
            body=json.dumps(body).encode(),
            content_type="application/json",
            token=token,
            signature=self._signature(signature),
        )

    def sevenio_legacy(
        self, message_id: str, raw: str, at: datetime, token: str | None = CALLBACK_TOKEN
    ) -> requests.Response:
        """seven.io's legacy callback: a GET with the report in the query."""
        query = [("msg_id", message_id), ("status", raw), ("timestamp", berlin(at))]
        return self.send("GET", "/callbacks/sevenio", query=query, token=token, signature=self._signature(None))

    def bulksms_webhook(
        self, message_id: str, kind: str, subtype: str | None = None, token: str | None = CALLBACK_TOKEN
    ) -> requests.Response:
        """A BulkSMS JSON API webhook: an array of Messages."""
        body = [
            {
                "id": message_id,
                "type": "SENT",
                "to": RECIPIENT,
                "status": {"id": f"{kind}.{subtype}", "type": kind, "subtype": subtype},
            }
        ]
        return self.send(
            "POST", "/callbacks/bulksms", body=json.dumps(body).encode(), content_type="application/json", token=token
        )

    def bulksms_eapi(
        self, message_id: str, code: str, at: datetime, token: str | None = CALLBACK_TOKEN
    ) -> requests.Response:
        """A BulkSMS EAPI push (``{batch_id}:{msisdn}``): a GET with the report in the query."""
        batch_id, _, msisdn = message_id.partition(":")
        query = [("batch_id", batch_id), ("msisdn", msisdn), ("status", code), ("completed_time", sast(at))]
        return self.send("GET", "/callbacks/bulksms", query=query, token=token)

    def push_final(self, provider: str, message_id: str) -> requests.Response:
        """An ``expired`` report: the end of a message that was never sent."""
        at = unambiguous(datetime.now(UTC))
        if provider == "sevenio":
            return self.sevenio_webhook(message_id, "EXPIRED", at)
        if provider == "bulksms":
            return self.bulksms_webhook(message_id, "FAILED", "EXPIRED")
        return self.bulksms_eapi(message_id, "53", at)

    def finish(self) -> list[str]:
        """Gives every message registered so far that has no final status one, so that the stack never polls a
        provider about it; answers what could not be finished."""
        problems = []
        registered, self.registered = self.registered, []
        for provider, message_id in dict.fromkeys(registered):
            try:
                answer = self.read(provider, message_id)
                if answer.status_code == 404 or (answer.status_code == 200 and answer.json().get("final")):
                    continue
                pushed = self.push_final(provider, message_id)
                if pushed.status_code != 200:
                    problems.append(f"{provider} {message_id}: {self.describe(pushed)}")
            except Unreachable as exc:
                problems.append(f"{provider} {message_id}: {exc}")
        return problems

    # -- what differs by target --------------------------------------------------------------------------------

    def watch(self, provider: str, message_id: str) -> BusWatch | FileWatch:
        raise NotImplementedError

    def poller_schedule(self) -> dict[str, Any] | None:
        """The poller's EventBridge Scheduler schedule; None where there is none (the local stack's timer)."""
        raise NotImplementedError


class AwsTarget(Target):
    kind = "aws"

    def __init__(
        self,
        stack_name: str,
        session: boto3.Session,
        outputs: Mapping[str, str],
        token: Secret,
        signing_key: Secret | None,
    ) -> None:
        super().__init__(outputs["ApiUrl"], token, signing_key, str(session.region_name))
        self.stack_name = stack_name
        self.session = session
        self.event_bus = outputs["EventBusName"]
        self.events = session.client("events", config=AWS_CONFIG)
        self.sqs = session.client("sqs", config=AWS_CONFIG)
        self.scheduler = session.client("scheduler", config=AWS_CONFIG)

    def __repr__(self) -> str:
        return f"AwsTarget({self.stack_name} in {self.region})"

    def credentials(self) -> Credentials:
        found = self.session.get_credentials()
        if found is None:
            raise RuntimeError("no AWS credentials: the default boto3 chain found none")
        frozen = found.get_frozen_credentials()
        return Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)

    def watch(self, provider: str, message_id: str) -> BusWatch:
        return BusWatch(self.events, self.sqs, self.event_bus, provider, message_id)

    def poller_schedule(self) -> dict[str, Any]:
        found: dict[str, Any] = self.scheduler.get_schedule(Name=f"{self.stack_name}-poller")
        return found


class LocalTarget(Target):
    kind = "local"

    def __init__(self, stack: RunningStack, token: Secret, signing_key: Secret) -> None:
        super().__init__(stack.api_url, token, signing_key, "eu-central-1")
        self.stack = stack

    def credentials(self) -> Credentials:
        return Credentials("local", "local")  # the local API does not check IAM; real credentials stay home

    def watch(self, provider: str, message_id: str) -> FileWatch:
        return FileWatch(self.stack, provider, message_id)

    def poller_schedule(self) -> None:
        return None


# -- making a target -----------------------------------------------------------------------------------------------


def stack_settings(cloudformation: Any, stack_name: str) -> dict[str, str]:
    """The stack's Outputs and Parameters, by key; an error naming what is missing."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    stack = stacks[0]
    found = {
        p["ParameterKey"]: p.get("ResolvedValue") or p.get("ParameterValue", "") for p in stack.get("Parameters", [])
    }
    found |= {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = [key for key in ("ApiUrl", "EventBusName", "SecretsPath") if not found.get(key)]
    if missing:
        raise RuntimeError(f"stack {stack_name} ({stack.get('StackStatus')}) has no {', '.join(missing)}")
    found.setdefault("SecretsStore", "ssm")
    return found


def stored_secret(session: boto3.Session, settings: Mapping[str, str], name: str) -> Secret | None:
    """``{SecretsPath}/{name}`` from the stack's secret store; None if it is not set."""
    key = f"{settings['SecretsPath'].rstrip('/')}/{name}"
    if settings.get("SecretsStore") == "secretsmanager":
        manager = session.client("secretsmanager", config=AWS_CONFIG)
        try:
            return Secret(manager.get_secret_value(SecretId=key)["SecretString"])
        except manager.exceptions.ResourceNotFoundException:
            return None
    ssm = session.client("ssm", config=AWS_CONFIG)
    try:
        return Secret(ssm.get_parameter(Name=key, WithDecryption=True)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None


def aws_target(stack_name: str, session: boto3.Session | None = None, env: Mapping[str, str] = os.environ) -> AwsTarget:
    """The deployed stack ``stack_name``, read with the caller's credentials."""
    if session is None:
        session = boto3.Session(region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None)
    if not session.region_name:
        raise RuntimeError(f"{STACK_VARIABLE} is set: set AWS_REGION or AWS_DEFAULT_REGION to the stack's region")
    settings = stack_settings(session.client("cloudformation", config=AWS_CONFIG), stack_name)
    given_token, given_key = env.get(TOKEN_VARIABLE), env.get(SIGNING_KEY_VARIABLE)
    token = Secret(given_token) if given_token else stored_secret(session, settings, "callback-token")
    if token is None:
        raise RuntimeError(f"no callback token: set {TOKEN_VARIABLE} or {settings['SecretsPath']}/callback-token")
    key = Secret(given_key) if given_key else stored_secret(session, settings, "sevenio-signing-key")
    return AwsTarget(stack_name, session, settings, token, key)


@contextmanager
def local_target(tmp_path: Path) -> Iterator[LocalTarget]:
    """`make run`'s stack, without simulators, with a token and a signing key of its own; stopped at the end."""
    token, key = Secret(secrets.token_urlsafe(24)), Secret(secrets.token_hex(24))
    closed = "http://127.0.0.1:9"  # no provider is ever polled for real
    env = {
        "SIMULATE": "0",
        "TABLE_NAME": "dlrwatch-deployed",
        "CALLBACK_TOKEN": token.reveal(),
        "SEVENIO_SIGNING_KEY": key.reveal(),
        "SECRETS_PATH": "",
        "SEVENIO_API_URL": closed,
        "BULKSMS_EAPI_URL": closed,
        "BULKSMS_API_URL": closed,
    }
    with running(tmp_path, env) as stack:
        target = LocalTarget(stack, token, key)
        try:
            yield target
        finally:
            target.close()
