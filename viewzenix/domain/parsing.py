"""Turn a TradingView alert body into a normalised :class:`~viewzenix.domain.model.Signal`.

Pure Python: this module imports neither Flask nor psycopg. :func:`parse_alert` takes the raw
request bytes and returns a :class:`ParsedAlert`, or raises an :class:`AlertRejected` subclass
whose ``code``, ``message`` and ``details`` say precisely why the body cannot become a signal.

Two JSON formats are accepted:

* **TradersPost-compatible** (``source_format="traderspost"``): ``ticker`` and ``action`` plus the
  optional fields of the TradersPost signal reference (docs.traderspost.io, "Webhooks"), and
  ``time``/``interval``/``id``/``comment``/``passphrase``. Other fields are kept in ``extras``.
* **Passphrase/strategy style** (``source_format="strategy"``) from hackingthemarkets'
  TradingView→Alpaca/Binance tutorials: ``passphrase``, ``time``, ``exchange``, ``ticker``,
  ``bar`` {time, open, high, low, close, volume} and ``strategy`` {position_size, order_action,
  order_contracts, order_price, order_id, market_position, market_position_size, prev_*}.

Everything else is refused on purpose: other tools' formats (3Commas, PineConnector, Alertatron,
OctoBot, ...) as ``unsupported_format``, plain text as ``not_a_signal``, JSON arrays as
``batch_not_supported``, and the usual almost-JSON mistakes (curly quotes, comments, trailing
commas, unfilled placeholders) each with its own code and the line and column to fix.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

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
from viewzenix.exceptions import ViewzenixError

__all__ = [
    "MAX_BODY_BYTES",
    "AlertRejected",
    "BatchNotSupported",
    "BodyTooLarge",
    "DuplicateKey",
    "EmptyBody",
    "EmptyTicker",
    "InvalidEncoding",
    "InvalidField",
    "JsonComments",
    "MalformedJson",
    "MissingAction",
    "MissingTicker",
    "NotASignal",
    "ParsedAlert",
    "SmartQuotes",
    "TrailingComma",
    "UnfilledPlaceholder",
    "UnknownAction",
    "UnsupportedFormat",
    "parse_alert",
    "redact_raw_body",
    "signal_to_dict",
]

MAX_BODY_BYTES = 64 * 1024
"""Largest alert body accepted, in bytes (our own bound; TradingView messages are short)."""

_MAX_DEPTH = 32  # nesting levels of objects/arrays; TradersPost bodies use 3
_MAX_ADJUSTED_EXPONENT = 15  # numbers must stay below 10**16
# Float artifacts from Pine (0.30000000000000004) have 17 places; 1e-99999 would overflow
# Postgres numeric at execution and fail the job on every retry.
_MAX_DECIMAL_PLACES = 30
_EPOCH_MS_THRESHOLD = Decimal(10**11)  # epoch numbers above are milliseconds (10**11 s: year 5138)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_EXPECTED = (
    'Viewzenix expects a JSON object with "ticker" and "action" (TradersPost style, e.g. '
    '{"ticker": "AAPL", "action": "buy"}), or the passphrase style with "ticker" and a '
    '"strategy" object'
)
_EXPECTED_FIELDS = ["ticker", "action"]


# --- errors -----------------------------------------------------------------------------------


class AlertRejected(ViewzenixError):
    """The alert body cannot become a signal.

    ``status`` hints the HTTP answer: 400 not valid JSON, 413 too large, 422 not a usable signal.
    ``details`` (also ``errors``): where and why, e.g. line and column of a JSON mistake.
    """

    code: str = "alert_rejected"
    status: int = 422

    def __init__(self, message: str | None = None, /, **details: Any) -> None:
        super().__init__(message, errors=details)

    @property
    def details(self) -> dict[str, Any]:
        return self.errors


class EmptyBody(AlertRejected):
    """The alert body is empty."""

    code = "empty_body"
    status = 400


class BodyTooLarge(AlertRejected):
    """The alert body is larger than 64 KiB."""

    code = "body_too_large"
    status = 413


class InvalidEncoding(AlertRejected):
    """The alert body is not valid UTF-8."""

    code = "invalid_encoding"
    status = 400


class MalformedJson(AlertRejected):
    """The alert body is not valid JSON."""

    code = "malformed_json"
    status = 400


class SmartQuotes(MalformedJson):
    """The alert body uses curly quotes where JSON needs straight double quotes."""

    code = "smart_quotes"


class JsonComments(MalformedJson):
    """The alert body contains comments, which JSON does not allow."""

    code = "json_comments"


class TrailingComma(MalformedJson):
    """The alert body has a comma right before a closing } or ]."""

    code = "trailing_comma"


class DuplicateKey(AlertRejected):
    """The alert body gives the same field twice."""

    code = "duplicate_key"


class UnfilledPlaceholder(AlertRejected):
    """The alert body contains a TradingView placeholder that was never filled in."""

    code = "unfilled_placeholder"


class BatchNotSupported(AlertRejected):
    """The alert body is a JSON array; send one alert per order."""

    code = "batch_not_supported"


class NotASignal(AlertRejected):
    """The alert body is not a trading signal."""

    code = "not_a_signal"


class UnsupportedFormat(AlertRejected):
    """The alert body is in a format Viewzenix does not accept."""

    code = "unsupported_format"


class MissingTicker(AlertRejected):
    """The alert has no ticker."""

    code = "missing_ticker"


class EmptyTicker(AlertRejected):
    """The alert's ticker is empty."""

    code = "empty_ticker"


