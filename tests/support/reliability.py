"""docs/reliability.md from the last run of the hostile-input and fault tests.

A pytest plugin (enabled in pyproject.toml): it counts each listed test file's cases and failures, and, when
``RELIABILITY_REPORT`` names a file, writes the page there at the end of the session, with the examples the fuzz
tests recorded in .local/reliability/. ``make reliability`` runs the files below and rewrites docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATS = ROOT / ".local" / "reliability"


@dataclass(frozen=True)
class Suite:
    path: str
    tries: str
    lost: str


SUITES = [
    Suite(
        "tests/component/test_fuzz_routes.py",
        "Property-based fuzzing (hypothesis, seeded) of every operation of docs/openapi.json through the deployed "
        "handlers on moto: near-valid requests with hostile values (wrong JSON types, deep nesting, huge numbers, "
        "odd Unicode digits, control characters, overlong fields, odd form keys, signed seven.io webhooks), lookup "
        "and erasure query strings (huge, repeated, oddly escaped, NUL bytes; paging tokens garbled, foreign or "
        "forged) and callback URLs of every kind in registrations. Checks: never a 5xx but the 503 of a DNS that "
        "does not answer; a 4xx carries a JSON error; a refused request wrote nothing.",
        "items written by refused requests",
    ),
    Suite(
        "tests/e2e/test_fuzz_local_stack.py",
        "Black-box fuzzing of the running local stack (`make run`, SIMULATE=0) over real HTTP from the same "
        "strategies, plus raw requests (bad UTF-8, bad Content-Length, unknown methods, raw + and NUL in query "
        "strings). Checks: never a 5xx but the 503 of a DNS that does not answer; "
        "every message id of a refused request is unknown afterwards (GET answers 404).",
        "messages stored from refused requests",
    ),
    Suite(
        "tests/component/test_hostile_input.py",
        "Every input an outside fuzzer once answered with a 500, on each route it reached: deep JSON, 5,000-digit "
        "numbers, NaN, superscript and 5,000-digit form indexes, 5,000-deep keys, non-string providers, trailing "
        "newlines in ids, 60 KB raw fields, 101 reports in one request, unreadable bodies.",
        "items written by refused requests",
    ),
    Suite(
        "tests/unit/test_hostile_parsing.py",
        "The pure readers: strict JSON, form keys, ids, times in ASCII digits, Retry-After, the retry backoff, "
        "unreadable entries in provider answers.",
        "",
    ),
    Suite(
        "tests/component/test_poller_faults.py",
        "The poller against stand-ins answering like real servers sometimes do, over real HTTP: Retry-After of "
        "years, past, negative or invalid, as seconds or a date; 429 pauses; deep or huge JSON and unreadable "
        "EAPI rows; a body dripping a byte every 2 s; 307 redirects to a capture server of another origin; a "
        "provider down for good; DynamoDB down during a run.",
        "messages left undue, or given a next poll more than 1 h + jitter ahead; credentials at the redirect target",
    ),
    Suite(
        "tests/component/test_callback_outages.py",
        "Callbacks with DynamoDB or the secret store hanging, a signed request cut off at its deadline, an "
        "optional secret that is not set.",
        "reports of a request answered 503 that its retry did not store; nonces left used",
    ),
    Suite(
        "tests/integration/test_concurrency_dynamodb_local.py",
        "On DynamoDB Local: registrations racing two reports each, poll reschedules racing final pushes.",
        "registrations, reports or due entries lost",
    ),
    Suite(
        "tests/component/test_local_api.py",
        "The local API Gateway over raw sockets: unrouted methods, bodies that are not UTF-8, malformed lengths, "
        "chunked and oversized bodies, a burst of 200 connections, the keep-alive stall.",
        "",
    ),
    Suite(
        "tests/e2e/test_local_concurrency.py",
        "The running local stack under concurrency: 180 concurrent requests with threads switching every 10 us, "
        "each answered from its own event; a registration and a report racing for each of 120 messages.",
        "requests answered from another's event; registrations, reports or due entries lost",
    ),
    Suite(
        "tests/integration/test_local_stream_recovery.py",
        "The local stream reader across a DynamoDB Local restart on the same port, and a table made anew.",
        "records written after the restart and not delivered",
    ),
    Suite(
        "tests/e2e/test_local_shutdown.py",
        "SIGTERM in the middle of a simulation: the stack stops at once, cleanly.",
        "",
    ),
]
BY_PATH = {suite.path: suite for suite in SUITES}


@dataclass
class Tally:
    cases: int = 0
    failed: list[str] = field(default_factory=list)


class ReliabilityLog:
    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = defaultdict(Tally)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        path = report.nodeid.split("::", 1)[0]
        if path not in BY_PATH:
            return
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            tally = self.tallies[path]
            tally.cases += 1
            if report.outcome == "failed":
                tally.failed.append(report.nodeid.split("::", 1)[1])

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = os.environ.get("RELIABILITY_REPORT")
        if target and not hasattr(session.config, "workerinput"):
            (ROOT / target).write_text(render(self.tallies, _fuzz_stats()))


def record_fuzz_run(test: str, target: str, statuses: Mapping[int, int]) -> None:
    """Keep what one fuzz target's requests were answered, for the page (.local/reliability/, not in git)."""
    STATS.mkdir(parents=True, exist_ok=True)
    record = {
        "test": test,
        "target": target,
        "examples": sum(statuses.values()),
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "server_errors": sum(n for code, n in statuses.items() if code >= 500),
    }
    name = "".join(c if c.isalnum() else "-" for c in f"{test} {target}") + ".json"
    (STATS / name).write_text(json.dumps(record, indent=1) + "\n")


