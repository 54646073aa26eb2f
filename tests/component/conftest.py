"""Fixtures of the poller's tests: provider stand-ins on loopback, a settable clock, a poller pointed at both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dlrwatch_local.standins import ProviderStandIns
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
