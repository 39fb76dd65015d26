"""Every published alert body in the corpus gets a deliberate answer from ``parse_alert``.

``tests/fixtures/tradingview_alerts.jsonl`` is a copy of ``shared/corpus/tradingview_alerts.jsonl``:
one JSON object a line with ``source``, ``content_type`` and ``body``, including the invalid
examples vendors published as mistakes.
"""

# The corpus's fake passphrases are test data.

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from viewzenix.domain.model import Action, Sentiment
from viewzenix.domain.parsing import AlertRejected, parse_alert

FIXTURE = Path(__file__).parents[1] / "fixtures" / "tradingview_alerts.jsonl"
CORPUS: list[dict[str, str]] = [
    json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()
]

# index → ("accepted", ticker, action) or ("rejected", code)
EXPECTED: dict[int, tuple[str, ...]] = {
    0: ("accepted", "AMD", "buy"),
    1: ("rejected", "unfilled_placeholder"),  # TradersPost strategy template, as published
    2: ("rejected", "unfilled_placeholder"),  # indicator template: "{{ticker}}"
    3: ("rejected", "unfilled_placeholder"),  # indicator template: "{{ticker}}"
    4: ("accepted", "SPY", "add"),
    5: ("accepted", "SPY", "cancel"),
    6: ("accepted", "MNQ", "buy"),
    7: ("accepted", "MNQ", "buy"),
    8: ("accepted", "SPY", "buy"),
    9: ("accepted", "SPY", "buy"),
    10: ("accepted", "QQQ", "buy"),
    11: ("accepted", "SPY", "buy"),
    12: ("accepted", "SPY 240510C68", "buy"),
    13: ("accepted", "SPY", "buy"),
    14: ("accepted", "SPY", "exit"),
    15: ("rejected", "trailing_comma"),
    16: ("rejected", "empty_ticker"),
    17: ("accepted", "NQH2022", "buy"),
    18: ("rejected", "malformed_json"),  # missing comma after the stopLoss object
    19: ("accepted", "MNQ", "buy"),
    20: ("rejected", "unsupported_format"),
    21: ("rejected", "unsupported_format"),
    22: ("rejected", "unsupported_format"),
    23: ("rejected", "unfilled_placeholder"),  # unquoted {{open}} makes the template invalid JSON
    24: ("accepted", "DOGEUSDT", "buy"),
    25: ("rejected", "unsupported_format"),
    26: ("rejected", "unsupported_format"),
    27: ("rejected", "unsupported_format"),
    28: ("rejected", "unsupported_format"),
    29: ("rejected", "unsupported_format"),
    30: ("rejected", "unsupported_format"),
    31: ("rejected", "unsupported_format"),
    32: ("rejected", "unsupported_format"),
    33: ("rejected", "unsupported_format"),
    34: ("rejected", "unsupported_format"),
    35: ("rejected", "batch_not_supported"),
    36: ("rejected", "unsupported_format"),
    37: ("rejected", "unsupported_format"),
    38: ("rejected", "json_comments"),  # the first mistake, before its unquoted {{plot(...)}}
    39: ("rejected", "not_a_signal"),  # TradingView's own plain-text example
    40: ("rejected", "unsupported_format"),
    41: ("rejected", "unsupported_format"),
    42: ("rejected", "unsupported_format"),
    43: ("rejected", "unsupported_format"),
}

DETECTED_FORMAT = {
    20: "tradingview-webhooks-bot",
    21: "tradingview-webhooks-bot",
    22: "fabston-webhook-bot",
    25: "3commas",
    26: "pineconnector",
    27: "pineconnector",
    28: "pineconnector",
    29: "pineconnector",
    30: "alertatron",
    31: "alertatron",
    32: "octobot",
    33: "tradingview-alerts-processor",
    34: "tradingview-alerts-processor",
    35: "tradingview-alerts-processor",  # the batch's first item
    36: "webhook-trader",
    37: "bybit-webhook-bot",
    40: "metaapi",
    41: "altrady",
    42: "coinrule",
    43: "tradingwizard",
}

# index → (line, column) the refusal must point at
POSITION = {15: (3, 20), 18: (8, 5), 23: (8, 17), 38: (2, 30)}


def _short(source: str) -> str:
    """A readable test id part: the repository, or the host of a URL."""
    text = re.sub(r"^https?://(www\.)?", "", source)
    if text.startswith("github.com/"):
        return "/".join(text.split("/")[1:3])
    return re.split(r"[\s:@(/]" if source.startswith("http") else r"[\s:@(]", text)[0]


