"""POLL_CONCURRENCY: calls in flight by provider, read at cold start; a bad value is refused there, loudly."""

from __future__ import annotations

import pytest

from dlrwatch.config import ConfigError, Settings
from dlrwatch.providers import bulksms, bulksms_eapi, sevenio

DEFAULTS = {"sevenio": 2, "bulksms-eapi": 1, "bulksms": 4}


def concurrency(value: str | None) -> dict[str, int]:
    env = {"TABLE_NAME": "t"} | ({} if value is None else {"POLL_CONCURRENCY": value})
    settings = Settings.from_env(env)
    return {name: settings.concurrency_of(name) for name in DEFAULTS}


def test_without_the_setting_each_provider_keeps_its_own_concurrency() -> None:
    assert {m.NAME: m.POLL_CONCURRENCY for m in (sevenio, bulksms_eapi, bulksms)} == DEFAULTS
    assert concurrency(None) == DEFAULTS
    assert concurrency("") == DEFAULTS
    assert concurrency(" ") == DEFAULTS


@pytest.mark.parametrize(
    ("value", "changed"),
    [
        ("sevenio=4", {"sevenio": 4}),
        ("sevenio=4,bulksms=8", {"sevenio": 4, "bulksms": 8}),
        (" bulksms = 1 , sevenio=16 ", {"bulksms": 1, "sevenio": 16}),
        ("bulksms-eapi=1", {}),
    ],
)
def test_named_providers_change_and_the_others_keep_their_own(value: str, changed: dict[str, int]) -> None:
    assert concurrency(value) == DEFAULTS | changed


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("bulksms-eapi=2", "from 1 to 1"),  # BulkSMS asks for one connection to the EAPI
        ("sevenio=17", "from 1 to 16"),
        ("bulksms=0", "from 1 to 16"),
        ("sevenio=-1", "from 1 to 16"),
        ("sevenio=2.5", "from 1 to 16"),
        ("sevenio=٣", "from 1 to 16"),  # a digit, but not an ASCII one
        ("sevenio=", "from 1 to 16"),
        ("sevenio=99999999999999999999", "from 1 to 16"),
        ("twilio=2", "provider=calls pairs"),
        ("sevenio", "provider=calls pairs"),
        ("sevenio:2", "provider=calls pairs"),
        ("sevenio=2,,bulksms=4", "provider=calls pairs"),
        ("SEVENIO=2", "provider=calls pairs"),
        ("sevenio=2,sevenio=3", "twice"),
    ],
)
def test_a_bad_value_is_refused_at_cold_start_naming_the_setting(value: str, named: str) -> None:
    with pytest.raises(ConfigError, match="POLL_CONCURRENCY") as refused:
        concurrency(value)
    assert named in str(refused.value)


def test_the_eapi_stays_at_one_connection_however_the_settings_were_made() -> None:
    settings = Settings(table_name="t", poll_concurrency={"bulksms-eapi": 4, "sevenio": 40})
    assert settings.concurrency_of("bulksms-eapi") == 1
    assert settings.concurrency_of("sevenio") == sevenio.POLL_CONCURRENCY_MAX
