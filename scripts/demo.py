"""Replay a classic strategy through the running app and compare it with ``backtesting.py``.

``make demo`` (or ``.venv/bin/python scripts/demo.py``) measures whether Viewzenix, driven only by
TradingView-shaped webhooks, ends where an independent backtester ends:

* Data: ``backtesting.test.GOOG`` (daily bars 2004-08-19 .. 2013-03-01, shipped with PyPI's
  ``backtesting``). Strategy: SMA(10)/SMA(20) crossover, long and short, always in the market,
  10 shares (TradingView "Order size: 10 contracts").
* Each crossing is rendered from the published TradersPost strategy template (line index 1 of
  ``tests/fixtures/tradingview_alerts.jsonl``) with the placeholders filled as TradingView would
  fill them, and POSTed to a fresh stack (``scripts/stack.py``: embedded Postgres in
  ``.data/demo``, gunicorn, worker). A final ``exit`` alert closes the last trade.
* The same strategy runs in ``backtesting.Backtest(..., commission=0.002, trade_on_close=True,
  exclusive_orders=True, finalize_trades=True)``.

It prints a table and exits 1 unless both sides closed the same number of trades and the final
equities are within 0.5 %, or unless ``GET /metrics`` (scraped before and after) shows the
intake, signal, order and job counters moving by what was sent. Flags (``--help``):
``--exit-price`` picks the final exit's price, ``--burst`` sends without waiting for each signal
to be processed, ``--verbose`` shows every alert with its outcome, ``--broker alpaca-fake``
trades through the Alpaca adapter instead of the paper broker: the config's broker is
``alpaca``, its keys point at a FAKE of Alpaca's REST API served by this script on loopback
(``tests/fakes/alpaca_api.py``; each alert's close is set as the fake's market price before the
alert is sent, market orders fill at it), and the backtest runs without commission, as Alpaca
charges none.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import PROJECT_ROOT, running_stack

TEMPLATE_FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "tradingview_alerts.jsonl"
TEMPLATE_LINE = 1  # the TradersPost "TradingView strategy template"
TICKER = "GOOG"
CONTRACTS = 10
CASH = 100_000
COMMISSION = 0.002
TOLERANCE_PCT = 0.5
SETTINGS = {
    "starting_cash": "100000",
    "commission_rate": "0.002",
    "slippage_bps": "0",
    "quantity_type": "fixed_quantity",
    "quantity": "10",
    # The alerts carry 2004-2013 times: no stale-signal rule.
    "max_signal_age_seconds": None,
}


def load_template() -> str:
    """Return the TradersPost strategy template body, byte for byte from the fixture."""
    lines = TEMPLATE_FIXTURE.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[TEMPLATE_LINE])
    body = record["body"]
    for placeholder in ("{{ticker}}", "{{strategy.order.action}}", "{{close}}", "{{timenow}}"):
        if placeholder not in body:
            raise SystemExit(f"{TEMPLATE_FIXTURE}:{TEMPLATE_LINE + 1} is not the strategy template")
    return body


def tv_number(value: float) -> str:
    """Render a price as TradingView prints ``{{close}}``: plain decimal, no trailing zeros."""
    return np.format_float_positional(float(value), precision=8, unique=True, trim="-")


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{{placeholder}}`` occurrences; every placeholder of the template must be given."""
    body = template
    for key, value in values.items():
        body = body.replace("{{" + key + "}}", value)
    if "{{" in body:
        raise ValueError(f"unfilled placeholder in {body!r}")
    return body


@dataclass(frozen=True)
class Alert:
    """One alert to send: the bar it belongs to, the order it describes, the rendered body."""

    bar: int
    day: str
    action: str
    sentiment: str
    contracts: int
    price: float
    body: str


def crossings(close: np.ndarray, fast: np.ndarray, slow: np.ndarray) -> Iterator[tuple[int, int]]:
    """Yield ``(bar, +1 | -1)`` where ``fast`` crosses above (+1) or below (-1) ``slow``.

    Exactly ``backtesting.lib.crossover``'s rule, evaluated at each bar ``i`` on the arrays up to
    ``i``: ``a[-2] < b[-2] and a[-1] > b[-1]`` (NaN compares False, as in the warm-up bars that
    backtesting skips). The last bar is excluded: backtesting would fill an order placed there
    only in its finalize pass, not on a crossing of its own.
    """
    with np.errstate(invalid="ignore"):
        for i in range(1, len(close) - 1):
            if fast[i - 1] < slow[i - 1] and fast[i] > slow[i]:
                yield i, +1
            elif slow[i - 1] < fast[i - 1] and slow[i] > fast[i]:
                yield i, -1


