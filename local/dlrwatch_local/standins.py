"""The providers' send and status APIs on one loopback HTTP server: seven.io, BulkSMS EAPI and BulkSMS JSON.

Sending answers new message ids (seven.io ``POST /api/sms``, EAPI ``send_sms`` with a batch id, JSON API
``POST /messages``), with no report yet. Status calls answer like the real ones (see the provider notes) from
state the caller sets, each after ``state.latency`` seconds (none by default), and misbehave on demand, the way
real servers sometimes do: ``fail(provider, kind, times, **options)`` makes the next calls

- ``slow``: answer after ``slow_seconds``; ``drip``: send the headers, then the body a byte every
  ``interval`` seconds (default 2);
- ``5xx`` (a 503) or ``429``, with ``retry_after`` as the Retry-After header (a 429 sends "90" by default);
- ``redirect``: a 307 to ``location`` (e.g. a ``CaptureServer``'s URL);
- ``garbage`` (an HTML page), ``body``: a 200 with ``body`` (and ``content_type``), for odd answers such as
  deeply nested JSON or huge numbers; ``partial``: some rows missing or malformed;
- ``auth``: refuse the credentials; ``eapi22``: the EAPI's internal error.

Every call is counted, with the ids it asked for.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from dlrwatch_local.httpserver import LoopbackServer, RequestHandler

FAULTS = ("slow", "drip", "5xx", "429", "redirect", "garbage", "body", "partial", "auth", "eapi22")

SEVENIO_KEY = "standin-sevenio-key"
EAPI_USER, EAPI_PASSWORD = "standin-user", "standin-password"
TOKEN_ID, TOKEN_SECRET = "standin-token-id", "standin-token-secret"


@dataclass
class StandInState:
    # seven.io: msg_id -> (status, status_time "YYYY-MM-DD HH:MM:SS.fff" Berlin time) or None (no report yet)
    sevenio: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    sevenio_legacy_text: bool = False
    # EAPI: batch_id -> msisdn -> (code, completed_time "yy-MM-dd HH:mm:ss" or "")
    eapi: dict[str, dict[str, tuple[str, str]]] = field(default_factory=lambda: defaultdict(dict))
    # JSON API: id -> (status type, subtype or None)
    bulksms: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    faults: dict[str, deque[tuple[str, dict[str, Any]]]] = field(default_factory=lambda: defaultdict(deque))
    calls: Counter[str] = field(default_factory=Counter)
    asked: dict[str, list[list[str]]] = field(default_factory=lambda: defaultdict(list))
    slow_seconds: float = 3.0
    # Seconds every status call takes before it is answered, as a provider's own round trip does.
    latency: float = 0.0
    sent: Counter[str] = field(default_factory=Counter)  # messages sent through each provider's send API
    next_id: int = 77_200_000_000


class ProviderStandIns:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = StandInState()
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standins": self})
        self.server = LoopbackServer(handler, host=host, port=port)

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> ProviderStandIns:
        self.server.start("standins")
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> ProviderStandIns:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def urls(self) -> dict[str, str]:
        """The environment that points dlrwatch's poller here."""
        return {
            "SEVENIO_API_URL": f"{self.base_url}/sevenio/api",
            "BULKSMS_EAPI_URL": f"{self.base_url}/eapi",
            "BULKSMS_API_URL": f"{self.base_url}/bulksms/v1",
        }

    @staticmethod
    def credentials() -> dict[str, str]:
        return {
            "SEVENIO_API_KEY": SEVENIO_KEY,
            "BULKSMS_USERNAME": EAPI_USER,
            "BULKSMS_PASSWORD": EAPI_PASSWORD,
            "BULKSMS_TOKEN_ID": TOKEN_ID,
            "BULKSMS_TOKEN_SECRET": TOKEN_SECRET,
        }

    # -- control --------------------------------------------------------------------------------------

    def fail(self, provider: str, kind: str, times: int = 1, **options: Any) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        with self._lock:
            self.state.faults[provider].extend([(kind, options)] * times)

    def _next_fault(self, provider: str) -> tuple[str | None, dict[str, Any]]:
        with self._lock:
            queue = self.state.faults[provider]
            return queue.popleft() if queue else (None, {})

    def _count(self, provider: str, ids: list[str]) -> None:
        with self._lock:
            self.state.calls[provider] += 1
            self.state.asked[provider].append(ids)


