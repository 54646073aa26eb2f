"""The commands: each makes its requests and prints the answer, as a table or as JSON (``--json``).

Each takes the session, the target, the parsed arguments and the two output streams, and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import botocore.session

from dlrwatch_cli.errors import CommandError, UsageError
from dlrwatch_cli.tables import cell, columns_of, key_values, table
from dlrwatch_cli.tail import Envelope, Filter, follow_bus, follow_file, subscribed
from dlrwatch_cli.target import Target, api_client

__all__ = ["CommandError", "UsageError", "forget", "lookup", "register", "status", "tail"]

# Where `make run` writes its status events (local/dlrwatch_local/stack.py Options.events_file), from the checkout.
LOCAL_EVENTS_FILE = Path(".local") / "status-events.jsonl"
LOOKUP_COLUMNS = ("sent_at", "provider", "message_id", "status", "final")
HISTORY_FIRST = ("received_at", "status_at", "status", "provider_status", "source")


def emit_json(document: Any, out: TextIO) -> None:
    print(json.dumps(document, ensure_ascii=False), file=out, flush=True)


# -- register --------------------------------------------------------------------------------------------------


def registration_body(args: argparse.Namespace, stdin: TextIO) -> Any:
    """The request body: the file's document as it is (the API names what is wrong with it), or one message."""
    one = [args.provider, args.message_id, args.recipient, args.sent_at, args.callback_url]
    if args.file is not None:
        if any(value is not None for value in one):
            raise UsageError("register takes either --file or PROVIDER MESSAGE_ID and their options, not both")
        try:
            text = stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
        try:
            return json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{args.file} is not JSON: {exc}") from None
    if args.provider is None or args.message_id is None:
        raise UsageError("register needs PROVIDER MESSAGE_ID, or --file F.json")
    message = {"provider": args.provider, "message_id": args.message_id}
    optional = {"recipient": args.recipient, "sent_at": args.sent_at, "callback_url": args.callback_url}
    message.update({name: value for name, value in optional.items() if value is not None})
    return {"messages": [message]}


