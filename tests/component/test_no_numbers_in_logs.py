"""Phone numbers are personal data: what the functions print (logs and EMF lines) never holds one, not even the
number inside a BulkSMS EAPI message id, nor one a refused request carried."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from support.lambda_context import FakeContext

from dlrwatch.observability import logger

EVENTS = Path(__file__).resolve().parents[2] / "events"
NUMBER = "447700900123"  # the msisdn of events/bulksms-eapi-push.json


def eapi_push(**query: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "bulksms-eapi-push.json").read_text())
    event["queryStringParameters"] |= query
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in event["queryStringParameters"].items())
    return event


@pytest.fixture
def everything_logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Any:
    """Everything a request prints: the EMF lines (stdout) and every log record with all its keys."""
    level = logger.log_level
    logger.setLevel(logging.DEBUG)  # the per-report DEBUG line too
    capsys.readouterr()
    caplog.clear()

    def printed() -> str:
        # Ours: the libraries' DEBUG lines (botocore's requests) are not emitted on Lambda.
        records = [json.dumps(vars(r), default=str) for r in caplog.records if r.name == logger.name]
        return capsys.readouterr().out + "\n".join(records)

    with caplog.at_level(logging.DEBUG, logger=logger.name):
        yield printed
    logger.setLevel(level)


def test_a_stored_eapi_report_is_logged_without_its_number(callback: Any, everything_logged: Any) -> None:
    answer = callback.handler(eapi_push(), FakeContext())
    assert answer["statusCode"] == 200
    printed = everything_logged()
    assert "123456789:***23" in printed, "the report line is there, its id masked"
    assert NUMBER not in printed


@pytest.mark.parametrize("msisdn", ["+44770090012x", "44 7700 900123 ext"])
def test_a_refused_number_is_not_echoed_into_the_log(callback: Any, everything_logged: Any, msisdn: str) -> None:
    answer = callback.handler(eapi_push(msisdn=msisdn), FakeContext())
    assert answer["statusCode"] == 400
    assert "msisdn" in json.loads(answer["body"])["error"], "the sender still learns which field is wrong"
    printed = everything_logged()
    assert "rejected input" in printed
    assert "7700" not in printed
