"""Specification of ``parse_alert``: what becomes a signal, and how everything else is refused."""

# Curly quotes and fake passphrases are this file's test data.

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from viewzenix.domain.model import (
    Action,
    OrderType,
    QuantityType,
    Sentiment,
    Signal,
    StopLoss,
    TakeProfit,
    TimeInForce,
)
from viewzenix.domain.parsing import (
    MAX_BODY_BYTES,
    AlertRejected,
    BatchNotSupported,
    BodyTooLarge,
    DuplicateKey,
    EmptyBody,
    EmptyTicker,
    InvalidEncoding,
    InvalidField,
    JsonComments,
    MalformedJson,
    MissingAction,
    MissingTicker,
    NotASignal,
    ParsedAlert,
    SmartQuotes,
    TrailingComma,
    UnfilledPlaceholder,
    UnknownAction,
    UnsupportedFormat,
    parse_alert,
    redact_raw_body,
    signal_to_dict,
)


def parse(body: Any, content_type: str | None = None) -> ParsedAlert:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    return parse_alert(body, content_type)


def signal(**fields: Any) -> Signal:
    return parse({"ticker": "AAPL", "action": "buy", **fields}).signal


def rejection(body: Any) -> AlertRejected:
    with pytest.raises(AlertRejected) as info:
        parse(body)
    return info.value


def field_rejection(**fields: Any) -> AlertRejected:
    return rejection({"ticker": "AAPL", "action": "buy", **fields})


# --- the body as bytes ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"   \r\n\t ", b"\xef\xbb\xbf"])
def test_rejects_an_empty_body(raw: bytes) -> None:
    error = rejection(raw)
    assert isinstance(error, EmptyBody)
    assert error.code == "empty_body"
    assert error.message == "The alert body is empty."


def test_rejects_a_body_larger_than_64_kib() -> None:
    body = json.dumps({"ticker": "AAPL", "action": "buy"}).ljust(MAX_BODY_BYTES + 1)
    error = rejection(body)
    assert isinstance(error, BodyTooLarge)
    assert error.details == {"size": MAX_BODY_BYTES + 1, "limit": 65536}


def test_accepts_a_body_of_exactly_64_kib() -> None:
    body = json.dumps({"ticker": "AAPL", "action": "buy"}).ljust(MAX_BODY_BYTES)
    assert parse(body).signal.ticker == "AAPL"


def test_rejects_a_body_that_is_not_utf8_naming_the_byte_and_offset() -> None:
    error = rejection(b'{"ticker": "AAPL",\n "action": "b\xffy"}')
    assert isinstance(error, InvalidEncoding)
    assert error.code == "invalid_encoding"
    assert error.details == {"offset": 32, "line": 2, "byte": "0xff"}
    assert "0xff at offset 32 (line 2)" in error.message


def test_rejects_latin1_text_as_not_utf8() -> None:
    assert rejection('{"ticker": "ÄPL", "action": "buy"}'.encode("latin-1")).code == ("invalid_encoding")


def test_accepts_a_utf8_byte_order_mark() -> None:
    assert parse(b'\xef\xbb\xbf{"ticker": "AAPL", "action": "buy"}').signal.ticker == "AAPL"


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None, "x/y"])
def test_never_trusts_the_content_type(content_type: str | None) -> None:
    # TradingView: application/json only when the message is valid JSON, else text/plain.
    assert parse('{"ticker": "AAPL", "action": "buy"}', content_type).signal.ticker == "AAPL"
    with pytest.raises(TrailingComma):
        parse('{"ticker": "AAPL", "action": "buy",}', content_type)


# --- almost-JSON mistakes ---------------------------------------------------------------------


def test_rejects_curly_quotes_with_line_and_column() -> None:
    # TradersPost's published example of an invalid signal.
    error = rejection("{\n    “ticker”: “TSLA”,\n    “action”: “buy”\n}")
    assert isinstance(error, SmartQuotes)
    assert isinstance(error, MalformedJson)
    assert error.code == "smart_quotes"
    assert error.details == {"line": 2, "column": 5, "character": "“"}
    assert "line 2 column 5" in error.message


def test_rejects_a_curly_quote_closing_a_straight_string() -> None:
    error = rejection('{"ticker": "AAPL”, "action": "buy"}')
    assert error.code == "smart_quotes"
    assert (error.details["line"], error.details["column"]) == (1, 17)


def test_rejects_curly_single_quotes() -> None:
    assert rejection("{‘ticker’: ‘AAPL’, ‘action’: ‘buy’}").code == "smart_quotes"


def test_accepts_curly_quotes_inside_string_values() -> None:
    assert signal(comment="he said “hold” — it’s fine").comment == "he said “hold” — it’s fine"


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        ('{\n  "ticker": "AAPL", // the symbol\n  "action": "buy"\n}', 2, 21),
        ('{\n  /* entry */ "ticker": "AAPL",\n  "action": "buy"\n}', 2, 3),
        ('// alert\n{"ticker": "AAPL", "action": "buy"}', 1, 1),
    ],
)
def test_rejects_comments_with_line_and_column(body: str, line: int, column: int) -> None:
    error = rejection(body)
    assert isinstance(error, JsonComments)
    assert error.code == "json_comments"
    assert error.details == {"line": line, "column": column}


