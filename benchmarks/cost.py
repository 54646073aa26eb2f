"""What a million messages cost on AWS, by service: one message's life, from the figures measured before this
section, at AWS's list prices; beside the same life at the floor figures and in the naive design.

A message's life: its registration (POST /messages), its pushed reports (each a callback request), the status
events its writes publish (the stream, the publisher function, EventBridge), its share of the poll runs (provider
calls, and the writes that settle them), its DynamoDB units and storage, and the logs of it all. What the run did
not measure is assumed, and every assumption is written down beside the table: no number here is hidden.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import calls as measured
from common import Context, Figure, at_most
from dlrwatch_local.template import template

from dlrwatch.providers import sevenio
from dlrwatch.publisher import MAX_ENTRIES

SECTION = "cost"
TARGET = 1.15  # the most the design may cost, as a multiple of the floor
PER = 1_000_000  # messages
GB = 1024**3

# AWS list prices, us-east-1, in US dollars, as published on AWS's pricing pages on 2026-11-23 (first tiers).
PRICES_AS_OF = "2026-11-23"


@dataclass(frozen=True)
class Prices:
    http_api_per_million: float = 1.00  # HTTP API requests, first 300 million a month
    lambda_per_million: float = 0.20  # Lambda requests
    lambda_arm_gb_second: float = 0.0000133334  # Lambda duration, arm64, first 7.5 billion GB-s a month
    write_unit_per_million: float = 0.625  # DynamoDB on-demand write request units (halved on 1 Nov 2024)
    read_unit_per_million: float = 0.125  # DynamoDB on-demand read request units (halved on 1 Nov 2024)
    storage_gb_month: float = 0.25  # DynamoDB Standard table class storage, beyond the first 25 GB
    events_per_million: float = 1.00  # EventBridge custom events put on a bus (each 64 KB chunk)
    logs_gb: float = 0.50  # CloudWatch Logs ingestion (Standard; Lambda's logs, first 10 TB a month)
    sqs_per_million: float = 0.40  # SQS standard queue requests, each 64 KB chunk of a payload a request


PRICE_SOURCES = (
    "aws.amazon.com/api-gateway/pricing (HTTP APIs $1.00 a million, first 300 million)",
    "aws.amazon.com/lambda/pricing (arm64 $0.0000133334 a GB-s, $0.20 a million requests)",
    "aws.amazon.com/dynamodb/pricing/on-demand ($0.625 a million write units, $0.125 a million read units, after "
    "the 50% cut of 1 November 2024; storage $0.25 a GB-month)",
    "aws.amazon.com/eventbridge/pricing (custom events $1.00 a million, each 64 KB chunk an event)",
    "aws.amazon.com/cloudwatch/pricing (logs ingested $0.50 a GB)",
    "aws.amazon.com/sqs/pricing (standard queue requests $0.40 a million, each 64 KB chunk of a payload a request)",
)


@dataclass(frozen=True)
class Assumptions:
    """What this run cannot measure; each is written down with the table."""

    dynamodb_round_trip_ms: float = 8.0  # one DynamoDB request from Lambda in the same region: 5-10 ms
    provider_round_trip_ms: float = 300.0  # one seven.io status call, over the internet
    put_events_round_trip_ms: float = 20.0  # one PutEvents call of up to 10 entries
    publisher_cpu_ms_per_record: float = 0.5
    records_per_publisher_invocation: float = 10.0  # a stream batch: 1 at a trickle, up to 100 (BatchSize) at load
    cold_start_share: float = 0.01  # invocations that start an execution environment
    platform_log_bytes: float = 350.0  # Lambda's platform.start and platform.report records, JSON, a invocation
    cpu_us_per_report: float = 2_000.0  # used when the handler section did not measure it
    log_bytes_per_report: float = 700.0  # likewise
    log_lines_per_report: float = 2.0  # likewise
    cold_init_ms: float = 1_500.0  # likewise, from the coldstart section


@dataclass(frozen=True)
class Life:
    """One message's life, as the figures before this section measured it (per message unless named so)."""

    pushed_reports: float  # callback requests
    reports_stored: float  # pushed, polled and give-up reports: each a conditional write
    provider_calls: float
    polled: float  # times the message was due at a poll run
    events: float  # status events (EventBridge entries)
    publisher_records: float  # stream records the publisher is invoked with
    write_units: float
    failed_write_units: float  # of write_units: failed conditional writes (duplicates, stale)
    read_units: float
    item_bytes: float  # a final item's size
    cpu_us_per_report: float  # the callback handler's CPU on this machine, for one report
    log_bytes_per_report: float
    log_lines_per_report: float
    cold_init_ms: float


