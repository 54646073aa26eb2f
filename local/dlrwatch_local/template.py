"""template.yaml, read with CloudFormation's short tags: the one definition local tables and routes come from."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # local/dlrwatch_local/template.py -> the repository
TEMPLATE = ROOT / "template.yaml"


class CloudFormationLoader(yaml.SafeLoader):
    """Reads ``!Ref X`` as ``{"Ref": "X"}`` and ``!Sub s`` as ``{"Fn::Sub": s}``, like CloudFormation does."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{suffix}", node.start_mark)
    return {name: value}


CloudFormationLoader.add_multi_constructor("!", _tag)  # type: ignore[no-untyped-call]


@cache
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CloudFormationLoader)  # noqa: S506
    return loaded


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments for ``name``, from the ``Table`` resource's own key and index definition."""
    props = template()["Resources"]["Table"]["Properties"]
    return {
        "TableName": name,
        "BillingMode": props["BillingMode"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"],
        "StreamSpecification": {"StreamEnabled": True, **props["StreamSpecification"]},
    }


def http_api_events() -> list[tuple[str, dict[str, Any]]]:
    """Every route of the template: (the function's logical id, the properties of its ``HttpApi`` event)."""
    found = []
    for logical_id, resource in template()["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                found.append((logical_id, event["Properties"]))
    return found