def _fuzz_stats() -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for file in sorted(STATS.glob("*.json")):
        record = json.loads(file.read_text())
        found[record["test"]].append(record)
    return found


def render(tallies: dict[str, Tally], fuzz: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "# Reliability",
        "",
        "What the hostile-input and fault tests try, and what their last run found: written by `make reliability`",
        f"on {datetime.now(UTC):%Y-%m-%d} (Python {platform.python_version()}, {platform.machine()}). Every file",
        "below also runs in `make test`.",
        "",
        "| test | what it tries | cases | failed | lost | reproduce |",
        "|---|---|---|---|---|---|",
    ]
    for suite in SUITES:
        tally = tallies.get(suite.path, Tally())
        examples = _examples(suite.path, fuzz)
        run = f"`.venv/bin/python -m pytest {suite.path}`"
        if not tally.cases:
            lines.append(f"| `{suite.path}` | {suite.tries} | not run | - | - | {run} |")
            continue
        cases = f"{tally.cases}" + (f" ({examples:,} generated requests)" if examples else "")
        failed = ", ".join(f"`{name}`" for name in tally.failed) or "0"
        lost = "see the failures" if tally.failed else (f"0 {suite.lost}" if suite.lost else "-")
        lines.append(f"| `{suite.path}` | {suite.tries} | {cases} | {failed} | {lost} | {run} |")
    for name, records in sorted(fuzz.items()):
        lines += ["", f"## {name}: answers by target", "", "| target | requests | answers | 5xx |", "|---|---|---|---|"]
        for record in records:
            answers = ", ".join(f"{code}: {n}" for code, n in record["statuses"].items())
            lines.append(f"| {record['target']} | {record['examples']:,} | {answers} | {record['server_errors']} |")
    lines += [
        "",
        "The fuzz runs are seeded: each run tries the same examples (`FUZZ_EXAMPLES`, 10,000 by default, shared",
        "among the targets). A failing example is kept in `.hypothesis/` (not in git) and tried first on the next run.",
    ]
    return "\n".join(lines) + "\n"


def _examples(path: str, fuzz: dict[str, list[dict[str, Any]]]) -> int:
    name = {
        "tests/component/test_fuzz_routes.py": "fuzz-routes",
        "tests/e2e/test_fuzz_local_stack.py": "fuzz-local-stack",
    }
    return sum(record["examples"] for record in fuzz.get(name.get(path, ""), []))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ReliabilityLog(), "reliability-log")
