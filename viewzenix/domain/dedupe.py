"""Which alerts are the same alert: the dedupe key of an accepted alert.

TradingView sends an alert again after a 5xx (5 s apart, up to 3 more times), alerts can arrive
twice (docs/tradingview.md), and users fire one alert from two alert rules. Within a config's window
(``dedupe_window_seconds``) alerts with the same key become one signal.

- An explicit top-level ``id`` names the alert: the key is that id together with the alert's
  ticker and action, so two bodies with one id are the same alert even when other fields (a
  ``time``, a price) differ. Scoping by ticker and action never misses a resend (a resend trades
  the same symbol the same way) and keeps the common ``"id": "{{strategy.order.id}}"`` — an
  order *name* such as ``Long``, repeated by every trade and by every symbol of a watchlist alert
  — from merging different symbols, or the two sides of an ``Exit``.
- TradersPost's webhook schema has no ``id`` request field (its ``id`` is in the answer), so an
  id is a user convention. The passphrase format's ``strategy.order_id`` (parsed as the signal's
  ``alert_id``) is always ``{{strategy.order.id}}`` in the published templates: an order name,
  not an alert's identity, so it is not used; those alerts are keyed by body.
- Otherwise the key is the SHA-256 of the body as stored (secret values masked): the exact
  bytes of a resend. An unsalted fast hash of the unmasked body would let anyone who can read it
  test guesses of a ``passphrase`` offline.

An id repeats (``Long`` every trade), so no id is unique forever: ids and bodies share the one
short window.
"""

from __future__ import annotations

import hashlib

from viewzenix.domain.parsing import ParsedAlert

_SEPARATOR = "\x1f"  # ASCII unit separator: cannot occur in a ticker or an action


def dedupe_key(parsed: ParsedAlert, stored_body: str) -> str:
    """Return the dedupe key of an accepted alert: ``id:<sha256 hex>`` or ``body:<sha256 hex>``.

    ``stored_body``: the raw body as stored (``redact_raw_body``). Hashing keeps every key short
    (67 or 69 characters) whatever the length of the id, which may be most of a 64 KiB body.
    """
    signal = parsed.signal
    if signal.alert_id is not None and "id" in parsed.payload:
        scoped = _SEPARATOR.join((signal.ticker, str(signal.action), signal.alert_id))
        return "id:" + hashlib.sha256(scoped.encode("utf-8")).hexdigest()
    return "body:" + hashlib.sha256(stored_body.encode("utf-8")).hexdigest()
