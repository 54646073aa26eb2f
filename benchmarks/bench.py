"""Cost and speed of the hot paths, measured side by side in one run (medians; these machines are shared).

    make bench                 # against moto's DynamoDB
    DYNAMODB=local make bench  # against Amazon's DynamoDB Local

Cost is counted in requests (DynamoDB writes and reads, provider calls), which do not depend on the machine;
time is reported as medians of repeated runs and as ratios between runs made in the same process.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in ("layers/dlrwatch", "local", "tests", "functions/callback"):
    sys.path.insert(0, str(ROOT / path))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "TABLE_NAME": "bench",
        "CALLBACK_TOKEN": "test-token",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)

import boto3  # noqa: E402
from dlrwatch_local.standins import ProviderStandIns  # noqa: E402
from support.dynamo import RequestCounter, create_table  # noqa: E402
from support.lambda_context import FakeContext  # noqa: E402

from dlrwatch.config import Settings  # noqa: E402
from dlrwatch.domain.schedule import Schedule  # noqa: E402
from dlrwatch.domain.times import iso  # noqa: E402
from dlrwatch.poller import Poller  # noqa: E402
from dlrwatch.providers import sevenio  # noqa: E402
from dlrwatch.store import CLIENT_CONFIG, NextPoll, Store, due_shard  # noqa: E402

EVENTS = ROOT / "events"


@contextmanager
def dynamodb() -> Iterator[str]:
    if os.environ.get("DYNAMODB") == "local":
        from dlrwatch_local.dynamodb_local import DynamoDBLocal

        with DynamoDBLocal() as local:
            yield str(local.endpoint_url)
        return
    from dlrwatch_local.stack import free_port
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def median_ms(run: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    import logging
    import warnings

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    rows: list[tuple[str, str]] = []
    with dynamodb() as endpoint:
        client = boto3.client("dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG)
        create_table(client, "bench")
        store = Store("bench", client=client)
        counter = RequestCounter(client)
        import callback

        callback.service.store = store
        single = json.loads((EVENTS / "sevenio-legacy-get.json").read_text())
        batch = json.loads((EVENTS / "bulksms-webhook.json").read_text())
        messages = json.loads(batch["body"])
        batch["body"] = json.dumps([{**messages[n % 2], "id": str(1_390_000_000 + n)} for n in range(10)])

        # -- callback: one report vs ten in a request, and a duplicate ---------------------------------------
        n = iter(range(10**9))

        def fresh_single() -> None:
            event = dict(single, rawQueryString=single["rawQueryString"].replace("77149843739", str(next(n))))
            callback.handler(event, FakeContext())

        def fresh_batch() -> None:
            base = next(n) * 10
            body = json.dumps([{**messages[k % 2], "id": str(2_000_000_000 + base + k)} for k in range(10)])
            callback.handler(dict(batch, body=body), FakeContext())

        callback.handler(single, FakeContext())  # warm

        def duplicate() -> None:
            callback.handler(single, FakeContext())

        one = median_ms(fresh_single, 60)
        ten = median_ms(fresh_batch, 30)
        dup = median_ms(duplicate, 60)
        rows += [
            ("callback, 1 report (median)", f"{one:.1f} ms"),
            ("callback, 10 reports in one request (median)", f"{ten:.1f} ms = {ten / 10:.1f} ms a report"),
            ("callback, the same report again (median)", f"{dup:.1f} ms ({dup / one:.2f}x a new report)"),
        ]
        for label, run in (("new report", fresh_single), ("duplicate report", duplicate)):
            counter.reset()
            run()
            rows.append(
                (f"DynamoDB requests, {label}", ", ".join(f"{k} {v}" for k, v in sorted(counter.calls.items())))
            )

        # -- poller: due messages, provider calls, reads ------------------------------------------------------
        schedule = Schedule.parse("5m,30m,2h,5h,1d,2d,5d")
        sent_at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
        with ProviderStandIns() as standins:
            due = 500
            for k in range(due):
                mid = str(88_000_000_000 + k)
                store.register(
                    "sevenio",
                    mid,
                    sent_at,
                    None,
                    NextPoll(iso(sent_at + schedule.offsets[0]), 0),
                    due_shard("sevenio", mid, 8),
                    sent_at,
                )
                standins.state.sevenio[mid] = ("DELIVERED", "2026-11-22 11:02:00.000")
            settings = Settings(
                table_name="bench",
                schedule=schedule,
                due_shards=8,
                provider_urls={"sevenio": standins.urls["SEVENIO_API_URL"]},
            )
            poller = Poller(
                store,
                settings,
                secrets=ProviderStandIns.credentials().get,
                clock=lambda: sent_at + timedelta(minutes=6),
            )
            scanned: list[int] = []
            client.meta.events.register(
                "after-call.dynamodb.Query", lambda parsed, **_: scanned.append(parsed["ScannedCount"])
            )
            counter.reset()
            start = time.perf_counter()
            summary = poller.run(budget_seconds=300)
            elapsed = time.perf_counter() - start
            rows += [
                (f"poll run, {due} due seven.io messages", f"{elapsed:.1f} s, {elapsed * 1000 / due:.1f} ms a message"),
                (
                    "  provider status calls",
                    f"{summary.calls['sevenio']} ({due / summary.calls['sevenio']:.0f} ids a call; "
                    f"{sevenio.IDS_PER_CALL}x fewer than one call a message)",
                ),
                ("  items read from the due index", f"{sum(scanned)} (= due messages)"),
                ("  DynamoDB writes a message", f"{counter.writes / due:.2f}"),
            ]
    backend = "DynamoDB Local" if os.environ.get("DYNAMODB") == "local" else "moto server"
    width = max(len(label) for label, _ in rows)
    print(f"dlrwatch benchmarks against {backend} ({time.strftime('%Y-%m-%d %H:%M')})")
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


if __name__ == "__main__":
    main()