def test_accepts_slashes_inside_strings() -> None:
    assert signal(ticker="BTC/USD", comment="see https://example.com/x").ticker == "BTC/USD"


@pytest.mark.parametrize(
    ("body", "line", "column"),
    [
        ('{\n    "ticker": "TSLA",\n    "action": "buy",\n}', 3, 20),
        ('{"ticker": "TSLA", "action": "buy", "extras": {"tags": ["a", "b",]}}', 1, 65),
        ('{"ticker": "TSLA", "action": "buy" ,\n\n   }', 1, 36),
    ],
)
def test_rejects_a_trailing_comma_with_line_and_column(body: str, line: int, column: int) -> None:
    error = rejection(body)
    assert isinstance(error, TrailingComma)
    assert error.code == "trailing_comma"
    assert error.details == {"line": line, "column": column}
    assert f"line {line} column {column}" in error.message


def test_rejects_a_missing_comma_with_line_column_and_hint() -> None:
    error = rejection('{\n  "ticker": "AAPL"\n  "action": "buy"\n}')
    assert type(error) is MalformedJson
    assert error.code == "malformed_json"
    assert error.details["line"] == 3
    assert error.details["column"] == 3
    assert error.details["reason"] == "Expecting ',' delimiter"
    assert error.details["hint"] == "a comma is probably missing after line 2 column 18"
    assert "line 3 column 3" in error.message


def test_rejects_single_quotes_with_a_hint() -> None:
    error = rejection("{'ticker': 'AAPL', 'action': 'buy'}")
    assert error.code == "malformed_json"
    assert (error.details["line"], error.details["column"]) == (1, 2)
    assert "double quotes" in error.details["hint"]


def test_rejects_unquoted_field_names() -> None:
    error = rejection("{ticker: 'AAPL'}")
    assert error.code == "malformed_json"
    assert error.details["hint"] == "field names need double quotes"


def test_rejects_a_truncated_body() -> None:
    error = rejection('{"ticker": "AAPL", "action": "buy"')
    assert error.code == "malformed_json"
    assert "ends before the JSON is complete" in error.message


def test_rejects_an_unterminated_string() -> None:
    error = rejection('{"ticker": "AAPL", "action": "bu')
    assert error.message == (
        "The alert body is not valid JSON: Unterminated string starting at line 1 column 30; "
        "a closing double quote is missing."
    )


def test_rejects_two_json_objects_in_one_body() -> None:
    error = rejection('{"ticker": "AAPL", "action": "buy"}\n{"ticker": "MSFT", "action": "buy"}')
    assert error.code == "malformed_json"
    assert error.details["line"] == 2
    assert error.details["hint"] == "send exactly one JSON object per alert"


