"""The installed `dlrwatch` command against `make run`'s stack, as an operator runs it: register a message for a
recipient, read it, find it by recipient, watch a provider's report arrive as a status event, forget the recipient.

The command runs as a subprocess with no AWS credentials at all: the local API takes unsigned requests.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from support.local_stack import RunningStack, running
from support.provider_times import berlin

pytestmark = pytest.mark.xdist_group("local-cli")  # one worker starts the stack

TOKEN = "e2e-cli-token"
CLOSED = "http://127.0.0.1:9"  # the providers' status APIs: nothing is polled here
RECIPIENT = "+447700900123"  # a number reserved for fiction
COMMAND_SECONDS = 60.0  # a loaded 2-core machine: one command imports botocore and makes a request or two
EVENT_WITHIN = 60.0


def installed_command() -> str:
    """The `dlrwatch` console script installed beside this interpreter (make test installs cli/ into .venv)."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        if found := shutil.which("dlrwatch", path=folder):
            return found
    pytest.fail("no dlrwatch command beside this Python: install cli/ (make test does, from requirements-dev.txt)")


def no_credentials(tmp_path: Path) -> dict[str, str]:
    """This environment without any AWS setting or credential source (nor the instance metadata lookup)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    return env | {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = {
        "CALLBACK_TOKEN": TOKEN,
        "TABLE_NAME": "dlrwatch-cli",
        "POLL_INTERVAL": "60",
        "SEVENIO_API_URL": CLOSED,
        "BULKSMS_EAPI_URL": CLOSED,
        "BULKSMS_API_URL": CLOSED,
    }
    with running(tmp_path_factory.mktemp("cli-stack"), env) as started:
        yield started


class Dlrwatch:
    def __init__(self, stack: RunningStack, tmp_path: Path) -> None:
        self.command = installed_command()
        self.url = stack.api_url
        self.env = no_credentials(tmp_path)
        self.cwd = tmp_path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - the installed command, fixed arguments
            [self.command, "--url", self.url, *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=COMMAND_SECONDS,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self.run("--json", *args)
        assert done.returncode == 0, f"dlrwatch {' '.join(args)}: {done.returncode}\n{done.stderr}"
        assert done.stderr == ""
        return json.loads(done.stdout)


@pytest.fixture
def dlrwatch(stack: RunningStack, tmp_path: Path) -> Dlrwatch:
    return Dlrwatch(stack, tmp_path)


def sent_a_minute_ago() -> str:
    return (datetime.now(UTC) - timedelta(minutes=1)).isoformat()


def test_register_then_status_shows_it_pending_for_its_recipient(dlrwatch: Dlrwatch) -> None:
    registered = dlrwatch.json(
        "register", "bulksms-eapi", "4242:447700900001", "--recipient", RECIPIENT, "--sent-at", sent_a_minute_ago()
    )
    assert registered["results"] == [
        {"provider": "bulksms-eapi", "message_id": "4242:447700900001", "result": "registered"}
    ]

    found = dlrwatch.json("status", "bulksms-eapi", "4242:447700900001")
    assert (found["message_id"], found["status"], found["final"], found["recipient"]) == (
        "4242:447700900001", "pending", False, RECIPIENT
    )  # fmt: skip

    shown = dlrwatch.run("status", "bulksms-eapi", "4242:447700900001")
    assert shown.returncode == 0, shown.stderr
    assert ["status", "pending"] in [line.split() for line in shown.stdout.splitlines()]

    missing = dlrwatch.run("status", "sevenio", "404404")
    assert missing.returncode == 1
    assert missing.stderr.startswith("dlrwatch: error 404: ")


def test_lookup_finds_the_recipient_s_messages_and_forget_removes_them(dlrwatch: Dlrwatch) -> None:
    recipient = "+447700900456"
    for message_id in ("5001", "5002"):
        dlrwatch.json("register", "sevenio", message_id, "--recipient", recipient, "--sent-at", sent_a_minute_ago())
    dlrwatch.json("register", "sevenio", "5003", "--recipient", "+447700900789")

    found = dlrwatch.json("lookup", recipient)
    assert sorted(m["message_id"] for m in found["messages"]) == ["5001", "5002"]
    assert found["next"] is None

    paged = dlrwatch.run("lookup", recipient, "--limit", "1")
    assert paged.returncode == 0, paged.stderr
    assert len(paged.stdout.splitlines()) == 2  # the header and one message
    assert "--next" in paged.stderr
    assert len(dlrwatch.json("lookup", recipient, "--limit", "1", "--all")["messages"]) == 2

    assert dlrwatch.json("forget", recipient, "--yes") == {"removed": 2}
    assert dlrwatch.json("lookup", recipient)["messages"] == []
    assert [m["message_id"] for m in dlrwatch.json("lookup", "+447700900789")["messages"]] == ["5003"]


class Tail:
    """`dlrwatch tail` running in the background, its lines read as they come."""

    def __init__(self, dlrwatch: Dlrwatch, *args: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - the installed command, fixed arguments
            [dlrwatch.command, "--url", dlrwatch.url, "tail", *args],
            env=dlrwatch.env,
            cwd=dlrwatch.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.said: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.process.stderr, self.said), daemon=True).start()

    @staticmethod
    def _read(stream: Any, into: queue.Queue[str]) -> None:
        for line in stream:
            into.put(line)

    def next_from(self, lines: queue.Queue[str], seconds: float) -> str:
        try:
            return lines.get(timeout=seconds)
        except queue.Empty:
            raise AssertionError(f"tail printed nothing within {seconds:g} s") from None

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=COMMAND_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def test_tail_of_the_events_file_shows_a_pushed_report_as_it_happens(dlrwatch: Dlrwatch, stack: RunningStack) -> None:
    dlrwatch.json("register", "sevenio", "77149843739", "--sent-at", sent_a_minute_ago())
    tail = Tail(dlrwatch, "--events-file", str(stack.events_file), "--message-id", "77149843739", "--json")
    try:
        assert "following" in tail.next_from(tail.said, COMMAND_SECONDS)
        query = {"token": TOKEN, "msg_id": "77149843739", "status": "DELIVERED", "timestamp": berlin(datetime.now(UTC))}
        answer = requests.get(f"{stack.api_url}/callbacks/sevenio?{urlencode(query)}", timeout=10)
        assert answer.status_code == 200, answer.text

        deadline = time.monotonic() + EVENT_WITHIN
        while True:  # the registration's own event may come first
            event = json.loads(tail.next_from(tail.lines, max(0.1, deadline - time.monotonic())))
            assert event["detail"]["message_id"] == "77149843739"
            if event["detail"]["status"] == "delivered":
                break
        assert (event["source"], event["detail"]["final"], event["detail"]["source"]) == ("dlrwatch", True, "push")
    finally:
        code = tail.stop()
    assert code == 0