def build_alerts(data: Any, exit_price_mode: str) -> list[Alert]:
    """Render the strategy's alerts for ``data`` (OHLC DataFrame) as TradingView would send them.

    ``{{strategy.order.contracts}}`` is 10 on the first entry and 20 on a reversal (TradingView
    counts the contracts that close the old side); ``{{strategy.market_position}}`` is the side
    after the order; ``{{timenow}}`` is the bar's date at 20:00:00Z; ``{{interval}}`` is ``1D``.
    """
    from backtesting.test import SMA

    template = load_template()
    close = data["Close"].to_numpy(dtype=float)
    fast = SMA(data["Close"], 10).to_numpy()
    slow = SMA(data["Close"], 20).to_numpy()
    days = [ts.strftime("%Y-%m-%d") for ts in data.index]
    alerts: list[Alert] = []
    position = 0
    for bar, direction in crossings(close, fast, slow):
        action = "buy" if direction > 0 else "sell"
        sentiment = "long" if direction > 0 else "short"
        contracts = CONTRACTS + abs(position)
        position = CONTRACTS * direction
        alerts.append(_alert(template, bar, days[bar], action, sentiment, contracts, close[bar]))
    if position:
        # backtesting's finalize pass with trade_on_close fills at the previous bar's close
        # (``data.Close[-2]``); TradingView's {{close}} on the last bar is the last close.
        last = len(close) - 1
        price = close[last] if exit_price_mode == "last-close" else close[last - 1]
        alerts.append(_alert(template, last, days[last], "exit", "flat", abs(position), price))
    return alerts


def _alert(
    template: str, bar: int, day: str, action: str, sentiment: str, contracts: int, price: float
) -> Alert:
    body = render(
        template,
        {
            "ticker": TICKER,
            "strategy.order.action": action,
            "strategy.market_position": sentiment,
            "strategy.order.contracts": str(contracts),
            "close": tv_number(price),
            "timenow": f"{day}T20:00:00Z",
            "interval": "1D",
        },
    )
    return Alert(bar, day, action, sentiment, contracts, float(price), body)


def run_backtest(data: Any, commission: float = COMMISSION) -> Any:
    """Run backtesting.py's own simulation of the strategy; return its stats Series."""
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import SMA

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(SMA, self.data.Close, 10)
            self.slow = self.I(SMA, self.data.Close, 20)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy(size=CONTRACTS)
            elif crossover(self.slow, self.fast):
                self.sell(size=CONTRACTS)

    bt = Backtest(
        data,
        SmaCross,
        cash=CASH,
        commission=commission,
        trade_on_close=True,
        exclusive_orders=True,
        finalize_trades=True,
    )
    return bt.run()


