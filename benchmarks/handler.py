"""The callback handler's own cost per report: CPU, and the bytes and lines it writes to CloudWatch Logs.

The handler runs as deployed (its layers, Python 3.13, INFO logging, metrics on) in a process of its own, with a
store that answers at once: what is measured is parsing, checking, logging and metrics, not DynamoDB. Its output
goes through a pipe, as on Lambda, and is counted. The same is measured for the handler as it was (builds.BASELINE:
a log line and a metric line for every report), the variants taking turns; each figure is a median.
"""

from __future__ import annotations

import json

from builds import Layout, baseline, current, run_in_runtime
from coldstart import ENVIRONMENT
from common import ROOT, Context, Figure, median

SECTION = "handler"
MARK = "--- measured from here ---"

CHILD = """
import json, sys, time
sys.path[:0] = {path!r}
import callback
from dlrwatch.store import Outcome, WriteResult


class AtOnce:
    def apply(self, report, now, next_poll=None):
        return WriteResult(Outcome.APPLIED)

    def remember_nonce(self, *_, **__):
        return True


class Context:
    function_name = "dlrwatch-bench-callback"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:dlrwatch-bench-callback"
    aws_request_id = "8f5e6b0a-8d4c-4b43-9d35-0d6a3c2f1e77"


callback.service.store = AtOnce()
event = json.loads({event!r})
for _ in range(50):
    callback.handler(event, Context())
sys.stdout.flush()
print({mark!r}, flush=True)
started = time.process_time()
for _ in range({requests}):
    callback.handler(event, Context())
cpu = time.process_time() - started
sys.stdout.flush()
sys.stderr.write(json.dumps({{"cpu": cpu}}))
"""


def cases() -> dict[str, tuple[str, int]]:
    """Each case's API Gateway event and the reports it holds."""
    single = (ROOT / "events" / "sevenio-legacy-get.json").read_text()
    batch = json.loads((ROOT / "events" / "bulksms-webhook.json").read_text())
    delivered = json.loads(batch["body"])[0]
    batch["body"] = json.dumps([{**delivered, "id": str(1_390_000_000 + n)} for n in range(10)])
    return {"seven.io callback": (single, 1), "BulkSMS callback, 10 reports a request": (json.dumps(batch), 10)}


def measure(layout: Layout, event: str, reports: int, requests: int) -> dict[str, float]:
    done = run_in_runtime(
        CHILD.format(path=layout.sys_path("Callback"), event=event, mark=MARK, requests=requests),
        # Secrets from the environment only: the store's read is a network call, cached for five minutes.
        {**ENVIRONMENT, "CALLBACK_TOKEN": "test-token", "SECRETS_PATH": ""},
        timeout=600,
        what="the handler",
    )
    written = done.stdout.split(MARK + "\n", 1)[1]
    answers = [json.loads(line) for line in written.splitlines() if '"statusCode"' in line]
    if answers:
        raise RuntimeError(f"unexpected output: {answers[0]}")
    handled = requests * reports
    return {
        "cpu_us": json.loads(done.stderr.strip().splitlines()[-1])["cpu"] * 1e6 / handled,
        "bytes": len(written.encode()) / handled,
        "lines": written.count("\n") / handled,
    }


def run(ctx: Context) -> list[Figure]:
    layouts = [current(), baseline()]
    requests = 200 if ctx.quick else 1000
    repeats = 2 if ctx.quick else 5
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(repeats):
        for case, (event, reports) in cases().items():
            for layout in layouts:
                samples.setdefault((layout.name, case), []).append(measure(layout, event, reports, requests))
    figures = []
    for case in cases():
        for key, name, unit in (
            ("cpu_us", "CPU per report", "µs"),
            ("bytes", "log bytes per report", "B"),
            ("lines", "log lines per report", "lines"),
        ):
            now = median([s[key] for s in samples[("current", case)]])
            before = median([s[key] for s in samples[("baseline", case)]])
            figures.append(
                Figure(
                    SECTION,
                    f"{name}, {case}",
                    now,
                    unit,
                    baseline=before,
                    baseline_name="a log line and a metric line per report",
                    note=f"median of {repeats} runs of {requests} requests" if key == "cpu_us" else "",
                )
            )
    return figures