class InvalidTicker(AlertRejected):
    """The alert's ticker is not a symbol any broker or exchange uses."""

    code = "invalid_ticker"


# A symbol as brokers and exchanges write them: 1 to 32 ASCII letters, digits and the separators
# seen in real tickers — BRK.B, BTC/USDT, ES1! (continuous futures), BRK-B, EUR_USD, M&M, and the
# single spaces of option symbols in TradersPost's docs ("SPY 240510C68") — starting with a letter
# or digit. An exchange prefix (NASDAQ:AAPL) is split off before this check.
TICKER_PATTERN = re.compile(r"[A-Z0-9](?:[A-Z0-9./!&_-]| (?! )){0,31}")
MAX_TICKER_LENGTH = 32


class MissingAction(AlertRejected):
    """The alert has no action."""

    code = "missing_action"


class UnknownAction(AlertRejected):
    """The alert's action is not one of buy, sell, exit, cancel, add."""

    code = "unknown_action"


class InvalidField(AlertRejected):
    """A field of the alert has an invalid value."""

    code = "invalid_field"


# --- result -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedAlert:
    """A parsed alert: the normalised ``signal``, the body's ``passphrase`` and the ``payload``.

    ``payload`` is the decoded JSON object ready for a jsonb column: JSON-native values only
    (non-integral numbers as ``float``, which reproduces what was sent up to 15 significant
    digits), with ``passphrase`` and other secret-named values replaced by ``"***"``.
    """

    signal: Signal
    passphrase: str | None
    payload: dict[str, Any]


# --- entry points -----------------------------------------------------------------------------


def parse_alert(raw: bytes, content_type: str | None = None) -> ParsedAlert:
    """Parse one alert body into a normalised signal.

    ``raw`` is the request body as received. ``content_type`` is deliberately not trusted
    (TradingView: ``application/json`` only when the message is valid JSON, else ``text/plain``):
    the bytes are always tried as JSON. Accepts a JSON object in the TradersPost or the
    passphrase/strategy format (see the module docstring).

    Raises an :class:`AlertRejected` subclass, and nothing else, for a body that cannot become a
    signal: ``body_too_large`` (over :data:`MAX_BODY_BYTES`), ``invalid_encoding``,
    ``empty_body``; ``malformed_json`` (with line and column), ``smart_quotes``,
    ``json_comments``, ``trailing_comma``, ``duplicate_key``, ``unfilled_placeholder``;
    ``batch_not_supported`` (JSON array), ``not_a_signal`` (plain text or a JSON scalar),
    ``unsupported_format`` (another tool's format, ``details["detected_format"]``);
    ``missing_ticker``, ``empty_ticker``, ``missing_action``, ``unknown_action`` and
    ``invalid_field`` (``details["field"]`` names it).
    """
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(
            f"The alert body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES} bytes.",
            size=len(raw),
            limit=MAX_BODY_BYTES,
        )
    text = _decode(raw)
    if not text.strip():
        raise EmptyBody()
    data = _load_json(text)
    if isinstance(data, list):
        raise _batch_refusal(data)
    if not isinstance(data, dict):
        raise NotASignal(
            f"The alert body is a single JSON value ({_show(data)}), not a signal. {_EXPECTED}.",
            expected_fields=_EXPECTED_FIELDS,
        )
    _check_values(data)
    return _parse_object(data)


def redact_raw_body(raw: bytes) -> str:
    """Decode a raw body for storage, masking secret values as ``***``.

    Decodes as UTF-8 with ``errors="replace"`` and replaces NUL characters (Postgres text cannot
    hold them). Masks the value after a secret-named key (``passphrase``, ``secret``,
    ``api_key``, ``api_secret``, ``api_token``, ``token``, ``password``, ``key``,
    ``email_token``) in ``"key": "value"`` and ``key=value`` forms, textually, so it also works on
    invalid JSON and plain text (e.g. PineConnector's ``secret=...``). Never raises.
    """
    text = raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    return _SECRET_VALUE.sub(_mask_secret_match, text)


def signal_to_dict(signal: Signal) -> dict[str, Any]:
    """Render a signal as a JSON-safe dict, for a jsonb column and the API.

    Every ``Signal`` field is present under its own name (``None`` as null). Decimals become
    strings, datetimes ISO 8601 UTC strings (``2025-09-09T14:07:08Z``), enums their values;
    ``take_profit``/``stop_loss`` become dicts holding only their non-None fields.
    """
    out: dict[str, Any] = {}
    for f in fields(signal):
        value = getattr(signal, f.name)
        if isinstance(value, TakeProfit | StopLoss):
            value = {
                g.name: _plain(getattr(value, g.name))
                for g in fields(value)
                if getattr(value, g.name) is not None
            }
        out[f.name] = _plain(value)
    return out


# --- bytes and JSON ---------------------------------------------------------------------------


