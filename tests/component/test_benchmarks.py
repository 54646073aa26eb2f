"""The parts of `make bench` whose mistakes would publish wrong numbers: the cost model's arithmetic, floors and
targets, the items seeded beside the store's own, the mix's due counts, the billing of failed writes, and the
document's account of a section that could not be measured. No DynamoDB Local here: moto, and plain arithmetic."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.append(str(BENCHMARKS))

import bench  # noqa: E402
import callbacks  # noqa: E402
import calls  # noqa: E402
import cost  # noqa: E402
import reads  # noqa: E402
import report  # noqa: E402
from common import Context, Figure, at_most  # noqa: E402
from writes import Spent, failed_write_units, item_size  # noqa: E402

from dlrwatch.domain.report import Report  # noqa: E402
from dlrwatch.domain.status import Status  # noqa: E402
from dlrwatch.domain.times import iso  # noqa: E402
from dlrwatch.forwarder import Callback, queue_url  # noqa: E402
from dlrwatch.store import NextPoll, Store, due_shard, from_dynamo, to_dynamo  # noqa: E402

# -- the cost model --------------------------------------------------------------------------------------------

# A life whose dollars are worked out by hand below: a function of 1,769 MB has one full vCPU, so the CPU time
# measured is the time billed; nothing cold, no platform log lines.
LIFE = cost.Life(
    pushed_reports=2.0,
    reports_stored=2.0,
    provider_calls=0.02,
    polled=0.5,
    events=3.0,
    publisher_records=3.0,
    write_units=6.0,
    failed_write_units=1.0,
    read_units=0.04,
    item_bytes=924.0,
    cpu_us_per_report=2_000.0,
    log_bytes_per_report=700.0,
    log_lines_per_report=2.0,
    cold_init_ms=1_000.0,
)
PLATFORM = cost.Platform(memory_mb=1769, retention_days=30, access_log_bytes=100)
ASSUMED = cost.Assumptions(
    dynamodb_round_trip_ms=8,
    provider_round_trip_ms=300,
    put_events_round_trip_ms=20,
    publisher_cpu_ms_per_record=0.5,
    records_per_publisher_invocation=3,
    cold_start_share=0.0,
    platform_log_bytes=0.0,
)


def test_a_known_life_costs_a_known_amount_per_service() -> None:
    used = cost.usage(LIFE, PLATFORM, ASSUMED)
    # Callbacks 2 x (2 ms CPU + 8 ms) = 20 ms; registration 10 ms; one publisher invocation: 3 records x 0.5 ms
    # + one PutEvents of 20 ms = 21.5, billed 22 ms; poller 0.02 x 300 + 0.5 x 8 = 10 ms. 62 ms at 1,769 MB.
    assert used["gb_seconds"] == pytest.approx(0.062 * 1769 / 1024)
    usd = cost.dollars(used, cost.Prices())
    assert usd["API Gateway"] == pytest.approx(3.00)  # 3 requests a message, $1 a million
    assert usd["Lambda requests"] == pytest.approx(0.80)  # 2 callbacks, 1 registration, 1 publisher: $0.20 a million
    assert usd["Lambda duration"] == pytest.approx(1.4281, rel=1e-4)  # 0.10711 GB-s x 1e6 x $0.0000133334
    assert usd["DynamoDB writes"] == pytest.approx(3.75)  # 6 units, $0.625 a million
    assert usd["DynamoDB reads"] == pytest.approx(0.005)  # 0.04 units, $0.125 a million
    assert usd["DynamoDB storage"] == pytest.approx(0.25 * 1e6 / 1024**2)  # 1 KB (with 100 B overhead), a month
    assert usd["EventBridge"] == pytest.approx(3.00)
    assert usd["CloudWatch Logs"] == pytest.approx(0.50 * 3 * 800 * 1e6 / 1024**3)  # 3 requests of 700 + 100 B


def test_reading_first_trades_failed_writes_for_a_read_and_a_round_trip_per_report() -> None:
    plain = cost.usage(LIFE, PLATFORM, ASSUMED)
    reading = cost.usage(LIFE, PLATFORM, ASSUMED, read_first=True)
    assert reading["write_units"] == 5.0  # the failed conditional write is never made
    assert reading["read_units"] == pytest.approx(0.04 + 2 * 0.5)  # an eventually consistent read a report
    # 8 ms more for each of 2 callbacks, and for settling the message at each of its 0.5 poll runs.
    assert reading["gb_seconds"] - plain["gb_seconds"] == pytest.approx((2 * 8 + 0.5 * 8) / 1000 * 1769 / 1024)


def test_the_floor_life_writes_once_per_status_change_and_logs_once_per_report() -> None:
    floor = cost.at_floor(LIFE, floor_calls=0.014)
    assert floor.write_units == 3.0 + 2  # one per status change, plus entering and leaving the due index
    assert floor.failed_write_units == 0.0
    assert floor.provider_calls == 0.014
    assert (floor.log_bytes_per_report, floor.log_lines_per_report) == (350.0, 1.0)
    worst = cost.naive(LIFE)
    assert (worst.provider_calls, worst.log_bytes_per_report) == (0.5, 700.0)


def test_the_cost_section_meets_its_target_at_exactly_the_bound_and_not_above() -> None:
    floor = 12.0
    assert at_most(cost.TARGET * floor, 1.15 * 12.0)  # 13.799999999999999 against 13.8
    assert not at_most(13.81, cost.TARGET * floor)


def test_a_missing_handler_figure_is_assumed_and_said_so() -> None:
    ctx = Context("http://127.0.0.1:9")
    names = (calls.PUSHED, calls.REPORTS, calls.POLLED, calls.EVENTS, calls.RECORDS, calls.WRITE_UNITS)
    ctx.figures += [Figure(calls.SECTION, name, 1.0, "") for name in names]
    ctx.figures += [Figure(calls.SECTION, n, 0.5, "") for n in (calls.FAILED_UNITS, calls.READ_UNITS)]
    ctx.figures += [
        Figure(calls.SECTION, calls.ITEM_BYTES, 600.0, "B"),
        Figure(calls.SECTION, calls.CALLS, 0.02, "calls", floor=0.014),
        Figure("handler", "CPU per report, seven.io callback", 1_234.0, "µs"),
    ]
    life, floor_calls, missing = cost.life_from(ctx, cost.Assumptions())
    assert life.cpu_us_per_report == 1_234.0
    assert life.log_bytes_per_report == cost.Assumptions().log_bytes_per_report
    assert floor_calls == 0.014
    assert any("log bytes per report" in m and "assumed 700 B" in m for m in missing)
    assert not any("CPU per report" in m for m in missing)


# -- floors, ratios, targets and the document ------------------------------------------------------------------


def test_ratios_are_to_the_floor_and_the_baseline_and_absent_without_them() -> None:
    figure = Figure("s", "f", 3.0, "requests", floor=1.5, baseline=6.0, baseline_name="naive", target="t", met=False)
    assert (figure.to_floor, figure.to_baseline) == (2.0, 0.5)
    cells = report.row(figure)
    assert cells[3:6] == ["2.00x", "6.00 requests (naive)", "0.50x"]
    assert cells[7] == "**no**"
    bare = Figure("s", "f", 0.0, "RCU", floor=0.0)
    assert report.row(bare)[2:4] == ["0.00 RCU", "—"]
    assert report.row(bare)[7] == ""


def test_small_values_keep_two_significant_digits() -> None:
    assert [report.number(v) for v in (0.014, 0.0006, 1.0, 1.05, 168.4, 13_945.2)] == [
        "0.014",
        "0.00060",
        "1.00",
        "1.05",
        "168",
        "13,945",
    ]


def test_a_failed_section_is_written_down_as_not_measured_and_its_targets_unknown() -> None:
    ok = report.SectionResult(
        "writes", [Figure("writes", "requests", 1.0, "requests", floor=1.0, target="1.00", met=True)]
    )
    failed = report.SectionResult("sizes", failure="not measured: benchmarks/sizes.py does not exist yet")
    text = report.document({"date": "today"}, [failed, ok])
    assert "## sizes\n\nnot measured: benchmarks/sizes.py does not exist yet\n" in text
    assert "- sizes: not measured, so its targets are not known to be met" in text
    assert "- met: writes, requests: 1.00 requests (1.00)" in text
    assert "do not edit it by hand" in text


def test_a_section_that_does_not_exist_or_fails_becomes_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = Context("http://127.0.0.1:9")
    missing = bench.run_section("no_such_section", ctx)
    assert missing.failure == "not measured: benchmarks/no_such_section.py does not exist yet"

    class Broken:
        @staticmethod
        def run(_: Context) -> list[Figure]:
            raise RuntimeError("storage went away")

    monkeypatch.setitem(sys.modules, "broken_section", Broken)
    failed = bench.run_section("broken_section", ctx)
    assert failed.failure == "not measured: it failed (RuntimeError: storage went away)"
    assert ctx.figures == []


# -- what the sections measure with ----------------------------------------------------------------------------


def test_seeded_items_are_the_items_the_store_writes(store: Store) -> None:
    sent_at = reads.NOW - timedelta(minutes=3)
    first = NextPoll(iso(sent_at + timedelta(minutes=5)), 0)
    shard = due_shard("sevenio", "77100000001", reads.SHARDS)
    store.register("sevenio", "77100000001", sent_at, "+491701234567", first, shard, sent_at)
    built = reads.registered_item("sevenio", "77100000001", sent_at, "+491701234567", first, shard, sent_at)
    assert from_dynamo(to_dynamo(built)) == store.get("sevenio", "77100000001")

    report_ = Report("sevenio", "77100000001", Status.DELIVERED, "DELIVERED", sent_at + timedelta(seconds=20))
    applied_at = sent_at + timedelta(seconds=21)
    store.apply(report_, applied_at)
    final = reads.delivered_item(built, report_, applied_at, store.retention)
    assert from_dynamo(to_dynamo(final)) == store.get("sevenio", "77100000001")


def test_the_mix_makes_the_due_counts_and_the_floor_of_calls() -> None:
    fates = calls.assign(1000)
    assert len(fates) == 1000
    assert calls.expected_due(fates) == [150, 140, 80, 70, 60, 50, 40]
    assert calls.floor_calls([150, 140, 80, 70, 60, 50, 40]) == 3 + 3 + 2 + 2 + 2 + 1 + 1
    assert calls.floor_calls([0, 1, 50, 51]) == 0 + 1 + 1 + 2


def test_a_failed_conditional_write_is_billed_by_the_size_of_the_item_it_found() -> None:
    assert item_size({"pk": {"S": "abc"}, "n": {"N": "123.45"}, "ok": {"BOOL": True}}) == (2 + 3) + (1 + 4) + (2 + 1)
    assert item_size({"l": {"L": [{"S": "ab"}, {"NULL": True}]}}) == 1 + 3 + (1 + 2) + (1 + 1)
    assert failed_write_units(None) == 1.0  # no item: one unit
    assert failed_write_units({"pk": {"S": "x" * 1500}}) == 2.0  # one unit per KB of the item, rounded up


# -- status callbacks --------------------------------------------------------------------------------------------


def handled(requests: float, writes: float, reads: float, read_units: float, cpu_us: float) -> callbacks.Handled:
    spent = Spent(
        requests=int(requests), writes=int(writes), reads=int(reads), write_units=writes, read_units=read_units
    )
    return callbacks.Handled(spent, Counter(), [10.0], [cpu_us], 10)


# A forwarded status measured by hand: a first attempt is one write; a read-first record adds a consistent read; an
# event without a callback_url is that read alone.
MEASURED = callbacks.Measured(
    index={},
    sends_per_callback=0.1,
    billed_sends_per_callback=0.1,
    queue_message_bytes=500.0,
    events_per_callback=4 / 3,
    delivered_write=Spent(),
    record_index_units=0.0,
    retry_read=Spent(),
    typical_bytes=900,
    handled={
        "first attempt, 10 a batch": handled(1, 1, 0, 0.0, 1_000.0),
        "first attempt, 1 a batch": handled(1, 1, 0, 0.0, 1_000.0),
        "retry, item read first, 10 a batch": handled(2, 1, 1, 1.0, 1_500.0),
        "no callback_url, item read, 10 a batch": handled(1, 0, 1, 1.0, 500.0),
    },
    failed={},
    log_bytes=500.0,
    log_lines=1.0,
    repeats=1,
)
NOTHING_ELSE = callbacks.Assumed(
    dynamodb_round_trip_ms=8, sender_answer_ms=100, callback_share=0.5, platform_log_bytes=0
)


def test_a_batch_is_billed_its_records_cpu_in_turn_and_their_waits_side_by_side() -> None:
    # 10 records of 1 ms CPU at 256 MB (a 256/1769 share of a vCPU): 69.1 ms, then one DynamoDB round trip and the
    # sender, waited for by all ten threads at once: 177.1, billed 178 ms.
    assert callbacks.invocation_ms(10, 1_000.0, 1, True, 256, NOTHING_ELSE) == 178
    assert callbacks.invocation_ms(1, 1_000.0, 2, False, 256, NOTHING_ELSE) == math.ceil(1769 / 256 + 16)


def test_a_forwarded_status_costs_a_known_amount_and_the_baseline_pays_for_every_event() -> None:
    prices = cost.Prices()
    ours = callbacks.dollars(callbacks.ours(MEASURED, 10, 256, NOTHING_ELSE), prices, prices.sqs_per_million)
    assert ours["SQS"] == pytest.approx(0.3 * 0.40)  # a tenth each of a send, a receive and a delete
    assert ours["Lambda requests"] == pytest.approx(0.1 * 0.20)
    assert ours["Lambda duration"] == pytest.approx(17.8 / 1000 * 0.25 * 1e6 * prices.lambda_arm_gb_second)
    assert (ours["DynamoDB writes"], ours["DynamoDB reads"]) == (pytest.approx(0.625), 0.0)
    theirs = callbacks.dollars(callbacks.baseline(MEASURED, 10, 256, NOTHING_ELSE), prices, prices.sqs_per_million)
    # Half the events have a callback_url: two events queued (EventBridge's SendMessage each) and read per status.
    assert theirs["SQS"] == pytest.approx(2 * 1.2 * 0.40)
    assert theirs["Lambda requests"] == pytest.approx(0.2 * 0.20)
    assert theirs["DynamoDB reads"] == pytest.approx(2 * 0.125)
    assert theirs["DynamoDB writes"] == pytest.approx(0.625)
    trickle = callbacks.ours(MEASURED, 1, 256, NOTHING_ELSE)
    assert trickle.sqs_requests == 3.0  # one send, one receive, one delete a status
    assert trickle.invocations == 1.0


def test_the_forwarder_gets_each_queue_message_as_a_new_status_from_a_queue_it_can_name() -> None:
    body = json.dumps(
        {
            "callback_url": "https://callback.test/hook",
            "detail": {"event_id": "e", "provider": "sevenio", "message_id": "77100000001", "sequence": 3},
        }
    )
    event = callbacks.sqs_event([body, callbacks.elsewhere(body, "77100000002")], 10_004, 2)
    parsed = [Callback.parse(r["body"]) for r in event["Records"]]
    assert [(c.message_id, c.sequence) for c in parsed] == [("77100000001", 10_004), ("77100000002", 10_004)]
    assert parsed[0].event_id != parsed[1].event_id
    assert {r["attributes"]["ApproximateReceiveCount"] for r in event["Records"]} == {"2"}
    assert queue_url(event["Records"][0]["eventSourceARN"]) == callbacks.QUEUE_URL


def test_the_sqs_stand_in_counts_calls_and_payload_bytes() -> None:
    sqs = callbacks.Sqs()
    answer = sqs.send_message_batch(
        QueueUrl="q", Entries=[{"Id": "0", "MessageBody": "ab"}, {"Id": "1", "MessageBody": "é"}]
    )
    assert answer["Successful"] == [{"Id": "0"}, {"Id": "1"}]
    sqs.change_message_visibility(QueueUrl="q", ReceiptHandle="r", VisibilityTimeout=60)
    assert sqs.payloads == [4]
    assert sqs.take() == Counter({"SendMessageBatch": 1, "ChangeMessageVisibility": 1})
    assert sqs.take() == Counter()


def test_callbacks_are_measured_before_the_cost_section() -> None:
    assert bench.SECTIONS.index("callbacks") < bench.SECTIONS.index("cost")
