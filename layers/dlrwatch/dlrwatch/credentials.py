"""Secrets: from the environment locally; on AWS from SSM Parameter Store or Secrets Manager, cached.

``SECRETS_PATH`` names the folder (``/dlrwatch/prod``) and ``SECRETS_STORE`` the service (``ssm``, the default:
SecureString parameters such as ``/dlrwatch/prod/callback-token``; or ``secretsmanager``: secrets of the same
names). Values are cached for five minutes, so a rotated secret is in use within that time. A secret that is
not set is remembered as missing for as long: an optional secret (the seven.io signing key) must not cost a
call to the store on every request. A value never appears in a log line or an error message.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider
from aws_lambda_powertools.utilities.parameters.base import BaseProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.config import Config

CACHE_SECONDS = 300
# Secrets are read on a callback's path, which must answer within seconds: a store that hangs is given up
# quickly (two attempts of at most 1 s to connect and 1 s to answer), and the request answers 503.
CLIENT_CONFIG = Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2})


class SecretUnavailable(RuntimeError):
    """The secret store did not answer: the request must be retried later (5xx), never refused."""


def stored_name(name: str) -> str:
    """The name under ``SECRETS_PATH`` of the secret ``name``: ``CALLBACK_TOKEN`` -> ``callback-token``."""
    return name.lower().replace("_", "-")


class SecretStore:
    """Reads ``{path}/{name}`` from one store, caching values and absences for ``CACHE_SECONDS``."""

    def __init__(
        self,
        path: str,
        store: str = "ssm",
        *,
        provider: BaseProvider | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path.rstrip("/")
        self.store = store
        self.clock = clock
        self.provider = provider or (
            SecretsProvider(boto_config=CLIENT_CONFIG)
            if store == "secretsmanager"
            else SSMProvider(boto_config=CLIENT_CONFIG)
        )
        self._missing_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        """The secret ``name`` (an environment variable name such as ``CALLBACK_TOKEN``), or None if not set."""
        key = f"{self.path}/{stored_name(name)}"
        with self._lock:
            if self._missing_until.get(key, 0.0) > self.clock():
                return None
        try:
            if isinstance(self.provider, SSMProvider):
                found = self.provider.get(key, max_age=CACHE_SECONDS, decrypt=True)
            else:
                found = self.provider.get(key, max_age=CACHE_SECONDS)
        except GetParameterError as exc:
            if "NotFound" in repr(exc.__cause__) or "NotFound" in str(exc):
                with self._lock:
                    self._missing_until[key] = self.clock() + CACHE_SECONDS
                return None  # not configured: the caller decides what a missing secret means
            raise SecretUnavailable(f"could not read {key} from {self.store}") from None
        return str(found) if found else None


_stores: dict[tuple[str, str], SecretStore] = {}
_stores_lock = threading.Lock()


def secret(name: str) -> str | None:
    """The secret ``name``: the environment variable of that name when set, else the configured store's."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get("SECRETS_PATH", "").rstrip("/")
    if not path:
        return None
    where = (path, os.environ.get("SECRETS_STORE", "ssm"))
    with _stores_lock:
        store = _stores.get(where) or _stores.setdefault(where, SecretStore(*where))
    return store.get(name)