def test_rejects_a_raw_line_break_inside_a_string() -> None:
    error = rejection('{"ticker": "AAPL", "action": "buy", "comment": "a\nb"}')
    assert error.code == "malformed_json"
    assert "\\n" in error.details["hint"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_rejects_nan_and_infinity(constant: str) -> None:
    error = rejection('{"ticker": "AAPL", "action": "buy", "quantity": ' + constant + "}")
    assert error.code == "malformed_json"
    assert constant in error.message


def test_rejects_a_field_given_twice() -> None:
    error = rejection('{"ticker": "AAPL", "action": "buy", "action": "sell"}')
    assert isinstance(error, DuplicateKey)
    assert error.code == "duplicate_key"
    assert error.details == {"field": "action"}


def test_rejects_nesting_too_deep_for_the_decoder() -> None:
    assert rejection("[" * 60000).code == "malformed_json"


def test_rejects_nesting_deeper_than_32_levels() -> None:
    deep: dict[str, Any] = {}
    for _ in range(40):
        deep = {"x": deep}
    error = field_rejection(extras=deep)
    assert error.code == "invalid_field"
    assert error.details["field"].startswith("extras.x.x")


def test_rejects_a_number_too_long_to_read() -> None:
    body = '{"ticker": "AAPL", "action": "buy", "quantity": %s}' % ("9" * 5000)
    assert rejection(body).code == "malformed_json"


@pytest.mark.parametrize("text", ["AA\u0000PL", "\ud800"])
def test_rejects_text_postgres_cannot_store(text: str) -> None:
    error = field_rejection(comment=text)
    assert error.code == "invalid_field"
    assert error.details["field"] == "comment"


# --- unfilled TradingView placeholders --------------------------------------------------------


def test_rejects_an_unquoted_placeholder_with_line_column_and_field() -> None:
    error = rejection('{\n  "ticker": "AAPL",\n  "action": "buy",\n  "price": {{close}}\n}')
    assert isinstance(error, UnfilledPlaceholder)
    assert error.code == "unfilled_placeholder"
    assert error.details == {"placeholder": "{{close}}", "field": "price", "line": 4, "column": 12}


def test_rejects_a_placeholder_in_a_string_naming_the_field_and_placeholder() -> None:
    error = rejection({"ticker": "{{ticker}}", "action": "buy"})
    assert error.code == "unfilled_placeholder"
    assert error.details == {"field": "ticker", "placeholder": "{{ticker}}"}
    assert error.message.startswith("ticker is the unfilled TradingView placeholder {{ticker}}")


def test_rejects_a_placeholder_inside_a_longer_string() -> None:
    error = field_rejection(extras={"note": "entry at {{close}}"})
    assert error.details == {"field": "extras.note", "placeholder": "{{close}}"}
    assert "contains" in error.message


def test_rejects_a_misspelled_placeholder() -> None:
    error = field_rejection(price="{{closee}}")
    assert error.details == {"field": "price", "placeholder": "{{closee}}"}
    assert "spelling" in error.message


def test_explains_that_strategy_placeholders_need_a_strategy_alert() -> None:
    error = rejection({"ticker": "AAPL", "action": "{{strategy.order.action}}"})
    assert error.details["field"] == "action"
    assert "filled only by strategy alerts" in error.message


def test_rejects_a_body_that_is_only_an_unfilled_placeholder() -> None:
    error = rejection("{{strategy.order.alert_message}}")
    assert error.code == "unfilled_placeholder"
    assert error.details == {"placeholder": "{{strategy.order.alert_message}}", "field": None}


# --- what is not a signal at all ---------------------------------------------------------------


def test_rejects_a_json_array_as_a_batch() -> None:
    error = rejection([{"ticker": "AAPL", "action": "buy"}] * 3)
    assert isinstance(error, BatchNotSupported)
    assert error.code == "batch_not_supported"
    assert error.details == {"count": 3}
    assert "one alert per" in error.message


@pytest.mark.parametrize("body", ["42", '"buy AAPL"', "true", "null", "-1.5"])
def test_rejects_json_scalars_as_not_a_signal(body: str) -> None:
    error = rejection(body)
    assert isinstance(error, NotASignal)
    assert error.code == "not_a_signal"


@pytest.mark.parametrize(
    "body",
    [
        "NASDAQ:AAPL, price = 123",
        "{{exchange}}:{{ticker}}, price = {{close}}",
        "buy AAPL now",
        "Long entry signal!",
    ],
)
def test_rejects_plain_text_as_not_a_signal(body: str) -> None:
    error = rejection(body)
    assert error.code == "not_a_signal"
    assert '"ticker" and "action"' in error.message


@pytest.mark.parametrize(
    ("body", "detected"),
    [
        ('{"message_type": "bot", "bot_id": 1, "email_token": "x", "delay_seconds": 0}', "3commas"),
        ('{"secret": "x", "bot_uuid": "u", "action": "enter_long"}', "3commas"),
        ("60123456789,closelong,EURUSD", "pineconnector"),
        ("MyKeys(XBTUSD) { market(side=buy, amount=100); }", "alertatron"),
        ("EXCHANGE=binance;SYMBOL=BTCUSDT;SIGNAL=SELL", "octobot"),
        (
            '{"stub": "dev", "direction": "close", "symbol": "ETH-PERP"}',
            "tradingview-alerts-processor",
        ),
        ('{"key": "k", "message": "hi"}', "tradingview-webhooks-bot"),
        ('{"key": "k", "msg": "hi", "telegram": "1"}', "fabston-webhook-bot"),
        (
            '{"key": "k", "symbol": "ETHUSD", "side": "Buy", "order_mode": "Both"}',
            "bybit-webhook-bot",
        ),
        ('{"symbol": "EURUSD", "type": "POSITION_TYPE_SELL", "volume": 1}', "metaapi"),
        ('{"api_key": "a", "api_secret": "b", "action": "open", "symbol": "X"}', "altrady"),
        ('{"secret": "s", "side": "sell"}', "coinrule"),
        ('{"symbol": "AAPL", "action": "long", "api_token": "t"}', "tradingwizard"),
        ('{"exchange_id": "e", "symbol": "BTC/USDT", "side": "SELL"}', "webhook-trader"),
    ],
)
def test_rejects_other_tools_formats_naming_the_tool(body: str, detected: str) -> None:
    error = rejection(body)
    assert isinstance(error, UnsupportedFormat)
    assert error.code == "unsupported_format"
    assert error.details["detected_format"] == detected
    assert error.details["expected_fields"] == ["ticker", "action"]
    assert '"ticker" and "action"' in error.message


def test_rejects_an_unknown_object_saying_which_fields_it_uses() -> None:
    error = rejection({"symbol": "AAPL", "side": "buy"})
    assert error.code == "unsupported_format"
    assert error.details["detected_format"] is None
    assert '"symbol" where Viewzenix expects "ticker"' in error.message
    assert '"side" where Viewzenix expects "action"' in error.message


def test_rejects_an_empty_object_as_unsupported() -> None:
    assert rejection({}).code == "unsupported_format"


# --- TradersPost format: ticker and action -----------------------------------------------------


def test_accepts_the_minimal_signal() -> None:
    parsed = parse({"ticker": "AMD", "action": "buy"})
    assert parsed.signal == Signal(ticker="AMD", action=Action.BUY)
    assert parsed.signal.source_format == "traderspost"
    assert parsed.passphrase is None
    assert parsed.payload == {"ticker": "AMD", "action": "buy"}


@pytest.mark.parametrize(
    ("given", "action"),
    [
        ("buy", Action.BUY),
        ("SELL", Action.SELL),
        (" Exit ", Action.EXIT),
        ("cancel", Action.CANCEL),
        ("Add", Action.ADD),
    ],
)
def test_accepts_every_action_case_insensitively(given: str, action: Action) -> None:
    assert signal(action=given).action is action


@pytest.mark.parametrize("action", ["hold", "long", "close", 1, True])
def test_rejects_an_unknown_action_listing_the_allowed_ones(action: Any) -> None:
    error = field_rejection(action=action)
    assert isinstance(error, UnknownAction)
    assert error.code == "unknown_action"
    assert error.details["field"] == "action"
    assert error.details["value"] == action
    assert error.details["allowed"] == ["buy", "sell", "exit", "cancel", "add"]
    assert "buy, sell, exit, cancel, add" in error.message


@pytest.mark.parametrize("body", [{"ticker": "AAPL"}, {"ticker": "AAPL", "action": "  "}])
def test_rejects_a_missing_or_empty_action(body: dict[str, Any]) -> None:
    error = rejection(body)
    assert isinstance(error, MissingAction)
    assert error.code == "missing_action"


def test_missing_action_points_at_side() -> None:
    assert '"side"' in rejection({"ticker": "AAPL", "side": "buy"}).message


def test_rejects_a_missing_ticker_pointing_at_symbol() -> None:
    error = rejection({"symbol": "AAPL", "action": "buy"})
    assert isinstance(error, MissingTicker)
    assert error.code == "missing_ticker"
    assert '"symbol"' in error.message


@pytest.mark.parametrize("ticker", ["", "   ", "NASDAQ:"])
def test_rejects_an_empty_ticker(ticker: str) -> None:
    error = field_rejection(ticker=ticker)
    assert isinstance(error, EmptyTicker)
    assert error.code == "empty_ticker"


@pytest.mark.parametrize("ticker", [7203, ["AAPL"], True])
def test_rejects_a_ticker_that_is_not_a_string(ticker: Any) -> None:
    error = field_rejection(ticker=ticker)
    assert (error.code, error.details["field"]) == ("invalid_field", "ticker")


@pytest.mark.parametrize(
    ("given", "ticker"),
    [
        ("  aapl ", "AAPL"),
        ("spy 240510C68", "SPY 240510C68"),
        ("btc/usd", "BTC/USD"),
        ("ES1!", "ES1!"),
        ("BRK.B", "BRK.B"),
    ],
)
def test_strips_and_upper_cases_the_ticker_keeping_its_shape(given: str, ticker: str) -> None:
    assert signal(ticker=given).ticker == ticker


@pytest.mark.parametrize("given", ["NASDAQ:AAPL", "nasdaq:aapl", " NASDAQ : AAPL "])
def test_moves_an_exchange_prefix_to_the_exchange(given: str) -> None:
    parsed = signal(ticker=given)
    assert (parsed.ticker, parsed.exchange) == ("AAPL", "NASDAQ")


def test_accepts_an_exchange_prefix_that_matches_the_exchange_field() -> None:
    parsed = signal(ticker="BINANCE:BTCUSDT", exchange="binance")
    assert (parsed.ticker, parsed.exchange) == ("BTCUSDT", "BINANCE")


def test_rejects_an_exchange_prefix_that_contradicts_the_exchange_field() -> None:
    error = field_rejection(ticker="COINBASE:BTCUSD", exchange="BINANCE")
    assert (error.code, error.details["field"]) == ("invalid_field", "ticker")


# --- TradersPost format: the other fields -----------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sentiment"),
    [
        ("long", Sentiment.LONG),
        ("bullish", Sentiment.LONG),
        ("Short", Sentiment.SHORT),
        ("BEARISH", Sentiment.SHORT),
        ("flat", Sentiment.FLAT),
    ],
)
def test_maps_sentiments_and_their_aliases(given: str, sentiment: Sentiment) -> None:
    assert signal(sentiment=given).sentiment is sentiment