class _Handler(RequestHandler):
    standins: ProviderStandIns

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/sevenio/api/status":
            self._sevenio(parse_qs(url.query))
        elif url.path.startswith("/bulksms/v1/messages/"):
            self._bulksms(unquote(url.path.rsplit("/", 1)[-1]))
        else:
            self._send(404, "not found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        raw = self.read_body().decode()
        form = parse_qs(raw)
        if url.path == "/eapi/status_reports/get_report/2/2.0":
            self._eapi(form)
        elif url.path == "/eapi/submission/send_sms/2/2.0":
            self._eapi_send(form)
        elif url.path == "/sevenio/api/sms":
            self._sevenio_send(json.loads(raw or "{}"))
        elif url.path == "/bulksms/v1/messages":
            self._bulksms_send(json.loads(raw or "[]"))
        else:
            self._send(404, "not found")

    # -- sending --------------------------------------------------------------------------------------

    def _new_ids(self, provider: str, count: int) -> list[str]:
        with self.standins._lock:
            state = self.standins.state
            first, state.next_id = state.next_id, state.next_id + count
            state.sent[provider] += count
        return [str(first + n) for n in range(count)]

    def _sevenio_send(self, body: dict[str, Any]) -> None:
        if self.headers.get("X-Api-Key") != SEVENIO_KEY:
            self._send(401, "unauthorized")
            return
        recipients = [r for r in str(body.get("to", "")).split(",") if r]
        ids = self._new_ids("sevenio", len(recipients))
        for mid in ids:
            self.standins.state.sevenio[mid] = None
        messages = [{"id": mid, "recipient": to, "success": True} for mid, to in zip(ids, recipients, strict=True)]
        self._send(200, json.dumps({"success": "100", "messages": messages}), "application/json")

    def _eapi_send(self, form: dict[str, list[str]]) -> None:
        if (form.get("username") or [""])[0] != EAPI_USER or (form.get("password") or [""])[0] != EAPI_PASSWORD:
            self._send(200, "23|invalid credentials", "text/plain")
            return
        recipients = [r.lstrip("+") for r in (form.get("msisdn") or [""])[0].split(",") if r]
        (batch,) = self._new_ids("bulksms-eapi", 1)
        self.standins.state.sent["bulksms-eapi"] += len(recipients) - 1
        for msisdn in recipients:
            self.standins.state.eapi[batch][msisdn] = ("0", "")
        self._send(200, f"0|IN_PROGRESS|{batch}", "text/plain")

    def _bulksms_send(self, body: Any) -> None:
        expected = base64.b64encode(f"{TOKEN_ID}:{TOKEN_SECRET}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._send(401, "unauthorized")
            return
        entries = body if isinstance(body, list) else [body]
        ids = self._new_ids("bulksms", len(entries))
        messages = []
        for mid, entry in zip(ids, entries, strict=True):
            self.standins.state.bulksms[mid] = ("ACCEPTED", None)
            messages.append(
                {
                    "id": mid,
                    "type": "SENT",
                    "to": entry.get("to"),
                    "status": {"id": "ACCEPTED.null", "type": "ACCEPTED", "subtype": None},
                }
            )
        self._send(201, json.dumps(messages), "application/json")

    # -- protocols ------------------------------------------------------------------------------------

    def _sevenio(self, query: dict[str, list[str]]) -> None:
        ids = [i for i in (query.get("msg_id") or [""])[0].split(",") if i]
        self.standins._count("sevenio", ids)
        state = self.standins.state
        if self._fault("sevenio", authorized=self.headers.get("X-Api-Key") == SEVENIO_KEY):
            return
        if state.sevenio_legacy_text and len(ids) == 1:
            found = state.sevenio.get(ids[0])
            self._send(200, f"{found[0]}\n{found[1]}" if found else "", "text/plain")
            return
        rows: list[Any] = []
        for i in ids:
            found = state.sevenio.get(i)
            rows.append({"id": i, "status": found[0] if found else None, "status_time": found[1] if found else None})
        if self._partial:
            rows = [*rows[: len(rows) // 2], {"id": None}, {"status": "DELIVERED"}, "junk"]
        self._send(200, json.dumps(rows), "application/json")

    def _eapi(self, form: dict[str, list[str]]) -> None:
        batch = (form.get("batch_id") or [""])[0]
        self.standins._count("bulksms-eapi", [batch])
        authorized = (form.get("username") or [""])[0] == EAPI_USER and (form.get("password") or [""])[
            0
        ] == EAPI_PASSWORD
        if self._fault("bulksms-eapi", authorized=authorized):
            return
        rows = [f"{msisdn}|{code}|{at}" for msisdn, (code, at) in self.standins.state.eapi.get(batch, {}).items()]
        if self._partial:
            rows = [*rows[: len(rows) // 2], "447700900999", "|11", "447700900998|eleven"]
        self._send(200, "0|Returns to follow\n\n" + "\n".join(rows) + "\n", "text/plain")

    def _bulksms(self, message_id: str) -> None:
        self.standins._count("bulksms", [message_id])
        expected = base64.b64encode(f"{TOKEN_ID}:{TOKEN_SECRET}".encode()).decode()
        if self._fault("bulksms", authorized=self.headers.get("Authorization") == f"Basic {expected}"):
            return
        found = self.standins.state.bulksms.get(message_id)
        if found is None:
            self._send(404, json.dumps({"status": 404, "title": "Not Found"}), "application/problem+json")
            return
        kind, subtype = found
        body = {
            "id": message_id,
            "type": "SENT",
            "to": "+27820000001",
            "status": {"id": f"{kind}.{subtype}", "type": kind, "subtype": subtype},
        }
        self._send(200, json.dumps(body), "application/json")

    # -- faults ---------------------------------------------------------------------------------------

    _partial = False

    def _fault(self, provider: str, *, authorized: bool) -> bool:
        """Answer the next queued fault, if any; True when the request has been answered."""
        self._partial = False
        if self.standins.state.latency > 0:
            time.sleep(self.standins.state.latency)
        fault, options = self.standins._next_fault(provider)
        eapi = provider == "bulksms-eapi"
        if fault == "auth" or not authorized:
            if eapi:
                self._send(200, "23|invalid credentials", "text/plain")
            else:
                self._send(401, "unauthorized")
            return True
        if fault == "slow":
            time.sleep(self.standins.state.slow_seconds)
        elif fault == "drip":
            self._drip(options.get("body", "x" * 64), float(options.get("interval", 2.0)))
            return True
        elif fault == "5xx":
            retry = {"Retry-After": str(options["retry_after"])} if "retry_after" in options else {}
            self._send(503, "service unavailable", headers=retry)
            return True
        elif fault == "429":
            self._send(429, "slow down", headers={"Retry-After": str(options.get("retry_after", "90"))})
            return True
        elif fault == "redirect":
            self._send(307, "moved", headers={"Location": str(options["location"])})
            return True
        elif fault == "body":
            self._send(200, str(options["body"]), str(options.get("content_type", "application/json")))
            return True
        elif fault == "garbage":
            self._send(200, "<html><body>maintenance</body></html>", "text/html")
            return True
        elif fault == "eapi22":
            self._send(200, "22|Internal error", "text/plain")
            return True
        elif fault == "partial":
            self._partial = True
        return False

    def _drip(self, body: str, interval: float) -> None:
        """Headers at once, then the body a byte at a time: each read gets data, so no read ever times out."""
        data = body.encode()
        try:
            self.send_head(200, {"Content-Type": "application/json"}, len(data))
            for n in range(len(data)):
                self.wfile.write(data[n : n + 1])
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass  # the client gave up (its deadline): nothing more to send

    def _send(
        self, code: int, body: str, content_type: str = "text/plain", headers: dict[str, str] | None = None
    ) -> None:
        self.respond(code, body.encode(), {"Content-Type": content_type, **(headers or {})})


class CaptureServer:
    """A server of another origin that records every request it gets and answers 200: where a redirect points,
    so a test can show that no credential ever arrives there."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        capture = self

        class Handler(RequestHandler):
            def serve(self) -> None:
                body = self.read_body()
                capture.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                self.respond(200, b"[]", {"Content-Type": "application/json"})

        self.server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/elsewhere"

    def __enter__(self) -> CaptureServer:
        self.server.start("capture")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()
