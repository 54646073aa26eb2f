"""`make run`'s stack as a separate process, as the end-to-end tests drive it: started with the environment a test
gives, read line by line, stopped with SIGTERM (a signal a background job receives)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from dlrwatch_local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ("-m", "dlrwatch_local")
STOP_WITHIN = 30.0


class RunningStack:
    def __init__(self, process: subprocess.Popen[str], api_url: str, events_file: Path) -> None:
        self.process = process
        self.api_url = api_url
        self.events_file = events_file
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def shown(self, characters: int = 4000) -> str:
        return "".join(self.output)[-characters:]

    def wait_for(self, text: str, seconds: float) -> str:
        """The first line of output, from now on, that holds ``text``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no {text!r} within {seconds}s; output:\n{self.shown()}")

    def get(self, provider: str, message_id: str) -> dict[str, Any]:
        answer = requests.get(f"{self.api_url}/messages/{provider}/{message_id}", timeout=10)
        found: dict[str, Any] = answer.json() if answer.status_code == 200 else {}
        return found

    def events(self) -> list[dict[str, Any]]:
        return [envelope["detail"] for envelope in self.envelopes()]

    def envelopes(self) -> list[dict[str, Any]]:
        """The status events written so far, whole, as an EventBridge target receives them (a line still being
        written is left for the next call)."""
        if not self.events_file.exists():
            return []
        complete = self.events_file.read_text().split("\n")[:-1]
        return [json.loads(line) for line in complete if line.strip()]

    def stop(self) -> int:
        """SIGTERM, then the exit code; killed (and an error) if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def launch(tmp_path: Path, env: Mapping[str, str], entry: Sequence[str] = ENTRY) -> RunningStack:
    """Start the stack with ``env`` over a clean environment (no AWS, Powertools, DynamoDB or status callback
    settings of the caller's), on a free port, without simulators unless ``env`` asks for them."""
    port = free_port()
    events_file = tmp_path / "status-events.jsonl"
    ours = ("AWS_", "POWERTOOLS_", "DYNAMODB", "FORWARD_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    clean.update(
        {
            "PYTHONPATH": str(ROOT / "local"),
            "API_PORT": str(port),
            "EVENTS_FILE": str(events_file),
            "SIMULATE": "0",
        }
    )
    clean.update(env)
    process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed command
        [sys.executable, "-u", *entry],
        cwd=ROOT,
        env=clean,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return RunningStack(process, f"http://127.0.0.1:{port}", events_file)


@contextmanager
def running(tmp_path: Path, env: Mapping[str, str], entry: Sequence[str] = ENTRY) -> Iterator[RunningStack]:
    """The stack, once it serves; stopped when the block ends."""
    stack = launch(tmp_path, env, entry)
    try:
        stack.wait_for("dlrwatch serving on", 90)
        yield stack
    finally:
        stack.stop()
