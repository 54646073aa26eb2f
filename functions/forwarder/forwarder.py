"""The forward queue ──▶ senders: POSTs each status callback, signed, and retries it (see dlrwatch.forwarder)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from dlrwatch.config import ConfigError, Settings
from dlrwatch.credentials import secret
from dlrwatch.domain.times import utcnow
from dlrwatch.forwarder import Forwarder
from dlrwatch.forwarding import system_resolver
from dlrwatch.observability import logger, metrics
from dlrwatch.store import Store

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Bounded like the rest of a 20 s invocation whose callbacks have 5 s each; standard retries for throttling.
SQS_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3})

settings = Settings.from_env()
DEAD_LETTER_QUEUE_URL = os.environ.get("FORWARD_DEAD_LETTER_QUEUE_URL", "").strip()
if not DEAD_LETTER_QUEUE_URL:
    raise ConfigError("FORWARD_DEAD_LETTER_QUEUE_URL is not set")
_sqs: Any = None
_sqs_lock = threading.Lock()


def sqs() -> Any:
    """The SQS client, made on first need (a batch whose callbacks all get through never uses it)."""
    global _sqs
    with _sqs_lock:
        if _sqs is None:
            _sqs = boto3.client("sqs", config=SQS_CONFIG)
        return _sqs


forwarder = Forwarder(
    Store(settings.table_name, retention=settings.retention, open_retention=settings.open_retention),
    settings,
    sqs=sqs,
    dead_letter_queue_url=DEAD_LETTER_QUEUE_URL,
    signing_secret=lambda: secret("FORWARD_SIGNING_KEY"),
    resolve=system_resolver(),
    clock=utcnow,
)


# Callbacks carry recipients' phone numbers and senders' URLs: the event is never logged.
@logger.inject_lambda_context(log_event=False, clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    return forwarder.handle(event)
