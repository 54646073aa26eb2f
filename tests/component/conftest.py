"""Fixtures of the component tier: the deployed API handlers on moto; provider stand-ins on loopback, a settable
clock and a poller pointed at both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dlrwatch_local.standins import ProviderStandIns
from support.api_events import SIGNED_AT, TOKEN
from support.polling import SENT_AT, Clock, poll_settings

from dlrwatch.config import Settings
from dlrwatch.poller import Poller
from dlrwatch.store import Store


@pytest.fixture
def standins() -> Iterator[ProviderStandIns]:
    with ProviderStandIns() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock(SENT_AT)


@pytest.fixture
def settings(standins: ProviderStandIns) -> Settings:
    return poll_settings(standins)


@pytest.fixture
def poller(store: Store, settings: Settings, clock: Clock) -> Poller:
    return Poller(store, settings, secrets=ProviderStandIns.credentials().get, clock=clock)


@pytest.fixture
def handlers(monkeypatch: pytest.MonkeyPatch, store: Store) -> dict[str, Any]:
    """The deployed callback and messages handler modules: their store on moto, their clock at ``SIGNED_AT``, the
    callback token ``TOKEN``."""
    monkeypatch.setenv("CALLBACK_TOKEN", TOKEN)
    import callback
    import messages

    for module in (callback, messages):
        monkeypatch.setattr(module.service, "store", store)
        monkeypatch.setattr(module.service, "clock", lambda: SIGNED_AT)
    return {"callback": callback, "messages": messages}


@pytest.fixture
def callback(handlers: dict[str, Any]) -> Any:
    return handlers["callback"]
