"""The sender's API: registering sent messages (``POST /messages``), reading one back
(``GET /messages/{provider}/{id}``), and a recipient's messages, looked up (``GET /messages?recipient=``) or erased
(``DELETE /messages?recipient=``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dlrwatch import strictjson
from dlrwatch.config import Settings
from dlrwatch.credentials import secret
from dlrwatch.domain.text import shown
from dlrwatch.domain.times import InvalidTime, from_iso, iso
from dlrwatch.errors import BadInput
from dlrwatch.forwarding import CheckedUrl, RefusedUrl, Resolver, ResolverUnavailable, check_url, system_resolver
from dlrwatch.providers import PROVIDERS, bulksms_eapi
from dlrwatch.providers.base import form_pairs
from dlrwatch.providers.base import message_id as valid_message_id
from dlrwatch.recipients import decode_token, encode_token, normalize, recipient_key
from dlrwatch.store import NextPoll, Store, due_shard

MAX_BATCH = 500
MAX_RECIPIENT = 32
# A sent_at ahead of our clock by more than this is a sender's bug, not clock skew.
MAX_FUTURE = timedelta(minutes=15)
WRITERS = 8
# Callback hosts resolved at once for one registration: each distinct URL is checked once, a few at a time.
RESOLVERS = 8
SIGNING_KEY = "FORWARD_SIGNING_KEY"
CALLBACKS_DISABLED = "status callbacks are not enabled: set forward-signing-key"
# A recipient's messages a lookup answers at most, and by default.
LOOKUP_LIMIT_MAX = 100
LOOKUP_LIMIT_DEFAULT = 50
# Messages one erasure call deletes at most: about 20 BatchWriteItem calls and 5 index pages, well within the
# function's 10 s; a client calls again while ``more`` is true.
FORGET_MOST = 500


class NotFound(BadInput):
    status_code = 404


@dataclass(frozen=True)
class Registration:
    provider: str
    message_id: str
    sent_at: datetime
    recipient: str | None
    callback_url: str | None = None


def canonical(provider: str, message_id: str) -> str:
    """The id as reports carry it: BulkSMS EAPI ids are normalized to ``{batch_id}:{digits}``."""
    if provider == bulksms_eapi.NAME:
        return bulksms_eapi.canonical_id(message_id)
    return valid_message_id(message_id)


def parse_registrations(body: bytes, now: datetime) -> list[Registration]:
    """``{"messages": [...]}``; every problem of the batch is named at once, and nothing is stored if any."""
    try:
        payload = strictjson.loads(body or b"null")
    except strictjson.InvalidJson as exc:
        raise BadInput(f"body is {exc}") from None
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list) or not messages:
        raise BadInput('body must be {"messages": [...]} with at least one message')
    if len(messages) > MAX_BATCH:
        raise BadInput(f"at most {MAX_BATCH} messages a request, not {len(messages)}")
    registrations, problems = [], []
    for i, entry in enumerate(messages):
        try:
            registrations.append(_registration(entry, now))
        except BadInput as exc:
            problems.append(f"messages[{i}]: {exc}")
    if problems:
        raise named_problems(problems)
    return registrations


def _registration(entry: Any, now: datetime) -> Registration:
    if not isinstance(entry, dict):
        raise BadInput("not an object")
    provider = entry.get("provider")
    if not isinstance(provider, str) or provider not in PROVIDERS:
        raise BadInput(f"provider must be one of {', '.join(sorted(PROVIDERS))}, not {shown(provider)}")
    raw_id = entry.get("message_id")
    if not isinstance(raw_id, str) or not raw_id:
        raise BadInput("message_id must be a non-empty string")
    sent_at = now
    if entry.get("sent_at") is not None:
        if not isinstance(entry["sent_at"], str):
            raise BadInput("sent_at must be an ISO 8601 string with a zone")
        try:
            sent_at = from_iso(entry["sent_at"])
        except InvalidTime as exc:
            raise BadInput(f"sent_at: {exc}") from None
        if sent_at > now + MAX_FUTURE:
            raise BadInput(f"sent_at {shown(entry['sent_at'])} is in the future")
    recipient = entry.get("recipient")
    if recipient is not None and (
        not isinstance(recipient, str) or not 0 < len(recipient) <= MAX_RECIPIENT or not recipient.isprintable()
    ):
        raise BadInput(f"recipient must be a printable string of 1-{MAX_RECIPIENT} characters")
    callback_url = entry.get("callback_url")
    if callback_url is not None and not isinstance(callback_url, str):
        raise BadInput("callback_url must be a string")
    return Registration(provider, canonical(provider, raw_id), sent_at, recipient, callback_url)


def named_problems(problems: list[str]) -> BadInput:
    """One error naming every problem of a batch, the first ten in full."""
    more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
    return BadInput("; ".join(problems[:10]) + more)


def query_parameters(raw: str) -> dict[str, str]:
    """A query string's parameters, percent-decoded, a ``+`` read as a space (so a raw ``+49...`` arrives as
    `` 49...``, which ``normalize`` reads as ``+49...``). A parameter given twice is refused: which one was meant
    cannot be known."""
    found: dict[str, str] = {}
    for name, value in form_pairs(raw, "query string"):
        if name in found:
            raise BadInput(f"query parameter {shown(name)} is given more than once")
        found[name] = value
    return found


def _recipient(query: Mapping[str, str]) -> str:
    """The query's recipient in E.164 form (the recipient index's key)."""
    text = query.get("recipient")
    if not text:
        raise BadInput("recipient is required: a phone number in E.164 form, its + sent as %2B")
    return normalize(text)


def _limit(query: Mapping[str, str]) -> int:
    text = query.get("limit")
    if text is None:
        return LOOKUP_LIMIT_DEFAULT
    if not (text.isascii() and text.isdigit() and len(text) <= 3) or not 1 <= int(text) <= LOOKUP_LIMIT_MAX:
        raise BadInput(f"limit must be a whole number from 1 to {LOOKUP_LIMIT_MAX}")
    return int(text)


def _since(query: Mapping[str, str]) -> str | None:
    """``since`` in the stored form of ``sent_at``, rounded up to the millisecond the store keeps, so that it stays
    inclusive without taking in a message sent before it."""
    text = query.get("since")
    if text is None:
        return None
    try:
        moment = from_iso(text)
    except InvalidTime:
        raise BadInput("since must be an ISO 8601 time with a zone, e.g. 2026-11-22T10:00:00Z") from None
    if moment.microsecond % 1000:
        moment += timedelta(microseconds=1000 - moment.microsecond % 1000)
    return iso(moment)


@dataclass
class MessageService:
    store: Store
    settings: Settings
    clock: Callable[[], datetime]
    # The resolver of callback_url hosts (made on first use), and the secrets (the signing key's presence).
    resolve: Resolver | None = None
    secrets: Callable[[str], str | None] = field(default=secret)

    def register(self, body: bytes) -> dict[str, Any]:
        now = self.clock()
        registrations = parse_registrations(body, now)
        checked = self._check_callback_urls(registrations)

        def one(r: Registration) -> dict[str, str]:
            first = self.settings.schedule.poll_at(r.sent_at, 0)
            assert first is not None  # a schedule has at least one offset
            shard = due_shard(r.provider, r.message_id, self.settings.due_shards)
            outcome = self.store.register(
                r.provider,
                r.message_id,
                r.sent_at,
                r.recipient,
                NextPoll(iso(first), 0),
                shard,
                now,
                recipient_key=recipient_key(r.provider, r.message_id, r.recipient),
                callback_url=checked[r.callback_url].url if r.callback_url is not None else None,
            )
            return {"provider": r.provider, "message_id": r.message_id, "result": str(outcome)}

        with ThreadPoolExecutor(max_workers=min(WRITERS, len(registrations))) as pool:
            results = list(pool.map(one, registrations))
        return {"results": results}

    def _check_callback_urls(self, registrations: list[Registration]) -> dict[str, CheckedUrl]:
        """Every distinct callback_url of the batch, checked once (a batch of 500 with one URL is one lookup), a
        few at a time. A refused URL makes the whole batch a 400 naming each message that carries it; a DNS that
        did not answer, a 503 (``ResolverUnavailable``), unless some URL is refused anyway."""
        urls = list(dict.fromkeys(r.callback_url for r in registrations if r.callback_url is not None))
        if not urls:
            return {}
        if not self.secrets(SIGNING_KEY):
            raise BadInput(CALLBACKS_DISABLED)
        if self.resolve is None:
            self.resolve = system_resolver()
        resolve = self.resolve

        def one(url: str) -> CheckedUrl | RefusedUrl | ResolverUnavailable:
            try:
                return check_url(url, allowed_hosts=self.settings.forward_allowed_hosts, resolve=resolve)
            except (RefusedUrl, ResolverUnavailable) as exc:
                return exc

        with ThreadPoolExecutor(max_workers=min(RESOLVERS, len(urls))) as pool:
            outcomes = dict(zip(urls, pool.map(one, urls), strict=True))
        problems = [
            f"messages[{i}]: {outcome}"
            for i, r in enumerate(registrations)
            if r.callback_url is not None and isinstance(outcome := outcomes[r.callback_url], RefusedUrl)
        ]
        if problems:
            raise named_problems(problems)
        for outcome in outcomes.values():
            if isinstance(outcome, ResolverUnavailable):
                raise outcome
        return {url: outcome for url, outcome in outcomes.items() if isinstance(outcome, CheckedUrl)}

    def read(self, provider: str, message_id: str) -> dict[str, Any]:
        if provider not in PROVIDERS:
            raise NotFound(f"unknown provider {shown(provider)}")
        try:
            key = canonical(provider, message_id)
        except BadInput:
            raise NotFound(f"no message {shown(message_id)} of {provider}") from None
        item = self.store.get(provider, key)
        if item is None:
            raise NotFound(f"no message {shown(message_id)} of {provider}")
        return view(item)

    def look_up(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /messages?recipient=...[&since=ISO][&limit=N][&next=TOKEN]``: the recipient's messages, newest
        ``sent_at`` first, and the token of the next page (None: there is none).

        One key more than the page is asked of the index: when it is there, the page ends at the page's last
        message and the next one starts after it; when it is not, this is the last page, and a client is never
        sent on to an empty one.
        """
        key = _recipient(query)
        limit = _limit(query)
        since = _since(query)
        start = decode_token(key, query["next"]) if "next" in query else None
        items, end = self.store.by_recipient(key, since=since, limit=limit + 1, start=start)
        if len(items) > limit:
            last = items[limit - 1]
            items = items[:limit]
            end = {"pk": str(last["pk"]), "recipient_key": key, "sent_at": str(last["sent_at"])}
        return {"messages": [summary(item) for item in items], "next": encode_token(key, end) if end else None}

    def forget(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``DELETE /messages?recipient=...``: erase the recipient's messages, at most ``FORGET_MOST`` a call so
        that a call ends well within the function's timeout; ``more`` tells the client to call again."""
        removed, more = self.store.forget_recipient(_recipient(query), most=FORGET_MOST)
        return {"removed": removed, "more": more}


PUBLIC_FIELDS = (
    "provider",
    "message_id",
    "status",
    "final",
    "provider_status",
    "status_at",
    "source",
    "sent_at",
    "recipient",
    "registered_at",
    "updated_at",
    "poll_attempt",
    "callback_url",
)
# What a lookup by recipient shows of each message.
SUMMARY_FIELDS = ("provider", "message_id", "status", "final", "provider_status", "status_at", "sent_at")


def view(item: dict[str, Any]) -> dict[str, Any]:
    """The public JSON of a message: its status, its poll state, its history and its status callbacks."""
    shown = {name: _plain(item.get(name)) for name in PUBLIC_FIELDS}
    shown["sequence"] = _plain(item.get("seq"))
    shown["next_poll_at"] = item.get("due_at") if "due_shard" in item else None
    shown["callback"] = {
        "attempts": _plain(item.get("fwd_attempts", 0)),
        "last_http_status": _plain(item.get("fwd_http_status")),
        "state": item.get("fwd_state"),
        "last_attempt_at": item.get("fwd_at"),
        "delivered_sequence": _plain(item.get("fwd_delivered_seq")),
    }
    shown["history"] = [{k: _plain(v) for k, v in entry.items()} for entry in item.get("history", [])]
    return shown


def summary(item: dict[str, Any]) -> dict[str, Any]:
    """A message as a lookup by recipient lists it."""
    return {name: _plain(item.get(name)) for name in SUMMARY_FIELDS}


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the API speaks JSON."""
    if hasattr(value, "as_integer_ratio") and not isinstance(value, bool | int | float):
        return int(value) if value == int(value) else float(value)
    return value
