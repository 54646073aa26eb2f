"""The recipient index: what it costs per message on Amazon's DynamoDB Local, the lookup's paging on both engines,
and the one-off backfill of messages registered before it (on both engines, and through ``make`` on DynamoDB Local).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from dlrwatch_local.dynamodb_local import DynamoDBLocal

from dlrwatch.config import Settings
from dlrwatch.domain.report import Report
from dlrwatch.domain.status import Status
from dlrwatch.domain.times import iso
from dlrwatch.messages import MessageService
from dlrwatch.store import RECIPIENT_INDEX, NextPoll, Store, WrittenBy, due_shard, item_key, to_dynamo

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "backfill_recipient_key.py"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SENT_AT = NOW - timedelta(hours=1)
NUMBER = "+491701234567"


def register(store: Store, message_id: str, recipient: str | None, sent_at: datetime = SENT_AT) -> None:
    """A registration as the API makes it: the recipient key beside the recipient when it is a number."""
    key = None if recipient is None else NUMBER if recipient.replace(" ", "") == NUMBER else None
    first = NextPoll(iso(sent_at + timedelta(minutes=5)), 0)
    shard = due_shard("sevenio", message_id, 8)
    store.register("sevenio", message_id, sent_at, recipient, first, shard, NOW, recipient_key=key)


# -- what the index costs --------------------------------------------------------------------------------


class CapacityLog:
    """Asks DynamoDB, through the client's own event hooks (the store is left as it is), for the capacity each
    UpdateItem consumed on each index, and keeps the answers."""

    def __init__(self, client: Any) -> None:
        self.answers: list[dict[str, Any]] = []
        client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", self._ask)
        client.meta.events.register("after-call.dynamodb.UpdateItem", self._keep)

    @staticmethod
    def _ask(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "INDEXES"

    def _keep(self, parsed: dict[str, Any], **_: Any) -> None:
        self.answers.append(parsed.get("ConsumedCapacity") or {})

    def on_index(self, index: str) -> list[float]:
        """The write units each UpdateItem so far consumed on ``index`` (0 when the answer does not name it)."""
        return [
            float((answer.get("GlobalSecondaryIndexes") or {}).get(index, {}).get("CapacityUnits", 0))
            for answer in self.answers
        ]

    def clear(self) -> None:
        self.answers.clear()


# A message's reports, each (status, raw status, minutes after sending).
REPORTS = [(Status.SENT, "TRANSMITTED", 1), (Status.BUFFERED, "BUFFERED", 2), (Status.DELIVERED, "DELIVERED", 3)]


def life_of(store: Store, capacity: CapacityLog, message_id: str, recipient: str | None) -> tuple[float, list[float]]:
    """The recipient index's write units for a message's registration, and for each of its three reports."""
    capacity.clear()
    register(store, message_id, recipient)
    registration = capacity.on_index(RECIPIENT_INDEX)
    assert len(registration) == 1, "a registration is one UpdateItem"
    capacity.clear()
    for status, raw, minutes in REPORTS:
        store.apply(Report("sevenio", message_id, status, raw, SENT_AT + timedelta(minutes=minutes)), NOW)
    reports = capacity.on_index(RECIPIENT_INDEX)
    assert len(reports) == len(REPORTS), "each report is one UpdateItem"
    return registration[0], reports


def test_the_recipient_index_is_written_once_at_registration_and_never_by_a_report(
    dynamodb_local_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    store = dynamodb_local_store
    capacity = CapacityLog(store.client)
    before = life_of(store, capacity, "1001", None)  # no recipient: an item without the index's key
    after = life_of(store, capacity, "1002", NUMBER)
    with capsys.disabled():
        print(
            f"\nrecipient index write units per message: before (no recipient_key): registration {before[0]:g}, "
            f"reports {'/'.join(f'{u:g}' for u in before[1])}; after (recipient_key): registration {after[0]:g}, "
            f"reports {'/'.join(f'{u:g}' for u in after[1])}"
        )
    assert before == (0.0, [0.0, 0.0, 0.0])
    assert after == (1.0, [0.0, 0.0, 0.0])
    # The capacity was asked for and answered: the due index, which the final report leaves, shows its write.
    assert capacity.on_index("due")[-1] > 0


# -- the lookup on both engines --------------------------------------------------------------------------


@pytest.fixture
def store(engine_store: Store) -> Store:
    return engine_store


def test_pages_of_a_lookup_list_every_message_once_newest_first(store: Store) -> None:
    """Five messages, three sent at the same moment: the index orders them by sent_at alone, and a page that ends
    among equal sent_at must still resume exactly after its last message."""
    moments = [SENT_AT, SENT_AT + timedelta(minutes=10), *[SENT_AT + timedelta(minutes=20)] * 3]
    for i, moment in enumerate(moments):
        register(store, f"300{i}", NUMBER, moment)
    register(store, "3999", "+491701234568")
    service = MessageService(store, Settings(table_name=store.table_name), lambda: NOW)
    seen: list[str] = []
    query = {"recipient": NUMBER, "limit": "2"}
    while True:
        page = service.look_up(query)
        seen += [m["message_id"] for m in page["messages"]]
        if page["next"] is None:
            break
        query = {"recipient": NUMBER, "limit": "2", "next": page["next"]}
    assert sorted(seen) == [f"300{i}" for i in range(5)]
    assert seen[3:] == ["3001", "3000"]


# -- the backfill ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("backfill_recipient_key", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def older_messages(store: Store) -> None:
    """A table as the index found it: messages registered before it (no recipient_key), one registered after it,
    one with a recipient that is no number, an EAPI message known by its id, a report of an unregistered message."""
    for message_id, recipient in [("4001", NUMBER), ("4002", "0049 170 1234567"), ("4003", "Max"), ("4004", None)]:
        register(store, message_id, recipient)
        store.client.update_item(
            TableName=store.table_name,
            Key={"pk": {"S": item_key("sevenio", message_id)}},
            UpdateExpression="REMOVE recipient_key",
        )
    register(store, "4005", NUMBER)  # registered after the index: keyed already
    store.register(
        "bulksms-eapi", f"77:{NUMBER[1:]}", SENT_AT, None, NextPoll(iso(NOW), 0), "0", NOW
    )  # an EAPI message before the index: no recipient, the msisdn in its id
    store.apply(Report("sevenio", "4006", Status.DELIVERED, "DELIVERED", NOW), NOW)  # never registered


def keyed(store: Store) -> dict[str, Any]:
    """Each item's recipient_key (None: none), by pk."""
    items = store.client.scan(TableName=store.table_name)["Items"]
    return {i["pk"]["S"]: i.get("recipient_key", {}).get("S") for i in items}


