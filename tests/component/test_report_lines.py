"""What a callback writes to CloudWatch Logs per report: one line a request (the Reports metric carrying the
reports' outcomes), not a log line and a metric line for each report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.lambda_context import FakeContext

EVENTS = Path(__file__).resolve().parents[2] / "events"


def printed_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_a_request_of_one_report_writes_one_line_that_says_what_became_of_it(
    callback: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    callback.handler(json.loads((EVENTS / "sevenio-legacy-get.json").read_text()), FakeContext())
    lines = printed_lines(capsys)
    assert len(lines) == 1, lines
    [line] = lines
    assert line["Reports"] == [1.0]  # EMF: the values counted
    assert (line["provider"], line["status"], line["source"]) == ("sevenio", "delivered", "push")
    assert line["reports"] == [{"message_id": "77149843739", "provider_status": "DELIVERED", "outcome": "applied"}]
    assert line["correlation_id"], "the request id, as in the API's access log"
    assert line["message"] == "reports"


def test_the_reports_of_one_request_are_counted_in_one_line_per_status(
    callback: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = json.loads((EVENTS / "bulksms-webhook.json").read_text())
    delivered, expired = json.loads(event["body"])
    event["body"] = json.dumps(
        [{**delivered, "id": str(1_390_000_000 + n)} for n in range(9)] + [{**expired, "id": "1390000009"}]
    )
    capsys.readouterr()
    callback.handler(event, FakeContext())
    lines = printed_lines(capsys)
    assert [(line["status"], line["Reports"], len(line["reports"])) for line in lines] == [
        ("delivered", [9.0], 9),
        ("expired", [1.0], 1),
    ], "ten reports, two lines"