IDS = [f"{index:02d}-{_short(entry['source'])}" for index, entry in enumerate(CORPUS)]


def _raw(index: int) -> bytes:
    return CORPUS[index]["body"].encode("utf-8")


def test_the_corpus_has_every_line_accounted_for() -> None:
    assert len(CORPUS) == 44
    assert set(EXPECTED) == set(range(len(CORPUS)))


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=IDS)
def test_every_body_gets_its_expected_answer(index: int) -> None:
    expected = EXPECTED[index]
    entry = CORPUS[index]
    if expected[0] == "accepted":
        parsed = parse_alert(_raw(index), entry["content_type"])
        assert (parsed.signal.ticker, parsed.signal.action.value) == expected[1:]
        return
    with pytest.raises(AlertRejected) as info:
        parse_alert(_raw(index), entry["content_type"])
    error = info.value
    assert error.code == expected[1]
    assert error.message and error.message != type(error).__doc__
    assert error.details.get("detected_format") == DETECTED_FORMAT.get(index)
    if index in POSITION:
        assert (error.details["line"], error.details["column"]) == POSITION[index]
        assert f"line {POSITION[index][0]} column {POSITION[index][1]}" in error.message


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=IDS)
def test_no_body_raises_anything_but_alert_rejected(index: int) -> None:
    for content_type in (CORPUS[index]["content_type"], "application/json", "text/plain", None):
        try:
            parse_alert(_raw(index), content_type)
        except AlertRejected:
            pass


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=IDS)
def test_damaged_bodies_are_refused_not_crashed_on(index: int) -> None:
    body = CORPUS[index]["body"]
    rng = random.Random(index)
    damaged = [body[:cut] for cut in range(len(body))]
    for _ in range(100):
        at = rng.randrange(len(body))
        damaged.append(body[:at] + body[at + 1 :])
        damaged.append(body[:at] + rng.choice('{}[]",:“”/\\\x00\n{{') + body[at:])
    for text in damaged:
        try:
            parse_alert(text.encode("utf-8"))
        except AlertRejected as error:
            assert error.code and error.message


# --- the published templates, filled in as TradingView would fill them --------------------


def _fill(body: str, values: dict[str, str]) -> bytes:
    for placeholder, value in values.items():
        body = body.replace("{{" + placeholder + "}}", value)
    assert "{{" not in body, body
    return body.encode("utf-8")


def test_accepts_the_filled_traderspost_strategy_template_as_a_reversal() -> None:
    raw = _fill(
        CORPUS[1]["body"],
        {
            "ticker": "AAPL",
            "strategy.order.action": "sell",
            "strategy.market_position": "short",
            "strategy.order.contracts": "20",
            "close": "101.5",
            "timenow": "2024-01-02T15:30:00Z",
            "interval": "5",
        },
    )
    parsed = parse_alert(raw, "application/json")
    signal = parsed.signal
    assert signal.ticker == "AAPL"
    assert signal.action is Action.SELL
    assert signal.sentiment is Sentiment.SHORT
    assert signal.quantity == Decimal("20")
    assert signal.signal_price == Decimal("101.5")
    assert str(signal.signal_price) == "101.5"
    assert signal.signal_time == datetime(2024, 1, 2, 15, 30, tzinfo=UTC)
    assert signal.interval == "5"
    assert signal.source_format == "traderspost"
    assert signal.target_position is None
    assert signal.extras == {}
    assert parsed.passphrase is None


def test_accepts_the_filled_strategy_template_closing_to_flat() -> None:
    raw = _fill(
        CORPUS[1]["body"],
        {
            "ticker": "MNQ1!",
            "strategy.order.action": "buy",
            "strategy.market_position": "flat",
            "strategy.order.contracts": "3",
            "close": "18500.25",
            "timenow": "2025-09-09T14:07:08Z",
            "interval": "1D",
        },
    )
    signal = parse_alert(raw).signal
    assert (signal.ticker, signal.action, signal.sentiment) == ("MNQ1!", Action.BUY, Sentiment.FLAT)
    assert signal.interval == "1D"


