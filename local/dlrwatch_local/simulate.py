"""Simulated providers and a simulated sender, with the faults of the real world.

Each simulated message has a fate drawn from a seeded random generator: the statuses the provider will
report and when, and what happens to each push on its way to dlrwatch (lost, duplicated, reordered, late,
ahead of the registration, sent with a wrong secret). The providers' status APIs (the stand-ins) answer with
the truth as it stands at the moment they are asked, so whatever a push loses, polling must find.

Half the sender's messages are registered with a ``callback_url`` on its own endpoint (``SenderEndpoint``), which
checks each status callback's signature, keeps the highest ``sequence`` per message, and fails some attempts on
purpose (503s, a few 500s, a rare slow answer), so that the forwarder's retries are seen.

The run ends with a table: messages by final status, finals learned by push vs by poll, provider calls per
message, and lost messages, those whose final status in dlrwatch is not the provider's truth (must be 0); then
the status callbacks: forwarded, retried, dead-lettered, bad signatures (must be 0), and those not in line with
dlrwatch, whose newest status at the sender is not dlrwatch's final one (must be 0, dead letters aside).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from dlrwatch.providers import PROVIDERS
from dlrwatch_local.httpserver import LoopbackServer, RequestHandler
from dlrwatch_local.standins import ProviderStandIns

# Raw journeys per provider: the statuses reported on the way, then the final one (None: never final).
JOURNEYS: dict[str, tuple[tuple[str, ...], tuple[tuple[str | None, float], ...]]] = {
    "sevenio": (
        ("ACCEPTED", "TRANSMITTED", "BUFFERED"),
        (("DELIVERED", 0.75), ("NOTDELIVERED", 0.07), ("EXPIRED", 0.05), ("REJECTED", 0.05), (None, 0.08)),
    ),
    "bulksms-eapi": (("10", "12", "40"), (("11", 0.75), ("51", 0.07), ("53", 0.05), ("32", 0.05), (None, 0.08))),
    "bulksms": (
        ("SENT",),
        (
            ("DELIVERED", 0.78),
            ("FAILED.HANDSET_ERROR", 0.07),
            ("FAILED.EXPIRED", 0.05),
            ("FAILED.BLOCKED", 0.02),
            (None, 0.08),
        ),
    ),
}
FAULTS = ("lost", "duplicated", "reordered", "late", "before_registration", "wrong_secret")


@dataclass
class Step:
    at: float  # seconds after sending
    raw: str
    happened: datetime | None = None  # when the provider learned it: every push of it carries this time


@dataclass
class Fate:
    provider: str
    group: int  # messages sent in one request (an EAPI batch), else alone
    recipient: str
    steps: list[Step]
    final: str | None  # the final raw status, or None if the provider never learns one
    faults: set[str] = field(default_factory=set)
    message_id: str = ""  # as the provider's send API answers it
    sent_at: datetime | None = None
    callback: bool = False  # registered with a callback_url on the sender's endpoint

    @property
    def expected(self) -> str:
        """The status dlrwatch must end with: the provider's final, or our give-up."""
        return str(PROVIDERS[self.provider].normalize(self.final)) if self.final else "unknown"


def draw_fates(count: int, rng: random.Random, horizon: float = 25.0) -> list[Fate]:
    """``count`` fates; every provider status happens within 60% of ``horizon`` (the poll schedule's last
    offset), so that polling can always learn what a lost push did not say."""
    fates = []
    for n in range(count):
        provider = ("sevenio", "bulksms-eapi", "bulksms")[n % 3]
        recipient = f"4917{rng.randrange(10**7, 10**8)}"
        group = n // 9 if provider == "bulksms-eapi" else count + n  # EAPI: one batch for every nine messages
        on_the_way, finals = JOURNEYS[provider]
        final = rng.choices([f for f, _ in finals], weights=[w for _, w in finals])[0]
        steps, at = [], 0.0
        for raw in on_the_way[: rng.randint(1, len(on_the_way))]:
            at += rng.uniform(0.2, 1.5)
            steps.append(Step(at, raw))
        if final:
            steps.append(Step(at + rng.uniform(0.5, 4.0), final))
        if steps[-1].at > 0.6 * horizon:
            scale = 0.6 * horizon / steps[-1].at
            steps = [Step(step.at * scale, step.raw) for step in steps]
        faults = {fault for fault in FAULTS if rng.random() < 0.12}
        fates.append(Fate(provider, group, recipient, steps, final, faults))
    return fates