def test_rejects_an_unknown_sentiment_listing_the_allowed_ones() -> None:
    error = field_rejection(sentiment="neutral")
    assert error.details["allowed"] == ["long", "short", "flat", "bullish", "bearish"]


@pytest.mark.parametrize(
    ("body", "quantity"),
    [
        ('"quantity": 0.1', "0.1"),
        ('"quantity": "0.1"', "0.1"),
        ('"quantity": 0.30000000000000004', "0.30000000000000004"),
        ('"quantity": 20', "20"),
        ('"quantity": " 20 "', "20"),
        ('"quantity": 1e2', "1E+2"),
        ('"quantity": 12345678.123456789', "12345678.123456789"),
    ],
)
def test_keeps_numbers_as_exact_decimals(body: str, quantity: str) -> None:
    parsed = parse('{"ticker": "AAPL", "action": "buy", ' + body + "}").signal
    assert parsed.quantity == Decimal(quantity)
    assert str(parsed.quantity) == quantity


def test_keeps_a_price_exact_to_its_last_digit() -> None:
    parsed = parse('{"ticker": "DOGEUSDT", "action": "buy", "price": 0.0027451}').signal
    assert str(parsed.signal_price) == "0.0027451"


@pytest.mark.parametrize("quantity", [0, -1, "0", "-2.5", 0.0])
def test_rejects_a_zero_or_negative_quantity(quantity: Any) -> None:
    error = field_rejection(quantity=quantity)
    assert error.code == "invalid_field"
    assert error.details["field"] == "quantity"
    assert "greater than zero" in error.message