@pytest.mark.parametrize(
    ("index", "action", "sentiment"), [(2, Action.BUY, None), (3, Action.SELL, Sentiment.FLAT)]
)
def test_accepts_the_filled_indicator_templates(
    index: int, action: Action, sentiment: Sentiment | None
) -> None:
    signal = parse_alert(_fill(CORPUS[index]["body"], {"ticker": "sq", "close": "71.03"})).signal
    assert (signal.ticker, signal.action, signal.sentiment) == ("SQ", action, sentiment)
    assert signal.signal_price == Decimal("71.03")


def test_accepts_the_filled_alpaca_passphrase_template() -> None:
    raw = _fill(
        CORPUS[23]["body"],
        {
            "timenow": "2024-01-02T15:30:05Z",
            "exchange": "NASDAQ",
            "ticker": "AAPL",
            "time": "2024-01-02T15:30:00Z",
            "open": "185.1",
            "high": "186",
            "low": "184.9",
            "close": "185.64",
            "volume": "120345",
            "strategy.position_size": "-5",
            "strategy.order.action": "sell",
            "strategy.order.contracts": "15",
            "strategy.order.price": "185.62",
            "strategy.order.id": "Short entry",
            "strategy.market_position": "short",
            "strategy.market_position_size": "5",
            "strategy.prev_market_position": "long",
            "strategy.prev_market_position_size": "10",
        },
    )
    parsed = parse_alert(raw)
    signal = parsed.signal
    assert signal.source_format == "strategy"
    assert (signal.ticker, signal.exchange) == ("AAPL", "NASDAQ")
    assert (signal.action, signal.sentiment) == (Action.SELL, Sentiment.SHORT)
    assert signal.quantity == Decimal("15")
    assert signal.signal_price == Decimal("185.62")
    assert signal.target_position == Decimal("-5")
    assert signal.alert_id == "Short entry"
    assert signal.signal_time == datetime(2024, 1, 2, 15, 30, 5, tzinfo=UTC)
    assert signal.extras["bar"]["close"] == Decimal("185.64")
    assert signal.extras["strategy"] == {
        "prev_market_position": "long",
        "prev_market_position_size": 10,
    }
    assert "passphrase" not in signal.extras
    assert parsed.passphrase == "somelongstring123"
    assert parsed.payload["passphrase"] == "***"


def test_accepts_line_24_the_filled_binance_payload() -> None:
    parsed = parse_alert(_raw(24), "application/json")
    signal = parsed.signal
    assert signal.source_format == "strategy"
    assert (signal.ticker, signal.exchange) == ("DOGEUSDT", "BINANCE")
    assert (signal.action, signal.sentiment) == (Action.BUY, Sentiment.LONG)
    assert signal.quantity == Decimal("10000")
    assert signal.signal_price == Decimal("0.0027451")
    assert signal.target_position == Decimal("10000")
    assert signal.alert_id == "doge door"
    assert signal.signal_time == datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC)
    assert signal.extras["bar"]["open"] == Decimal("0.002748")
    assert parsed.passphrase == "abcdefgh"
    assert parsed.payload["passphrase"] == "***"
    assert parsed.payload["strategy"]["order_price"] == 0.0027451


def test_accepts_the_lth_elm_template_once_filled_and_its_comments_removed() -> None:
    body = re.sub(r"//[^\n]*", "", CORPUS[38]["body"])
    for plot in ("Short SL", "Short TP", "Long SL", "Long TP"):
        body = body.replace('{{plot("' + plot + '")}}', "1")
    raw = _fill(
        body,
        {
            "ticker": "BTCUSD",
            "exchange": "BYBIT",
            "timenow": "2024-01-02T15:30:00Z",
            "strategy.order.action": "buy",
            "strategy.order.price": "42000.5",
            "strategy.order.alert_message": "entry",
        },
    )
    parsed = parse_alert(raw)
    assert (parsed.signal.ticker, parsed.signal.action) == ("BTCUSD", Action.BUY)
    assert parsed.signal.signal_price == Decimal("42000.5")
    assert parsed.signal.extras == {
        "message": "entry",
        "short SL": 1,
        "short TP": 1,
        "long SL": 1,
        "long TP": 1,
        "subaccount": "Testing",
    }
    assert parsed.passphrase == "abcdefg"


def test_the_published_template_names_its_first_unfilled_field() -> None:
    with pytest.raises(AlertRejected) as info:
        parse_alert(_raw(1))
    assert info.value.details == {"field": "ticker", "placeholder": "{{ticker}}"}
