"""Every broker call is timed and its errors counted, without changing what the adapter is."""

from __future__ import annotations

import pytest
from fake_broker import FakeBroker
from prometheus_client import REGISTRY

from viewzenix.brokers.base import Broker, BrokerUnavailable, PriceDriven
from viewzenix.brokers.instrumented import instrumented


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_call_is_timed_and_its_answer_unchanged():
    fake = FakeBroker()
    broker = instrumented(fake, "unit-fake")
    before = sample("viewzenix_broker_call_duration_seconds_count", broker="unit-fake", call="get_account")

    account = broker.get_account()

    assert account == fake.get_account()
    after = sample("viewzenix_broker_call_duration_seconds_count", broker="unit-fake", call="get_account")
    assert after == before + 1


def test_an_error_is_counted_by_class_and_re_raised():
    fake = FakeBroker()
    fake.down = True
    broker = instrumented(fake, "unit-down")

    with pytest.raises(BrokerUnavailable):
        broker.get_account()

    assert (
        sample(
            "viewzenix_broker_call_errors_total",
            broker="unit-down",
            call="get_account",
            error="BrokerUnavailable",
        )
        == 1
    )


def test_capabilities_are_seen_through_the_wrapper_as_on_the_adapter():
    broker = instrumented(FakeBroker(), "unit-caps")

    assert isinstance(broker, Broker)
    assert isinstance(broker, PriceDriven) == isinstance(FakeBroker(), PriceDriven)
    with pytest.raises(AttributeError):
        _ = broker.no_such_capability


def test_the_worker_serves_its_metrics_on_its_port():
    import socket
    import urllib.request

    from viewzenix.worker import serve_metrics

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instrumented(FakeBroker(), "unit-served").get_account()

    serve_metrics(port)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'viewzenix_broker_call_duration_seconds_count{broker="unit-served",call="get_account"} 1.0' in text
