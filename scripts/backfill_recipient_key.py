"""One-off: give the messages registered before the recipient index their ``recipient_key``, so that the support
desk's lookup and erasure by recipient find them too.

    PYTHONPATH=layers/dlrwatch python scripts/backfill_recipient_key.py --table NAME [--endpoint-url URL] [--dry-run]
    make backfill-recipients TABLE=NAME [ENDPOINT_URL=URL] [DRY_RUN=1]

It reads the table once (a paged Scan of the few attributes it needs) and writes one conditional UpdateItem per
registered message whose recipient (or BulkSMS EAPI msisdn) is a phone number and that has no key yet. The write is
marked ``written_by = backfill``, which the stream's publisher drops: the backfill sends no status event. Its
condition keeps it from bringing back a message erased meanwhile or overwriting a key a registration wrote. It can
be stopped and run again at any time: what is done is skipped. It prints counts, never a number.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from botocore.exceptions import ClientError

from dlrwatch.recipients import recipient_key
from dlrwatch.store import CLIENT_CONFIG, WrittenBy, from_dynamo, to_dynamo

# The attributes read: what decides whether an item is written, and with what (``provider`` is a reserved word).
NAMES = {"#" + name: name for name in ("pk", "provider", "message_id", "recipient", "recipient_key", "sent_at")}
PAGE_SIZE = 1000


@dataclass
class Counts:
    scanned: int = 0
    updated: int = 0
    skipped: int = 0

    def said(self, *, dry_run: bool) -> str:
        written = f"would update {self.updated}" if dry_run else f"updated {self.updated}"
        return f"scanned {self.scanned}, {written}, skipped {self.skipped}"


def items(client: Any, table: str, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
    """Every item of ``table``, with only the attributes the backfill reads."""
    request: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": ", ".join(NAMES),
        "ExpressionAttributeNames": NAMES,
        "Limit": page_size,
    }
    while True:
        page = client.scan(**request)
        for raw in page["Items"]:
            yield from_dynamo(raw)
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def key_of(item: dict[str, Any]) -> str | None:
    """The key a registered message without one should have; None when there is nothing to write."""
    if "sent_at" not in item or "recipient_key" in item:
        return None  # a report of a message never registered, a nonce, or done already
    provider, message_id = item.get("provider"), item.get("message_id")
    if not isinstance(provider, str) or not isinstance(message_id, str):
        return None
    recipient = item.get("recipient")
    return recipient_key(provider, message_id, recipient if isinstance(recipient, str) else None)


def backfill(client: Any, table: str, *, dry_run: bool = False, page_size: int = PAGE_SIZE) -> Counts:
    counts = Counts()
    for item in items(client, table, page_size):
        counts.scanned += 1
        key = key_of(item)
        if key is None:
            counts.skipped += 1
        elif dry_run or _write(client, table, item["pk"], key):
            counts.updated += 1
        else:
            counts.skipped += 1
    return counts


def _write(client: Any, table: str, pk: str, key: str) -> bool:
    """One conditional write; False when the item is gone or has a key by now."""
    try:
        client.update_item(
            TableName=table,
            Key={"pk": {"S": pk}},
            UpdateExpression="SET recipient_key = :key, written_by = :backfill",
            ConditionExpression="attribute_exists(sent_at) AND attribute_not_exists(recipient_key)",
            ExpressionAttributeValues=to_dynamo({":key": key, ":backfill": str(WrittenBy.BACKFILL)}),
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def main(argv: list[str] | None = None, *, client: Any = None, out: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the table's name (the stack's TableName output)")
    parser.add_argument("--endpoint-url", help="another DynamoDB endpoint (DynamoDB Local), else boto3's own")
    parser.add_argument("--dry-run", action="store_true", help="count what would be written, write nothing")
    options = parser.parse_args(argv)
    if client is None:
        client = boto3.client("dynamodb", endpoint_url=options.endpoint_url, config=CLIENT_CONFIG)
    counts = backfill(client, options.table, dry_run=options.dry_run)
    print(counts.said(dry_run=options.dry_run), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
