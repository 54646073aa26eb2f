"""Cold init: each function's import and initialisation, laid out as on Lambda, against the floor.

Each sample is a new interpreter of the runtime's Python (3.13) that writes no bytecode (``-B``: ``/opt`` and
``/var/task`` are read-only on Lambda) and sees nothing but the function, its layers and the runtime's boto3
(``-I -S``), in Lambda's order. It measures the CPU time of importing the handler's module, which is what
initialisation costs; the interpreter's own start is the same for every variant and left out. The floor is
``import boto3`` plus one DynamoDB client, which every function needs and nothing can remove. Samples of the floor,
of each function now and of each function as it was (builds.BASELINE) take turns, and each figure is a median.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from functools import partial

from builds import FUNCTIONS, Layout, baseline, current, run_in_runtime, runtime
from common import Context, Figure, median

SECTION = "coldstart"
TARGET = 1.30
STRETCH = 1.15

# What template.yaml gives the functions (Globals and each function's own), with values of the right shape.
ENVIRONMENT = {
    "AWS_REGION": "eu-central-1",
    "AWS_DEFAULT_REGION": "eu-central-1",
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_LAMBDA_FUNCTION_NAME": "dlrwatch-bench",
    "TABLE_NAME": "dlrwatch-bench-Table",
    "POWERTOOLS_SERVICE_NAME": "dlrwatch-bench",
    "POWERTOOLS_METRICS_NAMESPACE": "dlrwatch",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "SECRETS_PATH": "/dlrwatch/bench",
    "SECRETS_STORE": "ssm",
    "RETENTION_DAYS": "90",
    "POLL_SCHEDULE": "5m,30m,2h,5h,1d,2d,5d",
    "DUE_SHARDS": "8",
    "SEVENIO_API_URL": "https://gateway.seven.io/api",
    "BULKSMS_EAPI_URL": "https://bulksms.vsms.net/eapi",
    "EVENT_BUS_NAME": "dlrwatch-bench",
    "PATH": "/usr/bin:/bin",
}

CHILD = """
import json, sys, time
sys.path[:0] = {path!r}
started = time.process_time()
{body}
print(json.dumps({{"cpu": time.process_time() - started, "modules": len(sys.modules)}}))
"""


def sample(path: list[str], body: str) -> float:
    """Milliseconds of CPU that ``body`` takes in a fresh interpreter with ``path`` in front of ``sys.path``."""
    done = run_in_runtime(CHILD.format(path=path, body=body), ENVIRONMENT, timeout=120, what="a cold start")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["cpu"]) * 1000


def variants(layouts: list[Layout]) -> dict[str, Callable[[], float]]:
    found: dict[str, Callable[[], float]] = {
        "floor": lambda: sample([str(runtime())], "import boto3\nboto3.client('dynamodb')")
    }
    for layout in layouts:
        for function in FUNCTIONS:
            found[f"{layout.name} {function}"] = partial(
                sample, layout.sys_path(function), f"import {function.lower()}"
            )
    return found


def run(ctx: Context) -> list[Figure]:
    layouts = [current()]
    baseline_note = ""
    try:
        layouts.append(baseline())
    except (subprocess.CalledProcessError, OSError) as exc:
        baseline_note = f"baseline not built: {exc}"
    measure = variants(layouts)
    repeats = 3 if ctx.quick else max(ctx.repeats, 15)
    samples: dict[str, list[float]] = {name: [] for name in measure}
    for _ in range(repeats):
        for name, take in measure.items():
            samples[name].append(take())
    floor = median(samples["floor"])
    figures = [
        Figure(
            SECTION,
            "cold init, floor (import boto3 and one DynamoDB client)",
            floor,
            "ms CPU",
            floor=floor,
            note=f"median of {repeats}, Python 3.13, precompiled boto3",
        )
    ]
    for function in FUNCTIONS:
        now = median(samples[f"current {function}"])
        before = samples.get(f"baseline {function}")
        figures.append(
            Figure(
                SECTION,
                f"cold init, {function.lower()} function",
                now,
                "ms CPU",
                floor=floor,
                baseline=median(before) if before else None,
                baseline_name="no bytecode, whole Powertools packages" if before else "",
                target=f"<= {TARGET:.2f}x floor (stretch {STRETCH:.2f}x)",
                met=now <= TARGET * floor,
                note=baseline_note,
            )
        )
    return figures
