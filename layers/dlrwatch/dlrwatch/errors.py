"""Errors the handlers turn into HTTP answers, in one place (see dlrwatch.http)."""

from __future__ import annotations


class BadInput(ValueError):
    """Input that can never succeed: answered 4xx, nothing stored. The message names the problem."""

    status_code = 400


class PayloadTooLarge(BadInput):
    status_code = 413


class Unauthorized(PermissionError):
    """A missing credential (401) or a wrong one (403). The message never repeats a secret."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.status_code = 401 if missing else 403


class StorageUnavailable(RuntimeError):
    """The store could not make a report durable: answered 5xx so the provider retries."""


class SecretUnavailable(RuntimeError):
    """The secret store did not answer: the request must be retried later (5xx), never refused."""
