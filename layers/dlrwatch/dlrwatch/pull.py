"""The HTTP side of polling: pooled ``requests`` sessions and the one place network faults are classified."""

from __future__ import annotations

from types import ModuleType

import requests
from requests.adapters import HTTPAdapter

from dlrwatch.domain.report import Report
from dlrwatch.providers.base import PollConfig, ProviderError


def session(pool_size: int) -> requests.Session:
    """One session per provider, its connections reused across calls; retries are the poller's own."""
    http = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 1), max_retries=0)
    http.mount("https://", adapter)
    http.mount("http://", adapter)
    http.headers["User-Agent"] = "dlrwatch/0.1 (+delivery status poller)"
    return http


def fetch(
    provider: ModuleType, http: requests.Session, config: PollConfig, message_ids: list[str]
) -> dict[str, Report | None]:
    """One status call; every way it can fail comes back as a ProviderError."""
    try:
        answer: dict[str, Report | None] = provider.poll(http, config, message_ids)
    except requests.Timeout:
        raise ProviderError("timeout") from None
    except requests.ConnectionError:
        raise ProviderError("connection") from None
    except requests.RequestException:
        raise ProviderError("request") from None
    return answer
