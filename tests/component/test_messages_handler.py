"""The messages function end to end over API Gateway events (events/messages-*.json), against moto's DynamoDB."""

from __future__ import annotations

import copy
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.dynamo import RequestCounter
from support.lambda_context import FakeContext

from dlrwatch.domain.report import Report
from dlrwatch.domain.status import Status
from dlrwatch.store import DUE_INDEX, ForwardState, Store, to_dynamo

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = datetime(2026, 11, 22, 10, 1, tzinfo=UTC)
SENT_AT = "2026-11-22T10:00:00.000Z"
FIRST_POLL = "2026-11-22T10:05:00.000Z"

# The sample batch, as stored: (provider, stored message id, recipient), in the order of the request.
SAMPLE = [
    ("sevenio", "77149843739", "+491701234567"),
    ("bulksms-eapi", "123456789:447700900123", "+447700900123"),
    ("bulksms", "1380000001", "+27820000001"),
]


def load(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def with_body(body: str) -> dict[str, Any]:
    """The sample registration with another body."""
    event = copy.deepcopy(load("messages-register"))
    event["body"] = body
    event["isBase64Encoded"] = False
    return event


def with_messages(*messages: Any) -> dict[str, Any]:
    return with_body(json.dumps({"messages": list(messages)}))


def read_of(provider: str, message_id: str) -> dict[str, Any]:
    """The sample read, for another message."""
    event = copy.deepcopy(load("messages-read"))
    path = f"/messages/{provider}/{message_id}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"provider": provider, "message_id": message_id}
    return event


def message(**changes: Any) -> dict[str, Any]:
    """A valid registration entry, changed by ``changes`` (``None`` drops the field)."""
    entry = {"provider": "sevenio", "message_id": "77149843739", "sent_at": "2026-11-22T10:00:00Z"}
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, store: Store) -> Any:
    """The deployed handler module, its store pointed at moto and its clock fixed a minute after sending."""
    import messages as module

    monkeypatch.setattr(module.service, "store", store)
    monkeypatch.setattr(module.service, "clock", lambda: NOW)
    return module


