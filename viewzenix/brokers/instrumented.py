"""Broker call metrics: every call's duration and errors, by broker and call (Prometheus).

``instrumented(broker, name)`` wraps any adapter of the broker port: each public method call is
timed into ``viewzenix_broker_call_duration_seconds{broker, call}`` and an exception counted in
``viewzenix_broker_call_errors_total{broker, call, error}`` (the exception's class name) before it
is re-raised unchanged. Optional capabilities (``PriceDriven``, ``NativeBrackets``,
``SessionDriven``) are seen through the wrapper exactly as on the adapter: an attribute the
adapter lacks is missing on the wrapper too. Broker calls run in the worker, so these metrics
live in the worker process: it serves them on ``WORKER_METRICS_PORT`` (``viewzenix.worker``).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from prometheus_client import Counter, Histogram

BROKER_CALL_SECONDS = Histogram(
    "viewzenix_broker_call_duration_seconds",
    "Time of one broker call (seconds), by broker and call.",
    ["broker", "call"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BROKER_CALL_ERRORS = Counter(
    "viewzenix_broker_call_errors",
    "Broker calls that raised, by broker, call and exception class.",
    ["broker", "call", "error"],
)


class _Instrumented:
    def __init__(self, broker: Any, name: str) -> None:
        self._broker = broker
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._broker, attr)  # AttributeError: the capability is absent here too
        if attr.startswith("_") or not callable(value):
            return value
        timer = BROKER_CALL_SECONDS.labels(self._name, attr)

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return value(*args, **kwargs)
            except Exception as error:
                BROKER_CALL_ERRORS.labels(self._name, attr, type(error).__name__).inc()
                raise
            finally:
                timer.observe(time.perf_counter() - started)

        return call


def instrumented(broker: Any, name: str) -> Any:
    """Return ``broker`` with each call timed and its errors counted under ``name`` (see module doc)."""
    return _Instrumented(broker, name)