@dataclass(frozen=True)
class Platform:
    """What template.yaml fixes: the functions' memory, the data's retention, the API's access log line."""

    memory_mb: float
    retention_days: float
    access_log_bytes: float

    @property
    def cpu_share(self) -> float:
        """Lambda's CPU in proportion to memory: one full vCPU at 1,769 MB."""
        return min(self.memory_mb / 1769, 1.0)


def usage(life: Life, platform: Platform, assumed: Assumptions, *, read_first: bool = False) -> dict[str, float]:
    """What one message uses of each billed quantity. ``read_first``: each stored report is a read, then a write
    only when it changes something (the read-then-write design)."""
    rtt = assumed.dynamodb_round_trip_ms
    cpu_ms = life.cpu_us_per_report / 1000 / platform.cpu_share
    round_trips = 2 if read_first else 1
    callback_ms = math.ceil(cpu_ms + round_trips * rtt)  # billed by the ms, rounded up
    registration_ms = math.ceil(cpu_ms + rtt)
    publisher_invocations = life.publisher_records / assumed.records_per_publisher_invocation
    events_per_invocation = life.events / publisher_invocations if publisher_invocations else 0.0
    publisher_ms = math.ceil(
        assumed.records_per_publisher_invocation * assumed.publisher_cpu_ms_per_record
        + math.ceil(events_per_invocation / MAX_ENTRIES) * assumed.put_events_round_trip_ms
    )
    # The poll runs' time on this message: its calls, and settling it at each run (as if one after the other: the
    # run overlaps them, so this is the most it costs).
    poller_ms = life.provider_calls * assumed.provider_round_trip_ms + life.polled * round_trips * rtt
    invocations = life.pushed_reports + 1 + publisher_invocations  # callbacks, the registration, the publisher
    cold_ms = assumed.cold_start_share * invocations * life.cold_init_ms
    milliseconds = (
        life.pushed_reports * callback_ms + registration_ms + publisher_invocations * publisher_ms + poller_ms + cold_ms
    )
    requests = 1 + life.pushed_reports
    log_bytes = (
        requests * (life.log_bytes_per_report + platform.access_log_bytes) + invocations * assumed.platform_log_bytes
    )
    write_units = life.write_units - (life.failed_write_units if read_first else 0.0)
    read_units = life.read_units + (0.5 * life.reports_stored if read_first else 0.0)  # eventually consistent
    stored_bytes = life.item_bytes + 100  # DynamoDB bills 100 bytes of overhead an item
    return {
        "api_requests": requests,
        "invocations": invocations,
        "gb_seconds": milliseconds / 1000 * platform.memory_mb / 1024,
        "write_units": write_units,
        "read_units": read_units,
        "gb_months": stored_bytes / GB * platform.retention_days / 30,
        "events": life.events,
        "log_gb": log_bytes / GB,
    }


def dollars(used: Mapping[str, float], prices: Prices, messages: int = PER) -> dict[str, float]:
    """Dollars for ``messages`` messages, by service."""
    million = messages / 1_000_000
    return {
        "API Gateway": used["api_requests"] * million * prices.http_api_per_million,
        "Lambda requests": used["invocations"] * million * prices.lambda_per_million,
        "Lambda duration": used["gb_seconds"] * messages * prices.lambda_arm_gb_second,
        "DynamoDB writes": used["write_units"] * million * prices.write_unit_per_million,
        "DynamoDB reads": used["read_units"] * million * prices.read_unit_per_million,
        "DynamoDB storage": used["gb_months"] * messages * prices.storage_gb_month,
        "EventBridge": used["events"] * million * prices.events_per_million,
        "CloudWatch Logs": used["log_gb"] * messages * prices.logs_gb,
    }