@pytest.mark.parametrize(
    "field", ["limitPrice", "stopPrice", "signalPrice", "price", "trailAmount", "trailPercent"]
)
@pytest.mark.parametrize("value", ["abc", "12,5", "1_000", "NaN", "Infinity", True, [1], "", -3])
def test_rejects_a_non_numeric_or_negative_price_naming_the_field(field: str, value: Any) -> None:
    error = field_rejection(**{field: value})
    assert error.code == "invalid_field"
    assert error.details["field"] == field


def test_rejects_an_absurdly_large_number() -> None:
    assert field_rejection(quantity="1e20").details["field"] == "quantity"


def test_reads_price_as_the_signal_price() -> None:
    assert signal(price=101.5).signal_price == Decimal("101.5")
    assert signal(signalPrice="101.5", price=101.5).signal_price == Decimal("101.5")


def test_rejects_a_signal_price_and_price_that_disagree() -> None:
    assert field_rejection(signalPrice=101, price=102).details["field"] == "signalPrice"


def test_accepts_all_order_fields() -> None:
    parsed = signal(
        quantity=10,
        quantityType="Percent_Of_Equity",
        orderType="LIMIT",
        limitPrice="50.50",
        stopPrice=49,
        trailAmount="1",
        trailPercent=0.5,
        timeInForce="GTC",
        extendedHours="true",
        interval=5,
        id=42,
        comment=" Long entry ",
        cancelOrderType="stop_limit",
    )
    assert parsed.quantity_type is QuantityType.PERCENT_OF_EQUITY
    assert parsed.order_type is OrderType.LIMIT
    assert parsed.limit_price == Decimal("50.50")
    assert parsed.stop_price == Decimal("49")
    assert (parsed.trail_amount, parsed.trail_percent) == (Decimal("1"), Decimal("0.5"))
    assert parsed.time_in_force is TimeInForce.GTC
    assert parsed.extended_hours is True
    assert (parsed.interval, parsed.alert_id, parsed.comment) == ("5", "42", "Long entry")
    assert parsed.cancel_order_type is OrderType.STOP_LIMIT


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        (
            "orderType",
            "market_on_close",
            ["market", "limit", "stop", "stop_limit", "trailing_stop"],
        ),
        ("timeInForce", "gtd", ["day", "gtc", "opg", "cls", "ioc", "fok"]),
        ("quantityType", "shares", [q.value for q in QuantityType]),
        ("cancelOrderType", "all", [o.value for o in OrderType]),
        ("orderType", 1, [o.value for o in OrderType]),
    ],
)
def test_rejects_an_invalid_enum_value_listing_the_allowed_ones(
    field: str, value: Any, allowed: list[str]
) -> None:
    error = field_rejection(**{field: value})
    assert error.code == "invalid_field"
    assert error.details == {"field": field, "value": value, "allowed": allowed}
    assert ", ".join(allowed) in error.message


@pytest.mark.parametrize(("given", "expected"), [(True, True), (False, False), (" FALSE", False)])
def test_reads_extended_hours_as_a_boolean(given: Any, expected: bool) -> None:
    assert signal(extendedHours=given).extended_hours is expected


@pytest.mark.parametrize("given", ["yes", 1, "1"])
def test_rejects_extended_hours_that_is_not_true_or_false(given: Any) -> None:
    assert field_rejection(extendedHours=given).details["field"] == "extendedHours"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2025-09-09T14:07:08Z", datetime(2025, 9, 9, 14, 7, 8, tzinfo=UTC)),
        ("2025-09-09T16:07:08+02:00", datetime(2025, 9, 9, 14, 7, 8, tzinfo=UTC)),
        ("2025-09-09T14:07:08.250Z", datetime(2025, 9, 9, 14, 7, 8, 250000, tzinfo=UTC)),
        ("2025-09-09 14:07:08", datetime(2025, 9, 9, 14, 7, 8, tzinfo=UTC)),
        (1757426828, datetime(2025, 9, 9, 14, 7, 8, tzinfo=UTC)),
        (1757426828.5, datetime(2025, 9, 9, 14, 7, 8, 500000, tzinfo=UTC)),
        (1757426828000, datetime(2025, 9, 9, 14, 7, 8, tzinfo=UTC)),
        ("1757426828123", datetime(2025, 9, 9, 14, 7, 8, 123000, tzinfo=UTC)),
    ],
)
def test_reads_the_time_as_utc(given: Any, expected: datetime) -> None:
    parsed = signal(time=given).signal_time
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("given", ["yesterday", "09/09/2025", True, {}, "1e30", "0001-01-01T00:00:00+01:00"])
def test_rejects_a_time_that_is_neither_iso_8601_nor_epoch(given: Any) -> None:
    assert field_rejection(time=given).details["field"] == "time"


def test_reads_take_profit_variants() -> None:
    assert signal(takeProfit={"limitPrice": 19.99}).take_profit == TakeProfit(limit_price=Decimal("19.99"))
    assert signal(takeProfit={"price": "19.99"}).take_profit == TakeProfit(limit_price=Decimal("19.99"))
    assert signal(takeProfit={"percent": 10}).take_profit == TakeProfit(percent=Decimal("10"))
    assert signal(takeProfit={"amount": "100"}).take_profit == TakeProfit(amount=Decimal("100"))


