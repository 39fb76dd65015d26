"""Retry policies: which errors are retried, how many times, and how long the waits are."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from viewzenix.brokers.base import BrokerUnavailable
from viewzenix.jobs.retry import SIGNAL_RETRY, Backoff, WorkerDied, retries


def job(attempts: int) -> SimpleNamespace:
    return SimpleNamespace(attempts=attempts)


def test_a_broker_outage_is_retried_until_the_last_attempt():
    policy = Backoff(max_attempts=3, base_seconds=1, cap_seconds=10)

    assert policy.will_retry(BrokerUnavailable("down"), attempts=0)
    assert policy.will_retry(BrokerUnavailable("down"), attempts=1)
    assert not policy.will_retry(BrokerUnavailable("down"), attempts=2)  # run 3 of 3 failed


def test_a_bug_or_a_refusal_is_not_retried():
    assert not SIGNAL_RETRY.will_retry(ValueError("bad plan"), attempts=0)
    assert not SIGNAL_RETRY.will_retry(KeyError("x"), attempts=0)


def test_a_dead_worker_and_a_database_outage_are_retried():
    import psycopg

    assert SIGNAL_RETRY.will_retry(WorkerDied(), attempts=0)
    assert SIGNAL_RETRY.will_retry(psycopg.OperationalError("server closed the connection"), attempts=0)


@pytest.mark.parametrize(
    ("attempts", "low", "high"), [(0, 1, 2), (1, 2, 4), (2, 4, 8), (6, 50, 100), (9, 50, 100)]
)
def test_waits_double_with_equal_jitter_up_to_the_cap(attempts, low, high):
    lowest = Backoff(max_attempts=20, base_seconds=2, cap_seconds=100, uniform=lambda a, b: a)
    highest = Backoff(max_attempts=20, base_seconds=2, cap_seconds=100, uniform=lambda a, b: b)

    assert (lowest.wait_seconds(attempts), highest.wait_seconds(attempts)) == (low, high)


def test_the_retry_decision_schedules_the_jittered_wait():
    policy = Backoff(max_attempts=5, base_seconds=4, cap_seconds=60, uniform=lambda a, b: b)

    decision = policy.get_retry_decision(exception=BrokerUnavailable("down"), job=job(1))
    refused = policy.get_retry_decision(exception=ValueError("bug"), job=job(1))

    assert decision is not None and decision.retry_at is not None
    assert refused is None


def test_a_task_without_a_retry_strategy_is_never_retried():
    assert not retries(None, BrokerUnavailable("down"), job(0))
    assert retries(SIGNAL_RETRY, BrokerUnavailable("down"), job(0))
