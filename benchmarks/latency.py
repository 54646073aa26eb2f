"""Callback latency under concurrent load: seven.io webhooks over keep-alive HTTP to the local stack's API, which
serves the deployed callback handler in execution environments of its own, on the run's DynamoDB Local.

Each level of concurrency is a number of clients, each on one keep-alive connection, each request a report for a
new message (one conditional write). Its floor is the store's write alone (Store.apply) from as many threads: what
no callback can take less than on this machine.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

from common import Context, Figure, at_most, quiet
from dlrwatch_local.api import LocalApi
from dlrwatch_local.stack import LocalStack, Options, quiet_expected_warnings
from support.provider_times import berlin
from writes import dynamodb_client

from dlrwatch.domain.report import Report
from dlrwatch.domain.status import Status
from dlrwatch.store import Store

SECTION = "latency"
TABLE = "bench-latency"
TOKEN = "bench-latency-token"  # noqa: S105 - the local stack's callback token for this run
PATH = f"/callbacks/sevenio?token={TOKEN}"
LEVELS = (1, 4, 16)
ANSWER_BUDGET = 4.0  # seconds: Settings.answer_within_seconds, within the providers' 5 s
SENT_AT = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


class ApiOnly(LocalStack):
    """``make run``'s stack with its DynamoDB replaced by the run's DynamoDB Local, and without the poller's
    scheduler and the stream publisher: they would take the machine's two cores from what is measured, and on AWS
    they run beside the callback function, not in its way."""

    def __init__(self, options: Options, endpoint: str) -> None:
        super().__init__(options)
        self.endpoint = endpoint

    def start(self) -> None:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        quiet_expected_warnings()
        # No SQS: the API alone is measured. The forwarder (loaded with the other functions) gets closed queues.
        self._configure_environment(self.endpoint, "http://127.0.0.1:9")
        os.environ["FORWARD_QUEUE_URL"] = os.environ["FORWARD_DEAD_LETTER_QUEUE_URL"] = "http://127.0.0.1:9/0/closed"
        self._create_table()
        self._load_handlers()
        self.api = LocalApi(0, self.invoke)
        self.api.start()
        self._closers.append(self.api.stop)


@contextmanager
def environment() -> Iterator[None]:
    """The stack sets the process's environment as ``make run`` does (endpoints, credentials, token); it is given
    back as it was, for the sections after this one."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("POWERTOOLS_")]:
        del os.environ[name]  # the stack's own defaults, as `make run` has them
    os.environ["CALLBACK_TOKEN"] = TOKEN
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample with at least ``fraction`` of the samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def webhook(message_id: str) -> bytes:
    data = {"msg_id": message_id, "status": "DELIVERED", "timestamp": berlin(SENT_AT + timedelta(seconds=20))}
    return json.dumps({"webhook_event": "dlr", "data": data}).encode()


def http_level(port: int, clients: int, requests: int, ids: Iterator[int]) -> tuple[list[float], float, int]:
    """``requests`` callbacks from ``clients`` keep-alive connections: each one's seconds, the wall time, and the
    answers that were not 200."""
    plan = [[str(next(ids)) for _ in range(requests // clients)] for _ in range(clients)]
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(message_ids: list[str]) -> None:
        nonlocal failures
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        try:
            start.wait()
            for message_id in message_ids:
                began = time.perf_counter()
                connection.request("POST", PATH, body=webhook(message_id), headers={"Content-Type": "application/json"})
                answer = connection.getresponse()
                answer.read()
                mine.append(time.perf_counter() - began)
                bad += answer.status != 200
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)
                failures += bad

    with ThreadPoolExecutor(max_workers=clients) as pool:
        runs = [pool.submit(client, ids_) for ids_ in plan]
        start.wait()
        began = time.perf_counter()
        for run_ in runs:
            run_.result()
        wall = time.perf_counter() - began
    return latencies, wall, failures


def store_level(store: Store, clients: int, requests: int, ids: Iterator[int]) -> list[float]:
    """The same reports written by Store.apply directly, from ``clients`` threads: the floor of a callback."""
    message_ids = [str(next(ids)) for _ in range(requests)]
    now = SENT_AT + timedelta(minutes=1)

    def write(message_id: str) -> float:
        report = Report("sevenio", message_id, Status.DELIVERED, "DELIVERED", SENT_AT + timedelta(seconds=20))
        began = time.perf_counter()
        store.apply(report, now)
        return time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(write, message_ids))


def run(ctx: Context) -> list[Figure]:
    with quiet(), environment(), tempfile.TemporaryDirectory() as folder:
        options = Options(api_port=0, dynamodb="local", table_name=TABLE, events_file=Path(folder) / "events.jsonl")
        stack = ApiOnly(options, ctx.dynamodb_local)
        try:
            stack.start()
            return measure(ctx, stack)
        finally:
            stack.stop()


def measure(ctx: Context, stack: ApiOnly) -> list[Figure]:
    requests = 96 if ctx.quick else 320  # twice a multiple of every level
    ids = count(79_000_000_000)
    store = Store(TABLE, client=dynamodb_client(ctx, connections=max(LEVELS) + 2))
    port = stack.api.port
    # Both execution environments of the callback function started, and the JVM's paths warm, before measuring.
    http_level(port, max(LEVELS), max(LEVELS) * 4, ids)
    store_level(store, max(LEVELS), max(LEVELS) * 4, ids)
    found: list[Figure] = []
    for clients in LEVELS:
        # The floor and the callbacks take turns, half the requests at a time, so that a machine busy with
        # something else for a while slows both alike.
        floor: list[float] = []
        latencies: list[float] = []
        wall, failures = 0.0, 0
        for _ in range(2):
            floor += store_level(store, clients, requests // 2, ids)
            half, seconds, bad = http_level(port, clients, requests // 2, ids)
            latencies, wall, failures = latencies + half, wall + seconds, failures + bad
        if failures:
            ctx.note(SECTION, f"{clients} client(s): {failures} of {len(latencies)} callbacks were not answered 200")
        label = f"{clients} client{'s' if clients > 1 else ''}"
        p99 = percentile(latencies, 0.99)
        found += [
            Figure(
                SECTION,
                f"callback latency p50, {label}",
                percentile(latencies, 0.50) * 1000,
                "ms",
                floor=percentile(floor, 0.50) * 1000,
                note="" if clients > 1 else "the floor: Store.apply alone, the same report, from as many threads",
            ),
            Figure(
                SECTION,
                f"callback latency p99, {label}",
                p99 * 1000,
                "ms",
                floor=percentile(floor, 0.99) * 1000,
                target=f"< {ANSWER_BUDGET:.0f} s (the callback's answer budget)",
                met=at_most(p99, ANSWER_BUDGET),
            ),
            Figure(SECTION, f"callbacks a second, {label}", len(latencies) / wall, "req/s"),
        ]
    ctx.note(
        SECTION,
        f"{requests} seven.io JSON webhooks a level (POST /callbacks/sevenio, a new message each, one conditional "
        "write each), over keep-alive connections (one per client) to the local stack's API on 127.0.0.1. Locally "
        f"each API function has {stack.options.environments_per_function} execution environments (processes "
        "serving one invocation at a time): more clients than that queue, where Lambda would start more "
        "environments. The HTTP server is measured as it is. The floor's threads share this one Python process: "
        "with 4 and 16 they are held back by it as much as by DynamoDB Local, so callbacks, served by processes of "
        "their own, can come in under it.",
    )
    return found