def _decode(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = f"0x{raw[exc.start]:02x}"
        raise InvalidEncoding(
            f"The alert body is not valid UTF-8: byte {byte} at offset {exc.start} "
            f"(line {line}) {exc.reason}.",
            offset=exc.start,
            line=line,
            byte=byte,
        ) from None
    return text.removeprefix("\ufeff")


def _load_json(text: str) -> Any:
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        if _looks_like_json(text):
            raise _syntax_mistake(text, exc.pos) or _malformed(text, exc) from None
        raise _refuse_text(text) from None
    except RecursionError:
        raise MalformedJson(
            "The alert body nests objects or arrays too deeply to read.", reason="too_deep"
        ) from None
    except ValueError:  # an integer longer than Python's int_max_str_digits (4300)
        raise MalformedJson(
            "The alert body holds a number too long to read (over 4300 digits).",
            reason="number_too_long",
        ) from None


def _reject_constant(name: str) -> Any:
    raise MalformedJson(
        f"The alert body contains {name}, which is not valid JSON; send a number.", value=name
    )


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f'The alert body gives the field "{key}" twice; send it once.', field=key)
        out[key] = value
    return out


def _looks_like_json(text: str) -> bool:
    start = text.lstrip()
    return start.startswith(("[", "//", "/*")) or (start.startswith("{") and not start.startswith("{{"))


def _line_col(text: str, pos: int) -> tuple[int, int]:
    """1-based line and column of ``pos``, counted as ``json.JSONDecodeError`` counts them."""
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


_SMART_QUOTES = "“”‘’"
_AFTER_CLOSING_QUOTE = re.compile(r"[ \t]*(?:[,:}\]\r\n]|\Z)")
_SPACE = re.compile(r"\s*")
_PLACEHOLDER = re.compile(r"\{\{[^{}]*\}\}")
_KEY_BEFORE = re.compile(r'"([^"\\\n]{1,100})"\s*:\s*\Z')


def _syntax_mistake(text: str, error_pos: int) -> AlertRejected | None:
    """Name the first common almost-JSON mistake at or before the decoder's error position.

    Scans outside JSON strings for curly quotes, ``//`` and ``/*`` comments, unquoted
    ``{{placeholders}}`` and trailing commas; inside strings, a curly double quote counts only
    where it closes a string (followed by ``,`` ``:`` ``}`` ``]`` or a line end).
    """
    in_string = False
    i = 0
    while i <= error_pos and i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
            elif ch in "“”" and _AFTER_CLOSING_QUOTE.match(text, i + 1):
                return _smart_quote(text, i)
        elif ch == '"':
            in_string = True
        elif ch in _SMART_QUOTES:
            return _smart_quote(text, i)
        elif ch == "/" and text[i + 1 : i + 2] in ("/", "*"):
            line, column = _line_col(text, i)
            token = text[i : i + 2]
            return JsonComments(
                f"The alert body has a {token} comment at line {line} column {column}; "
                "JSON does not allow comments: delete it.",
                line=line,
                column=column,
            )
        elif ch == "{" and text[i + 1 : i + 2] == "{":
            placeholder = _PLACEHOLDER.match(text, i)
            if placeholder:
                return _unquoted_placeholder(text, i, placeholder.group())
        elif ch == ",":
            closer = text[_skip_space(text, i + 1) : _skip_space(text, i + 1) + 1]
            if closer in ("}", "]"):
                line, column = _line_col(text, i)
                return TrailingComma(
                    f"The alert body has a trailing comma at line {line} column {column}, "
                    f"before the closing {closer}; JSON does not allow it: delete that comma.",
                    line=line,
                    column=column,
                )
        i += 1
    return None


def _skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _smart_quote(text: str, pos: int) -> SmartQuotes:
    line, column = _line_col(text, pos)
    return SmartQuotes(
        f"The alert body uses the curly quote {text[pos]} at line {line} column {column}; "
        'JSON needs straight double quotes ("). Retype the quotes in a plain text editor.',
        line=line,
        column=column,
        character=text[pos],
    )


def _unquoted_placeholder(text: str, pos: int, placeholder: str) -> UnfilledPlaceholder:
    line, column = _line_col(text, pos)
    key = _KEY_BEFORE.search(text, max(0, pos - 200), pos)
    where = f' (field "{key.group(1)}")' if key else ""
    return UnfilledPlaceholder(
        f"The alert body has the unfilled TradingView placeholder {placeholder} at line {line} "
        f"column {column}{where}. {_placeholder_help(placeholder)}",
        placeholder=placeholder,
        field=key.group(1) if key else None,
        line=line,
        column=column,
    )


def _placeholder_help(placeholder: str) -> str:
    help_text = (
        "TradingView fills placeholders only when the alert fires: a literal placeholder means "
        "the body was sent by hand or copied from a template, or TradingView did not recognise "
        "the placeholder (check its spelling)."
    )
    if placeholder.replace(" ", "").startswith("{{strategy."):
        help_text += " Strategy placeholders are filled only by strategy alerts."
    return help_text


def _malformed(text: str, exc: json.JSONDecodeError) -> MalformedJson:
    hint = _hint(text, exc)
    reason = exc.msg.removesuffix(" at")  # "Unterminated string starting at"
    message = f"The alert body is not valid JSON: {reason} at line {exc.lineno} column {exc.colno}"
    details: dict[str, Any] = {"line": exc.lineno, "column": exc.colno, "reason": reason}
    if hint:
        message += f"; {hint}"
        details["hint"] = hint
    return MalformedJson(message + ".", **details)


