"""The tests read template.yaml through the same loader as the local stack: one definition of the table."""

from dlrwatch_local.template import CloudFormationLoader, table_definition, template

__all__ = ["CloudFormationLoader", "table_definition", "template"]