@pytest.mark.parametrize(
    ("take_profit", "field"),
    [
        ({"percent": 10, "amount": 5}, "takeProfit"),  # TradersPost: "never together"
        ({}, "takeProfit"),
        ({"percent": -1}, "takeProfit.percent"),
        ({"limit": 10}, "takeProfit.limit"),
        (10, "takeProfit"),
    ],
)
def test_rejects_an_invalid_take_profit(take_profit: Any, field: str) -> None:
    assert field_rejection(takeProfit=take_profit).details["field"] == field


@pytest.mark.parametrize(
    ("stop_loss", "expected"),
    [
        ({"percent": 5}, StopLoss(type=OrderType.STOP, percent=Decimal("5"))),
        ({"type": "stop", "stopPrice": 10.71}, StopLoss(stop_price=Decimal("10.71"))),
        ({"type": "stop", "amount": "5"}, StopLoss(amount=Decimal("5"))),
        (
            {"type": "stop_limit", "stopPrice": 10.71, "limitPrice": 10.75},
            StopLoss(
                type=OrderType.STOP_LIMIT,
                stop_price=Decimal("10.71"),
                limit_price=Decimal("10.75"),
            ),
        ),
        (
            {"type": "trailing_stop", "trailPercent": 1},
            StopLoss(type=OrderType.TRAILING_STOP, percent=Decimal("1")),
        ),
        (
            {"type": "trailing_stop", "trailAmount": "2.00"},
            StopLoss(type=OrderType.TRAILING_STOP, amount=Decimal("2.00")),
        ),
    ],
)
def test_reads_stop_loss_variants(stop_loss: dict[str, Any], expected: StopLoss) -> None:
    assert signal(stopLoss=stop_loss).stop_loss == expected


@pytest.mark.parametrize(
    ("stop_loss", "field"),
    [
        ({"type": "stop", "stopPrice": 10, "limitPrice": 9}, "stopLoss.limitPrice"),
        ({"type": "stop", "trailAmount": 1}, "stopLoss.trailAmount"),
        ({"type": "trailing_stop", "stopPrice": 10}, "stopLoss.stopPrice"),
        ({"type": "trailing_stop"}, "stopLoss"),
        ({"type": "market", "stopPrice": 10}, "stopLoss.type"),
        ({"type": "stop"}, "stopLoss"),
        ({"stopPrice": 10, "percent": 5}, "stopLoss"),
        ({"stopPrice": "ten"}, "stopLoss.stopPrice"),
        ({"stop": 10}, "stopLoss.stop"),
        (0.4, "stopLoss"),
    ],
)
def test_rejects_an_invalid_stop_loss(stop_loss: Any, field: str) -> None:
    assert field_rejection(stopLoss=stop_loss).details["field"] == field


def test_keeps_the_extras_object_and_unknown_fields_in_extras() -> None:
    parsed = signal(extras={"message": "RSI Below 30", "rsi": 23.5}, delay=60, optionType="call")
    assert parsed.extras == {
        "delay": 60,
        "optionType": "call",
        "message": "RSI Below 30",
        "rsi": Decimal("23.5"),
    }


def test_rejects_extras_that_is_not_an_object() -> None:
    assert field_rejection(extras="note").details["field"] == "extras"


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("order_type", "orderType"),
        ("StopLoss", "stopLoss"),
        ("take-profit", "takeProfit"),
        ("signal_price", "signalPrice"),
        ("Quantity", "quantity"),
    ],
)
def test_rejects_lookalikes_of_known_fields_instead_of_ignoring_them(key: str, meant: str) -> None:
    error = field_rejection(**{key: "x"})
    assert error.details == {"field": key, "expected": meant}
    assert f'did you mean "{meant}"' in error.message


def test_treats_null_as_absent() -> None:
    assert signal(quantity=None, sentiment=None, stopLoss=None) == Signal(ticker="AAPL", action=Action.BUY)


# --- the passphrase/strategy format (hackingthemarkets' tutorials) ------------------------------


def strategy_body(**strategy: Any) -> dict[str, Any]:
    return {
        "passphrase": "abcdefgh",
        "time": "2020-09-06T01:44:17Z",
        "exchange": "BINANCE",
        "ticker": "DOGEUSDT",
        "bar": {"time": "2020-09-06T01:43:00Z", "close": "0.0027486"},
        "strategy": {
            "order_action": "sell",
            "order_contracts": 15,
            "order_price": "0.0027451",
            "order_id": "exit long",
            "market_position": "short",
            **strategy,
        },
    }


def test_accepts_the_passphrase_strategy_format() -> None:
    parsed = parse(
        strategy_body(
            position_size=-5,
            market_position_size=5,
            prev_market_position="long",
            prev_market_position_size=10,
        )
    )
    assert parsed.signal == Signal(
        ticker="DOGEUSDT",
        action=Action.SELL,
        sentiment=Sentiment.SHORT,
        quantity=Decimal("15"),
        signal_price=Decimal("0.0027451"),
        signal_time=datetime(2020, 9, 6, 1, 44, 17, tzinfo=UTC),
        exchange="BINANCE",
        target_position=Decimal("-5"),
        alert_id="exit long",
        source_format="strategy",
        extras={
            "bar": {"time": "2020-09-06T01:43:00Z", "close": "0.0027486"},
            "strategy": {"prev_market_position": "long", "prev_market_position_size": 10},
        },
    )
    assert parsed.passphrase == "abcdefgh"


