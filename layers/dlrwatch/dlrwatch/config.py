"""Settings, read once from the environment at cold start and checked there, so a bad value fails loudly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from dlrwatch.domain.schedule import DEFAULT_SCHEDULE, Schedule
from dlrwatch.providers import bulksms_eapi, sevenio


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    table_name: str
    retention: timedelta = timedelta(days=90)
    schedule: Schedule = field(default_factory=lambda: Schedule.parse(DEFAULT_SCHEDULE))
    due_shards: int = 8
    # Zones for zone-less provider times, by callback route / provider.
    sevenio_zone: str = sevenio.DEFAULT_ZONE
    bulksms_zone: str = bulksms_eapi.DEFAULT_ZONE
    max_body_bytes: int = 64 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        table = env.get("TABLE_NAME", "").strip()
        if not table:
            raise ConfigError("TABLE_NAME is not set")
        try:
            return cls(
                table_name=table,
                retention=timedelta(days=_positive_int(env, "RETENTION_DAYS", 90)),
                schedule=Schedule.parse(env.get("POLL_SCHEDULE") or DEFAULT_SCHEDULE),
                due_shards=_positive_int(env, "DUE_SHARDS", 8),
                sevenio_zone=env.get("SEVENIO_TIMEZONE") or sevenio.DEFAULT_ZONE,
                bulksms_zone=env.get("BULKSMS_TIMEZONE") or bulksms_eapi.DEFAULT_ZONE,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def zone(self, channel: str) -> str:
        return self.sevenio_zone if channel == sevenio.CALLBACK else self.bulksms_zone


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name) or str(default)
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{name} must be a positive whole number, not {text!r}")
    return int(text)