class Api:
    """The few REST calls the demo needs, with the bearer token."""

    def __init__(self, base_url: str, token: str, config_id: str) -> None:
        self.base_url = base_url
        self.config_id = config_id
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: Any) -> requests.Response:
        response = self.session.get(f"{self.base_url}{path}", params=params, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: HTTP {response.status_code} {response.text[:500]}")
        return response

    def total(self, path: str, **params: Any) -> int:
        """Return ``X-Pagination.total`` of a list endpoint (0 for an empty list)."""
        response = self.get(path, config_id=self.config_id, page_size=1, **params)
        header = response.headers.get("X-Pagination")
        if header:
            return int(json.loads(header)["total"])
        return len(response.json())

    def all_pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.get(path, config_id=self.config_id, page=page, page_size=100, **params)
            batch = response.json()
            rows.extend(batch)
            header = json.loads(response.headers.get("X-Pagination") or "{}")
            if not batch or page >= int(header.get("total_pages", page)):
                return rows
            page += 1


def send_alerts(
    webhook_url: str,
    alerts: list[Alert],
    verbose: bool,
    api: Api | None,
    before: Any = None,
    pending: tuple[str, ...] = ("accepted",),
) -> list[str]:
    """POST every alert in order; return the signal ids. Raises RuntimeError on a non-200.

    With ``api``, wait for each signal to leave ``accepted`` before sending the next one, as a
    daily strategy's alerts (a day apart) would; without it, send them back to back.
    ``before(alert)`` runs before each alert is sent (the fake Alpaca's market price);
    ``pending``: the statuses waited out (with the fake Alpaca also ``submitting``, while the
    orders are in flight at the price set for that alert).
    """
    ids: list[str] = []
    with requests.Session() as session:
        for alert in alerts:
            if before is not None:
                before(alert)
            response = session.post(
                webhook_url,
                data=alert.body.encode(),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"alert for {alert.day} ({alert.action} {alert.contracts}) answered "
                    f"HTTP {response.status_code}: {response.text[:500]}\nbody: {alert.body}"
                )
            signal_id = response.json()["signal_id"]
            ids.append(signal_id)
            outcome = ""
            if api is not None:
                outcome = wait_signal(api, signal_id, timeout=30.0, pending=pending)
            if verbose:
                print(f"  {alert.day} {alert.action:<4} {alert.contracts:>2} @ {alert.price} {outcome}")
    return ids


def wait_signal(api: Api, signal_id: str, timeout: float, pending: tuple[str, ...] = ("accepted",)) -> str:
    """Poll one signal until its status leaves ``pending``; return its status and outcome message."""
    deadline = time.monotonic() + timeout
    while True:
        row = api.get(f"/api/signals/{signal_id}").json()
        if row["status"] not in pending:
            return f"{row['status']}: {row.get('outcome_message') or row.get('reject_message') or ''}"
        if time.monotonic() > deadline:
            raise RuntimeError(f"signal {signal_id} not processed after {timeout:.0f} s")
        time.sleep(0.01)


def wait_processed(api: Api, expected: int, timeout: float) -> dict[str, int]:
    """Poll until no signal of the config is accepted or submitting; return counts per status."""
    deadline = time.monotonic() + timeout
    pending = expected
    while time.monotonic() < deadline:
        pending = api.total("/api/signals", status="accepted") + api.total(
            "/api/signals", status="submitting"
        )
        if pending == 0:
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(
            f"{pending} of {expected} signals still 'accepted' or 'submitting' (not processed) after "
            f"{timeout:.0f} s: is the worker running? See the stack log."
        )
    statuses = ("accepted", "submitting", "executed", "ignored", "denied", "rejected", "failed", "duplicate")
    return {status: api.total("/api/signals", status=status) for status in statuses}


def closed_trades(signal_ids: list[str], orders: list[dict[str, Any]]) -> tuple[int, Decimal]:
    """Count round trips closed, walking the signals in send order; return ``(count, final qty)``.

    A signal's orders are netted (buy - sell filled qty) so a reversal sent as one order of 20 or
    as an exit plus an entry counts the same: one trade closed whenever a non-zero position goes
    to zero or changes sign.
    """
    net: dict[str, Decimal] = {}
    for order in orders:
        qty = Decimal(order.get("filled_qty") or "0")
        sign = 1 if order["side"] == "buy" else -1
        key = str(order.get("signal_id"))
        net[key] = net.get(key, Decimal("0")) + sign * qty
    position = Decimal("0")
    closed = 0
    for signal_id in signal_ids:
        after = position + net.get(signal_id, Decimal("0"))
        if position != 0 and (after == 0 or (after > 0) != (position > 0)):
            closed += 1
        position = after
    return closed, position


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return 0 when trade counts match and equities agree within 0.5 %."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--exit-price",
        choices=("last-close", "finalize"),
        default="last-close",
        help="price of the final exit alert: the last bar's close, as TradingView's {{close}} "
        "would read (default), or the close backtesting's finalize_trades actually fills at "
        "with trade_on_close (the previous bar's close), for a like-for-like comparison",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the worker")
    parser.add_argument(
        "--burst",
        action="store_true",
        help="send all alerts back to back instead of waiting for each to be processed",
    )
    parser.add_argument("--verbose", action="store_true", help="print every alert sent")
    parser.add_argument(
        "--strategy",
        choices=("both", "crossover", "bracket"),
        default="both",
        help="crossover: the SMA crossover on alerts; bracket: SMA entries with stop loss and take "
        "profit on pushed bars (scripts/demo_bracket.py); both (default): one after the other",
    )
    parser.add_argument(
        "--broker",
        choices=("simulated", "alpaca-fake"),
        default="simulated",
        help="simulated: the paper broker (default); alpaca-fake: the Alpaca adapter against a fake "
        "of Alpaca's REST API on loopback (no commission on either side)",
    )
    args = parser.parse_args(argv)
    alpaca = args.broker == "alpaca-fake"
    if alpaca and args.burst:
        parser.error("--broker alpaca-fake sets the fake's price before each alert: it cannot --burst")
    commission = 0.0 if alpaca else COMMISSION

    # backtesting 0.6.6 calls pandas APIs deprecated in the installed pandas (e.g.
    # DatetimeIndex.dayofweek in _stats.py) and warns about them; that is its own noise, not a
    # finding about this comparison, so its warnings are silenced (only those from its modules).
    warnings.filterwarnings("ignore", module=r"backtesting(\..*)?$")
    from backtesting.test import GOOG

    bracket_ok = True
    if args.strategy in ("both", "bracket") and not alpaca:
        import demo_bracket

        bracket_ok = demo_bracket.run(
            running_stack, Api, verbose=args.verbose, timeout=max(args.timeout, 2400)
        )
        if args.strategy == "bracket":
            return 0 if bracket_ok else 1

    alerts = build_alerts(GOOG, args.exit_price)
    stats = run_backtest(GOOG, commission)

    with contextlib.ExitStack() as context:
        before = None
        settings: dict[str, Any] = SETTINGS
        extra_env: dict[str, str] = {}
        if alpaca:
            fake = context.enter_context(fake_alpaca())
            settings = {**SETTINGS, "broker": "alpaca", "commission_rate": "0"}
            extra_env = {"ALPACA_REQUESTS_PER_MINUTE": "100000"}  # a fake: no need to pace

            def before(alert: Alert) -> None:
                fake.set_price(TICKER, tv_number(alert.price))

        name = "demo-alpaca" if alpaca else "demo"
        stack = context.enter_context(running_stack(name, settings=settings, extra_env=extra_env))
        if alpaca:
            connect_fake_alpaca(stack, fake)
        print(f"stack up: {stack.base_url} (config {stack.config_id}); log {stack.log_path}")
        api = Api(stack.base_url, stack.access_token, stack.config_id)
        metrics_before = scrape_metrics(stack.base_url)
        started = time.monotonic()
        signal_ids = send_alerts(
            stack.webhook_url,
            alerts,
            args.verbose,
            None if args.burst else api,
            before=before,
            pending=("accepted", "submitting") if alpaca else ("accepted",),
        )
        sent_s = time.monotonic() - started
        statuses = wait_processed(api, len(alerts), args.timeout)
        done_s = time.monotonic() - started
        orders = api.all_pages("/api/orders")
        fills = []
        for order in orders:
            fills.extend(api.get(f"/api/orders/{order['id']}").json().get("fills") or [])
        positions = api.get("/api/positions", config_id=stack.config_id).json()
        account = api.get("/api/account", config_id=stack.config_id).json()
        metrics_after = scrape_metrics(stack.base_url)

    ours_trades, final_qty = closed_trades(signal_ids, orders)
    ours_equity = Decimal(account["equity"])
    bt_trades = int(stats["# Trades"])
    bt_equity = float(stats["Equity Final [$]"])
    diff_pct = (float(ours_equity) - bt_equity) / bt_equity * 100
    order_status: dict[str, int] = {}
    for order in orders:
        order_status[order["status"]] = order_status.get(order["status"], 0) + 1
    commissions = sum(Decimal(f.get("commission") or "0") for f in fills)

    rows = [
        ("alerts sent (POST, all 200)", f"{len(alerts)}", ""),
        ("signals by status", _fmt_counts(statuses), ""),
        ("orders", f"{len(orders)} ({_fmt_counts(order_status)})", ""),
        ("fills", f"{len(fills)}", ""),
        ("commissions [$]", f"{commissions:.4f}", f"{stats.get('Commissions [$]', 0.0):.4f}"),
        ("open position after exit", f"{final_qty} ({len(positions)} open rows)", "0"),
        ("closed trades", f"{ours_trades}", f"{bt_trades}"),
        ("final equity [$]", f"{ours_equity:.4f}", f"{bt_equity:.4f}"),
        ("cash / realized P&L [$]", f"{account['cash']} / {account['realized_pnl']}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    print(
        f"GOOG daily {GOOG.index[0]:%Y-%m-%d}..{GOOG.index[-1]:%Y-%m-%d}, SMA(10)/SMA(20) "
        f"crossover, {CONTRACTS} shares, commission {commission:.1%} per fill"
    )
    ours_label = "Viewzenix (Alpaca, fake)" if alpaca else "Viewzenix (paper)"
    print(f"{'':<{width}}  {ours_label:>28}  {'backtesting.py':>16}")
    print(f"{'-' * width}  {'-' * 28}  {'-' * 16}")
    for label, ours, theirs in rows:
        print(f"{label:<{width}}  {ours:>28}  {theirs:>16}")
    print(f"{'equity difference':<{width}}  {diff_pct:>+27.4f}%")
    mode = "back to back" if args.burst else "each after the previous one was processed"
    print(f"\nsent {len(alerts)} alerts ({mode}) in {sent_s:.1f} s; all processed after {done_s:.1f} s")
    last_trade = stats["_trades"].iloc[-1]
    if args.exit_price == "last-close" and alerts[-1].action == "exit":
        # Our last trade closes at the last close, backtesting's at its finalize price: the
        # difference in P&L is size x price gap, less the commission on that gap.
        gap = alerts[-1].price - float(last_trade["ExitPrice"])
        size = float(last_trade["Size"])
        explained = gap * (size - abs(size) * commission)
        residual = float(ours_equity) - bt_equity - explained
        print(
            f"note: the final exit was sent at the last close ({tv_number(alerts[-1].price)}); "
            f"backtesting's finalize_trades fills at {tv_number(last_trade['ExitPrice'])}, the "
            f"previous bar's close (trade_on_close re-uses Close[-2]).\n      That explains "
            f"{explained:+.4f} $ of the {float(ours_equity) - bt_equity:+.4f} $ difference "
            f"(residual {residual:+.4f} $); --exit-price finalize sends the same price as backtesting."
        )

    metrics_ok = report_metrics(metrics_before, metrics_after, len(alerts), len(orders))
    ok = ours_trades == bt_trades and math.isfinite(diff_pct) and abs(diff_pct) <= TOLERANCE_PCT
    ok = ok and metrics_ok
    verdict = "PASS" if ok else "FAIL"
    ok = ok and bracket_ok
    print(
        f"\n{verdict}: trades {ours_trades} vs {bt_trades} (must be equal), equity within "
        f"{abs(diff_pct):.4f}% (limit {TOLERANCE_PCT}%)"
    )
    return 0 if ok else 1


def fake_alpaca() -> Any:
    """Start the FAKE Alpaca REST API (tests/fakes/alpaca_api.py) on loopback; a context manager."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    import logging

    from fakes.alpaca_api import FakeAlpacaApi

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    return FakeAlpacaApi(auto_fill=True).running()


def connect_fake_alpaca(stack: Any, fake: Any) -> None:
    """Store the fake's keys, pointed at its address, as the demo config's Alpaca credentials."""
    argv = [sys.executable, "-m", "flask", "--app", "wsgi", "alpaca-credentials", stack.config_id]
    argv += ["--key-id", fake.key_id, "--secret", fake.secret_key, "--url", fake.url]
    out = subprocess.run(argv, env=stack.env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"flask alpaca-credentials failed ({out.returncode}):\n{out.stderr.strip()}")


def scrape_metrics(base_url: str) -> dict[tuple[str, tuple], float]:
    """Scrape ``GET /metrics`` (served to loopback clients without a token); return samples."""
    from prometheus_client.parser import text_string_to_metric_families

    response = requests.get(f"{base_url}/metrics", timeout=30)
    response.raise_for_status()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def _total(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


def report_metrics(before: dict, after: dict, alerts: int, orders: int) -> bool:
    """Print how /metrics moved during the run; return whether it moved by what was sent."""
    moved = {
        "intake requests accepted": ("viewzenix_intake_requests_total", {"outcome": "accepted"}),
        "intake latency observations": ("viewzenix_intake_request_duration_seconds_count", {}),
        "signals stored": ("viewzenix_signals", {}),
        "orders recorded": ("viewzenix_orders", {}),
        "execute_signal runs succeeded": (
            "viewzenix_job_attempts_total",
            {"task": "viewzenix.execute_signal", "outcome": "succeeded"},
        ),
    }
    print("\n/metrics during the run (after - before):")
    deltas = {}
    for label, (name, labels) in moved.items():
        deltas[label] = _total(after, name, **labels) - _total(before, name, **labels)
        print(f"  {label:<32} {deltas[label]:>+8.0f}   {name}{labels or ''}")
    ages = [v for (n, _), v in after.items() if n == "viewzenix_queue_oldest_due_job_age_seconds"]
    print(f"  {'queue: oldest due job age now':<32} {max(ages, default=0):>8.1f} s")
    return (
        deltas["intake requests accepted"] == alerts
        and deltas["intake latency observations"] == alerts
        and deltas["signals stored"] == alerts
        and deltas["orders recorded"] == orders
        and deltas["execute_signal runs succeeded"] >= alerts
    )


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"


if __name__ == "__main__":
    sys.exit(main())
