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
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from dlrwatch.errors import SecretUnavailable

CACHE_SECONDS = 300
# Secrets are read on a callback's path, which must answer within seconds: a store that hangs is given up
# quickly (two attempts of at most 1 s to connect and 1 s to answer), and the request answers 503.
CLIENT_CONFIG = Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2})
# What each store answers for a name that does not exist.
NOT_FOUND = {"ParameterNotFound", "ResourceNotFoundException"}


def stored_name(name: str) -> str:
    """The name under ``SECRETS_PATH`` of the secret ``name``: ``CALLBACK_TOKEN`` -> ``callback-token``."""
    return name.lower().replace("_", "-")


class SecretStore:
    """Reads ``{path}/{name}`` from one store, caching values and absences alike for ``CACHE_SECONDS``.

    One read per name at a time: requests that arrive while a name is being read wait for that read instead of
    asking the store again. ``read`` (a full name to its value, None when there is none) replaces the store in
    tests.
    """

    def __init__(
        self,
        path: str,
        store: str = "ssm",
        *,
        read: Callable[[str], str | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path.rstrip("/")
        self.store = store
        self.clock = clock
        self._read = read or self._read_from_store
        self._client: Any = None
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Lock] = {}

    @property
    def client(self) -> Any:
        """The store's client, made on first use: a function that reads no secret never pays for it."""
        with self._lock:
            if self._client is None:
                if self.store == "secretsmanager":
                    self._client = boto3.client("secretsmanager", config=CLIENT_CONFIG)
                else:
                    self._client = boto3.client("ssm", config=CLIENT_CONFIG)
            return self._client

    def get(self, name: str) -> str | None:
        """The secret ``name`` (an environment variable name such as ``CALLBACK_TOKEN``), or None if not set."""
        key = f"{self.path}/{stored_name(name)}"
        with self._lock:
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:
            with self._lock:
                cached = self._cache.get(key)
            if cached is not None and cached[1] > self.clock():
                return cached[0]
            value = self._read(key)
            with self._lock:
                self._cache[key] = (value, self.clock() + CACHE_SECONDS)
            return value

    def _read_from_store(self, key: str) -> str | None:
        try:
            if self.store == "secretsmanager":
                value = self.client.get_secret_value(SecretId=key).get("SecretString")
            else:
                value = self.client.get_parameter(Name=key, WithDecryption=True)["Parameter"]["Value"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in NOT_FOUND:
                return None  # not configured: the caller decides what a missing secret means
            raise SecretUnavailable(f"could not read {key} from {self.store}") from None
        except BotoCoreError:
            raise SecretUnavailable(f"could not read {key} from {self.store}") from None
        return str(value) if value else None


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