def test_the_backfill_keys_exactly_the_older_messages_that_have_a_number(
    store: Store, script: ModuleType, older_messages: None
) -> None:
    out = StringIO()
    assert script.main(["--table", store.table_name], client=store.client, out=out) == 0
    assert out.getvalue() == "scanned 7, updated 3, skipped 4\n"
    assert keyed(store) == {
        "sevenio#4001": NUMBER,
        "sevenio#4002": NUMBER,
        "sevenio#4003": None,
        "sevenio#4004": None,
        "sevenio#4005": NUMBER,
        f"bulksms-eapi#77:{NUMBER[1:]}": NUMBER,
        "sevenio#4006": None,
    }
    item = store.get("sevenio", "4001")
    assert item is not None
    assert item["written_by"] == WrittenBy.BACKFILL  # the stream's publisher drops it: no status event
    assert item["status"] == "pending"
    # Now found by the lookup.
    service = MessageService(store, Settings(table_name=store.table_name), lambda: NOW)
    found = service.look_up({"recipient": NUMBER})["messages"]
    assert sorted(m["message_id"] for m in found) == ["4001", "4002", "4005", f"77:{NUMBER[1:]}"]
    # A second run finds nothing left to do.
    again = StringIO()
    script.main(["--table", store.table_name], client=store.client, out=again)
    assert again.getvalue() == "scanned 7, updated 0, skipped 7\n"


def test_a_dry_run_of_the_backfill_writes_nothing(store: Store, script: ModuleType, older_messages: None) -> None:
    before = keyed(store)
    out = StringIO()
    script.main(["--table", store.table_name, "--dry-run"], client=store.client, out=out)
    assert out.getvalue() == "scanned 7, would update 3, skipped 4\n"
    assert keyed(store) == before


def test_the_backfill_never_brings_back_an_erased_message(store: Store, script: ModuleType) -> None:
    """An item read by the scan and erased before its write: the write's condition refuses it."""
    register(store, "5001", NUMBER)
    store.client.update_item(
        TableName=store.table_name,
        Key={"pk": {"S": item_key("sevenio", "5001")}},
        UpdateExpression="REMOVE recipient_key",
    )
    item = {"pk": item_key("sevenio", "5001"), "provider": "sevenio", "message_id": "5001", "sent_at": iso(SENT_AT)}
    store.client.delete_item(TableName=store.table_name, Key=to_dynamo({"pk": item["pk"]}))
    assert script._write(store.client, store.table_name, item["pk"], NUMBER) is False
    assert keyed(store) == {}


def test_make_backfill_recipients_runs_the_backfill_against_an_endpoint(
    dynamodb_local: DynamoDBLocal, dynamodb_local_store: Store
) -> None:
    store = dynamodb_local_store
    register(store, "6001", NUMBER)
    store.client.update_item(
        TableName=store.table_name,
        Key={"pk": {"S": item_key("sevenio", "6001")}},
        UpdateExpression="REMOVE recipient_key",
    )
    run = subprocess.run(  # noqa: S603 - the repository's own Makefile
        [  # noqa: S607 - make from PATH, as a developer runs it
            "make",
            "--no-print-directory",
            "backfill-recipients",
            f"TABLE={store.table_name}",
            f"ENDPOINT_URL={dynamodb_local.endpoint_url}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ | {"MAKEFLAGS": ""},
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "scanned 1, updated 1, skipped 0"
    assert "1701234567" not in run.stdout + run.stderr
    assert keyed(store) == {"sevenio#6001": NUMBER}


def test_make_backfill_recipients_without_a_table_says_how_to_call_it() -> None:
    run = subprocess.run(
        ["make", "--no-print-directory", "backfill-recipients"],  # noqa: S607 - make from PATH, as a developer runs it
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "usage: make backfill-recipients TABLE=" in run.stdout