# What the sender's endpoint does with a status callback, by share of attempts: the rest are answered 200 at once.
SENDER_FAULTS = (("503", 0.25), ("500", 0.05), ("slow", 0.02))
SLOW_ANSWER_SECONDS = 2.0  # well within the forwarder's 5 s: a slow sender is seen, and the run not held up


def sign(key: str, timestamp: str, body: bytes) -> str:
    """The status callback signature (SPEC): lowercase hex HMAC-SHA256 of ``"{timestamp}.{body}"``."""
    return hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_valid(key: str, timestamp: str | None, header: str | None, body: bytes) -> bool:
    """Whether one of the header's ``v1=`` signatures (two while a key is rotated) is ``body``'s under ``key``."""
    if not timestamp or not header:
        return False
    expected = sign(key, timestamp, body)
    given = [part.strip().removeprefix("v1=") for part in header.split(",") if part.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected, signature) for signature in given)


def sender_fault(draw: float) -> str:
    """The fault ``draw`` (uniform in [0, 1)) picks from SENDER_FAULTS, or "ok"."""
    for fault, share in SENDER_FAULTS:
        if draw < share:
            return fault
        draw -= share
    return "ok"


@dataclass
class Received:
    """The newest status callback a sender accepted for one message."""

    sequence: int
    status: str
    final: bool
    event_id: str


class SenderEndpoint:
    """The simulated sender's callback endpoint on loopback (``url``): each POST's signature checked with the
    local key, the newest ``sequence`` kept per message, and some attempts failed on purpose (seeded)."""

    def __init__(self, key: str, *, seed: int = 7) -> None:
        self.key = key
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not secrecy
        self.newest: dict[tuple[str, str], Received] = {}
        self.answers = Counter[str]()  # "2xx", "503", "500", "bad signature"
        self._lock = threading.Lock()
        sender = self

        class Handler(RequestHandler):
            def do_POST(self) -> None:
                body = self.read_body()
                status = sender.receive(
                    self.path,
                    self.headers.get("X-Dlrwatch-Timestamp"),
                    self.headers.get("X-Dlrwatch-Signature"),
                    body,
                )
                self.respond(status, b"", {"Content-Type": "text/plain"})

        self.server = LoopbackServer(Handler)

    @property
    def url(self) -> str:
        return f"{self.server.base_url}/dlr"

    def start(self) -> SenderEndpoint:
        self.server.start("sender")
        return self

    def stop(self) -> None:
        self.server.stop()

    def receive(self, path: str, timestamp: str | None, signature: str | None, body: bytes) -> int:
        """The HTTP status answered to one status callback."""
        if path.split("?")[0] != "/dlr":
            return 404
        if not signature_valid(self.key, timestamp, signature, body):
            with self._lock:
                self.answers["bad signature"] += 1
            return 401
        with self._lock:
            fault = sender_fault(self.rng.random())
        if fault in ("503", "500"):
            with self._lock:
                self.answers[fault] += 1
            return int(fault)
        if fault == "slow":
            time.sleep(SLOW_ANSWER_SECONDS)
        detail = json.loads(body)
        key = (str(detail["provider"]), str(detail["message_id"]))
        with self._lock:
            self.answers["2xx"] += 1
            kept = self.newest.get(key)
            if kept is None or int(detail["sequence"]) > kept.sequence:
                self.newest[key] = Received(
                    int(detail["sequence"]), str(detail["status"]), bool(detail["final"]), str(detail["event_id"])
                )
        return 200