def _hint(text: str, exc: json.JSONDecodeError) -> str | None:
    rest = text[exc.pos :]
    if not rest.strip():
        return "the body ends before the JSON is complete"
    if exc.msg == "Expecting ',' delimiter":
        line, column = _line_col(text, len(text[: exc.pos].rstrip()) - 1)
        return f"a comma is probably missing after line {line} column {column}"
    if rest.startswith("'"):
        return "JSON strings and field names need double quotes, not single quotes"
    if exc.msg.startswith("Expecting property name"):
        return "field names need double quotes"
    if exc.msg.startswith("Unterminated string"):
        return "a closing double quote is missing"
    if exc.msg.startswith("Invalid control character"):
        return "write line breaks and tabs inside strings as \\n and \\t"
    if exc.msg == "Extra data":
        return "send exactly one JSON object per alert"
    return None


# --- plain text and foreign formats -----------------------------------------------------------

_TEXT_FORMATS = (
    # 60123456789,buy,AUDUSD,risk=0.1 (docs.pineconnector.com/syntax)
    (
        "pineconnector",
        "PineConnector",
        re.compile(r"\A\w+\s*,\s*(?:buy|sell|close|cancel)\w*\s*,\s*[^,\s]+", re.IGNORECASE),
    ),
    # MyKeys(XBTUSD) { market(side=buy, amount=100); } (alertatron.com docs)
    ("alertatron", "Alertatron", re.compile(r"\A\w+\([^()\n]*\)\s*\{")),
    # EXCHANGE=...\nSYMBOL=...\nSIGNAL=BUY (octobot.cloud TradingView guide)
    ("octobot", "OctoBot", re.compile(r"(?:^|;)\s*SIGNAL\s*=", re.IGNORECASE | re.MULTILINE)),
)


def _refuse_text(text: str) -> AlertRejected:
    body = text.strip()
    for slug, name, pattern in _TEXT_FORMATS:
        if pattern.search(body):
            return _unsupported(slug, name)
    if _PLACEHOLDER.fullmatch(body):
        return UnfilledPlaceholder(
            f"The whole alert body is the unfilled TradingView placeholder {body}. {_placeholder_help(body)}",
            placeholder=body,
            field=None,
        )
    return NotASignal(
        f"The alert body is plain text, not a JSON signal. {_EXPECTED}.",
        expected_fields=_EXPECTED_FIELDS,
    )


def _unsupported(slug: str, name: str) -> UnsupportedFormat:
    return UnsupportedFormat(
        f"The alert body looks written for {name}; Viewzenix does not accept that format. {_EXPECTED}.",
        detected_format=slug,
        expected_fields=_EXPECTED_FIELDS,
    )