def invoke(module: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = module.handler(event, FakeContext())
    return answer["statusCode"], json.loads(answer["body"])


def all_items(store: Store) -> list[dict[str, Any]]:
    return sorted(store.client.scan(TableName=store.table_name)["Items"], key=lambda i: i["pk"]["S"])


def due_pks(store: Store, shard: str, until: str) -> set[str]:
    """The messages the due index lists on ``shard`` up to ``until``: what the poller would find."""
    answer = store.client.query(
        TableName=store.table_name,
        IndexName=DUE_INDEX,
        KeyConditionExpression="due_shard = :shard AND due_at <= :until",
        ExpressionAttributeValues=to_dynamo({":shard": shard, ":until": until}),
    )
    return {item["pk"]["S"] for item in answer["Items"]}


def stored(store: Store, provider: str, message_id: str) -> dict[str, Any]:
    item = store.get(provider, message_id)
    assert item is not None, f"{provider} {message_id} is not stored"
    return item


# -- registering -------------------------------------------------------------------------------------


def test_registering_the_sample_batch_answers_one_result_per_message_in_order(api: Any) -> None:
    code, body = invoke(api, load("messages-register"))
    assert code == 200
    assert body == {
        "results": [
            {"provider": provider, "message_id": message_id, "result": "registered"}
            for provider, message_id, _ in SAMPLE
        ]
    }


@pytest.mark.parametrize(("provider", "message_id", "recipient"), SAMPLE, ids=[p for p, _, _ in SAMPLE])
def test_a_registered_message_is_pending_and_due_five_minutes_after_sending(
    provider: str, message_id: str, recipient: str, api: Any, store: Store
) -> None:
    invoke(api, load("messages-register"))
    item = stored(store, provider, message_id)
    assert item["status"] == "pending"
    assert item["final"] is False
    assert item["sent_at"] == SENT_AT
    assert item["recipient"] == recipient
    assert item["due_at"] == FIRST_POLL
    assert item["poll_attempt"] == 0
    assert f"{provider}#{message_id}" in due_pks(store, item["due_shard"], FIRST_POLL)
    assert f"{provider}#{message_id}" not in due_pks(store, item["due_shard"], "2026-11-22T10:04:59.999Z")


def test_a_bulksms_eapi_id_is_stored_in_the_form_its_reports_carry(api: Any, store: Store) -> None:
    invoke(api, load("messages-register"))
    assert store.get("bulksms-eapi", "123456789:447700900123") is not None
    assert store.get("bulksms-eapi", "123456789:+447700900123") is None


def test_registering_the_same_batch_again_is_answered_already_registered_and_changes_nothing(
    api: Any, store: Store
) -> None:
    invoke(api, load("messages-register"))
    before = all_items(store)
    code, body = invoke(api, load("messages-register"))
    assert code == 200
    assert [r["result"] for r in body["results"]] == ["already registered"] * len(SAMPLE)
    assert all_items(store) == before


def test_a_non_final_report_that_arrived_first_is_kept_and_the_message_becomes_due(api: Any, store: Store) -> None:
    early = Report("sevenio", "77149843739", Status.SENT, "TRANSMITTED", datetime(2026, 11, 22, 10, 0, 30, tzinfo=UTC))
    store.apply(early, NOW)
    code, body = invoke(api, load("messages-register"))
    assert code == 200
    assert body["results"][0]["result"] == "registered"
    item = stored(store, "sevenio", "77149843739")
    assert (item["status"], item["provider_status"], item["status_at"]) == (
        "sent",
        "TRANSMITTED",
        "2026-11-22T10:00:30.000Z",
    )
    assert item["final"] is False
    assert (item["sent_at"], item["recipient"]) == (SENT_AT, "+491701234567")
    assert (item["due_at"], item["poll_attempt"]) == (FIRST_POLL, 0)
    assert "sevenio#77149843739" in due_pks(store, item["due_shard"], FIRST_POLL)
    assert len(item["history"]) == 1


def test_a_final_report_that_arrived_first_is_kept_and_the_message_is_never_due(api: Any, store: Store) -> None:
    delivered_at = datetime(2026, 11, 22, 10, 0, 40, tzinfo=UTC)
    early = Report("bulksms", "1380000001", Status.DELIVERED, "DELIVERED", delivered_at)
    store.apply(early, NOW)
    code, body = invoke(api, load("messages-register"))
    assert code == 200
    assert body["results"][2] == {"provider": "bulksms", "message_id": "1380000001", "result": "registered"}
    item = stored(store, "bulksms", "1380000001")
    assert (item["status"], item["final"], item["provider_status"]) == ("delivered", True, "DELIVERED")
    assert (item["sent_at"], item["recipient"]) == (SENT_AT, "+27820000001")
    assert "due_shard" not in item
    assert "due_at" not in item
    # The other two messages of the batch are due as usual.
    assert stored(store, "sevenio", "77149843739")["due_at"] == FIRST_POLL
    # Registering it again is still "already registered".
    _, again = invoke(api, load("messages-register"))
    assert again["results"][2]["result"] == "already registered"


def test_a_message_registered_without_sent_at_counts_as_sent_now(api: Any, store: Store) -> None:
    code, _ = invoke(api, with_messages(message(sent_at=None)))
    assert code == 200
    item = stored(store, "sevenio", "77149843739")
    assert item["sent_at"] == "2026-11-22T10:01:00.000Z"
    assert item["due_at"] == "2026-11-22T10:06:00.000Z"
    assert item["recipient"] is None


def test_sent_at_in_another_zone_is_stored_in_utc(api: Any, store: Store) -> None:
    code, _ = invoke(api, with_messages(message(sent_at="2026-11-22T11:00:00+01:00")))
    assert code == 200
    assert stored(store, "sevenio", "77149843739")["sent_at"] == SENT_AT


def test_inputs_at_the_limits_are_accepted(api: Any, store: Store) -> None:
    code, body = invoke(
        api,
        with_messages(
            message(sent_at="2026-11-22T10:16:00Z", recipient="+" + "1" * 31),
        ),
    )
    assert (code, body["results"][0]["result"]) == (200, "registered")
    assert stored(store, "sevenio", "77149843739")["recipient"] == "+" + "1" * 31


def test_registration_costs_one_write_request_per_message(api: Any, requests_sent: RequestCounter) -> None:
    requests_sent.reset()
    invoke(api, load("messages-register"))
    assert requests_sent.calls["UpdateItem"] == len(SAMPLE)
    assert requests_sent.writes == len(SAMPLE)


BAD_INPUT: dict[str, tuple[str, list[str]]] = {
    "invalid JSON": ('{"messages": ', ["not valid JSON"]),
    "not an object": ('["77149843739"]', ['{"messages": [...]}']),
    "missing messages": ("{}", ['{"messages": [...]}']),
    "messages not a list": ('{"messages": {"provider": "sevenio"}}', ['{"messages": [...]}']),
    "empty list": ('{"messages": []}', ["at least one message"]),
    "entry not an object": ('{"messages": ["77149843739"]}', ["messages[0]", "not an object"]),
    "unknown provider": (json.dumps({"messages": [message(provider="twilio")]}), ["messages[0]", "provider", "twilio"]),
    "missing message_id": (json.dumps({"messages": [message(message_id=None)]}), ["messages[0]", "message_id"]),
    "empty message_id": (json.dumps({"messages": [message(message_id="")]}), ["messages[0]", "message_id"]),
    "numeric message_id": (json.dumps({"messages": [message(message_id=77149843739)]}), ["messages[0]", "message_id"]),
    "bad message id characters": (json.dumps({"messages": [message(message_id="771#49")]}), ["messages[0]", "771#49"]),
    "bulksms-eapi id without batch": (
        json.dumps({"messages": [message(provider="bulksms-eapi", message_id="447700900123")]}),
        ["messages[0]", "{batch_id}:{msisdn}"],
    ),
    "bulksms-eapi bad msisdn": (
        json.dumps({"messages": [message(provider="bulksms-eapi", message_id="123456789:44x")]}),
        ["messages[0]", "msisdn"],
    ),
    "sent_at without a zone": (
        json.dumps({"messages": [message(sent_at="2026-11-22T10:00:00")]}),
        ["messages[0]", "sent_at", "zone"],
    ),
    "sent_at garbage": (json.dumps({"messages": [message(sent_at="yesterday")]}), ["messages[0]", "sent_at"]),
    "sent_at a number": (json.dumps({"messages": [message(sent_at=1795341600)]}), ["messages[0]", "sent_at"]),
    "sent_at too far ahead": (
        json.dumps({"messages": [message(sent_at="2026-11-22T10:16:00.001Z")]}),
        ["messages[0]", "sent_at", "future"],
    ),
    "recipient too long": (
        json.dumps({"messages": [message(recipient="+" + "1" * 32)]}),
        ["messages[0]", "recipient", "32"],
    ),
    "recipient empty": (json.dumps({"messages": [message(recipient="")]}), ["messages[0]", "recipient"]),
    "recipient a number": (json.dumps({"messages": [message(recipient=491701234567)]}), ["messages[0]", "recipient"]),
    "more than 500 messages": (
        json.dumps({"messages": [message(message_id=str(77149843739 + i)) for i in range(501)]}),
        ["at most 500", "501"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_answered_400_naming_the_problem_and_stores_nothing(
    case: str, api: Any, store: Store, requests_sent: RequestCounter
) -> None:
    body, named = BAD_INPUT[case]
    code, answer = invoke(api, with_body(body))
    assert code == 400
    for fragment in named:
        assert fragment in answer["error"]
    assert requests_sent.writes == 0
    assert all_items(store) == []


def test_one_bad_message_in_a_batch_stores_none_of_it_and_is_named_by_its_position(
    api: Any, store: Store, requests_sent: RequestCounter
) -> None:
    code, answer = invoke(api, with_messages(message(), message(message_id="1380000001", provider="nope")))
    assert code == 400
    assert answer["error"].startswith("messages[1]: ")
    assert "messages[0]" not in answer["error"]
    assert requests_sent.writes == 0
    assert all_items(store) == []


def test_every_bad_message_of_a_batch_is_named_at_once(api: Any, store: Store) -> None:
    code, answer = invoke(api, with_messages(message(provider="nope"), message(), message(sent_at="soon")))
    assert code == 400
    assert "messages[0]" in answer["error"]
    assert "messages[2]" in answer["error"]
    assert "messages[1]" not in answer["error"]
    assert all_items(store) == []


# -- reading -----------------------------------------------------------------------------------------


def test_reading_a_registered_message_shows_its_status_and_next_poll(api: Any) -> None:
    invoke(api, load("messages-register"))
    code, body = invoke(api, load("messages-read"))
    assert code == 200
    assert body["provider"] == "sevenio"
    assert body["message_id"] == "77149843739"
    assert body["status"] == "pending"
    assert body["final"] is False
    assert body["provider_status"] is None
    assert body["status_at"] is None
    assert body["next_poll_at"] == FIRST_POLL
    assert body["history"] == []
    assert body["sent_at"] == SENT_AT
    assert body["recipient"] == "+491701234567"
    assert body["poll_attempt"] == 0
    assert isinstance(body["poll_attempt"], int)


def test_reading_a_message_after_its_final_report_shows_it_is_no_longer_polled(api: Any, store: Store) -> None:
    invoke(api, load("messages-register"))
    delivered = Report(
        "sevenio", "77149843739", Status.DELIVERED, "DELIVERED", datetime(2026, 11, 22, 10, 0, 50, tzinfo=UTC)
    )
    store.apply(delivered, NOW)
    code, body = invoke(api, load("messages-read"))
    assert code == 200
    assert (body["status"], body["final"], body["provider_status"]) == ("delivered", True, "DELIVERED")
    assert body["status_at"] == "2026-11-22T10:00:50.000Z"
    assert body["next_poll_at"] is None
    assert [(h["status"], h["provider_status"]) for h in body["history"]] == [("delivered", "DELIVERED")]


def test_reading_a_message_known_only_from_a_report_works(api: Any, store: Store) -> None:
    store.apply(Report("bulksms", "1380000009", Status.BUFFERED, "ACCEPTED", None), NOW)
    code, body = invoke(api, read_of("bulksms", "1380000009"))
    assert code == 200
    assert (body["status"], body["final"], body["next_poll_at"], body["sent_at"]) == ("buffered", False, None, None)


def test_reading_an_unknown_message_answers_404(api: Any) -> None:
    invoke(api, load("messages-register"))
    code, body = invoke(api, read_of("sevenio", "77149843700"))
    assert code == 404
    assert "77149843700" in body["error"]


def test_reading_with_an_unknown_provider_answers_404(api: Any) -> None:
    invoke(api, load("messages-register"))
    code, body = invoke(api, read_of("twilio", "77149843739"))
    assert code == 404
    assert "twilio" in body["error"]


def test_reading_an_impossible_message_id_answers_404(api: Any) -> None:
    code, body = invoke(api, read_of("bulksms-eapi", "no-batch"))
    assert code == 404
    assert "error" in body


@pytest.mark.parametrize(
    "written", ["123456789:+447700900123", "123456789:447700900123", "123456789%3A%2B447700900123"]
)
def test_a_bulksms_eapi_message_can_be_read_with_or_without_plus_or_percent_encoded(written: str, api: Any) -> None:
    invoke(api, load("messages-register"))
    code, body = invoke(api, read_of("bulksms-eapi", written))
    assert code == 200
    assert (body["provider"], body["message_id"]) == ("bulksms-eapi", "123456789:447700900123")
    assert body["recipient"] == "+447700900123"


# -- status callbacks: callback_url at registration ------------------------------------------------------

CALLBACK = "https://hooks.sender.example/dlr?token=s3cr3t-sender-token"
# What the injected resolver answers: a public address for the sender's host, private ones for the others.
ADDRESSES = {
    "hooks.sender.example": ["203.0.114.10"],
    "other.sender.example": ["198.51.101.20"],
    "intranet.sender.example": ["10.0.0.5"],
    "sneaky.sender.example": ["203.0.114.11", "192.168.1.10"],
}


class FakeResolver:
    """DNS as the registration sees it, counting lookups; a host named ``slow...`` times out."""

    def __init__(self) -> None:
        self.looked_up: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.looked_up.append(host)
        if host.startswith("slow."):
            raise TimeoutError(host)
        if host not in ADDRESSES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ADDRESSES[host]


@pytest.fixture
def resolver(api: Any, monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    """The registration's resolver, with a signing key configured (status callbacks enabled)."""
    fake = FakeResolver()
    monkeypatch.setattr(api.service, "resolve", fake)
    monkeypatch.setenv("FORWARD_SIGNING_KEY", "k" * 32)
    return fake


def test_a_callback_url_is_stored_with_the_message_and_shown_on_read(
    api: Any, store: Store, resolver: FakeResolver
) -> None:
    code, body = invoke(api, with_messages(message(callback_url=CALLBACK, recipient="+491701234567")))
    assert (code, body["results"][0]["result"]) == (200, "registered")
    item = stored(store, "sevenio", "77149843739")
    assert (item["callback_url"], item["recipient_key"]) == (CALLBACK, "+491701234567")
    _, shown = invoke(api, load("messages-read"))
    assert shown["callback_url"] == CALLBACK
    assert shown["callback"] == {
        "attempts": 0,
        "last_http_status": None,
        "state": None,
        "last_attempt_at": None,
        "delivered_sequence": None,
    }
    assert shown["sequence"] == 1


def test_a_batch_sharing_one_callback_url_resolves_its_host_once(api: Any, resolver: FakeResolver) -> None:
    batch = [message(message_id=str(77149843700 + i), callback_url=CALLBACK) for i in range(40)]
    code, body = invoke(api, with_messages(*batch))
    assert code == 200
    assert len(body["results"]) == 40
    assert resolver.looked_up == ["hooks.sender.example"]


def test_a_later_registration_replaces_the_callback_url(api: Any, store: Store, resolver: FakeResolver) -> None:
    invoke(api, with_messages(message(callback_url=CALLBACK)))
    replacement = "https://other.sender.example/v2/dlr"
    code, body = invoke(api, with_messages(message(callback_url=replacement)))
    assert (code, body["results"][0]["result"]) == (200, "already registered")
    _, shown = invoke(api, load("messages-read"))
    assert shown["callback_url"] == replacement
    # Registering again without one keeps it.
    invoke(api, with_messages(message()))
    assert stored(store, "sevenio", "77149843739")["callback_url"] == replacement


REFUSED_URLS = {
    "http": ("http://hooks.sender.example/dlr", "https"),
    "loopback": ("https://127.0.0.1/dlr", "127.0.0.1"),
    "loopback v6": ("https://[::1]/dlr", "::1"),
    "private literal": ("https://10.1.2.3/dlr", "10.1.2.3"),
    "metadata": ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
    "resolves to a private address": ("https://intranet.sender.example/dlr?token=abc", "intranet.sender.example"),
    "one of its addresses private": ("https://sneaky.sender.example/dlr", "192.168.1.10"),
    "does not exist": ("https://nosuch.sender.example/dlr", "does not exist"),
    "user and password": ("https://user:pw@hooks.sender.example/dlr", "user"),
    "not a URL": ("hooks.sender.example/dlr", "https"),
}


@pytest.mark.parametrize("case", list(REFUSED_URLS))
def test_a_refused_callback_url_fails_the_whole_batch_naming_the_message_and_stores_nothing(
    case: str, api: Any, store: Store, resolver: FakeResolver, requests_sent: RequestCounter
) -> None:
    url, named = REFUSED_URLS[case]
    code, answer = invoke(api, with_messages(message(message_id="1380000001"), message(callback_url=url)))
    assert code == 400
    assert answer["error"].startswith("messages[1]: callback_url")
    assert named in answer["error"]
    assert "/dlr" not in answer["error"]  # the host at most, never the whole URL
    assert requests_sent.writes == 0
    assert all_items(store) == []


def test_a_callback_url_that_is_not_a_string_is_refused(api: Any, store: Store, resolver: FakeResolver) -> None:
    code, answer = invoke(api, with_messages(message(callback_url=["https://hooks.sender.example/"])))
    assert code == 400
    assert "messages[0]: callback_url" in answer["error"]
    assert all_items(store) == []


def test_a_callback_url_without_a_signing_key_is_refused_and_stores_nothing(
    api: Any, store: Store, resolver: FakeResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORWARD_SIGNING_KEY")
    code, answer = invoke(api, with_messages(message(message_id="1380000001"), message(callback_url=CALLBACK)))
    assert (code, answer) == (400, {"error": "status callbacks are not enabled: set forward-signing-key"})
    assert resolver.looked_up == []
    assert all_items(store) == []
    # Without a callback_url, no signing key is needed.
    assert invoke(api, with_messages(message()))[0] == 200


def test_a_dns_timeout_answers_503_and_stores_nothing(
    api: Any, store: Store, resolver: FakeResolver, capsys: pytest.CaptureFixture[str]
) -> None:
    code, answer = invoke(api, with_messages(message(callback_url="https://slow.sender.example/dlr?token=t0k3n")))
    assert (code, answer) == (503, {"error": "could not resolve the callback_url host, retry later"})
    assert all_items(store) == []
    assert "t0k3n" not in capsys.readouterr().out


def test_the_read_view_shows_what_became_of_the_status_callbacks(
    api: Any, store: Store, resolver: FakeResolver
) -> None:
    invoke(api, with_messages(message(callback_url=CALLBACK)))
    store.apply(Report("sevenio", "77149843739", Status.SENT, "TRANSMITTED", None), NOW)
    sequence = int(stored(store, "sevenio", "77149843739")["seq"])
    store.record_forward(
        "sevenio", "77149843739", sequence=sequence, state=ForwardState.RETRYING, http_status=503, now=NOW
    )
    _, retrying = invoke(api, load("messages-read"))
    assert retrying["sequence"] == sequence == 2
    assert retrying["callback"] == {
        "attempts": 1,
        "last_http_status": 503,
        "state": "retrying",
        "last_attempt_at": "2026-11-22T10:01:00.000Z",
        "delivered_sequence": None,
    }
    later = NOW.replace(minute=2)
    store.record_forward(
        "sevenio", "77149843739", sequence=sequence, state=ForwardState.DELIVERED, http_status=204, now=later
    )
    _, delivered = invoke(api, load("messages-read"))
    assert delivered["callback"] == {
        "attempts": 2,
        "last_http_status": 204,
        "state": "delivered",
        "last_attempt_at": "2026-11-22T10:02:00.000Z",
        "delivered_sequence": 2,
    }


def test_reading_an_eapi_message_logs_its_id_without_the_phone_number(
    api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke(api, load("messages-register"))
    capsys.readouterr()
    invoke(api, read_of("bulksms-eapi", "123456789:447700900123"))
    assert "447700900123" not in capsys.readouterr().out