def _berlin(moment: datetime) -> str:
    # Berlin in winter (UTC+1), as seven.io writes its times; the simulation runs in real time.
    return (moment + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _sast(moment: datetime) -> str:
    return (moment + timedelta(hours=2)).strftime("%y-%m-%d %H:%M:%S")


class Simulation:
    def __init__(
        self,
        api_url: str,
        standins: ProviderStandIns,
        token: str,
        *,
        messages: int = 60,
        horizon: float = 25.0,
        seed: int = 7,
        spread: float = 10.0,
        out: Any = None,
        sender: SenderEndpoint | None = None,
        dead_letters: Callable[[], int] | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.standins = standins
        self.token = token
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not secrecy
        self.fates = draw_fates(messages, self.rng, horizon)
        self.sender = sender
        self.dead_letters = dead_letters or (lambda: 0)
        for n, fate in enumerate(self.fates):
            fate.callback = sender is not None and n % 2 == 0  # half, of every provider
        self.spread = spread
        self.out = out or sys.stdout
        self.queue: list[tuple[float, int, Any]] = []
        self.counter = 0
        self.pushes = Counter[str]()
        self.status_events = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.http = requests.Session()
        self.requests = ThreadPoolExecutor(max_workers=8, thread_name_prefix="push")

    # -- the timeline ---------------------------------------------------------------------------------------

    def _at(self, when: float, action: Any) -> None:
        with self._lock:
            self.counter += 1
            heapq.heappush(self.queue, (when, self.counter, action))

    def plan(self, start: float) -> None:
        groups: dict[int, list[Fate]] = {}
        sent_at: dict[int, float] = {}
        for n, fate in enumerate(self.fates):
            groups.setdefault(fate.group, []).append(fate)
            sent_at.setdefault(fate.group, start + self.spread * n / max(len(self.fates), 1))
        for group, fates in groups.items():
            self._at(sent_at[group], lambda fs=fates: self._send(fs))
        for fate in self.fates:
            sent = sent_at[fate.group]
            for step in fate.steps:  # the provider's truth, in the order it happens
                self._at(sent + step.at, lambda f=fate, s=step: self._truth(f, s))
            pushes = [(sent + step.at + 0.05, step) for step in fate.steps]
            if "reordered" in fate.faults and len(pushes) > 1:  # the report before the last arrives after it
                pushes[-2] = (pushes[-1][0] + 0.5, pushes[-2][1])
            if "lost" in fate.faults:
                pushes.pop()  # the last push never arrives: polling must find it
            if "late" in fate.faults and pushes:
                pushes[-1] = (pushes[-1][0] + self.rng.uniform(5, 15), pushes[-1][1])
            copies = 2 if "duplicated" in fate.faults else 1
            for when, step in pushes:
                for copy in range(copies):
                    self._at(when + copy * 0.3, lambda f=fate, s=step: self.requests.submit(self._push, f, s))
            # The sender registers right after sending, or, for some, only after the provider's first report.
            registration = sent + (fate.steps[0].at + 0.5 if "before_registration" in fate.faults else 0.0)
            self._at(registration, lambda f=fate: self.requests.submit(self._register, f))

    def run(self, settle_seconds: float = 120.0, callbacks_within: float = 20.0) -> dict[str, Any]:
        start = time.monotonic()
        self.plan(start + 0.5)
        timeline = threading.Thread(target=self._play, args=(start + settle_seconds,), name="timeline", daemon=True)
        timeline.start()
        deadline = start + settle_seconds
        while time.monotonic() < deadline:
            time.sleep(1.0)
            states = self.states()
            self._progress(time.monotonic() - start, states)
            if not self.queue and len(states) == len(self.fates) and all(s.get("final") for s in states.values()):
                break
        self._done.set()
        timeline.join(timeout=5)
        self.requests.shutdown(wait=True)
        states = self.states()
        # The last status callbacks follow the finals by a second or two, and retries by the schedule's seconds.
        settled = time.monotonic() + callbacks_within
        while self.out_of_line(states) and time.monotonic() < settled:
            time.sleep(1.0)
            states = self.states()
        summary = self.summary(states)
        self.print_summary(summary)
        return summary

    def _play(self, deadline: float) -> None:
        """The providers' timeline, on time: truths change here; pushes and registrations (HTTP calls to
        dlrwatch) run on a pool, so a slow answer never delays what a provider knows."""
        while not self._done.is_set() and time.monotonic() < deadline:
            now = time.monotonic()
            while True:
                with self._lock:
                    if not self.queue or self.queue[0][0] > now:
                        break
                    _, _, action = heapq.heappop(self.queue)
                action()
            time.sleep(0.02)

    # -- the provider's side ----------------------------------------------------------------------------------

    def _send(self, fates: list[Fate]) -> None:
        """Send through the provider's send API (one request for a batch); its answer names the messages."""
        provider, urls, credentials = fates[0].provider, self.standins.urls, ProviderStandIns.credentials()
        to = [f.recipient for f in fates]
        if provider == "sevenio":
            answer = self.http.post(
                f"{urls['SEVENIO_API_URL']}/sms",
                json={"to": ",".join(to), "text": "hello"},
                headers={"X-Api-Key": credentials["SEVENIO_API_KEY"]},
                timeout=10,
            )
            ids = [m["id"] for m in answer.json()["messages"]]
        elif provider == "bulksms-eapi":
            answer = self.http.post(
                f"{urls['BULKSMS_EAPI_URL']}/submission/send_sms/2/2.0",
                data={
                    "username": credentials["BULKSMS_USERNAME"],
                    "password": credentials["BULKSMS_PASSWORD"],
                    "msisdn": ",".join(to),
                    "message": "hello",
                },
                timeout=10,
            )
            batch = answer.text.strip().split("|")[2]
            ids = [f"{batch}:{recipient}" for recipient in to]
        else:
            answer = self.http.post(
                f"{urls['BULKSMS_API_URL']}/messages",
                json=[{"to": t, "body": "hello"} for t in to],
                auth=(credentials["BULKSMS_TOKEN_ID"], credentials["BULKSMS_TOKEN_SECRET"]),
                timeout=10,
            )
            ids = [m["id"] for m in answer.json()]
        now = datetime.now(UTC)
        for fate, message_id in zip(fates, ids, strict=True):
            fate.message_id, fate.sent_at = message_id, now

    def _truth(self, fate: Fate, step: Step | None) -> None:
        """What the provider's status API answers from now on."""
        state = self.standins.state
        now = datetime.now(UTC)
        if step is not None:
            step.happened = now
        if fate.provider == "sevenio":
            state.sevenio[fate.message_id] = (step.raw, _berlin(now)) if step else None
        elif fate.provider == "bulksms-eapi":
            batch, msisdn = fate.message_id.split(":")
            state.eapi[batch][msisdn] = (step.raw if step else "0", _sast(now) if step else "")
        elif step:
            kind, _, subtype = step.raw.partition(".")
            state.bulksms[fate.message_id] = (kind, subtype or None)

    def _push(self, fate: Fate, step: Step) -> None:
        token = "not-the-token" if "wrong_secret" in fate.faults and step is fate.steps[-1] else self.token
        assert step.happened is not None, "a push follows the provider's truth"
        now = step.happened
        if fate.provider == "sevenio":
            if int(fate.message_id) % 2:
                query = {"token": token, "msg_id": fate.message_id, "status": step.raw, "timestamp": _berlin(now)}
                self._call("GET", f"/callbacks/sevenio?{urlencode(query)}")
            else:
                body = {
                    "webhook_event": "dlr",
                    "data": {"msg_id": fate.message_id, "status": step.raw, "timestamp": _berlin(now)},
                }
                self._call("POST", f"/callbacks/sevenio?token={token}", body)
        elif fate.provider == "bulksms-eapi":
            batch, msisdn = fate.message_id.split(":")
            query = {
                "token": token,
                "msisdn": msisdn,
                "batch_id": batch,
                "status": step.raw,
                "completed_time": _sast(now),
            }
            self._call("GET", f"/callbacks/bulksms?{urlencode(query)}")
        else:
            kind, _, subtype = step.raw.partition(".")
            message = {
                "id": fate.message_id,
                "type": "SENT",
                "to": f"+{fate.recipient}",
                "status": {"id": f"{kind}.{subtype or 'null'}", "type": kind, "subtype": subtype or None},
            }
            self._call("POST", f"/callbacks/bulksms?token={token}", [message])

    # -- the sender's side -------------------------------------------------------------------------------------

    def _register(self, fate: Fate) -> None:
        assert fate.sent_at is not None
        body = {
            "messages": [
                {
                    "provider": fate.provider,
                    "message_id": fate.message_id,
                    "sent_at": fate.sent_at.isoformat(),
                    "recipient": f"+{fate.recipient}",
                }
            ]
        }
        if fate.callback and self.sender is not None:
            body["messages"][0]["callback_url"] = self.sender.url
        self._call("POST", "/messages", body)

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        answer = self.http.request(method, f"{self.api_url}{path}", json=body, timeout=10)
        self.pushes[f"{path.split('?')[0]} {answer.status_code}"] += 1
        return answer.status_code, answer.json() if answer.content else None

    def states(self) -> dict[str, dict[str, Any]]:
        """What dlrwatch says of each message sent so far (``{}`` for one it does not know)."""
        found = {}
        for fate in self.fates:
            if fate.message_id:
                code, body = self._call("GET", f"/messages/{fate.provider}/{fate.message_id}")
                found[fate.message_id] = body if code == 200 else {}
        return found

    # -- reporting ---------------------------------------------------------------------------------------------

    def _progress(self, elapsed: float, states: dict[str, dict[str, Any]]) -> None:
        final = [s for s in states.values() if s.get("final")]
        by_source = Counter(s.get("source") for s in final)
        line = (
            f"[{elapsed:5.1f}s] sent {sum(f.sent_at is not None for f in self.fates)}/{len(self.fates)}  "
            f"known {sum(bool(s) for s in states.values())}  final {len(final)} "
            f"(push {by_source['push']}, poll {by_source['poll']}, give-up {by_source['giveup']})  "
            f"provider calls {sum(self.standins.state.calls.values())}  status events {self.status_events}"
        )
        if self.sender is not None:
            answers = self.sender.answers
            line += f"  callbacks {answers['2xx']} (retried {answers['503'] + answers['500']})"
        print(line, file=self.out, flush=True)

    def summary(self, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
        rows: dict[str, Counter[str]] = {}
        lost = []
        for fate in self.fates:
            state = states.get(fate.message_id) or {}
            status = state.get("status") if state.get("final") else "(not final)"
            rows.setdefault(str(status), Counter())[str(state.get("source") or "-")] += 1
            if not state.get("final") or state.get("status") != fate.expected:
                lost.append(f"{fate.message_id} ({status} here, {fate.expected} at the provider)")
        per_provider = Counter(f.provider for f in self.fates)
        calls = {p: self.standins.state.calls[p] / n for p, n in per_provider.items()}
        finals = Counter(str(s.get("source")) for s in states.values() if s.get("final"))
        summary = {
            "messages": len(self.fates),
            "by_status": rows,
            "finals_by_source": dict(finals),
            "provider_calls_per_message": calls,
            "lost": lost,
            "pushes": dict(self.pushes),
        }
        if self.sender is not None:
            answers = self.sender.answers
            summary["callbacks"] = {
                "messages": sum(fate.callback for fate in self.fates),
                "forwarded": answers["2xx"],
                "retried": answers["503"] + answers["500"],
                "dead": self.dead_letters(),
                "bad_signatures": answers["bad signature"],
                "out_of_line": self.out_of_line(states),
            }
        return summary

    def out_of_line(self, states: dict[str, dict[str, Any]]) -> list[str]:
        """Messages with a callback_url whose newest status at the sender is not dlrwatch's (those whose
        callbacks were dead-lettered aside: the sender missed them by design, and the dead-letter count says so)."""
        if self.sender is None:
            return []
        found = []
        for fate in self.fates:
            state = states.get(fate.message_id) or {}
            if not fate.callback or (state.get("callback") or {}).get("state") == "dead-lettered":
                continue
            received = self.sender.newest.get((fate.provider, fate.message_id))
            at_sender = received.status if received else None
            if at_sender != state.get("status"):
                found.append(f"{_loggable(fate)} ({at_sender or 'nothing'} at the sender, {state.get('status')} here)")
        return found

    def print_summary(self, summary: dict[str, Any]) -> None:
        out = self.out
        print("\nsummary", file=out)
        print(f"  {'final status':<14}{'push':>6}{'poll':>6}{'give-up':>9}{'total':>7}", file=out)
        for status, sources in sorted(summary["by_status"].items()):
            print(
                f"  {status:<14}{sources['push']:>6}{sources['poll']:>6}{sources['giveup']:>9}"
                f"{sum(sources.values()):>7}",
                file=out,
            )
        finals = summary["finals_by_source"]
        total = sum(finals.values()) or 1
        print(
            f"  finals learned by push {finals.get('push', 0)} ({100 * finals.get('push', 0) / total:.0f}%), "
            f"by poll {finals.get('poll', 0)} ({100 * finals.get('poll', 0) / total:.0f}%), "
            f"given up {finals.get('giveup', 0)}",
            file=out,
        )
        for provider, per in sorted(summary["provider_calls_per_message"].items()):
            print(f"  provider status calls per message, {provider}: {per:.2f}", file=out)
        lost = summary["lost"]
        print(
            f"  lost messages: {len(lost)} (must be 0)" + (f": {', '.join(lost)}" if lost else ""), file=out, flush=True
        )
        callbacks = summary.get("callbacks")
        if callbacks is None:
            return
        print(
            f"  status callbacks to {callbacks['messages']} messages: forwarded {callbacks['forwarded']} (2xx), "
            f"retried {callbacks['retried']} (failed attempts), dead {callbacks['dead']} (dead-letter queue)",
            file=out,
        )
        print(f"  bad signatures: {callbacks['bad_signatures']} (must be 0)", file=out)
        out_of_line = callbacks["out_of_line"]
        print(
            f"  callbacks not in line with dlrwatch: {len(out_of_line)} (must be 0)"
            + (f": {', '.join(out_of_line)}" if out_of_line else ""),
            file=out,
            flush=True,
        )


def _loggable(fate: Fate) -> str:
    """A message named without the phone number a BulkSMS EAPI id carries: its batch and last two digits."""
    if fate.provider == "bulksms-eapi":
        batch, _, msisdn = fate.message_id.partition(":")
        return f"{fate.provider} {batch}:..{msisdn[-2:]}"
    return f"{fate.provider} {fate.message_id}"
