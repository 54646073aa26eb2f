"""The `dlrwatch` commands as an operator runs them, against a scripted API on loopback: what they ask for, what
they print, and how they end."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from dlrwatch_cli.main import main

Reply = tuple[int, Any]


class ScriptedApi:
    """Answers each request with ``reply(method, path, query)``; keeps what was asked."""

    def __init__(self, reply: Callable[[str, str, dict[str, list[str]]], Reply]) -> None:
        self.reply = reply
        self.asked: list[dict[str, Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                api.asked.append(
                    {"method": self.command, "path": parts.path, "raw_query": parts.query, "query": query,
                     "body": json.loads(body) if body else None, "headers": dict(self.headers)}
                )  # fmt: skip
                status, document = api.reply(self.command, parts.path, query)
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def script() -> Iterator[Callable[[Callable[[str, str, dict[str, list[str]]], Reply]], ScriptedApi]]:
    started: list[ScriptedApi] = []

    def start(reply: Callable[[str, str, dict[str, list[str]]], Reply]) -> ScriptedApi:
        started.append(ScriptedApi(reply))
        return started[-1]

    yield start
    for api in started:
        api.close()


def run(api: ScriptedApi, *argv: str, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.stdin", io.StringIO(stdin))
            code = main(["--url", api.url, *argv], out=out, err=err)
    else:
        code = main(["--url", api.url, *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


MESSAGE = {
    "provider": "bulksms-eapi",
    "message_id": "4242:447700900001",
    "status": "delivered",
    "final": True,
    "provider_status": "11",
    "status_at": "2026-11-22T10:00:02.000Z",
    "source": "push",
    "sent_at": "2026-11-22T10:00:00.000Z",
    "recipient": "+447700900001",
    "next_poll_at": None,
    "callback_url": "https://sender.example/dlr",
    "callback": {"attempts": 2, "last_http_status": 200, "state": "delivered", "delivered_sequence": 3},
    "history": [
        {
            "status": "sent",
            "provider_status": None,
            "status_at": None,
            "source": "push",
            "received_at": "2026-11-22T10:00:01.000Z",
        },
        {
            "status": "delivered",
            "provider_status": "11",
            "status_at": "2026-11-22T10:00:02.000Z",
            "source": "push",
            "received_at": "2026-11-22T10:00:02.100Z",
        },
    ],
}


def test_status_shows_the_message_its_callback_and_its_history(script: Any) -> None:
    api = script(lambda method, path, query: (200, MESSAGE))
    code, out, _ = run(api, "status", "bulksms-eapi", "4242:447700900001")
    assert code == 0
    assert api.asked[0]["path"] == "/messages/bulksms-eapi/4242%3A447700900001"
    fields, callback, history = out.split("\n\n")
    assert "status           delivered" in fields.splitlines()
    assert "next_poll_at     -" in fields.splitlines()
    assert callback.splitlines() == [
        "status callback:",
        "url                 https://sender.example/dlr",
        "attempts            2",
        "last_http_status    200",
        "state               delivered",
        "delivered_sequence  3",
    ]
    assert history.splitlines() == [
        "history:",
        "received_at               status_at                 status     provider_status  source",
        "2026-11-22T10:00:01.000Z  -                         sent       -                push",
        "2026-11-22T10:00:02.100Z  2026-11-22T10:00:02.000Z  delivered  11               push",
    ]


def test_status_of_a_message_without_a_callback_shows_none(script: Any) -> None:
    plain = {**MESSAGE, "callback_url": None, "callback": {"attempts": 0, "last_http_status": None, "state": None}}
    api = script(lambda method, path, query: (200, plain))
    code, out, _ = run(api, "status", "sevenio", "1")
    assert code == 0
    assert "callback" not in out


def test_the_api_s_error_goes_to_stderr_with_exit_1(script: Any) -> None:
    api = script(lambda method, path, query: (404, {"error": "no message 1 of sevenio"}))
    code, out, err = run(api, "status", "sevenio", "1")
    assert (code, out) == (1, "")
    assert err == "dlrwatch: error 404: no message 1 of sevenio\n"
    code, out, err = run(api, "--json", "status", "sevenio", "1")
    assert (code, out) == (1, "")
    assert json.loads(err) == {"error": "no message 1 of sevenio", "status": 404}


def test_an_api_out_of_reach_is_exit_1_naming_its_host() -> None:
    out, err = io.StringIO(), io.StringIO()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code = main(["--url", url, "status", "sevenio", "1"], out=out, err=err)  # nothing listens there now
    assert code == 1
    assert err.getvalue().startswith("dlrwatch: error: cannot reach 127.0.0.1")


def test_register_one_message_prints_its_result(script: Any) -> None:
    api = script(
        lambda method, path, query: (
            200,
            {"results": [{"provider": "sevenio", "message_id": "7", "result": "registered"}]},
        )
    )
    code, out, _ = run(
        api, "register", "sevenio", "7", "--recipient", "+491701234567", "--sent-at", "2026-11-22T10:00:00Z",
        "--callback-url", "https://sender.example/dlr",
    )  # fmt: skip
    assert code == 0
    assert api.asked[0]["method"] == "POST"
    assert api.asked[0]["body"] == {
        "messages": [
            {
                "provider": "sevenio",
                "message_id": "7",
                "recipient": "+491701234567",
                "sent_at": "2026-11-22T10:00:00Z",
                "callback_url": "https://sender.example/dlr",
            }
        ]
    }
    assert out.splitlines() == ["provider  message_id  result", "sevenio   7           registered"]


def test_register_a_batch_from_stdin_sends_it_as_it_is(script: Any) -> None:
    batch = {"messages": [{"provider": "sevenio", "message_id": str(n)} for n in range(3)]}
    results = [{"provider": "sevenio", "message_id": str(n), "result": "registered"} for n in range(3)]
    api = script(lambda method, path, query: (200, {"results": results}))
    code, out, _ = run(api, "register", "--file", "-", "--json", stdin=json.dumps(batch))
    assert code == 0
    assert api.asked[0]["body"] == batch
    assert json.loads(out) == {"results": results}


def pages(method: str, path: str, query: dict[str, list[str]]) -> Reply:
    """Three pages of one message each; the token names the next page."""
    page = int(query.get("next", ["0"])[0])
    message = {"sent_at": f"2026-11-2{2 - page}T10:00:00.000Z", "provider": "sevenio", "message_id": str(page),
               "status": "delivered", "final": True}  # fmt: skip
    return 200, {"messages": [message], "next": str(page + 1) if page < 2 else None}


def test_lookup_shows_one_page_and_says_how_to_get_more(script: Any) -> None:
    api = script(pages)
    code, out, err = run(api, "lookup", "+491701234567", "--since", "2026-11-01T00:00:00Z", "--limit", "1")
    assert code == 0
    assert api.asked[0]["raw_query"] == "recipient=%2B491701234567&since=2026-11-01T00%3A00%3A00Z&limit=1"
    assert out.splitlines() == [
        "sent_at                   provider  message_id  status     final",
        "2026-11-22T10:00:00.000Z  sevenio   0           delivered  true",
    ]
    assert "--all" in err
    assert "--next 1" in err
    assert "491701234567" not in err


def test_lookup_all_follows_next_to_the_last_page(script: Any) -> None:
    api = script(pages)
    code, out, err = run(api, "--json", "lookup", "+491701234567", "--all")
    assert code == 0
    assert [asked["query"].get("next") for asked in api.asked] == [None, ["1"], ["2"]]
    document = json.loads(out)
    assert [m["message_id"] for m in document["messages"]] == ["0", "1", "2"]
    assert document["next"] is None
    assert err == ""


def test_lookup_of_an_unknown_recipient_says_so(script: Any) -> None:
    api = script(lambda method, path, query: (200, {"messages": [], "next": None}))
    assert run(api, "lookup", "+491701234567")[:2] == (0, "no messages\n")


def test_forget_repeats_while_the_api_says_more_and_prints_the_total(script: Any) -> None:
    answers = iter([{"removed": 25, "more": True}, {"removed": 25, "more": True}, {"removed": 3, "more": False}])
    api = script(lambda method, path, query: (200, next(answers)))
    code, out, _ = run(api, "forget", "+491701234567", "--yes")
    assert code == 0
    assert [(a["method"], a["raw_query"]) for a in api.asked] == [("DELETE", "recipient=%2B491701234567")] * 3
    assert out == "removed 53 messages\n"


def test_forget_stops_when_more_is_said_but_nothing_removed(script: Any) -> None:
    api = script(lambda method, path, query: (200, {"removed": 0, "more": True}))
    code, _, err = run(api, "forget", "+491701234567", "--yes")
    assert code == 1
    assert len(api.asked) == 1
    assert "removed none" in err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("typed", "removes"), [("y\n", True), ("\n", False), ("no\n", False)])
def test_forget_on_a_terminal_asks_first(
    script: Any, typed: str, removes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = script(lambda method, path, query: (200, {"removed": 1, "more": False}))
    monkeypatch.setattr("sys.stdin", Terminal(typed))
    out, err = io.StringIO(), io.StringIO()
    code = main(["--url", api.url, "forget", "+491701234567"], out=out, err=err)
    assert "[y/N]" in err.getvalue()
    assert (code, len(api.asked), out.getvalue()) == ((0, 1, "removed 1 message\n") if removes else (1, 0, ""))
