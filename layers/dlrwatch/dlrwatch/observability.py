"""Logger and metrics, made once. Metric names are part of the operations contract (docs/operations.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

# The service and namespace are part of the operations contract (alarms, dashboard): the environment may
# override them, but they never fall back to Powertools' "service_undefined".
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "dlrwatch"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "dlrwatch"

# Powertools' own switch (POWERTOOLS_METRICS_DISABLED), honoured by single metrics too; the local stack sets it.
DISABLED = os.environ.get("POWERTOOLS_METRICS_DISABLED", "").lower() in ("1", "true")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def loggable_id(provider: str, message_id: str) -> str:
    """A message id as a log line may show it. A BulkSMS EAPI id is ``{batch_id}:{msisdn}``: the phone number in
    it is personal data and never logged, only its last two digits (enough to tell a batch's messages apart)."""
    if provider == "bulksms-eapi" and ":" in message_id:
        batch, _, msisdn = message_id.partition(":")
        return f"{batch}:***{msisdn[-2:]}"
    return message_id


def loggable_item(item: str) -> str:
    """An item key (``{provider}#{message_id}``) as a log line may show it (see ``loggable_id``)."""
    provider, sep, message_id = item.partition("#")
    return f"{provider}{sep}{loggable_id(provider, message_id)}" if sep else item


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """One count, with its own dimensions (e.g. provider and status) beside the function's ``service``."""
    measure(name, value, MetricUnit.Count, **dimensions)


def count_and_log(name: str, value: float, message: str, properties: Mapping[str, Any], **dimensions: str) -> None:
    """A count and what it counted, in one line: the metric's EMF record carries ``properties`` (searchable in
    CloudWatch Logs Insights like any log line's keys) and the request's correlation id. With metrics disabled
    (locally), the same line is an INFO log line named ``message``."""
    if DISABLED:
        logger.info(message, extra={**dimensions, name: value, **properties})
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=NAMESPACE) as metric:
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim)
        metric.add_metadata("message", message)
        if (correlation_id := logger.get_correlation_id()) is not None:
            metric.add_metadata("correlation_id", correlation_id)
        for key, value_ in properties.items():
            metric.add_metadata(key, value_)


def gauge(name: str, value: float, unit: MetricUnit = MetricUnit.Seconds, **dimensions: str) -> None:
    measure(name, value, unit, **dimensions)


def measure(name: str, value: float, unit: MetricUnit, **dimensions: str) -> None:
    if DISABLED:
        return
    if not dimensions:
        metrics.add_metric(name=name, unit=unit, value=value)
        return
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim)