def at_floor(life: Life, floor_calls: float) -> Life:
    """The same life with the least it needs: one write per status change (plus entering and leaving the due
    index), no failed write, one log line per report, a call per 50 due ids."""
    per_line = life.log_bytes_per_report / max(life.log_lines_per_report, 1.0)
    return replace(
        life,
        write_units=life.events + 2,
        failed_write_units=0.0,
        publisher_records=life.events,
        provider_calls=floor_calls,
        log_bytes_per_report=per_line,
        log_lines_per_report=1.0,
    )


def naive(life: Life) -> Life:
    """The same life in the naive design: per-message polling, two log lines per report (the read before each
    write is ``usage(read_first=True)``)."""
    per_line = life.log_bytes_per_report / max(life.log_lines_per_report, 1.0)
    return replace(life, provider_calls=life.polled, log_bytes_per_report=2 * per_line, log_lines_per_report=2.0)


def access_log_bytes() -> float:
    """The HTTP API's access log line for one callback, from template.yaml's format with typical values."""
    sample = {
        "requestId": "Jl3kGh5aliAEJ8w=",
        "identity.sourceIp": "203.0.113.10",
        "requestTime": "23/Nov/2026:10:06:00 +0000",
        "httpMethod": "POST",
        "routeKey": "POST /callbacks/sevenio",
        "status": "200",
        "protocol": "HTTP/1.1",
        "responseLength": "30",
        "integrationLatency": "15",
    }
    for resource in template()["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::HttpApi":
            form = resource["Properties"].get("AccessLogSettings", {}).get("Format")
            if isinstance(form, str):
                line = re.sub(r"\$context\.([\w.]+)", lambda m: sample.get(m.group(1), "-"), form)
                return float(len(line.encode()) + 1)
    return 0.0


def platform() -> Platform:
    resources = template()
    memory = resources.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    retention = resources.get("Parameters", {}).get("RetentionDays", {}).get("Default", 90)
    return Platform(float(memory), float(retention), access_log_bytes())


def life_from(ctx: Context, assumed: Assumptions) -> tuple[Life, float, list[str]]:
    """One message's life from the figures measured before, the floor of its provider calls, and what had to be
    assumed because a figure is missing."""
    missing: list[str] = []

    def value(section: str, name: str, fallback: float | None = None, unit: str = "") -> float:
        try:
            return ctx.find(section, name).value
        except KeyError:
            if fallback is None:
                raise
            missing.append(f"{section}: {name} (assumed {fallback:,g}{unit})")
            return fallback

    calls = ctx.find(measured.SECTION, measured.CALLS)
    life = Life(
        pushed_reports=value(measured.SECTION, measured.PUSHED),
        reports_stored=value(measured.SECTION, measured.REPORTS),
        provider_calls=calls.value,
        polled=value(measured.SECTION, measured.POLLED),
        events=value(measured.SECTION, measured.EVENTS),
        publisher_records=value(measured.SECTION, measured.RECORDS),
        write_units=value(measured.SECTION, measured.WRITE_UNITS),
        failed_write_units=value(measured.SECTION, measured.FAILED_UNITS),
        read_units=value(measured.SECTION, measured.READ_UNITS),
        item_bytes=value(measured.SECTION, measured.ITEM_BYTES),
        cpu_us_per_report=value("handler", "CPU per report, seven.io callback", assumed.cpu_us_per_report, " µs"),
        log_bytes_per_report=value(
            "handler", "log bytes per report, seven.io callback", assumed.log_bytes_per_report, " B"
        ),
        log_lines_per_report=value("handler", "log lines per report, seven.io callback", assumed.log_lines_per_report),
        cold_init_ms=value("coldstart", "cold init, callback function", assumed.cold_init_ms, " ms"),
    )
    return life, calls.floor if calls.floor is not None else calls.value, missing


def run(ctx: Context) -> list[Figure]:
    assumed = Assumptions()
    try:
        life, floor_calls, missing = life_from(ctx, assumed)
    except KeyError as absent:
        raise RuntimeError(f"the calls section's figures are needed, and {absent} is missing") from None
    where = platform()
    prices = Prices()
    ours = dollars(usage(life, where, assumed), prices)
    floor = dollars(usage(at_floor(life, floor_calls), where, assumed), prices)
    worst = dollars(usage(naive(life), where, assumed, read_first=True), prices)
    found = [
        Figure(
            SECTION,
            f"{service}, per million messages",
            ours[service],
            "$",
            floor=floor[service],
            baseline=worst[service],
            baseline_name="naive",
        )
        for service in ours
    ]
    total, total_floor, total_naive = sum(ours.values()), sum(floor.values()), sum(worst.values())
    found.append(
        Figure(
            SECTION,
            "total, per million messages",
            total,
            "$",
            floor=total_floor,
            baseline=total_naive,
            baseline_name="naive",
            target=f"<= {TARGET:.2f}x floor",
            met=at_most(total, TARGET * total_floor),
        )
    )
    describe(ctx, life, floor_calls, where, assumed, missing)
    return found


def describe(
    ctx: Context, life: Life, floor_calls: float, where: Platform, assumed: Assumptions, missing: list[str]
) -> None:
    ctx.note(
        SECTION,
        f"AWS list prices, us-east-1, USD, as published on {PRICES_AS_OF}: " + "; ".join(PRICE_SOURCES) + ". "
        "Free tiers left out; DynamoDB Streams reads by Lambda are free.",
    )
    ctx.note(
        SECTION,
        f"One message, measured (calls section, with its mix): 1 registration and {life.pushed_reports:.2f} pushed "
        f"reports (HTTP API requests and callback invocations), {life.reports_stored:.2f} reports stored, "
        f"{life.events:.2f} status events ({life.publisher_records:.2f} stream records to the publisher), "
        f"{life.write_units:.2f} write units ({life.failed_write_units:.2f} of them failed conditional writes), "
        f"{life.read_units:.3f} read units, {life.provider_calls:.3f} provider calls (due at {life.polled:.2f} runs), "
        f"a final item of {life.item_bytes:.0f} B. Handler: {life.cpu_us_per_report:,.0f} µs CPU, "
        f"{life.log_bytes_per_report:.0f} log bytes and {life.log_lines_per_report:.2f} log lines a report; cold "
        f"init {life.cold_init_ms:,.0f} ms.",
    )
    ctx.note(
        SECTION,
        f"From template.yaml: {where.memory_mb:.0f} MB functions (arm64), so a report's CPU takes "
        f"{1 / where.cpu_share:.1f}x its time here (Lambda gives one vCPU at 1,769 MB); data kept "
        f"{where.retention_days:.0f} days after its final status (storage billed for that long, plus DynamoDB's "
        f"100 B an item); an access log line of {where.access_log_bytes:.0f} B a request (its format, typical "
        "values).",
    )
    ctx.note(
        SECTION,
        f"Assumed: a DynamoDB round trip from Lambda of {assumed.dynamodb_round_trip_ms:g} ms (5-10 ms in a region; "
        "it dominates a callback's duration); a seven.io status call of "
        f"{assumed.provider_round_trip_ms:g} ms; PutEvents {assumed.put_events_round_trip_ms:g} ms for up to "
        f"{MAX_ENTRIES} events; the publisher at {assumed.publisher_cpu_ms_per_record:g} ms CPU a record and "
        f"{assumed.records_per_publisher_invocation:g} records an invocation (a stream batch: 1 at a trickle, up to "
        f"100 at load); {assumed.cold_start_share:.0%} of invocations cold, each billed the init measured here "
        "(INIT is billed; its time taken as is, not scaled to the memory's CPU share); "
        f"{assumed.platform_log_bytes:g} B of Lambda platform log records an invocation; the registration's CPU "
        "and logs as a callback's; the poll runs' time on a message taken as its calls and its settling one after "
        "the other (an upper bound); left out: the poller's fixed cost (one run a minute, 43,200 a month, whatever "
        "the traffic: about a cent) and the publisher's and poller's own log lines.",
    )
    if missing:
        ctx.note(SECTION, "Not measured in this run, so assumed: " + "; ".join(missing) + ".")
    ctx.note(
        SECTION,
        f"Floor: the same life with one write per status change (plus entering and leaving the due index), no "
        f"failed write, one log line a report and {floor_calls:.3f} provider calls (a call per "
        f"{sevenio.IDS_PER_CALL} due ids). Naive: a read (GetItem, half a unit) before each stored report "
        "and a second round trip, no failed writes, one provider call per message per poll, two log lines a "
        "report.",
    )