def _detect_tool(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Recognise another tool's JSON alert by the fields only that tool sends."""
    keys = set(obj)
    if "bot_uuid" in keys or {"bot_id", "email_token"} <= keys or {"secret", "max_lag"} <= keys:
        return "3commas", "3Commas signal bot"
    if {"stub", "direction"} <= keys:
        return "tradingview-alerts-processor", "tradingview-alerts-processor"
    if "exchange_id" in keys:
        return "webhook-trader", "webhook-trader"
    if {"api_key", "api_secret"} <= keys:
        return "altrady", "Altrady"
    if "api_token" in keys:
        return "tradingwizard", "TradingWizard"
    kind = obj.get("type")
    if isinstance(kind, str) and kind.upper().startswith(("POSITION_TYPE_", "ORDER_TYPE_")):
        return "metaapi", "MetaApi CopyFactory"
    if "key" in keys:
        if keys & {"telegram", "discord", "slack", "twitter", "email", "msg"}:
            return "fabston-webhook-bot", "TradingView-Webhook-Bot (fabston) notification"
        bybit_fields = {"close_position", "cancel_orders", "order_mode", "take_profit_percent"}
        if keys & (bybit_fields | {"stop_loss_percent"}):
            return "bybit-webhook-bot", "Bybit Tradingview-Webhook-Bot"
        return "tradingview-webhooks-bot", "tradingview-webhooks-bot (robswc)"
    if {"secret", "side"} <= keys:
        return "coinrule", "Coinrule"
    return None


def _batch_refusal(items: list[Any]) -> BatchNotSupported:
    details: dict[str, Any] = {"count": len(items)}
    first = items[0] if items else None
    if isinstance(first, dict) and "ticker" not in first:
        tool = _detect_tool(first)
        if tool:
            details["detected_format"] = tool[0]
    return BatchNotSupported(
        f"The alert body is a JSON array of {len(items)} items; Viewzenix takes one alert per "
        "request, so send one alert per order.",
        **details,
    )


# --- the decoded object -----------------------------------------------------------------------

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _check_values(data: dict[str, Any]) -> None:
    """Refuse nesting deeper than _MAX_DEPTH, and text Postgres cannot store (NUL, surrogates)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise InvalidField(
                    f"{path or 'A field name'} contains a NUL character or an unpaired surrogate "
                    "escape (\\u0000, \\ud800-\\udfff), which cannot be stored.",
                    field=path or None,
                )
        elif isinstance(value, dict | list):
            if depth > _MAX_DEPTH:
                raise InvalidField(
                    f"{path} nests objects or arrays more than {_MAX_DEPTH} levels deep.",
                    field=path,
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    stack.append((key, path, depth))
                stack.append((item, _join(path, key), depth + 1))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _parse_object(obj: dict[str, Any]) -> ParsedAlert:
    if "ticker" not in obj:
        tool = _detect_tool(obj)
        if tool:
            raise _unsupported(*tool)
        if "action" not in obj and not isinstance(obj.get("strategy"), dict):
            raise _unknown_object(obj)
    _reject_placeholders(obj)
    passphrase = _passphrase(obj.get("passphrase"))
    if isinstance(obj.get("strategy"), dict) and "action" not in obj:
        signal = _strategy_signal(obj)
    else:
        signal = _build_signal(obj, {}, source_format="traderspost", extras={})
    return ParsedAlert(signal=signal, passphrase=passphrase, payload=_stored(obj))


def _unknown_object(obj: dict[str, Any]) -> UnsupportedFormat:
    found = [
        f'"{theirs}" where Viewzenix expects "{ours}"'
        for theirs, ours in (("symbol", "ticker"), ("side", "action"))
        if theirs in obj
    ]
    uses = f" It uses {' and '.join(found)}." if found else ""
    return UnsupportedFormat(
        f'The alert body is a JSON object without "ticker" and "action".{uses} {_EXPECTED}.',
        detected_format=None,
        expected_fields=_EXPECTED_FIELDS,
    )


def _reject_placeholders(obj: dict[str, Any]) -> None:
    found = _find_placeholder(obj, "")
    if found is None:
        return
    path, placeholder, whole = found
    verb = "is" if whole else "contains"
    raise UnfilledPlaceholder(
        f"{path} {verb} the unfilled TradingView placeholder {placeholder}. {_placeholder_help(placeholder)}",
        field=path,
        placeholder=placeholder,
    )


def _find_placeholder(value: Any, path: str) -> tuple[str, str, bool] | None:
    """First ``{{...}}`` in a string value, in document order: (path, placeholder, whole value)."""
    if isinstance(value, str):
        match = _PLACEHOLDER.search(value)
        return (path, match.group(), match.group() == value.strip()) if match else None
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            found = _find_placeholder(item, _join(path, key))
            if found:
                return found
    return None


def _passphrase(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    got = {dict: "an object", list: "an array"}.get(type(value), "a boolean")  # value not echoed
    raise InvalidField(f"passphrase must be a string; got {got}", field="passphrase", value="***")


# --- TradersPost fields -----------------------------------------------------------------------

_FIELDS = frozenset(
    """ticker action sentiment quantity quantityType orderType limitPrice stopPrice trailAmount
    trailPercent timeInForce extendedHours signalPrice price time interval exchange takeProfit
    stopLoss cancelOrderType id comment extras passphrase""".split()
)


def _fold(key: str) -> str:
    return re.sub(r"[\s_-]", "", key).lower()


_FOLDED_FIELDS = {_fold(name): name for name in _FIELDS}
_SENTIMENT_ALIASES = {"bullish": "long", "bearish": "short"}


def _build_signal(
    body: dict[str, Any],
    where: dict[str, str],
    *,
    source_format: str,
    extras: dict[str, Any],
    target_position: Decimal | None = None,
) -> Signal:
    """Build a Signal from TradersPost-named fields; ``where`` renames fields in error messages."""
    _reject_lookalike_keys(body)

    def get(name: str) -> tuple[Any, str]:
        return body.get(name), where.get(name, name)

    ticker, exchange = _ticker(body, where)
    return Signal(
        ticker=ticker,
        action=_action(body, where),
        sentiment=_choice(Sentiment, *get("sentiment"), aliases=_SENTIMENT_ALIASES),
        quantity=_positive(*get("quantity")),
        quantity_type=_choice(QuantityType, *get("quantityType")),
        order_type=_choice(OrderType, *get("orderType")),
        limit_price=_positive(*get("limitPrice")),
        stop_price=_positive(*get("stopPrice")),
        trail_amount=_positive(*get("trailAmount")),
        trail_percent=_positive(*get("trailPercent")),
        time_in_force=_choice(TimeInForce, *get("timeInForce")),
        extended_hours=_boolean(*get("extendedHours")),
        signal_price=_signal_price(body, where),
        signal_time=_time(*get("time")),
        interval=_text(*get("interval")),
        exchange=exchange,
        take_profit=_take_profit(*get("takeProfit")),
        stop_loss=_stop_loss(*get("stopLoss")),
        cancel_order_type=_choice(OrderType, *get("cancelOrderType")),
        target_position=target_position,
        alert_id=_text(*get("id")),
        comment=_text(*get("comment")),
        source_format=source_format,
        extras=_extras(body, extras),
    )


def _reject_lookalike_keys(body: dict[str, Any]) -> None:
    """Refuse ``order_type``, ``StopLoss`` and the like: ignoring them would change the order."""
    for key in body:
        known = _FOLDED_FIELDS.get(_fold(key))
        if key not in _FIELDS and known:
            raise InvalidField(
                f'"{key}" is not a Viewzenix field; did you mean "{known}"? '
                "Field names are case-sensitive camelCase.",
                field=key,
                expected=known,
            )


def _ticker(body: dict[str, Any], where: dict[str, str]) -> tuple[str, str | None]:
    """Ticker upper-cased; an exchange prefix (``NASDAQ:AAPL``) moves to the exchange."""
    field = where.get("ticker", "ticker")
    value = body.get("ticker")
    exchange = _text(body.get("exchange"), where.get("exchange", "exchange"))
    exchange = exchange.upper() if exchange else None
    if value is None:
        hint = ""
        if "symbol" in body:
            hint = ' It has "symbol": Viewzenix reads the instrument from "ticker".'
        raise MissingTicker(f'The alert has no "{field}".{hint}', field=field)
    if not isinstance(value, str):
        raise InvalidField(f"{field} must be a string; got {_show(value)}", field=field, value=_plain(value))
    if not value.isascii():
        # Checked as sent, before upper(): "ſPY".upper() is "SPY", "ıBM" "IBM", "ß" "SS".
        odd = "".join(dict.fromkeys(c for c in value if not c.isascii()))[:8]
        shown = value if len(value) <= 40 else f"{value[:40]}… ({len(value)} characters)"
        raise InvalidTicker(
            f'{field} "{shown}" holds characters outside ASCII ({odd}): send the symbol in plain '
            'letters and digits, e.g. "SPY".',
            field=field,
            value=shown,
        )
    ticker = value.strip().upper()
    prefix, colon, symbol = ticker.partition(":")
    if colon:
        ticker, prefix = symbol.strip(), prefix.strip()
        if prefix and exchange and prefix != exchange:
            raise InvalidField(
                f'{field} "{value}" names the exchange {prefix} but exchange is {exchange}.',
                field=field,
                value=value,
            )
        exchange = exchange or prefix or None
    if not ticker:
        raise EmptyTicker(f'The alert\'s "{field}" is empty; send the symbol, e.g. "AAPL".', field=field)
    if not TICKER_PATTERN.fullmatch(ticker):
        shown = ticker if len(ticker) <= 40 else f"{ticker[:40]}… ({len(ticker)} characters)"
        raise InvalidTicker(
            f'{field} "{shown}" is not a symbol: use 1 to {MAX_TICKER_LENGTH} letters, digits and '
            '. / ! & _ - or single spaces (e.g. "AAPL", "BRK.B", "BTC/USDT", "ES1!"), optionally '
            'after an exchange prefix ("NASDAQ:AAPL").',
            field=field,
            value=shown,
        )
    return ticker, exchange


def _action(body: dict[str, Any], where: dict[str, str]) -> Action:
    field = where.get("action", "action")
    value = body.get("action")
    allowed = [a.value for a in Action]
    if value is None or (isinstance(value, str) and not value.strip()):
        hint = ""
        if "side" in body:
            hint = ' It has "side": Viewzenix reads the direction from "action".'
        state = "no" if value is None else "an empty"
        raise MissingAction(
            f'The alert has {state} "{field}"; send one of {", ".join(allowed)}.{hint}',
            field=field,
            allowed=allowed,
        )
    if isinstance(value, str) and value.strip().lower() in allowed:
        return Action(value.strip().lower())
    raise UnknownAction(
        f"{field} must be one of {', '.join(allowed)}; got {_show(value)}.",
        field=field,
        value=_plain(value),
        allowed=allowed,
    )


def _signal_price(body: dict[str, Any], where: dict[str, str]) -> Decimal | None:
    signal_price = _positive(body.get("signalPrice"), where.get("signalPrice", "signalPrice"))
    price = _positive(body.get("price"), "price")
    if signal_price is not None and price is not None and signal_price != price:
        raise InvalidField(
            f"signalPrice ({signal_price}) and price ({price}) disagree; send one of them.",
            field="signalPrice",
            value=str(signal_price),
        )
    return signal_price if signal_price is not None else price


def _extras(body: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Unknown fields, then the ``extras`` object's fields, then format-specific ones."""
    explicit = body.get("extras")
    if explicit is not None and not isinstance(explicit, dict):
        raise InvalidField(
            f"extras must be a JSON object; got {_show(explicit)}",
            field="extras",
            value=_plain(explicit),
        )
    unknown = {key: value for key, value in body.items() if key not in _FIELDS}
    return _mask_secrets({**unknown, **(explicit or {}), **extra})


def _take_profit(value: Any, field: str) -> TakeProfit | None:
    """TradersPost: limitPrice, percent or amount, "never together" (``price`` = limitPrice)."""
    if value is None:
        return None
    obj = _nested(value, field, ("limitPrice", "price", "percent", "amount"))
    key, amount = _exactly_one(obj, field, ("limitPrice", "price", "percent", "amount"))
    if key in ("limitPrice", "price"):
        return TakeProfit(limit_price=amount)
    return TakeProfit(percent=amount) if key == "percent" else TakeProfit(amount=amount)


_STOP_LOSS_TYPES = ("stop", "stop_limit", "trailing_stop")
_STOP_LOSS_FIELDS = ("type", "stopPrice", "percent", "amount", "limitPrice")
_TRAIL_FIELDS = ("trailAmount", "trailPercent")


def _stop_loss(value: Any, field: str) -> StopLoss | None:
    """TradersPost stopLoss: type stop|stop_limit|trailing_stop, one trigger, limitPrice.

    A ``trailing_stop`` carries its distance in ``amount`` (from trailAmount) or ``percent``
    (from trailPercent). TradersPost: limitPrice needs stop_limit; trail fields need
    trailing_stop.
    """
    if value is None:
        return None
    obj = _nested(value, field, _STOP_LOSS_FIELDS + _TRAIL_FIELDS)
    kind = _choice(OrderType, obj.get("type"), f"{field}.type", allowed=_STOP_LOSS_TYPES)
    kind = kind or OrderType.STOP
    if kind is OrderType.TRAILING_STOP:
        _forbid(obj, field, ("stopPrice", "percent", "amount", "limitPrice"), "trailing_stop")
        key, distance = _exactly_one(obj, field, _TRAIL_FIELDS)
        if key == "trailAmount":
            return StopLoss(type=kind, amount=distance)
        return StopLoss(type=kind, percent=distance)
    _forbid(obj, field, _TRAIL_FIELDS, kind.value)
    if kind is OrderType.STOP:
        _forbid(obj, field, ("limitPrice",), "stop")
    key, trigger = _exactly_one(obj, field, ("stopPrice", "percent", "amount"))
    limit_price = _positive(obj.get("limitPrice"), f"{field}.limitPrice")
    if key == "stopPrice":
        return StopLoss(type=kind, stop_price=trigger, limit_price=limit_price)
    if key == "percent":
        return StopLoss(type=kind, percent=trigger, limit_price=limit_price)
    return StopLoss(type=kind, amount=trigger, limit_price=limit_price)


def _nested(value: Any, field: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(
            f"{field} must be a JSON object with {_either(allowed)}; got {_show(value)}",
            field=field,
            value=_plain(value),
        )
    for key in value:
        if key not in allowed:
            raise InvalidField(
                f"{field}.{key} is not a {field} field; use {_either(allowed)}.",
                field=f"{field}.{key}",
                allowed=list(allowed),
            )
    return value


def _exactly_one(obj: dict[str, Any], field: str, keys: tuple[str, ...]) -> tuple[str, Decimal]:
    given = [key for key in keys if obj.get(key) is not None]
    if len(given) != 1:
        got = ", ".join(given) if given else "none"
        raise InvalidField(
            f"{field} needs exactly one of {_either(keys)}; got {got}.",
            field=field,
            allowed=list(keys),
        )
    return given[0], _require_positive(obj[given[0]], f"{field}.{given[0]}")


def _forbid(obj: dict[str, Any], field: str, keys: tuple[str, ...], kind: str) -> None:
    for key in keys:
        if obj.get(key) is not None:
            raise InvalidField(f'{field}.{key} cannot be used with "type": "{kind}".', field=f"{field}.{key}")


def _either(names: tuple[str, ...]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


# --- the passphrase/strategy format -----------------------------------------------------------

_STRATEGY_MAPPED = frozenset(
    """position_size order_action order_contracts order_price order_id market_position
    market_position_size""".split()
)


def _strategy_signal(obj: dict[str, Any]) -> Signal:
    """Map hackingthemarkets' passphrase body onto TradersPost fields, then build the signal.

    action ← strategy.order_action, quantity ← strategy.order_contracts, signalPrice ←
    strategy.order_price (else bar.close), sentiment ← strategy.market_position, id ←
    strategy.order_id; target_position ← strategy.position_size (signed), else market_position
    and market_position_size. TradersPost fields given at the top level take precedence.
    """
    strategy: dict[str, Any] = obj["strategy"]
    bar = obj.get("bar")
    if bar is not None and not isinstance(bar, dict):
        raise InvalidField(f"bar must be a JSON object; got {_show(bar)}", field="bar")
    bar = bar or {}
    body = {key: value for key, value in obj.items() if key not in ("strategy", "bar")}
    where: dict[str, str] = {}
    for name, source, source_key, prefix in (
        ("action", strategy, "order_action", "strategy"),
        ("quantity", strategy, "order_contracts", "strategy"),
        ("signalPrice", strategy, "order_price", "strategy"),
        ("signalPrice", bar, "close", "bar"),
        ("sentiment", strategy, "market_position", "strategy"),
        ("id", strategy, "order_id", "strategy"),
    ):
        if name in body or (name == "signalPrice" and "price" in body):
            continue
        where.setdefault(name, f"{prefix}.{source_key}")
        if source.get(source_key) is not None:
            body[name] = source[source_key]
            where[name] = f"{prefix}.{source_key}"
    extras: dict[str, Any] = {}
    if bar:
        extras["bar"] = bar
    leftovers = {key: value for key, value in strategy.items() if key not in _STRATEGY_MAPPED}
    if leftovers:
        extras["strategy"] = leftovers
    return _build_signal(
        body,
        where,
        source_format="strategy",
        extras=extras,
        target_position=_target_position(strategy),
    )


def _target_position(strategy: dict[str, Any]) -> Decimal | None:
    """Signed position after the order (TradingView ``{{strategy.position_size}}``)."""
    if strategy.get("position_size") is not None:
        return _decimal(strategy["position_size"], "strategy.position_size")
    side = _choice(
        Sentiment,
        strategy.get("market_position"),
        "strategy.market_position",
        aliases=_SENTIMENT_ALIASES,
    )
    size = strategy.get("market_position_size")
    if side is None or size is None:
        return None
    size = abs(_decimal(size, "strategy.market_position_size"))
    return {Sentiment.LONG: size, Sentiment.SHORT: -size, Sentiment.FLAT: Decimal(0)}[side]


# --- values -----------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _decimal(value: Any, field: str) -> Decimal:
    """A JSON number or numeric string as Decimal, via ``Decimal(str(x))`` (never a float)."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(str(value))
    elif isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = Decimal(value.strip())
    else:
        raise InvalidField(
            f"{field} must be a number or a numeric string; got {_show(value)}",
            field=field,
            value=_plain(value),
        )
    if number and number.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise InvalidField(f"{field} is too large: {number}", field=field, value=str(number))
    if number and -number.normalize().as_tuple().exponent > _MAX_DECIMAL_PLACES:
        raise InvalidField(
            f"{field} has more than {_MAX_DECIMAL_PLACES} decimal places: {number}",
            field=field,
            value=str(number),
        )
    return number


def _positive(value: Any, field: str) -> Decimal | None:
    return None if value is None else _require_positive(value, field)


def _require_positive(value: Any, field: str) -> Decimal:
    number = _decimal(value, field)
    if number <= 0:
        raise InvalidField(f"{field} must be greater than zero; got {number}", field=field, value=str(number))
    return number


_E = TypeVar("_E", bound=Enum)


def _choice(
    enum: type[_E],
    value: Any,
    field: str,
    *,
    aliases: dict[str, str] | None = None,
    allowed: tuple[str, ...] | None = None,
) -> _E | None:
    """An enum member from its case-insensitive value (or an alias); None stays None."""
    if value is None:
        return None
    values = list(allowed or (member.value for member in enum))
    if isinstance(value, str):
        key = value.strip().lower()
        key = (aliases or {}).get(key, key)
        if key in values:
            return enum(key)
    listed = values + list(aliases or ())
    raise InvalidField(
        f"{field} must be one of {', '.join(listed)}; got {_show(value)}",
        field=field,
        value=_plain(value),
        allowed=listed,
    )


def _boolean(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidField(f"{field} must be true or false; got {_show(value)}", field=field, value=_plain(value))


def _text(value: Any, field: str) -> str | None:
    """A string field, stripped (empty → None); JSON numbers are taken as their text."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    if value is None or isinstance(value, str):
        return (value or "").strip() or None
    raise InvalidField(f"{field} must be a string; got {_show(value)}", field=field, value=_plain(value))


def _time(value: Any, field: str) -> datetime | None:
    """ISO 8601 (TradingView ``{{timenow}}``: ``2025-09-09T14:07:08Z``) or epoch s/ms → UTC.

    A time without an offset is read as UTC (TradingView's time placeholders are UTC).
    """
    if value is None:
        return None
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        try:
            parsed = datetime.fromisoformat(value.strip())
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):  # not ISO 8601, or beyond year 1..9999 once in UTC
            raise _bad_time(value, field) from None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _bad_time(value, field)
    number = _decimal(value, field)
    seconds = number / 1000 if abs(number) >= _EPOCH_MS_THRESHOLD else number
    try:
        return _EPOCH + timedelta(microseconds=int(seconds * 1_000_000))
    except (ArithmeticError, ValueError):
        raise InvalidField(f"{field} is out of range: {number}", field=field, value=str(number)) from None


def _bad_time(value: Any, field: str) -> InvalidField:
    return InvalidField(
        f'{field} must be an ISO 8601 time like "2025-09-09T14:07:08Z" or epoch seconds or '
        f"milliseconds; got {_show(value)}",
        field=field,
        value=_plain(value),
    )


# --- rendering and secrets --------------------------------------------------------------------

# Secret-named keys, as words: matched case-insensitively with or without "_"/"-" between the
# words, so "api_key", "apiKey" and "API-KEY" are all masked.
_SECRET_NAMES = (
    ("passphrase",),
    ("secret",),
    ("password",),
    ("token",),
    ("key",),
    ("api", "key"),
    ("api", "secret"),
    ("api", "token"),
    ("email", "token"),
    ("secret", "key"),
    ("access", "token"),
    ("private", "key"),
)
_SECRET_KEYS = frozenset("".join(words) for words in _SECRET_NAMES)
_SECRET_VALUE = re.compile(
    r"""(?P<key>["'“”‘’]?\b(?:"""
    + "|".join(sorted(("[_-]?".join(words) for words in _SECRET_NAMES), key=len, reverse=True))
    + r""")\b["'“”‘’]?\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\\r\n]|\\.)*"?|“[^”\r\n]*”?|'[^'\r\n]*'?"""
    r"""|\[[^\]\r\n]*\]?|\{[^}\r\n]*\}?|[^\s,;{}\[\]][^\s,;}\]]*)""",
    re.IGNORECASE,
)
_CLOSING_QUOTE = {'"': '"', "'": "'", "“": "”"}


def _mask_secret_match(match: re.Match[str]) -> str:
    opening = match["value"][0]
    if opening in _CLOSING_QUOTE:
        return f"{match['key']}{opening}***{_CLOSING_QUOTE[opening]}"
    if opening in "[{":  # an array or object under a secret name: masked whole
        return f'{match["key"]}"***"'
    return f"{match['key']}***"


def _is_secret(key: Any) -> bool:
    return isinstance(key, str) and key.lower().replace("_", "").replace("-", "") in _SECRET_KEYS


def _mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if _is_secret(k) else _mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(item) for item in value]
    return value


def _stored(value: Any) -> Any:
    """JSON-native copy for jsonb, secrets masked; Decimals as float (str if not finite)."""
    if isinstance(value, dict):
        return {k: "***" if _is_secret(k) else _stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stored(item) for item in value]
    if isinstance(value, Decimal):
        number = float(value)
        return number if math.isfinite(number) else str(value)
    return value


def _plain(value: Any) -> Any:
    """JSON-safe rendering: enums → value, Decimal → str, datetime → ISO 8601 UTC with Z."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _show(value: Any) -> str:
    """A value as JSON text for messages, cut to 80 characters."""
    text = json.dumps(_plain(value), ensure_ascii=False)
    if isinstance(value, Decimal):
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
