"""The receiver-side check README.md gives senders verifies what dlrwatch signs, and nothing else: the snippet is
run as printed there, against signatures made by the forwarder's own signing code."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dlrwatch.forwarding import signature

README = Path(__file__).resolve().parents[2] / "README.md"
KEY, OLD_KEY = b"the-new-key", b"the-old-key"
BODY = b'{"event_id": "5f0c", "sequence": 3, "status": "delivered"}'


@pytest.fixture(scope="module")
def verified() -> Callable[..., bool]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    [snippet] = [b for b in blocks if "def verified(" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102 - our own README's snippet
    function: Callable[..., bool] = namespace["verified"]
    return function


def headers(timestamp: int, signed: str) -> dict[str, str]:
    return {"X-Dlrwatch-Timestamp": str(timestamp), "X-Dlrwatch-Signature": signed}


def test_a_callback_signed_with_the_key_is_verified(verified: Callable[..., bool]) -> None:
    now = int(time.time())
    assert verified(headers(now, signature([KEY], now, BODY)), BODY, KEY)


def test_while_rotating_either_key_verifies(verified: Callable[..., bool]) -> None:
    now = int(time.time())
    both = signature([KEY, OLD_KEY], now, BODY)
    assert verified(headers(now, both), BODY, KEY)
    assert verified(headers(now, both), BODY, OLD_KEY)


def test_a_changed_body_a_wrong_key_or_an_old_timestamp_is_refused(verified: Callable[..., bool]) -> None:
    now = int(time.time())
    assert not verified(headers(now, signature([KEY], now, BODY)), BODY.replace(b"delivered", b"failed"), KEY)
    assert not verified(headers(now, signature([OLD_KEY], now, BODY)), BODY, KEY)
    stale = now - 3600
    assert not verified(headers(stale, signature([KEY], stale, BODY)), BODY, KEY)
