"""Which dlrwatch a command talks to: an API URL given, or a stack's outputs; its region; the credentials to sign
with, and whether a request may go unsigned (only to the local stack, which checks no IAM)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError

from dlrwatch_cli.api import Client, is_loopback, region_from_url
from dlrwatch_cli.errors import CommandError

# Standard retries for the control-plane calls (DescribeStacks, the tail's queue and rule); bounded waits.
AWS_CONFIG = Config(connect_timeout=10, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})
# The instance metadata lookup, last in the credential chain, costs a second or more off EC2: a command against
# the local stack needs no credentials and does not wait for it.
METADATA_PROVIDERS = ("iam-role", "container-role")


class TargetError(CommandError):
    """The command cannot know where to send its requests, or with what credentials (exit code 1)."""


@dataclass(frozen=True)
class Target:
    api_url: str | None
    region: str | None
    event_bus: str | None
    stack: str | None

    @property
    def local(self) -> bool:
        return self.api_url is not None and is_loopback(self.api_url)


def new_session(profile: str | None) -> botocore.session.Session:
    try:
        return botocore.session.Session(profile=profile)
    except BotoCoreError as exc:
        raise TargetError(str(exc)) from None


def session_region(session: botocore.session.Session) -> str | None:
    try:
        region = session.get_config_variable("region")
    except BotoCoreError as exc:  # a --profile that does not exist
        raise TargetError(str(exc)) from None
    return str(region) if region else None


def aws_client(session: botocore.session.Session, service: str, region: str) -> Any:
    try:
        return session.create_client(service, region_name=region, config=AWS_CONFIG)
    except BotoCoreError as exc:
        raise TargetError(str(exc)) from None


def stack_outputs(session: botocore.session.Session, stack: str, region: str) -> dict[str, str]:
    """The stack's outputs by key (cloudformation:DescribeStacks)."""
    cloudformation = aws_client(session, "cloudformation", region)
    try:
        found = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise TargetError(f"cannot read stack {stack} in {region}: {exc}") from None
    if not found:
        raise TargetError(f"no stack {stack} in {region}")
    return {output["OutputKey"]: output["OutputValue"] for output in found[0].get("Outputs", [])}


def resolve(session: botocore.session.Session, *, url: str | None, stack: str | None, region: str | None) -> Target:
    """``--url`` as given, or ``--stack``'s outputs ``ApiUrl`` and ``EventBusName``. The region: ``--region``, else
    the API URL's, else the session's (AWS_REGION, AWS_DEFAULT_REGION, the profile)."""
    if stack:
        stack_region = region or session_region(session)
        if not stack_region:
            raise TargetError("no region for --stack: pass --region, or set AWS_REGION or a profile's region")
        outputs = stack_outputs(session, stack, stack_region)
        if "ApiUrl" not in outputs:
            raise TargetError(f"stack {stack} has no ApiUrl output: is it a dlrwatch stack?")
        url = outputs["ApiUrl"]
        return Target(url, region or region_from_url(url) or stack_region, outputs.get("EventBusName"), stack)
    if url is None:
        return Target(None, region or session_region(session), None, None)
    return Target(url, region or region_from_url(url) or session_region(session), None, None)


def credentials(session: botocore.session.Session, *, local: bool) -> ReadOnlyCredentials | None:
    """The session's credentials, frozen for this run; None when there are none (an error unless ``local``)."""
    if local:
        resolver = session.get_component("credential_provider")
        for name in METADATA_PROVIDERS:
            resolver.remove(name)
    try:
        found = session.get_credentials()
    except BotoCoreError as exc:
        raise TargetError(f"cannot load AWS credentials: {exc}") from None
    if found is None:
        if local:
            return None
        raise TargetError(
            "no AWS credentials found: the API takes IAM-signed requests. Set AWS_PROFILE (or pass --profile), "
            "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    frozen: ReadOnlyCredentials = found.get_frozen_credentials()
    return frozen


def api_client(session: botocore.session.Session, target: Target) -> Client:
    if target.api_url is None:
        raise TargetError("no API to call: pass --url URL or --stack NAME")
    region = target.region
    if region is None:
        if not target.local:
            raise TargetError("no region to sign for: pass --region, or set AWS_REGION or a profile's region")
        region = "us-east-1"  # the local stack checks no signature; any region signs
    return Client(target.api_url, credentials(session, local=target.local), region)
