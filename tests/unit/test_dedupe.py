"""Specification of ``dedupe_key``: which accepted alerts are the same alert."""

from __future__ import annotations

import hashlib
import json

from viewzenix.domain.dedupe import dedupe_key
from viewzenix.domain.parsing import parse_alert, redact_raw_body


def key(**body) -> str:
    raw = json.dumps({"ticker": "AAPL", "action": "buy", **body}).encode()
    return dedupe_key(parse_alert(raw), redact_raw_body(raw))


def test_without_an_id_the_key_is_the_hash_of_the_stored_body():
    raw = b'{"ticker": "AAPL", "action": "buy", "price": 1}'
    assert dedupe_key(parse_alert(raw), redact_raw_body(raw)) == "body:" + hashlib.sha256(raw).hexdigest()
    assert key(price=1) != key(price=2)


def test_a_passphrase_is_hashed_masked_never_in_clear():
    raw = b'{"ticker": "AAPL", "action": "buy", "passphrase": "hunter2"}'
    assert key(passphrase="hunter2") == key(passphrase="other")
    assert key(passphrase="hunter2") != "body:" + hashlib.sha256(raw).hexdigest()


def test_an_id_makes_bodies_with_other_fields_the_same_alert():
    assert key(id="a-1", price=1, time="2025-01-01T00:00:00Z") == key(id="a-1", price=2)
    assert key(id="a-1").startswith("id:")
    assert key(id=7) == key(id="7")


def test_an_id_is_scoped_by_ticker_and_action():
    assert key(id="Long") != key(id="Long", ticker="MSFT")
    assert key(id="Exit", action="sell") != key(id="Exit", action="buy")


def test_an_empty_id_falls_back_to_the_body():
    assert key(id="", price=1).startswith("body:")
    assert key(id=None, price=1) != key(id=None, price=2)


def test_the_strategy_order_id_is_an_order_name_not_an_alert_id():
    def strategy(price: str) -> str:
        raw = json.dumps(
            {"ticker": "AAPL", "strategy": {"order_action": "buy", "order_price": price, "order_id": "Long"}}
        ).encode()
        parsed = parse_alert(raw)
        assert parsed.signal.alert_id == "Long"
        return dedupe_key(parsed, redact_raw_body(raw))

    assert strategy("1.5").startswith("body:")
    assert strategy("1.5") != strategy("2.5")


def test_a_key_is_short_however_long_the_id():
    assert len(key(id="x" * 50_000)) == len(key(id="x")) == len("id:") + 64
