"""Logger and metrics, made once. Metric names are part of the operations contract (docs/operations.md)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

logger = Logger()
metrics = Metrics()


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """One metric point with its own dimensions (e.g. provider and status), beside the function's metrics."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace) as metric:
        for key, dim in dimensions.items():
            metric.add_dimension(name=key, value=dim)


def gauge(name: str, value: float, unit: MetricUnit = MetricUnit.Seconds) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)
