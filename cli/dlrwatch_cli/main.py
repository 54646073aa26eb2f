"""The ``dlrwatch`` command: parse, find the target, run one command, print tables or JSON, exit 0, 1 or 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from dlrwatch_cli import commands
from dlrwatch_cli.api import ApiError
from dlrwatch_cli.errors import CommandError, UsageError
from dlrwatch_cli.target import new_session, resolve

DESCRIPTION = """\
dlrwatch's operator command line: register sent messages, read one message's status and history, look up or
forget a recipient's messages, and follow status events as they happen.

Talks to the API at --url (make run's stack: http://127.0.0.1:3000) or to the stack that --stack names (its
outputs ApiUrl and EventBusName). Requests are signed with your AWS credentials (SigV4, execute-api); the local
stack also takes unsigned ones. The options --url, --stack, --region, --profile and --json go before or after the
command.

Exit codes: 0 done, 1 the API or AWS refused or failed (its error on stderr), 2 a usage error."""

EPILOG = """\
examples:
  dlrwatch --url http://127.0.0.1:3000 register sevenio 77149843739 --recipient +491701234567
  dlrwatch --stack dlrwatch-prod status bulksms-eapi 4242:447700900001
  dlrwatch --stack dlrwatch-prod lookup +491701234567 --since 2026-11-01T00:00:00Z --all
  dlrwatch --stack dlrwatch-prod tail --provider sevenio
  dlrwatch tail --events-file .local/status-events.jsonl --json"""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: whatever the command made is removed before it ends."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def target_options(suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes. Given after the command, they are parsed by its subparser, whose defaults
    must not overwrite what was given before it: there they default to nothing at all (SUPPRESS)."""
    options = argparse.ArgumentParser(add_help=False)
    default: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    where = options.add_mutually_exclusive_group()
    where.add_argument("--url", help="the API's base URL", **default)
    where.add_argument("--stack", help="a deployed stack's name: its outputs give the API URL and the bus", **default)
    options.add_argument(
        "--region", help="AWS region (else the API URL's, else AWS_REGION or the profile's)", **default
    )
    options.add_argument("--profile", help="AWS profile for credentials and region", **default)
    options.add_argument(
        "--json",
        action="store_true",
        help="machine output: one JSON document (JSON lines for tail)",
        **({"default": argparse.SUPPRESS} if suppress else {"default": False}),
    )
    return options


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="dlrwatch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[target_options(suppress=False)],
    )
    common = [target_options(suppress=True)]
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    register = sub.add_parser(
        "register",
        parents=common,
        help="register sent messages (POST /messages)",
        description='Register sent messages: one from the arguments, or a batch from a JSON file {"messages": [...]} '
        "(- for stdin).",
    )
    register.add_argument("provider", nargs="?", metavar="PROVIDER", help="sevenio, bulksms or bulksms-eapi")
    register.add_argument("message_id", nargs="?", metavar="MESSAGE_ID", help="the provider's id of the message")
    register.add_argument("--recipient", help="the recipient's number, for lookup and forget")
    register.add_argument("--sent-at", help="when it was sent, ISO 8601 with a zone (default: now)")
    register.add_argument("--callback-url", help="where dlrwatch POSTs the message's status changes")
    register.add_argument("--file", type=str, metavar="F.json", help='a body {"messages": [...]}; - reads stdin')

    status = sub.add_parser(
        "status",
        parents=common,
        help="one message's status, callback state and history",
        description="One message's status, its callback state if any, and its history "
        "(GET /messages/{provider}/{message_id}).",
    )
    status.add_argument("provider", metavar="PROVIDER")
    status.add_argument("message_id", metavar="MESSAGE_ID")

    lookup = sub.add_parser(
        "lookup",
        parents=common,
        help="the messages sent to a recipient, newest first",
        description="The messages sent to a recipient, newest sent_at first (GET /messages?recipient=...).",
    )
    lookup.add_argument("recipient", metavar="RECIPIENT", help="the number, e.g. +491701234567")
    lookup.add_argument("--since", metavar="ISO", help="only messages sent at or after this time")
    lookup.add_argument("--limit", type=positive, metavar="N", help="at most N a page (the API's default: 50)")
    lookup.add_argument("--all", action="store_true", help="every page, not only the first")
    lookup.add_argument("--next", dest="next_token", metavar="TOKEN", help="the page after the one that gave TOKEN")

    forget = sub.add_parser(
        "forget",
        parents=common,
        help="remove every message sent to a recipient",
        description="Remove every message sent to a recipient (DELETE /messages?recipient=...), asking first on a "
        "terminal; repeated until the API says nothing is left.",
    )
    forget.add_argument("recipient", metavar="RECIPIENT")
    forget.add_argument("--yes", action="store_true", help="do not ask (needed when stdin is not a terminal)")

    tail = sub.add_parser(
        "tail",
        parents=common,
        help="follow status events as they happen",
        description="Follow status events from now on, until Ctrl-C. Locally (a loopback --url, or --events-file): "
        "the local stack's events file, like tail -F. On AWS (--stack): a temporary SQS queue, its policy, and a "
        "rule on the stack's bus targeting it, all removed when the tail ends (said on stderr).",
    )
    tail.add_argument("--provider", help="only this provider's messages")
    tail.add_argument("--message-id", help="only this message")
    tail.add_argument(
        "--events-file",
        type=Path,
        metavar="PATH",
        help=f"the local stack's events file (default with a loopback --url: {commands.LOCAL_EVENTS_FILE})",
    )
    return top


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    top = parser()
    args = top.parse_args(argv)
    previous = None
    with contextlib.suppress(ValueError):  # not the main thread (a test): no signal to handle
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(top, args, out, err)
    except KeyboardInterrupt:
        return 0 if args.command == "tail" else 130  # Ctrl-C is how a tail ends
    except UsageError as exc:
        top.error(str(exc))  # exits 2
    except (ApiError, CommandError, BotoCoreError, ClientError) as exc:
        report(exc, args.json, err)
        return 1
    except BrokenPipeError:  # `dlrwatch ... | head`: the reader is gone; nothing more to say, nor to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        if previous is not None:  # main() called within a program (a test) leaves its handler as it was
            signal.signal(signal.SIGTERM, previous)


def run(top: argparse.ArgumentParser, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.url and args.stack:
        raise UsageError("argument --stack: not allowed with argument --url")
    if args.command == "tail" and args.events_file is not None:
        return commands.tail(None, None, args, out, err)
    session = new_session(args.profile)
    target = resolve(session, url=args.url, stack=args.stack, region=args.region)
    handler = getattr(commands, args.command)
    code: int = handler(session, target, args, out, err)
    return code


def report(exc: Exception, as_json: bool, err: TextIO) -> None:
    if isinstance(exc, ApiError) and exc.status:
        document: dict[str, Any] = {"error": exc.message, "status": exc.status}
        text = f"dlrwatch: error {exc.status}: {exc.message}"
    else:
        document = {"error": str(exc)}
        text = f"dlrwatch: error: {exc}"
    print(json.dumps(document) if as_json else text, file=err, flush=True)


if __name__ == "__main__":
    sys.exit(main())
