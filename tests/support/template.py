"""The tests read template.yaml through the same loader as the local stack: one definition of the table."""

from typing import Any

from dlrwatch_local.template import CloudFormationLoader, table_definition, template

__all__ = ["CloudFormationLoader", "as_list", "table_definition", "template"]


def as_list(value: Any) -> list[Any]:
    """A policy field (Action, Resource, a condition's values) as a list: IAM takes one value or a list."""
    return value if isinstance(value, list) else [value]
