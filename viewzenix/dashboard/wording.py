"""Plain words for what the dashboard shows: a signal's outcome, an order's state and purpose.

Presentation only (no I/O): the rows come from the services; codes stay available to the
templates for a hover title or a detail line, never as the words themselves.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

OPEN_STATUSES = frozenset({"pending_new", "held", "submitted", "accepted", "partially_filled"})
# Which orders answer "what did this alert do": the ones it placed itself, not its bracket legs.
MAIN_PURPOSES = frozenset({"entry", "exit"})
PURPOSE_WORDS = {"entry": "entry", "exit": "exit", "take_profit": "take profit", "stop_loss": "stop loss"}
ORDER_TYPE_WORDS = {
    "market": "market",
    "limit": "limit",
    "stop": "stop",
    "stop_limit": "stop limit",
    "trailing_stop": "trailing stop",
}
TIME_IN_FORCE_WORDS = {
    "day": "Day (until the close)",
    "gtc": "Good till canceled",
    "opg": "At the open",
    "cls": "At the close",
    "ioc": "Immediate or cancel",
    "fok": "Fill or kill",
}
SIGNAL_WORDS = {
    "accepted": ("working", "waiting for the worker"),
    "submitting": ("working", "being sent to the broker"),
    "ignored": ("ignored", "nothing to do"),
    "duplicate": ("ignored", "duplicate of an earlier alert: ran nothing"),
    "failed": ("failed", "failed (retried automatically)"),
    "awaiting_approval": ("working", "waiting for your approval"),
}


# Our client_order_id (engine._LEG_CODES: vzx-<signal>-<leg>) and setting names, as words.
_ORDER_ID = re.compile(r"\bvzx-[0-9a-f]{32}-(en|ex|tp|sl)\b")
_LEG_WORDS = {
    "en": "the entry order",
    "ex": "the exit order",
    "tp": "the take-profit order",
    "sl": "the stop-loss order",
}
_SETTING_WORDS = {
    "allowed_symbols": "the allowed symbols",
    "max_position_qty": "the largest position (shares)",
    "max_position_notional": "the largest position ($)",
    "max_signal_age_seconds": "the oldest alert accepted",
    "dedupe_window_seconds": "the duplicate window",
}
_SETTING = re.compile(r"\b(" + "|".join(_SETTING_WORDS) + r")\b")


def plain_message(text: str | None) -> str:
    """Return ``text`` with our internal order ids and setting names replaced by words."""
    if not text:
        return ""
    text = _ORDER_ID.sub(lambda m: _LEG_WORDS[m.group(1)], text)
    return _SETTING.sub(lambda m: _SETTING_WORDS[m.group(1)], text)


def plain_number(value: Any) -> str:
    """Return a quantity or price as written: 10, 0.5, 1,250.75 (no trailing zeros, no exponent)."""
    if value is None:
        return "—"
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return f"{number.quantize(Decimal(1)):,}"
    return f"{number.normalize():,f}"


def order_phrase(order: dict[str, Any]) -> str:
    """Return "buy 5 NVDA limit 136.00" for an order row or brief (side, qty, symbol, type, levels)."""
    words = [order["side"], plain_number(order["qty"]), order.get("symbol") or ""]
    kind = order.get("order_type") or "market"
    if kind != "market":
        words.append(ORDER_TYPE_WORDS.get(kind, kind))
    if order.get("limit_price") is not None:
        words.append(f"@ {Decimal(str(order['limit_price'])):,.2f}")
    if order.get("stop_price") is not None:
        words.append(f"stop {Decimal(str(order['stop_price'])):,.2f}")
    return " ".join(w for w in words if w)


def signal_outcome(row: dict[str, Any]) -> tuple[str, str, str | None]:
    """Return ``(css class, words, code)`` for a signal row with its ``order_brief``.

    Words: "filled", "partly filled", "working (not filled)", "denied: <reason>",
    "refused: <reason>", "canceled", ... — from the signal's own orders when it placed any, so a
    limit entry that only rests reads "working (not filled)", not "executed".
    """
    status = row["status"]
    if status == "rejected":
        message = plain_message(row.get("reject_message")) or "the alert was refused"
        return "rejected", f"refused: {message}", row.get("reject_code")
    orders = [o for o in row.get("order_brief") or [] if o["purpose"] in MAIN_PURPOSES]
    if status == "denied" or any(o["status"] == "denied" for o in orders):
        denied = next((o for o in orders if o["status"] == "denied"), None)
        reason = plain_message((denied and denied.get("status_message")) or row.get("outcome_message"))
        return "denied", f"denied: {reason or 'refused by your rules'}", denied and denied.get("status_code")
    if orders:
        statuses = [o["status"] for o in orders]
        if all(s == "filled" for s in statuses):
            return "filled", "filled", None
        if any(s == "rejected" for s in statuses):
            rejected = next(o for o in orders if o["status"] == "rejected")
            words = f"refused by the broker: {plain_message(rejected.get('status_message'))}".rstrip(": ")
            return "rejected", words, rejected.get("status_code")
        if any(Decimal(str(o.get("filled_qty") or 0)) > 0 for o in orders):
            return "working", "partly filled", None
        if any(s in OPEN_STATUSES for s in statuses):
            return "working", "working (not filled)", None
        if all(s in ("canceled", "expired") for s in statuses):
            return "ignored", "canceled" if "canceled" in statuses else "expired", None
    if status in SIGNAL_WORDS:
        css, words = SIGNAL_WORDS[status]
        return css, words, None
    return "ignored", status, None


def signal_reason(row: dict[str, Any]) -> str:
    """Return what the alert did in plain words: "buy 3 MSFT → filled 3 @ 410.25; ...", else its message."""
    parts = []
    for order in row.get("order_brief") or []:
        phrase = f"{PURPOSE_WORDS.get(order['purpose'], order['purpose'])}: {order_phrase(order)}"
        if order["status"] == "filled":
            phrase += f" → filled @ {Decimal(str(order['filled_avg_price'])):,.2f}"
        elif order["status"] in OPEN_STATUSES:
            phrase += " → working" if order["status"] != "held" else " → waiting for the entry"
        else:
            phrase += f" → {order['status']}"
        parts.append(phrase)
    if parts:
        return "; ".join(parts)
    return plain_message(row.get("reject_message") or row.get("outcome_message"))


def protective_pnl(order: dict[str, Any]) -> Decimal | None:
    """Return the gross P&L of a filled stop loss / take profit against its entry, else None.

    (fill price − the entry's average price) × filled quantity, negated for a short entry;
    before commissions. None without a parent entry price (not a bracket leg).
    """
    if order.get("purpose") not in ("stop_loss", "take_profit") or order.get("status") != "filled":
        return None
    entry, exit_ = order.get("parent_avg_price"), order.get("filled_avg_price")
    if entry is None or exit_ is None:
        return None
    direction = 1 if order.get("parent_side") == "buy" else -1
    return (Decimal(str(exit_)) - Decimal(str(entry))) * Decimal(str(order["filled_qty"])) * direction


def signed_money(value: Decimal) -> str:
    """Return "+12.50" or "−20.00" (a true minus sign)."""
    return f"{value:+,.2f}".replace("-", "\u2212")
