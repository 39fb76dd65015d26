"""The bracket half of ``make demo``: SMA-crossover entries with a stop loss and a take profit, on bars.

Data: ``backtesting.test.GOOG`` (daily). Strategy: on SMA(10)/SMA(20) crossing up, buy 10 with a
stop loss 5 % under and a take profit 10 % over the close; crossing down, sell 10 short with the
stop 5 % over and the target 10 % under (prices rounded to cents, the same in both). A reversal
closes the open trade and its legs first (``exclusive_orders``).

Viewzenix side: every bar is POSTed as a bar message (``{"type": "bar", ...}``) on the config's
webhook URL, and on a crossing bar the TradersPost alert follows it (``stopLoss.stopPrice``,
``takeProfit.limitPrice``, ``price`` = the close). Bars and alerts share the symbol's lock, so
they are applied in the order sent; the paper broker works the legs on each new bar. A final
``exit`` alert closes the last trade. backtesting.py side: the same entries with ``sl=`` /
``tp=``, ``trade_on_close=True``, ``exclusive_orders=True``, ``finalize_trades=True``.

Compared: the trades (entry day, side, exit reason stop / target / signal, in order) must be the
same, and the final equities within 0.5 %.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from demo import crossings, tv_number

TICKER = "GOOG"
CONTRACTS = 10
CASH = 100_000
COMMISSION = 0.002
STOP_PCT = Decimal("0.05")
TARGET_PCT = Decimal("0.10")
TOLERANCE_PCT = 0.5
SETTINGS = {
    "starting_cash": "100000",
    "commission_rate": "0.002",
    "slippage_bps": "0",
    "quantity_type": "fixed_quantity",
    "quantity": "10",
    "time_in_force": "gtc",  # backtesting's sl/tp rest until hit or replaced
    "subtract_exit_quantity": False,  # the alert's quantity is the new side's size
    "max_signal_age_seconds": None,
}
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Entry:
    bar: int
    side: int  # +1 long, -1 short
    close: Decimal
    sl: Decimal
    tp: Decimal


def _price(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def entries(data: Any) -> list[Entry]:
    """The crossing bars (``demo.crossings``: backtesting.lib.crossover's rule) with bracket prices."""
    from backtesting.test import SMA

    close = data["Close"].to_numpy(dtype=float)
    fast = SMA(data["Close"], 10).to_numpy()
    slow = SMA(data["Close"], 20).to_numpy()
    found = []
    for i, side in crossings(close, fast, slow):
        c = _price(close[i])
        sl = (c * (1 - STOP_PCT * side)).quantize(CENT)
        tp = (c * (1 + TARGET_PCT * side)).quantize(CENT)
        found.append(Entry(i, side, c, sl, tp))
    return found


def run_backtest(data: Any, planned: list[Entry]) -> Any:
    """backtesting.py's run of the same entries with sl= / tp=; return its stats Series."""
    from backtesting import Backtest, Strategy

    by_bar = {e.bar: e for e in planned}

    class SmaBracket(Strategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            entry = by_bar.get(len(self.data) - 1)
            if entry is None:
                return
            order = self.buy if entry.side > 0 else self.sell
            order(size=CONTRACTS, sl=float(entry.sl), tp=float(entry.tp))

    bt = Backtest(
        data,
        SmaBracket,
        cash=CASH,
        commission=COMMISSION,
        trade_on_close=True,
        exclusive_orders=True,
        finalize_trades=True,
    )
    return bt.run()


def backtest_trades(stats: Any, days: list[str]) -> list[tuple[str, str, str]]:
    """(entry day, side, exit reason) of backtesting's trades; the reason read from the exit price."""
    trades = []
    for _, t in stats["_trades"].iterrows():
        long = t["Size"] > 0
        exit_price, sl, tp = float(t["ExitPrice"]), float(t["SL"]), float(t["TP"])
        if (exit_price <= sl) if long else (exit_price >= sl):
            reason = "stop"
        elif (exit_price >= tp) if long else (exit_price <= tp):
            reason = "target"
        else:
            reason = "signal"
        trades.append((days[int(t["EntryBar"])], "long" if long else "short", reason))
    return trades


def bar_body(data: Any, i: int) -> str:
    row = data.iloc[i]
    return json.dumps(
        {
            "type": "bar",
            "ticker": TICKER,
            "interval": "1D",
            "time": f"{data.index[i]:%Y-%m-%d}T00:00:00Z",
            "open": tv_number(row["Open"]),
            "high": tv_number(row["High"]),
            "low": tv_number(row["Low"]),
            "close": tv_number(row["Close"]),
            "volume": tv_number(row["Volume"]),
        }
    )


def alert_body(day: str, action: str, close: Decimal, entry: Entry | None) -> str:
    body: dict[str, Any] = {
        "ticker": TICKER,
        "action": action,
        "quantity": CONTRACTS,
        "price": tv_number(close),
        "time": f"{day}T20:00:00Z",
        "interval": "1D",
    }
    if entry is not None:
        body["stopLoss"] = {"type": "stop", "stopPrice": str(entry.sl)}
        body["takeProfit"] = {"limitPrice": str(entry.tp)}
    return json.dumps(body)


def our_trades(orders: list[dict[str, Any]], days_by_signal: dict[str, str]) -> list[tuple[str, str, str]]:
    """(entry day, side, exit reason) of our filled entries, in the order their alerts were sent."""
    legs: dict[str, list[dict[str, Any]]] = {}
    for o in orders:
        if o.get("parent_order_id"):
            legs.setdefault(o["parent_order_id"], []).append(o)
    order_of = {s: n for n, s in enumerate(days_by_signal)}
    entries_filled = sorted(
        (o for o in orders if o["purpose"] == "entry" and o["status"] == "filled"),
        key=lambda o: order_of.get(str(o["signal_id"]), 0),
    )
    trades = []
    for o in entries_filled:
        filled = {leg["purpose"] for leg in legs.get(o["id"], []) if leg["status"] == "filled"}
        reason = "stop" if "stop_loss" in filled else "target" if "take_profit" in filled else "signal"
        side = "long" if o["side"] == "buy" else "short"
        trades.append((days_by_signal[str(o["signal_id"])], side, reason))
    return trades


def run(stack_factory: Any, api_factory: Any, *, verbose: bool, timeout: float) -> bool:
    """Run the bracket comparison on its own stack; print the table; return whether it passed."""
    from backtesting.test import GOOG

    data = GOOG
    days = [f"{ts:%Y-%m-%d}" for ts in data.index]
    planned = entries(data)
    stats = run_backtest(data, planned)
    by_bar = {e.bar: e for e in planned}
    last = len(data) - 1

    with stack_factory("demo-bracket", settings=SETTINGS) as stack:
        print(f"\nbracket stack up: {stack.base_url} (config {stack.config_id}); log {stack.log_path}")
        api = api_factory(stack.base_url, stack.access_token, stack.config_id)
        days_by_signal: dict[str, str] = {}
        started = time.monotonic()
        bars_sent = 0
        with requests.Session() as session:

            def post(body: str) -> dict[str, Any]:
                response = session.post(
                    stack.webhook_url,
                    data=body.encode(),
                    headers={"Content-Type": "application/json"},
                    timeout=10,
                )
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}\nbody: {body}")
                return response.json()

            for i in range(len(data)):
                post(bar_body(data, i))
                bars_sent += 1
                entry = by_bar.get(i)
                if entry is not None:
                    action = "buy" if entry.side > 0 else "sell"
                    answer = post(alert_body(days[i], action, entry.close, entry))
                    days_by_signal[answer["signal_id"]] = days[i]
                    if verbose:
                        print(f"  {days[i]} {action:<4} @ {entry.close} sl {entry.sl} tp {entry.tp}")
            # backtesting's finalize_trades with trade_on_close closes at the previous bar's close.
            final = post(alert_body(days[last], "exit", _price(data["Close"].iloc[last - 1]), None))
            days_by_signal[final["signal_id"]] = days[last]
        sent_s = time.monotonic() - started
        deadline = time.monotonic() + timeout
        while True:
            pending = api.total("/api/signals", status="accepted") + api.total(
                "/api/signals", status="submitting"
            )
            bars = api.get(f"/api/webhook-configs/{stack.config_id}/bars", limit=1).json()
            if not pending and bars and bars[0]["status"] != "accepted":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"bars or signals still pending after {timeout:.0f} s; see {stack.log_path}"
                )
            time.sleep(0.5)
        done_s = time.monotonic() - started
        orders = api.all_pages("/api/orders")
        account = api.get("/api/account", config_id=stack.config_id).json()
        series = api.get(f"/api/webhook-configs/{stack.config_id}/equity-series", limit=50000).json()

    ours = our_trades(orders, days_by_signal)
    theirs = backtest_trades(stats, days)
    ours_equity = float(account["equity"])
    bt_equity = float(stats["Equity Final [$]"])
    diff_pct = (ours_equity - bt_equity) / bt_equity * 100
    reasons = {r: sum(1 for t in ours if t[2] == r) for r in ("stop", "target", "signal")}
    bt_reasons = {r: sum(1 for t in theirs if t[2] == r) for r in ("stop", "target", "signal")}
    mismatches = [(n, a, b) for n, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b]

    print(
        f"\nGOOG daily bracket: SMA(10)/SMA(20) entries, stop {STOP_PCT:.0%}, target {TARGET_PCT:.0%}, "
        f"{CONTRACTS} shares, commission {COMMISSION:.1%} per fill"
    )
    rows = [
        ("bars pushed (POST, all 200)", f"{bars_sent}", ""),
        ("alerts sent", f"{len(days_by_signal)}", ""),
        ("equity points (one per bar)", f"{len(series)}", ""),
        ("trades", f"{len(ours)}", f"{len(theirs)}"),
        (
            "exits: stop / target / signal",
            "{stop} / {target} / {signal}".format(**reasons),
            "{stop} / {target} / {signal}".format(**bt_reasons),
        ),
        ("final equity [$]", f"{ours_equity:.4f}", f"{bt_equity:.4f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':<{width}}  {'Viewzenix (paper, bars)':>24}  {'backtesting.py':>16}")
    for label, a, b in rows:
        print(f"{label:<{width}}  {a:>24}  {b:>16}")
    print(f"{'equity difference':<{width}}  {diff_pct:>+23.4f}%")
    print(
        f"sent {bars_sent} bars and {len(days_by_signal)} alerts in {sent_s:.1f} s; "
        f"all applied after {done_s:.1f} s"
    )
    for n, a, b in mismatches[:10]:
        print(f"  trade {n}: ours {a} vs backtesting {b}")
    ok = ours == theirs and abs(diff_pct) <= TOLERANCE_PCT
    print(
        f"\n{'PASS' if ok else 'FAIL'} (bracket): same trades and exit reasons: {ours == theirs}; "
        f"equity within {abs(diff_pct):.4f}% (limit {TOLERANCE_PCT}%)"
    )
    return ok
