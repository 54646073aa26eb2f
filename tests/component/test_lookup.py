"""The support desk's lookup and erasure by recipient (``GET`` and ``DELETE /messages?recipient=``), end to end over
API Gateway events, against moto's DynamoDB."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from support.lambda_context import FakeContext

from dlrwatch.domain.report import Report
from dlrwatch.domain.status import Status
from dlrwatch.store import Store

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NUMBER = "+491701234567"
DIGITS = NUMBER[1:]
OTHER = "+491701234568"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, store: Store) -> Any:
    """The deployed handler module, its store pointed at moto and its clock fixed at NOW."""
    import messages as module

    monkeypatch.setattr(module.service, "store", store)
    monkeypatch.setattr(module.service, "clock", lambda: NOW)
    return module


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def with_messages(*messages: dict[str, Any]) -> dict[str, Any]:
    """The sample registration with these messages."""
    event = load("messages-register")
    event["body"] = json.dumps({"messages": list(messages)})
    event["isBase64Encoded"] = False
    return event


def message(**fields: Any) -> dict[str, Any]:
    return {"provider": "sevenio", "message_id": "77149843739", "sent_at": "2026-11-22T10:00:00Z"} | fields


def request(method: str, query: str) -> dict[str, Any]:
    """``{method} /messages?{query}`` as API Gateway (payload 2.0) hands it over."""
    event = copy.deepcopy(load("messages-read"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/messages"
    event["requestContext"]["http"]["method"] = method
    event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} /messages"
    event["rawQueryString"] = query
    event.pop("pathParameters", None)
    return event


def invoke(module: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = module.handler(event, FakeContext())
    return answer["statusCode"], json.loads(answer["body"])


def look_up(module: Any, query: str) -> tuple[int, dict[str, Any]]:
    return invoke(module, request("GET", query))


def of(recipient: str, **more: str) -> str:
    return "&".join(f"{name}={quote(value, safe='')}" for name, value in {"recipient": recipient, **more}.items())


def sent(minutes_ago: int) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def register(module: Any, *entries: dict[str, Any]) -> None:
    code, body = invoke(module, with_messages(*entries))
    assert code == 200, body


# Five messages to NUMBER (in three providers, written three ways, two sent at the same moment), two to OTHER.
MINE = [
    message(provider="sevenio", message_id="1001", recipient=NUMBER, sent_at=sent(50)),
    message(provider="bulksms", message_id="2001", recipient="0049 170 1234567", sent_at=sent(40)),
    message(provider="bulksms-eapi", message_id=f"9001:{DIGITS}", sent_at=sent(30)),  # found by its msisdn
    message(provider="sevenio", message_id="1002", recipient="+49 (170) 123-45-67", sent_at=sent(20)),
    message(provider="bulksms", message_id="2002", recipient=DIGITS, sent_at=sent(20)),
]
THEIRS = [
    message(provider="sevenio", message_id="1003", recipient=OTHER, sent_at=sent(25)),
    message(provider="bulksms", message_id="2003", recipient=OTHER, sent_at=sent(10)),
]


@pytest.fixture
def registered(api: Any) -> None:
    register(api, *MINE, *THEIRS)


def ids(body: dict[str, Any]) -> list[str]:
    return [f"{m['provider']}#{m['message_id']}" for m in body["messages"]]


# -- looking up ------------------------------------------------------------------------------------------


def test_a_recipients_messages_are_listed_newest_first_across_providers(api: Any, registered: None) -> None:
    code, body = look_up(api, of(NUMBER))
    assert code == 200
    assert body["next"] is None
    assert sorted(ids(body)[:2]) == ["bulksms#2002", "sevenio#1002"]  # sent at the same moment
    assert ids(body)[2:] == [f"bulksms-eapi#9001:{DIGITS}", "bulksms#2001", "sevenio#1001"]
    assert [m["sent_at"] for m in body["messages"]] == sorted((m["sent_at"] for m in body["messages"]), reverse=True)
    first = body["messages"][-1]
    assert first == {
        "provider": "sevenio",
        "message_id": "1001",
        "status": "pending",
        "final": False,
        "provider_status": None,
        "status_at": None,
        "sent_at": "2026-11-22T11:10:00.000Z",
    }


def test_an_entry_shows_the_messages_current_status(api: Any, store: Store, registered: None) -> None:
    store.apply(Report("sevenio", "1001", Status.DELIVERED, "DELIVERED", NOW - timedelta(minutes=49)), NOW)
    _, body = look_up(api, of(NUMBER))
    entry = next(m for m in body["messages"] if m["message_id"] == "1001")
    assert (entry["status"], entry["final"], entry["provider_status"]) == ("delivered", True, "DELIVERED")
    assert entry["status_at"] == "2026-11-22T11:11:00.000Z"


def test_pages_of_two_list_every_message_once_and_end_with_no_next(api: Any, registered: None) -> None:
    seen: list[str] = []
    query = of(NUMBER, limit="2")
    for _ in range(10):
        code, body = look_up(api, query)
        assert code == 200
        assert len(body["messages"]) <= 2
        seen += ids(body)
        if body["next"] is None:
            break
        query = of(NUMBER, limit="2", next=body["next"])
    assert len(seen) == len(MINE) == len(set(seen))
    _, whole = look_up(api, of(NUMBER))
    assert seen == ids(whole)


def test_a_full_last_page_has_no_next(api: Any, registered: None) -> None:
    code, body = look_up(api, of(OTHER, limit="2"))
    assert code == 200
    assert ids(body) == ["bulksms#2003", "sevenio#1003"]
    assert body["next"] is None


def test_since_is_inclusive(api: Any, registered: None) -> None:
    _, body = look_up(api, of(NUMBER, since="2026-11-22T11:30:00Z"))
    assert set(ids(body)) == {f"bulksms-eapi#9001:{DIGITS}", "sevenio#1002", "bulksms#2002"}
    _, later = look_up(api, of(NUMBER, since="2026-11-22T13:30:00.001+02:00"))
    assert set(ids(later)) == {"sevenio#1002", "bulksms#2002"}


@pytest.mark.parametrize(
    "query",
    [f"recipient=%2B{DIGITS}", f"recipient=+{DIGITS}", f"recipient=00{DIGITS}", "recipient=%2B49%20170%201234567"],
    ids=["plus encoded", "plus raw", "00", "with spaces"],
)
def test_a_recipient_is_found_however_its_plus_was_sent(api: Any, registered: None, query: str) -> None:
    code, body = look_up(api, query)
    assert code == 200
    assert len(body["messages"]) == len(MINE)


def test_an_unknown_recipient_has_no_messages(api: Any, registered: None) -> None:
    assert look_up(api, of("+14155550100")) == (200, {"messages": [], "next": None})


def test_a_message_whose_recipient_is_no_number_is_registered_but_not_listed(api: Any, store: Store) -> None:
    register(api, message(recipient="Max Mustermann"))
    item = store.get("sevenio", "77149843739")
    assert item is not None
    assert item["recipient"] == "Max Mustermann"
    assert "recipient_key" not in item


def test_another_recipients_token_is_refused(api: Any, registered: None) -> None:
    _, page = look_up(api, of(OTHER, limit="1"))
    assert page["next"] is not None
    code, body = look_up(api, of(NUMBER, limit="1", next=page["next"]))
    assert code == 400
    assert body == {"error": "next is not a token of this lookup"}


def test_a_tampered_token_is_refused(api: Any, registered: None) -> None:
    _, page = look_up(api, of(NUMBER, limit="1"))
    token = page["next"]
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    code, body = look_up(api, of(NUMBER, limit="1", next=tampered))
    assert code == 400
    assert "next" in body["error"]


BAD_LOOKUPS = {
    "no recipient": ("", "recipient is required"),
    "empty recipient": ("recipient=", "recipient is required"),
    "only a since": ("since=2026-11-22T10:00:00Z", "recipient is required"),
    "letters": ("recipient=%2B49170ABCDEFG", "E.164"),
    "a national number": ("recipient=0170%201234567", "E.164"),
    "16 digits": ("recipient=%2B4917012345678901", "E.164"),
    "an Arabic-Indic digit": ("recipient=%2B49%D9%A3701234567", "E.164"),
    "limit 0": (of(NUMBER, limit="0"), "limit"),
    "limit 101": (of(NUMBER, limit="101"), "limit"),
    "limit not a number": (of(NUMBER, limit="ten"), "limit"),
    "limit negative": (of(NUMBER, limit="-1"), "limit"),
    "limit a fraction": (of(NUMBER, limit="1.5"), "limit"),
    "since without a zone": (of(NUMBER, since="2026-11-22T10:00:00"), "since"),
    "since garbage": (of(NUMBER, since="yesterday"), "since"),
    "recipient twice": (f"{of(NUMBER)}&{of(OTHER)}", "more than once"),
}


@pytest.mark.parametrize("case", list(BAD_LOOKUPS))
def test_a_lookup_that_can_never_succeed_is_answered_400_naming_the_problem(
    api: Any, registered: None, case: str
) -> None:
    query, named = BAD_LOOKUPS[case]
    code, body = look_up(api, query)
    assert code == 400
    assert named in body["error"]
    assert "1701234567" not in body["error"]


def test_no_number_reaches_a_log_line(api: Any, registered: None, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    _, page = look_up(api, of(NUMBER, limit="1"))
    look_up(api, of(NUMBER, limit="1", next=page["next"]))
    look_up(api, "recipient=%2B49170123456X")
    invoke(api, request("DELETE", of(NUMBER)))
    logged = capsys.readouterr()
    assert "1701234567" not in logged.out + logged.err


# -- erasure ---------------------------------------------------------------------------------------------


def test_erasure_removes_exactly_that_recipients_messages(api: Any, store: Store, registered: None) -> None:
    code, body = invoke(api, request("DELETE", f"recipient=+{DIGITS}"))
    assert (code, body) == (200, {"removed": len(MINE), "more": False})
    assert look_up(api, of(NUMBER)) == (200, {"messages": [], "next": None})
    for entry in MINE:
        message_id = entry["message_id"]
        assert store.get(entry["provider"], message_id) is None, message_id
    _, theirs = look_up(api, of(OTHER))
    assert len(theirs["messages"]) == len(THEIRS)
    for entry in THEIRS:
        assert store.get(entry["provider"], entry["message_id"]) is not None


def test_erasure_goes_on_while_the_client_repeats_it(
    api: Any, store: Store, registered: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call removes a bounded number (so that it ends within the function's timeout); ``more`` says go on."""
    monkeypatch.setattr("dlrwatch.messages.FORGET_MOST", 2)
    answers = [invoke(api, request("DELETE", of(NUMBER)))[1] for _ in range(3)]
    assert answers == [{"removed": 2, "more": True}, {"removed": 2, "more": True}, {"removed": 1, "more": False}]
    assert look_up(api, of(NUMBER))[1]["messages"] == []
    assert invoke(api, request("DELETE", of(NUMBER))) == (200, {"removed": 0, "more": False})


def test_erasing_an_unknown_recipient_removes_nothing(api: Any, store: Store, registered: None) -> None:
    before = store.client.scan(TableName=store.table_name)["Count"]
    assert invoke(api, request("DELETE", of("+14155550100"))) == (200, {"removed": 0, "more": False})
    assert store.client.scan(TableName=store.table_name)["Count"] == before


@pytest.mark.parametrize("query", ["", "recipient=Max", f"since=2026-11-22T10:00:00Z&recipient=%2B{DIGITS}0000000"])
def test_an_erasure_without_a_phone_number_is_refused_and_removes_nothing(
    api: Any, store: Store, registered: None, query: str
) -> None:
    before = store.client.scan(TableName=store.table_name)["Count"]
    code, body = invoke(api, request("DELETE", query))
    assert code == 400
    assert "recipient" in body["error"]
    assert store.client.scan(TableName=store.table_name)["Count"] == before
