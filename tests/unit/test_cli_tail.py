"""`dlrwatch tail` on the local stack: the events file followed like ``tail -F``, and each event printed once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dlrwatch_cli.commands import event_line
from dlrwatch_cli.tail import FileFollower, Filter


def envelope(message_id: str, status: str = "delivered", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"id-{message_id}-{status}",
        "detail-type": "Delivery Status Changed",
        "source": "dlrwatch",
        "time": "2026-11-22T10:00:02Z",
        "resources": [],
        "detail": {
            "provider": "sevenio",
            "message_id": message_id,
            "status": status,
            "final": status == "delivered",
            "previous_status": "sent",
            "source": "push",
            "changed_at": "2026-11-22T10:00:02.000Z",
            **detail,
        },
    }


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(text)


def line(message_id: str) -> str:
    return json.dumps(envelope(message_id)) + "\n"


def test_what_was_there_before_the_tail_is_not_shown(tmp_path: Path) -> None:
    events = tmp_path / "status-events.jsonl"
    append(events, line("old"))
    follower = FileFollower(events)
    assert follower.read() == []
    append(events, line("new"))
    assert [json.loads(text)["detail"]["message_id"] for text in follower.read()] == ["new"]
    assert follower.read() == []


def test_a_file_created_after_the_start_is_read_from_its_beginning(tmp_path: Path) -> None:
    events = tmp_path / "later" / "status-events.jsonl"
    follower = FileFollower(events)
    assert follower.read() == []
    events.parent.mkdir()
    append(events, line("1") + line("2"))
    assert [json.loads(text)["detail"]["message_id"] for text in follower.read()] == ["1", "2"]


def test_a_line_being_written_waits_for_its_end(tmp_path: Path) -> None:
    events = tmp_path / "status-events.jsonl"
    events.touch()
    follower = FileFollower(events)
    follower.read()
    whole = line("1")
    append(events, whole[:10])
    assert follower.read() == []
    append(events, whole[10:])
    assert follower.read() == [whole.rstrip("\n")]


def test_a_tail_started_within_a_line_skips_its_rest(tmp_path: Path) -> None:
    events = tmp_path / "status-events.jsonl"
    whole = line("half-written")
    append(events, line("old") + whole[:10])
    follower = FileFollower(events)
    assert follower.read() == []
    append(events, whole[10:] + line("next"))
    assert [json.loads(text)["detail"]["message_id"] for text in follower.read()] == ["next"]


def test_a_truncated_file_is_read_again_from_its_beginning(tmp_path: Path) -> None:
    events = tmp_path / "status-events.jsonl"
    append(events, line("old-1") + line("old-2") + line("old-3"))
    follower = FileFollower(events)
    follower.read()
    events.write_text(line("after"))  # shorter than before: a restarted stack's fresh file
    assert [json.loads(text)["detail"]["message_id"] for text in follower.read()] == ["after"]


def test_a_replaced_file_is_followed_and_the_old_one_s_last_lines_kept(tmp_path: Path) -> None:
    events = tmp_path / "status-events.jsonl"
    events.touch()
    follower = FileFollower(events)
    follower.read()
    append(events, line("last-of-old"))
    replacement = tmp_path / "new.jsonl"
    replacement.write_text(line("first-of-new") + line("second-of-new"))
    os.replace(replacement, events)
    assert [json.loads(text)["detail"]["message_id"] for text in follower.read()] == [
        "last-of-old",
        "first-of-new",
        "second-of-new",
    ]


def test_a_removed_file_is_waited_for(tmp_path: Path) -> None:
    events = tmp_path / "status-events.jsonl"
    events.touch()
    follower = FileFollower(events)
    follower.read()
    events.unlink()
    assert follower.read() == []
    append(events, line("back"))
    assert [json.loads(text)["detail"]["message_id"] for text in follower.read()] == ["back"]


def test_the_filter_keeps_one_provider_s_or_one_message_s_events() -> None:
    one = envelope("1")
    assert Filter().matches(one)
    assert Filter(provider="sevenio", message_id="1").matches(one)
    assert not Filter(provider="bulksms").matches(one)
    assert not Filter(message_id="2").matches(one)
    assert not Filter().matches({"detail": "not an object"})


def test_an_event_line_says_what_changed() -> None:
    assert event_line(envelope("77149843739")) == (
        "2026-11-22T10:00:02.000Z  sevenio  77149843739  sent -> delivered (final)  push"
    )
    assert event_line(envelope("1", "pending", previous_status=None, source=None, final=False)) == (
        "2026-11-22T10:00:02.000Z  sevenio  1  - -> pending  -"
    )
