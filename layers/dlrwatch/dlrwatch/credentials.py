"""Secrets: from the environment locally; on AWS from SSM Parameter Store or Secrets Manager, cached.

``SECRETS_PATH`` names the folder (``/dlrwatch/prod``) and ``SECRETS_STORE`` the service (``ssm``, the default:
SecureString parameters such as ``/dlrwatch/prod/callback-token``; or ``secretsmanager``: secrets of the same
names). Values are cached for five minutes, so a rotated secret is in use within that time.
A value never appears in a log line or an error message.
"""

from __future__ import annotations

import os

from aws_lambda_powertools.utilities import parameters

CACHE_SECONDS = 300


class SecretUnavailable(RuntimeError):
    """The secret store did not answer: the request must be retried later (5xx), never refused."""


def secret(name: str) -> str | None:
    """The secret ``name`` (an environment variable name such as ``CALLBACK_TOKEN``), or None if not set."""
    value = os.environ.get(name)
    if value:
        return value
    path = os.environ.get("SECRETS_PATH", "").rstrip("/")
    if not path:
        return None
    store = os.environ.get("SECRETS_STORE", "ssm")
    key = f"{path}/{name.lower().replace('_', '-')}"
    try:
        if store == "secretsmanager":
            found = parameters.get_secret(key, max_age=CACHE_SECONDS)
        else:
            found = parameters.get_parameter(key, decrypt=True, max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        if "NotFound" in repr(exc.__cause__) or "NotFound" in str(exc):
            return None  # not configured: the caller decides what a missing secret means
        raise SecretUnavailable(f"could not read {key} from {store}") from None
    return str(found) if found else None