def test_derives_the_target_position_from_market_position_and_size() -> None:
    assert parse(strategy_body(market_position_size="5")).signal.target_position == Decimal("-5")
    flat = strategy_body(market_position="flat", market_position_size=0)
    assert parse(flat).signal.target_position == Decimal("0")


def test_leaves_the_target_position_unknown_without_size() -> None:
    assert parse(strategy_body()).signal.target_position is None


def test_uses_the_bar_close_when_the_order_price_is_missing() -> None:
    body = strategy_body()
    del body["strategy"]["order_price"]
    assert parse(body).signal.signal_price == Decimal("0.0027486")


def rejected_field(body: dict[str, Any]) -> str:
    return rejection(body).details["field"]


def test_names_strategy_fields_in_refusals() -> None:
    body = strategy_body()
    del body["strategy"]["order_action"]
    assert rejection(body).details == {
        "field": "strategy.order_action",
        "allowed": ["buy", "sell", "exit", "cancel", "add"],
    }
    assert rejected_field(strategy_body(order_contracts=0)) == "strategy.order_contracts"
    assert rejected_field(strategy_body(market_position="up")) == "strategy.market_position"
    assert rejected_field(strategy_body(position_size="big")) == "strategy.position_size"


def test_rejects_a_bar_that_is_not_an_object() -> None:
    body = strategy_body()
    body["bar"] = 1.5
    assert rejection(body).details["field"] == "bar"


def test_rejects_an_unfilled_strategy_placeholder_naming_its_path() -> None:
    error = rejection(strategy_body(order_id="{{strategy.order.id}}"))
    assert error.details == {"field": "strategy.order_id", "placeholder": "{{strategy.order.id}}"}


# --- passphrase, payload and redaction --------------------------------------------------------


def test_extracts_the_passphrase_from_a_traderspost_body() -> None:
    parsed = parse({"ticker": "AAPL", "action": "buy", "passphrase": "s3cret", "delay": 1})
    assert parsed.passphrase == "s3cret"
    assert "passphrase" not in parsed.signal.extras
    assert parsed.payload == {"ticker": "AAPL", "action": "buy", "passphrase": "***", "delay": 1}


def test_masks_secret_named_values_in_payload_and_extras() -> None:
    parsed = parse({"ticker": "AAPL", "action": "buy", "extras": {"api_key": "k", "Token": "t"}})
    assert parsed.signal.extras == {"api_key": "***", "Token": "***"}
    assert parsed.payload["extras"] == {"api_key": "***", "Token": "***"}


def test_rejects_a_passphrase_that_is_not_text() -> None:
    error = field_rejection(passphrase={"hunter2": 1})
    assert error.details == {"field": "passphrase", "value": "***"}
    assert "hunter2" not in error.message


def test_the_payload_is_ready_for_a_jsonb_column() -> None:
    parsed = parse('{"ticker": "AAPL", "action": "buy", "price": 0.1, "extras": {"q": [1.5, 2]}}')
    assert parsed.payload == {
        "ticker": "AAPL",
        "action": "buy",
        "price": 0.1,
        "extras": {"q": [1.5, 2]},
    }
    assert json.dumps(parsed.payload) == (
        '{"ticker": "AAPL", "action": "buy", "price": 0.1, "extras": {"q": [1.5, 2]}}'
    )


def test_redacts_the_passphrase_in_a_valid_raw_body() -> None:
    raw = b'{"ticker": "AAPL", "passphrase": "abc\\"def", "action": "buy"}'
    assert redact_raw_body(raw) == '{"ticker": "AAPL", "passphrase": "***", "action": "buy"}'


def test_redacts_secrets_in_an_invalid_raw_body() -> None:
    raw = "{\n “passphrase”: “abc”,\n 'secret': 'xyz',\n \"api_key\": \"k1\" // c\n}".encode()
    assert redact_raw_body(raw) == (
        "{\n “passphrase”: “***”,\n 'secret': '***',\n \"api_key\": \"***\" // c\n}"
    )


def test_redacts_an_unterminated_secret_to_the_end_of_its_line() -> None:
    assert redact_raw_body(b'{"passphrase": "abc\n}') == '{"passphrase": "***"\n}'


def test_redacts_key_equals_value_secrets_in_plain_text() -> None:
    raw = b"60123456789,sell,EURUSD,vol_lots=1, secret=HappyTrader501"
    assert redact_raw_body(raw) == "60123456789,sell,EURUSD,vol_lots=1, secret=***"


def test_redaction_leaves_other_text_alone_and_replaces_bad_bytes() -> None:
    assert redact_raw_body(b'{"ticker": "AA\xffPL\x00", "secretive": 1}') == (
        '{"ticker": "AA\ufffdPL\ufffd", "secretive": 1}'
    )


# --- signal_to_dict ---------------------------------------------------------------------------


