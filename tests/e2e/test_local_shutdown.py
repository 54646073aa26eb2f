"""`make run` stops at once on SIGTERM (what a background job, a container runtime or a CI step sends), cleanly,
even in the middle of its simulation."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dlrwatch_local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
# Far less than a simulation takes (its schedule alone lasts 25 s), far more than a clean stop needs.
STOP_WITHIN = 15.0


def test_sigterm_stops_the_stack_in_the_middle_of_the_simulation(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "DYNAMODB"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT / "local"),
            "API_PORT": str(free_port()),
            "SIMULATE": "1",
            "SIM_MESSAGES": "30",
            "EVENTS_FILE": str(tmp_path / "status-events.jsonl"),
            "TABLE_NAME": "dlrwatch-shutdown",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "dlrwatch_local"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the simulation's first progress line: it is under way
            try:
                if "] sent " in lines.get(timeout=1):
                    break
            except queue.Empty:
                assert process.poll() is None, "".join(output)[-3000:]
        else:
            raise AssertionError("the simulation never started:\n" + "".join(output)[-3000:])
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=STOP_WITHIN)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    shown = "".join(output)
    assert code == 0, shown[-3000:]
    assert "stopped" in shown
    assert "summary" not in shown, "stopped in the middle, not after the simulation ran to its end"
    assert "Traceback" not in shown, shown[-3000:]