def register(
    session: botocore.session.Session, target: Target, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    body = registration_body(args, sys.stdin)
    answer = api_client(session, target).register(body)
    if args.json:
        emit_json(answer, out)
        return 0
    results = (answer or {}).get("results", [])
    print(
        table(
            ("provider", "message_id", "result"),
            ([r.get("provider"), r.get("message_id"), r.get("result")] for r in results),
        ),
        file=out,
    )
    return 0


# -- status ----------------------------------------------------------------------------------------------------


def split_status(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The message's own fields; its status callback (``callback_url`` as ``url``, and the forwarding state of
    the ``callback`` object), empty when the message has none; its history."""
    fields: dict[str, Any] = {}
    callback: dict[str, Any] = {}
    for name, value in document.items():
        if name == "history":
            continue
        if name == "callback_url":
            callback["url"] = value
        elif name == "callback" and isinstance(value, dict):
            callback.update(value)
        else:
            fields[name] = value
    if not any(value not in (None, 0, "") for value in callback.values()):
        callback = {}  # no URL and no attempt: nothing to show
    history = [entry for entry in document.get("history") or [] if isinstance(entry, dict)]
    return fields, callback, history


def status(
    session: botocore.session.Session, target: Target, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    document = api_client(session, target).read(args.provider, args.message_id)
    if args.json:
        emit_json(document, out)
        return 0
    fields, callback, history = split_status(document)
    sections = [key_values(fields)]
    if callback:
        sections.append("status callback:\n" + key_values(callback))
    if history:
        headers = columns_of(history, HISTORY_FIRST)
        sections.append("history:\n" + table(headers, ([entry.get(h) for h in headers] for entry in history)))
    else:
        sections.append("history: none")
    print("\n\n".join(sections), file=out)
    return 0


# -- lookup ----------------------------------------------------------------------------------------------------


def lookup(
    session: botocore.session.Session, target: Target, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    client = api_client(session, target)
    messages: list[dict[str, Any]] = []
    token = args.next_token
    while True:
        answer = client.lookup(args.recipient, since=args.since, limit=args.limit, next_token=token)
        messages.extend(answer.get("messages") or [])
        token = answer.get("next")
        if not (args.all and token):
            break
    if args.json:
        emit_json({"messages": messages, "next": token}, out)
        return 0
    if messages:
        print(table(LOOKUP_COLUMNS, ([m.get(c) for c in LOOKUP_COLUMNS] for m in messages)), file=out)
    else:
        print("no messages", file=out)
    if token:
        print(f"more messages: run the same command with --all, or with --next {token}", file=err)
    return 0


# -- forget ----------------------------------------------------------------------------------------------------


def confirmed(stdin: TextIO, err: TextIO) -> bool:
    if not stdin.isatty():
        raise UsageError("forget removes messages for good: pass --yes when stdin is not a terminal")
    print("Remove every message sent to this recipient, for good? [y/N] ", end="", file=err, flush=True)
    return stdin.readline().strip().lower() in {"y", "yes"}


def forget(
    session: botocore.session.Session, target: Target, args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    client = api_client(session, target)
    if not args.yes and not confirmed(sys.stdin, err):
        print("nothing removed", file=err)
        return 1
    removed = 0
    while True:
        answer = client.forget(args.recipient)
        step = int(answer.get("removed") or 0)
        removed += step
        if not answer.get("more"):
            break
        if step == 0:  # a server that answers "more" but removes nothing would keep us here for ever
            raise CommandError(f"the API answered that more is left but removed none (removed {removed} in all)")
    if args.json:
        emit_json({"removed": removed}, out)
    else:
        print(f"removed {removed} message{'' if removed == 1 else 's'}", file=out)
    return 0


# -- tail ------------------------------------------------------------------------------------------------------


def event_line(envelope: Envelope) -> str:
    """``changed_at  provider  message_id  previous -> status (final)  source``."""
    detail = envelope.get("detail") or {}
    change = f"{cell(detail.get('previous_status'))} -> {cell(detail.get('status'))}"
    if detail.get("final"):
        change += " (final)"
    parts = [detail.get("changed_at") or envelope.get("time"), detail.get("provider"), detail.get("message_id")]
    return "  ".join([*(cell(part) for part in parts), change, cell(detail.get("source"))])


def tail(
    session: botocore.session.Session | None,
    target: Target | None,
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
) -> int:
    wanted = Filter(args.provider, args.message_id)

    def say(text: str) -> None:
        print(text, file=err, flush=True)

    def show(envelope: Envelope) -> None:
        if wanted.matches(envelope):
            print(json.dumps(envelope, ensure_ascii=False) if args.json else event_line(envelope), file=out, flush=True)

    if args.events_file is not None or (target is not None and target.local):
        path = args.events_file or LOCAL_EVENTS_FILE
        say(f"following {path} (Ctrl-C to stop)")
        for envelope in follow_file(path, warn=err):
            show(envelope)
        return 0  # not reached: a tail ends with Ctrl-C or SIGTERM
    if session is None or target is None:
        raise UsageError("tail needs --stack NAME on AWS, or a loopback --url or --events-file locally")
    if target.stack is None:
        raise UsageError("tail on AWS needs --stack NAME (its bus is a stack output); locally, a loopback --url")
    if target.event_bus is None:
        raise CommandError(f"stack {target.stack} has no EventBusName output")
    if target.region is None:
        raise CommandError("no region: pass --region, or set AWS_REGION or a profile's region")
    with subscribed(session, target.region, target.event_bus, say) as subscription:
        say(f"following status events on bus {target.event_bus} (Ctrl-C to stop; a new rule can take a minute)")
        for envelope in follow_bus(subscription):
            show(envelope)
    return 0  # not reached: a tail ends with Ctrl-C or SIGTERM