def test_renders_a_signal_as_json_safe_data() -> None:
    parsed = signal(
        sentiment="bullish",
        quantity="0.1",
        time="2025-09-09T14:07:08Z",
        takeProfit={"percent": 10},
        stopLoss={"type": "stop_limit", "stopPrice": 90, "limitPrice": 89.5},
        extras={"rsi": 23.5, "tags": ["a"]},
    )
    data = signal_to_dict(parsed)
    assert data["action"] == "buy"
    assert data["sentiment"] == "long"
    assert data["quantity"] == "0.1"
    assert data["signal_time"] == "2025-09-09T14:07:08Z"
    assert data["take_profit"] == {"percent": "10"}
    assert data["stop_loss"] == {"type": "stop_limit", "stop_price": "90", "limit_price": "89.5"}
    assert data["extras"] == {"rsi": "23.5", "tags": ["a"]}
    assert data["limit_price"] is None
    assert set(data) == {f for f in Signal.__dataclass_fields__}
    json.dumps(data)


# --- the error tree ---------------------------------------------------------------------------


def test_errors_default_to_their_docstring_and_carry_a_code() -> None:
    error = InvalidField()
    assert error.message == "A field of the alert has an invalid value."
    assert str(error) == error.message
    assert error.code == "invalid_field"
    assert error.details == {}
    assert InvalidField("x", field="quantity").details == {"field": "quantity"}


def test_every_error_code_is_distinct_snake_case() -> None:
    codes = [cls.code for cls in _subclasses(AlertRejected)]
    assert len(codes) == len(set(codes))
    assert all(code.replace("_", "").isalpha() and code.islower() for code in codes)


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


@pytest.mark.parametrize("value", ["1e-99999", "0." + "0" * 30 + "1"])
def test_rejects_numbers_with_more_than_30_decimal_places(value: str) -> None:
    with pytest.raises(InvalidField, match="decimal places"):
        parse_alert(json.dumps({"ticker": "BTCUSD", "action": "buy", "quantity": value}).encode())


def test_accepts_eight_decimal_crypto_quantities() -> None:
    signal = parse_alert(b'{"ticker": "BTCUSD", "action": "buy", "quantity": "0.00000001"}').signal
    assert signal.quantity == Decimal("0.00000001")


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (b'{"passphrase": ["hunter2"]}', '{"passphrase": "***"}'),
        (
            b'{"apiKey": "abc", "secret_key": "x", "API-TOKEN": "y"}',
            '{"apiKey": "***", "secret_key": "***", "API-TOKEN": "***"}',
        ),
        (b'{"key": {"a": 1}, "ticker": "X"}', '{"key": "***", "ticker": "X"}'),
        (b'{"monkey": "banana"}', '{"monkey": "banana"}'),
    ],
)
def test_redaction_covers_arrays_objects_and_spelling_variants(raw: bytes, stored: str) -> None:
    assert redact_raw_body(raw) == stored


def test_payload_masks_spelling_variants_of_secret_names() -> None:
    parsed = parse_alert(
        b'{"ticker": "SPY", "action": "buy", "extras": {"apiKey": "abc", "Secret-Key": "x"}}'
    )
    assert parsed.payload["extras"] == {"apiKey": "***", "Secret-Key": "***"}


@pytest.mark.parametrize(
    ("given", "ticker", "exchange"),
    [
        ("BTC/USDT", "BTC/USDT", None),
        ("brk.b", "BRK.B", None),
        ("ES1!", "ES1!", None),
        ("NASDAQ:AAPL", "AAPL", "NASDAQ"),
        ("BINANCE:BTCUSDT.P", "BTCUSDT.P", "BINANCE"),
        ("EUR_USD", "EUR_USD", None),
        ("M&M", "M&M", None),
        ("X" * 32, "X" * 32, None),
    ],
)
def test_tickers_brokers_use_are_kept(given, ticker, exchange):
    parsed = parse_alert(json.dumps({"ticker": given, "action": "buy"}).encode(), "application/json")
    assert (parsed.signal.ticker, parsed.signal.exchange) == (ticker, exchange)


@pytest.mark.parametrize(
    "given",
    ["X" * 33, "A" * 10_000, "𝔸𝔸ℙ𝕃", "AAPL\u200b", "ÄPFEL", "-AAPL", "AA  PL", "AAPL;DROP", "<b>", "$AAPL"],
)
def test_a_ticker_no_broker_could_have_is_refused_with_invalid_ticker(given):
    error = field_rejection(ticker=given)
    assert error.code == "invalid_ticker" and error.status == 422
    assert error.details["field"] == "ticker"
    assert len(error.details["value"]) <= 80  # a 10,000-character ticker is not echoed whole


@pytest.mark.parametrize(
    ("given", "odd"),
    # Each upper-cases to a real symbol: ſ (long s) → S, ı (dotless i) → I, ß → SS, ﬀ → FF.
    [("ſPY", "ſ"), ("ıBM", "ı"), ("ß", "ß"), ("NASDAQ:ſPY", "ſ"), ("ﬀIV", "ﬀ")],
)
def test_a_lookalike_ticker_is_refused_as_sent_not_traded_as_the_real_symbol(given, odd):
    error = field_rejection(ticker=given)
    assert error.code == "invalid_ticker" and error.status == 422
    assert error.details == {"field": "ticker", "value": given}
    assert f"outside ASCII ({odd})" in error.message
