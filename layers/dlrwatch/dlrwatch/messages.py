"""Registering sent messages (``POST /messages``) and reading one back (``GET /messages/{provider}/{id}``)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dlrwatch import strictjson
from dlrwatch.config import Settings
from dlrwatch.domain.text import shown
from dlrwatch.domain.times import InvalidTime, from_iso, iso
from dlrwatch.errors import BadInput
from dlrwatch.providers import PROVIDERS, bulksms_eapi
from dlrwatch.providers.base import message_id as valid_message_id
from dlrwatch.store import NextPoll, Store, due_shard

MAX_BATCH = 500
MAX_RECIPIENT = 32
# A sent_at ahead of our clock by more than this is a sender's bug, not clock skew.
MAX_FUTURE = timedelta(minutes=15)
WRITERS = 8


class NotFound(BadInput):
    status_code = 404


@dataclass(frozen=True)
class Registration:
    provider: str
    message_id: str
    sent_at: datetime
    recipient: str | None


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
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise BadInput(shown)
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
    return Registration(provider, canonical(provider, raw_id), sent_at, recipient)


@dataclass
class MessageService:
    store: Store
    settings: Settings
    clock: Callable[[], datetime]

    def register(self, body: bytes) -> dict[str, Any]:
        now = self.clock()
        registrations = parse_registrations(body, now)

        def one(r: Registration) -> dict[str, str]:
            first = self.settings.schedule.poll_at(r.sent_at, 0)
            assert first is not None  # a schedule has at least one offset
            shard = due_shard(r.provider, r.message_id, self.settings.due_shards)
            outcome = self.store.register(
                r.provider, r.message_id, r.sent_at, r.recipient, NextPoll(iso(first), 0), shard, now
            )
            return {"provider": r.provider, "message_id": r.message_id, "result": str(outcome)}

        with ThreadPoolExecutor(max_workers=min(WRITERS, len(registrations))) as pool:
            results = list(pool.map(one, registrations))
        return {"results": results}

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
)


def view(item: dict[str, Any]) -> dict[str, Any]:
    """The public JSON of a message: its status, its poll state and its history."""
    shown = {name: _plain(item.get(name)) for name in PUBLIC_FIELDS}
    shown["next_poll_at"] = item.get("due_at") if "due_shard" in item else None
    shown["history"] = [{k: _plain(v) for k, v in entry.items()} for entry in item.get("history", [])]
    return shown


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the API speaks JSON."""
    if hasattr(value, "as_integer_ratio") and not isinstance(value, bool | int | float):
        return int(value) if value == int(value) else float(value)
    return value
