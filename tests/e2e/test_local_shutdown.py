"""`make run` stops at once on SIGTERM (what a background job, a container runtime or a CI step sends), cleanly,
even in the middle of its simulation."""

from __future__ import annotations

import signal
from pathlib import Path

from support.local_stack import launch

# Far less than a simulation takes (its schedule alone lasts 25 s), far more than a clean stop needs.
STOP_WITHIN = 15.0


def test_sigterm_stops_the_stack_in_the_middle_of_the_simulation(tmp_path: Path) -> None:
    stack = launch(tmp_path, {"SIMULATE": "1", "SIM_MESSAGES": "30", "TABLE_NAME": "dlrwatch-shutdown"})
    try:
        stack.wait_for("] sent ", 90)  # the simulation's first progress line: it is under way
        stack.process.send_signal(signal.SIGTERM)
        code = stack.process.wait(timeout=STOP_WITHIN)
    finally:
        if stack.process.poll() is None:
            stack.process.kill()
            stack.process.wait()
    shown = "".join(stack.output)
    assert code == 0, shown[-3000:]
    assert "stopped" in shown
    assert "summary" not in shown, "stopped in the middle, not after the simulation ran to its end"
    assert "Traceback" not in shown, shown[-3000:]
