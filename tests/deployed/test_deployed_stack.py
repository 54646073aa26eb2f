"""A running dlrwatch as its users see it: senders over the IAM-signed API, providers pushing reports with the
callback token (and seven.io's signature), status events on the bus, the poller's schedule.

Runs against the stack on AWS that ``DLRWATCH_STACK_NAME`` names, else against `make run`'s stack. Every message
id is new to the stack, and every message registered here ends with a final status (tests/deployed/conftest.py).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.deployed import DETAIL_TYPE, EVENT_SOURCE, RECIPIENT, Target, unambiguous, utc_text

pytestmark = pytest.mark.xdist_group("deployed")  # one stack, on one worker

ROOT = Path(__file__).resolve().parents[2]
EVENT_SCHEMA = Draft202012Validator(json.loads((ROOT / "docs/schemas/status-event.schema.json").read_text()))
# A new rule and a new queue policy take up to a minute to take effect on AWS; until then events are not delivered.
WARM_UP_SECONDS = 90
EVENT_WAIT_SECONDS = 60
WRONG_TOKEN = "not-the-callback-token"


def registration(provider: str, message_id: str, sent_at: datetime) -> dict[str, Any]:
    return {"provider": provider, "message_id": message_id, "sent_at": utc_text(sent_at), "recipient": RECIPIENT}


def just_sent() -> datetime:
    """A sending time shortly before now, in whole milliseconds: its first poll (5 minutes after) is well after the
    test's end."""
    sent_at = datetime.now(UTC) - timedelta(seconds=30)
    return sent_at.replace(microsecond=sent_at.microsecond // 1000 * 1000)


def register(target: Target, *messages: dict[str, Any]) -> None:
    answer = target.register(*messages)
    assert answer.status_code == 200, target.describe(answer)
    assert [r["result"] for r in answer.json()["results"]] == ["registered"] * len(messages)


def test_a_signed_registration_reads_back_pending(target: Target) -> None:
    sent_at = just_sent()
    message_id = target.message_id()
    register(target, registration("sevenio", message_id, sent_at))

    found = target.status_of("sevenio", message_id)
    assert (found["provider"], found["message_id"]) == ("sevenio", message_id)
    assert (found["status"], found["final"]) == ("pending", False)
    assert found["sent_at"] == utc_text(sent_at)
    assert found["recipient"] == RECIPIENT
    assert found["next_poll_at"] is not None, "a message without a report is due for polling"

    assert target.push_final("sevenio", message_id).status_code == 200
    assert target.status_of("sevenio", message_id)["final"] is True


def test_unsigned_sender_requests_are_refused_and_store_nothing(target: Target) -> None:
    if target.kind == "local":
        pytest.skip("the local API does not check IAM: API Gateway's IAM authorization exists only on AWS")
    sent_at = just_sent()
    known, refused = target.message_id(), target.message_id()
    register(target, registration("sevenio", known, sent_at))

    unsigned_read = target.read("sevenio", known, iam=False)
    assert unsigned_read.status_code == 403, target.describe(unsigned_read)
    assert known not in unsigned_read.text
    assert "pending" not in unsigned_read.text

    unsigned_register = target.register(registration("sevenio", refused, sent_at), iam=False)
    assert unsigned_register.status_code == 403, target.describe(unsigned_register)
    nothing = target.read("sevenio", refused)
    assert nothing.status_code == 404, target.describe(nothing)


def test_pushed_reports_are_stored_and_read_back(target: Target) -> None:
    sent_at = just_sent()
    legacy, webhook, json_api = target.message_id(), target.message_id(), target.message_id()
    eapi = f"{target.message_id()}:{RECIPIENT.lstrip('+')}"
    register(
        target,
        registration("sevenio", legacy, sent_at),
        registration("sevenio", webhook, sent_at),
        registration("bulksms", json_api, sent_at),
        registration("bulksms-eapi", eapi, sent_at),
    )
    at = unambiguous(sent_at) + timedelta(seconds=10)

    pushed = target.sevenio_legacy(legacy, "DELIVERED", at)
    assert pushed.status_code == 200, target.describe(pushed)
    pushed = target.sevenio_webhook(webhook, "TRANSMITTED", at)
    assert pushed.status_code == 200, target.describe(pushed)
    assert target.status_of("sevenio", webhook)["status"] == "sent"
    pushed = target.sevenio_webhook(webhook, "NOTDELIVERED", at + timedelta(seconds=5))
    assert pushed.status_code == 200, target.describe(pushed)
    pushed = target.bulksms_webhook(json_api, "DELIVERED")
    assert pushed.status_code == 200, target.describe(pushed)
    pushed = target.bulksms_eapi(eapi, "11", at)
    assert pushed.status_code == 200, target.describe(pushed)

    expected = {
        ("sevenio", legacy): ("delivered", "DELIVERED", utc_text(at)),
        ("sevenio", webhook): ("failed", "NOTDELIVERED", utc_text(at + timedelta(seconds=5))),
        ("bulksms", json_api): ("delivered", "DELIVERED", None),  # a JSON API message carries no status time
        ("bulksms-eapi", eapi): ("delivered", "11", utc_text(at.replace(microsecond=0))),  # EAPI times are seconds
    }
    for (provider, message_id), (status, raw, status_at) in expected.items():
        found = target.status_of(provider, message_id)
        shown = f"{provider} {message_id}: {found}"
        assert (found["status"], found["final"], found["provider_status"]) == (status, True, raw), shown
        assert found["status_at"] == status_at, shown
        assert found["source"] == "push", shown
        assert found["next_poll_at"] is None, "a final status ends polling"
    history = target.status_of("sevenio", webhook)["history"]
    assert [entry["status"] for entry in history] == ["sent", "failed"]


def test_a_wrong_or_missing_token_is_refused_and_stores_nothing(target: Target) -> None:
    at = unambiguous(just_sent())
    sevenio, bulksms = target.message_id(), target.message_id()

    for answer, refused_with in (
        (target.sevenio_webhook(sevenio, "DELIVERED", at, token=WRONG_TOKEN), 403),
        (target.sevenio_webhook(sevenio, "DELIVERED", at, token=None), 401),
        (target.sevenio_legacy(sevenio, "DELIVERED", at, token=WRONG_TOKEN), 403),
        (target.bulksms_webhook(bulksms, "DELIVERED", token=WRONG_TOKEN), 403),
        (target.bulksms_webhook(bulksms, "DELIVERED", token=None), 401),
    ):
        assert answer.status_code == refused_with, target.describe(answer)
        assert "error" in answer.json()

    for provider, message_id in (("sevenio", sevenio), ("bulksms", bulksms)):
        nothing = target.read(provider, message_id)
        assert nothing.status_code == 404, target.describe(nothing)


def test_a_signed_sevenio_webhook_is_accepted_and_a_bad_signature_refused(target: Target) -> None:
    if not target.signs_sevenio:
        pytest.skip(
            "no seven.io signing key is known (DLRWATCH_SEVENIO_SIGNING_KEY or {SecretsPath}/sevenio-signing-key): "
            "the stack takes seven.io reports unsigned"
        )
    sent_at = just_sent()
    message_id = target.message_id()
    register(target, registration("sevenio", message_id, sent_at))
    at = unambiguous(sent_at) + timedelta(seconds=10)

    bad = target.sevenio_webhook(message_id, "DELIVERED", at, signature="bad")
    assert bad.status_code == 403, target.describe(bad)
    unsigned = target.sevenio_webhook(message_id, "DELIVERED", at, signature="none")
    assert unsigned.status_code == 401, target.describe(unsigned)
    assert target.status_of("sevenio", message_id)["status"] == "pending", "a refused report stores nothing"

    signed = target.sevenio_webhook(message_id, "DELIVERED", at, signature="valid")
    assert signed.status_code == 200, target.describe(signed)
    found = target.status_of("sevenio", message_id)
    assert (found["status"], found["final"], found["status_at"]) == ("delivered", True, utc_text(at))


def test_a_status_change_arrives_as_a_status_event(target: Target) -> None:
    sent_at = just_sent()
    message_id = target.message_id()
    reported_from = unambiguous(sent_at)
    final_at = reported_from + timedelta(seconds=20)
    with target.watch("sevenio", message_id) as watch:
        register(target, registration("sevenio", message_id, sent_at))
        # Each report until the first event arrives changes the status (sent, buffered, sent ...), and so sends an
        # event: whichever is the first the new rule delivers, the watch works from then on.
        events = watch.new_events(5)
        changes = itertools.cycle(["TRANSMITTED", "BUFFERED"])
        deadline = time.monotonic() + WARM_UP_SECONDS
        for step in itertools.count(1):
            if events or time.monotonic() > deadline:
                break
            at = reported_from + timedelta(milliseconds=100 * step)
            pushed = target.sevenio_webhook(message_id, next(changes), at)
            assert pushed.status_code == 200, target.describe(pushed)
            events = watch.new_events(5)
        assert events, f"no status event of {message_id} on the bus within {WARM_UP_SECONDS} s"

        before = target.status_of("sevenio", message_id)
        pushed = target.sevenio_webhook(message_id, "DELIVERED", final_at)
        assert pushed.status_code == 200, target.describe(pushed)
        delivered: list[dict[str, Any]] = []
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while not delivered and time.monotonic() < deadline:
            arrived = watch.new_events(max(1.0, deadline - time.monotonic()))
            delivered = [e for e in arrived if e["detail"]["status"] == "delivered"]
        assert delivered, f"no 'delivered' event of {message_id} within {EVENT_WAIT_SECONDS} s"

    event = delivered[0]
    assert (event["source"], event["detail-type"]) == (EVENT_SOURCE, DETAIL_TYPE)
    detail = event["detail"]
    assert not [error.message for error in EVENT_SCHEMA.iter_errors(detail)], detail
    assert re.fullmatch(r"[0-9a-f]{32}", detail["event_id"])
    assert {k: detail[k] for k in ("provider", "message_id", "status", "final", "provider_status", "source")} == {
        "provider": "sevenio",
        "message_id": message_id,
        "status": "delivered",
        "final": True,
        "provider_status": "DELIVERED",
        "source": "push",
    }
    assert (detail["previous_status"], detail["previous_final"]) == (before["status"], False)
    assert (detail["status_at"], detail["sent_at"], detail["recipient"]) == (
        utc_text(final_at),
        utc_text(sent_at),
        RECIPIENT,
    )
    assert detail["time_to_final_seconds"] == pytest.approx((final_at - sent_at).total_seconds())


def test_the_poller_schedule_is_enabled(target: Target) -> None:
    if target.kind == "local":
        pytest.skip("the local stack's poller is a timer in its own process: there is no schedule to read")
    schedule = target.poller_schedule()
    assert schedule is not None
    assert schedule["State"] == "ENABLED", f"the poller's schedule is {schedule['State']}: nothing is polled"
    assert schedule["ScheduleExpression"] == "rate(1 minute)"
    assert ":function:" in schedule["Target"]["Arn"]
