"""Tables and request counting for the store tests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from support.template import table_definition


def create_table(client: Any, name: str) -> None:
    client.create_table(**table_definition(name))
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})


class RequestCounter:
    """Counts the DynamoDB operations a client sends (each attempt, retries included)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        client.meta.events.register("before-send.dynamodb", self._count)

    def _count(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        operation = target.decode() if isinstance(target, bytes) else target
        self.calls[operation.rsplit(".", 1)[-1]] += 1

    @property
    def writes(self) -> int:
        return sum(
            n
            for op, n in self.calls.items()
            if op in {"UpdateItem", "PutItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
        )

    def reset(self) -> None:
        self.calls.clear()
