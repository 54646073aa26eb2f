"""What ends a command early, by exit code: a usage error (2), or a refusal or failure the user must see (1)."""

from __future__ import annotations


class UsageError(Exception):
    """The arguments cannot make a request (exit code 2, with the usage line)."""


class CommandError(Exception):
    """The command could not be done: no target or credentials, an AWS call refused, something left behind
    (exit code 1, the message on stderr)."""
