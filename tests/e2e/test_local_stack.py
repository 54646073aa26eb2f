"""`make run`'s stack end to end: a separate process serving the real handlers on loopback, driven over HTTP
with every real-world fault, against moto's DynamoDB and against Amazon's DynamoDB Local.

The providers' status APIs are this test's own stand-ins (``SIMULATE=0``); the pushes are this test's requests.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from dlrwatch_local.standins import ProviderStandIns
from support.local_stack import RunningStack, launch
from support.provider_times import berlin, sast

TOKEN = "e2e-callback-token"
SCHEDULE = "2s,4s,7s"  # seconds instead of days: the whole schedule fits in the test
GIVE_UP_AFTER = 7


def start(tmp_path: Path, dynamodb: str, extra: dict[str, str]) -> RunningStack:
    env = {
        "DYNAMODB": dynamodb,
        "POLL_INTERVAL": "0.5",
        "POLL_SCHEDULE": SCHEDULE,
        "CALLBACK_TOKEN": TOKEN,
        "TABLE_NAME": "dlrwatch-e2e",
        "PROVIDER_TIMEOUT_SECONDS": "2",
    }
    return launch(tmp_path, env | extra)


@pytest.fixture
def standins() -> Iterator[ProviderStandIns]:
    with ProviderStandIns() as running:
        yield running


@pytest.mark.parametrize("dynamodb", ["moto", "local"])
def test_the_local_stack_reaches_every_final_status_through_every_fault(
    dynamodb: str, tmp_path: Path, standins: ProviderStandIns
) -> None:
    started = time.monotonic()
    stack = start(tmp_path, dynamodb, {**standins.urls, **ProviderStandIns.credentials()})
    try:
        stack.wait_for("dlrwatch serving on", 60)
        assert time.monotonic() - started < 60
        http = requests.Session()
        now = datetime.now(UTC)

        def push_sevenio(msg_id: str, raw: str, at: datetime, token: str = TOKEN) -> int:
            body = {"webhook_event": "dlr", "data": {"msg_id": msg_id, "status": raw, "timestamp": berlin(at)}}
            return http.post(f"{stack.api_url}/callbacks/sevenio?token={token}", json=body, timeout=5).status_code

        def register(*messages: tuple[str, str]) -> dict[str, Any]:
            body = {"messages": [{"provider": p, "message_id": m, "sent_at": now.isoformat()} for p, m in messages]}
            answer = http.post(f"{stack.api_url}/messages", json=body, timeout=5)
            assert answer.status_code == 200, answer.text
            return dict(answer.json())

        # a report that arrives before its registration, and is merged into it
        assert push_sevenio("1006", "BUFFERED", now + timedelta(seconds=1)) == 200
        register(
            ("sevenio", "1001"),
            ("sevenio", "1002"),
            ("sevenio", "1003"),
            ("sevenio", "1004"),
            ("sevenio", "1005"),
            ("sevenio", "1006"),
            ("sevenio", "1007"),
            ("bulksms-eapi", "4242:447700900001"),
            ("bulksms-eapi", "4242:447700900002"),
            ("bulksms", "5001"),
        )
        standins.state.sevenio.update(
            {
                "1002": ("DELIVERED", berlin(now + timedelta(seconds=1))),  # its push is lost: polling finds it
                "1006": ("NOTDELIVERED", berlin(now + timedelta(seconds=2))),
                "1007": ("DELIVERED", berlin(now + timedelta(seconds=1))),  # pushed with a wrong secret
            }
        )
        standins.state.eapi["4242"].update({"447700900001": ("11", sast(now)), "447700900002": ("53", sast(now))})
        standins.state.bulksms["5001"] = ("SENT", None)  # never final: given up after the schedule
        # normal journey
        assert push_sevenio("1001", "TRANSMITTED", now + timedelta(seconds=1)) == 200
        assert push_sevenio("1001", "DELIVERED", now + timedelta(seconds=2)) == 200
        # duplicated
        for _ in range(3):
            assert push_sevenio("1003", "DELIVERED", now + timedelta(seconds=1)) == 200
        # reordered: the final overtakes the report before it
        assert push_sevenio("1004", "DELIVERED", now + timedelta(seconds=3)) == 200
        assert push_sevenio("1004", "BUFFERED", now + timedelta(seconds=2)) == 200
        # wrong secret: refused, stores nothing
        assert push_sevenio("1007", "DELIVERED", now + timedelta(seconds=1), token="guess") == 403
        # 1005: no push and no status at the provider yet; its final comes late, after our give-up

        deadline = time.monotonic() + GIVE_UP_AFTER + 20
        while time.monotonic() < deadline and stack.get("sevenio", "1005").get("status") != "unknown":
            time.sleep(0.5)
        assert stack.get("sevenio", "1005")["final"] is True
        assert push_sevenio("1005", "DELIVERED", now + timedelta(seconds=5)) == 200  # late real final

        expected = {
            ("sevenio", "1001"): ("delivered", "push"),
            ("sevenio", "1002"): ("delivered", "poll"),
            ("sevenio", "1003"): ("delivered", "push"),
            ("sevenio", "1004"): ("delivered", "push"),
            ("sevenio", "1005"): ("delivered", "push"),
            ("sevenio", "1006"): ("failed", "poll"),
            ("sevenio", "1007"): ("delivered", "poll"),
            ("bulksms-eapi", "4242:447700900001"): ("delivered", "poll"),
            ("bulksms-eapi", "4242:447700900002"): ("expired", "poll"),
            ("bulksms", "5001"): ("unknown", "giveup"),
        }
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = {key: (s.get("status"), s.get("source")) for key in expected if (s := stack.get(*key))}
            if found == expected:
                break
            time.sleep(0.5)
        assert found == expected, "".join(stack.output)[-3000:]
        assert [h["status"] for h in stack.get("sevenio", "1003")["history"]] == ["delivered"], "applied once"
        assert stack.get("sevenio", "1006")["history"][0]["status"] == "buffered", "the early report was kept"
        assert standins.state.calls["bulksms-eapi"] <= 2, "one get_report per batch per poll"

        time.sleep(2)  # let the stream publisher catch up
        events = stack.events()
        assert len({e["event_id"] for e in events}) == len(events), "one event per change, none twice"
        by_message: dict[str, list[str]] = {}
        for event in events:
            by_message.setdefault(f"{event['provider']}#{event['message_id']}", []).append(event["status"])
        assert by_message["sevenio#1001"] == ["pending", "sent", "delivered"]
        assert by_message["sevenio#1003"] == ["pending", "delivered"]
        assert by_message["sevenio#1005"] == ["pending", "unknown", "delivered"]
        assert by_message["bulksms#5001"][-1] == "unknown"
    finally:
        code = stack.stop()
    assert code == 0, "".join(stack.output)[-3000:]
    assert "stopped" in "".join(stack.output)


@pytest.mark.parametrize("dynamodb", ["moto", "local"])
def test_the_simulated_providers_lose_no_message(dynamodb: str, tmp_path: Path) -> None:
    stack = start(tmp_path, dynamodb, {"SIMULATE": "1", "SIM_MESSAGES": "30", "POLL_INTERVAL": "0.5"})
    try:
        stack.wait_for("dlrwatch serving on", 60)
        stack.wait_for("summary", 150)
        lost = stack.wait_for("lost messages", 10)
    finally:
        code = stack.stop()
    assert "lost messages: 0 (must be 0)" in lost, "".join(stack.output)[-3000:]
    output = "".join(stack.output)
    assert "finals learned by push" in output
    assert "provider status calls per message" in output
    assert code == 0
