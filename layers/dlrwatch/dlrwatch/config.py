"""Settings, read once from the environment at cold start and checked there, so a bad value fails loudly."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from dlrwatch.domain.schedule import DEFAULT_SCHEDULE, GIVE_UP_GRACE, Schedule
from dlrwatch.providers import PROVIDERS


class ConfigError(ValueError):
    pass


# Retries of a status callback, as offsets from its first attempt: about a day in all.
DEFAULT_FORWARD_RETRY_SCHEDULE = "1m,5m,30m,2h,6h,12h,24h"
# A retry waits in the forward queue as an invisible message, and SQS hides one for at most 12 hours.
FORWARD_RETRY_GAP_MAX = timedelta(hours=12)


def _default_zones() -> dict[str, str]:
    return {name: module.DEFAULT_ZONE for name, module in PROVIDERS.items()}


def _default_concurrency() -> dict[str, int]:
    return {name: module.POLL_CONCURRENCY for name, module in PROVIDERS.items()}


@dataclass(frozen=True)
class Settings:
    table_name: str
    retention: timedelta = timedelta(days=90)
    schedule: Schedule = field(default_factory=lambda: Schedule.parse(DEFAULT_SCHEDULE))
    due_shards: int = 8
    # Zones for zone-less provider times, by provider (``SEVENIO_TIMEZONE``, ``BULKSMS_TIMEZONE``).
    zones: Mapping[str, str] = field(default_factory=_default_zones)
    # Status API base URLs by provider (``SEVENIO_API_URL``, ``BULKSMS_EAPI_URL``, ``BULKSMS_API_URL``).
    provider_urls: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = 64 * 1024
    # A callback is answered within this, whatever hangs behind it (providers wait about 5 s, then retry).
    answer_within_seconds: float = 4.0
    # A poll run stops starting calls after this long, so runs a minute apart rarely overlap.
    poll_budget_seconds: int = 50
    max_due_per_run: int = 20_000
    # Total deadline of one status call, answer read in full (connecting gets at most 3 s of it).
    provider_timeout: float = 10.0
    # Status calls a run may have in flight to each provider (``POLL_CONCURRENCY``, e.g. ``sevenio=4``);
    # a provider not named keeps its module's POLL_CONCURRENCY, and none may exceed its POLL_CONCURRENCY_MAX.
    poll_concurrency: Mapping[str, int] = field(default_factory=_default_concurrency)
    # Status callbacks to senders: retries after the first attempt (``FORWARD_RETRY_SCHEDULE``), and the hosts a
    # callback_url may name although they resolve to addresses that are not global (``FORWARD_ALLOWED_HOSTS``).
    forward_retry_schedule: Schedule = field(default_factory=lambda: Schedule.parse(DEFAULT_FORWARD_RETRY_SCHEDULE))
    forward_allowed_hosts: frozenset[str] = frozenset()

    @property
    def open_retention(self) -> timedelta:
        """How long after its last report a message that is not final is kept: past the end of any registered
        message's polling (its last poll, the give-up grace, a day to spare) and the retention after that."""
        return self.retention + self.schedule.offsets[-1] + GIVE_UP_GRACE + timedelta(days=1)

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
                zones={name: env.get(m.ZONE_SETTING) or m.DEFAULT_ZONE for name, m in PROVIDERS.items()},
                provider_urls={name: env.get(m.URL_SETTING) or m.DEFAULT_URL for name, m in PROVIDERS.items()},
                poll_budget_seconds=_positive_int(env, "POLL_BUDGET_SECONDS", 50),
                max_due_per_run=_positive_int(env, "MAX_DUE_PER_RUN", 20_000),
                provider_timeout=_positive_float(env, "PROVIDER_TIMEOUT_SECONDS", 10.0),
                answer_within_seconds=_positive_float(env, "ANSWER_WITHIN_SECONDS", 4.0),
                poll_concurrency=_poll_concurrency(env.get("POLL_CONCURRENCY", "")),
                forward_retry_schedule=_forward_retry_schedule(
                    env.get("FORWARD_RETRY_SCHEDULE") or DEFAULT_FORWARD_RETRY_SCHEDULE
                ),
                forward_allowed_hosts=_allowed_hosts(env.get("FORWARD_ALLOWED_HOSTS", "")),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    def zone_of(self, provider: str) -> str:
        return self.zones.get(provider) or PROVIDERS[provider].DEFAULT_ZONE

    def concurrency_of(self, provider: str) -> int:
        """Calls in flight to ``provider``: never more than it allows, however the settings were made."""
        module = PROVIDERS[provider]
        chosen: int = self.poll_concurrency.get(provider) or module.POLL_CONCURRENCY
        most: int = module.POLL_CONCURRENCY_MAX
        return min(chosen, most)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name) or str(default)
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or int(text) < 1:
        raise ConfigError(f"{name} must be a positive whole number, not {text!r}")
    return int(text)


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name) or str(default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 3600:
        raise ConfigError(f"{name} must be a number of seconds, not {text!r}")
    return value


def _poll_concurrency(text: str) -> dict[str, int]:
    """``sevenio=4,bulksms=8``: calls in flight by provider, each at most what the provider allows."""
    chosen = _default_concurrency()
    named: set[str] = set()
    for entry in (part.strip() for part in text.split(",")) if text.strip() else ():
        name, sep, value = (piece.strip() for piece in entry.partition("="))
        if not sep or name not in PROVIDERS:
            raise ConfigError(
                f"POLL_CONCURRENCY must be provider=calls pairs separated by commas, providers "
                f"{', '.join(PROVIDERS)}; not {entry!r}"
            )
        if name in named:
            raise ConfigError(f"POLL_CONCURRENCY names {name} twice")
        named.add(name)
        most = PROVIDERS[name].POLL_CONCURRENCY_MAX
        if not (value.isascii() and value.isdigit() and len(value) <= 3) or not 1 <= int(value) <= most:
            raise ConfigError(f"POLL_CONCURRENCY for {name} must be a whole number from 1 to {most}, not {value!r}")
        chosen[name] = int(value)
    return chosen


def _forward_retry_schedule(text: str) -> Schedule:
    try:
        schedule = Schedule.parse(text)
    except ValueError as exc:
        raise ConfigError(f"FORWARD_RETRY_SCHEDULE: {exc}") from None
    gaps = [b - a for a, b in zip((timedelta(0), *schedule.offsets), schedule.offsets, strict=False)]
    if max(gaps) > FORWARD_RETRY_GAP_MAX:
        raise ConfigError(f"FORWARD_RETRY_SCHEDULE {text!r}: retries must be at most 12 hours apart (SQS's limit)")
    return schedule


def _allowed_hosts(text: str) -> frozenset[str]:
    """``FORWARD_ALLOWED_HOSTS``: exact host names or addresses, comma-separated, compared in lower case."""
    hosts = {part.strip().lower() for part in text.split(",")}
    hosts.discard("")
    for host in hosts:
        if "*" in host or not host.isascii() or any(c.isspace() for c in host):
            raise ConfigError(f"FORWARD_ALLOWED_HOSTS must list exact host names, not {host!r}")
    return frozenset(hosts)
