"""Close and flatten: a trader's hands on the wheel (issue 17, item 1), and the scheduled flatten.

A close or flatten is not a side door to the broker: each symbol gets a stored signal (an
``exit`` to close its position, a ``cancel`` for working orders where nothing is held), with
``signals.source`` = ``manual`` (dashboard / API), ``schedule`` (a config's auto-flatten or
auto-cancel, ``run_scheduled_controls``) or whatever a later caller passes (a loss limit), and
the normal ``viewzenix.execute_signal`` job under the (config, symbol) lock. So the engine plans
it (``_plan_exit``: the whole position, market, canceling the symbol's open orders first;
``_plan_cancel``), the ledger records it and the broker gets it exactly like an exit alert.

- Allowed when the config is paused (exits always pass ``entries_paused``) or turned off (only
  the webhook URL refuses alerts of an inactive config; these signals do not come through it).
- Safe to repeat: the config row is locked while the signals are written, so two flattens run
  one after the other, and a symbol whose exit is already under way (a close/flatten signal not
  run yet, or an exit order still open) is answered ``already_closing`` with that signal, not
  sent again. A position the first exit has closed is flat for the second; the engine itself
  ignores an exit while flat. The API adds ``Idempotency-Key`` replay on top.
- Paper (simulated broker): a market exit fills at the market-data source's quote or the last
  price our books know for the symbol (``positions.last_price``, from the last bar or alert).
  With no price at all the request is refused whole, nothing sent: ``NoMarketPrice`` (409
  ``no_market_price``, naming the symbols) — a scheduled flatten sends anyway and the order is
  recorded rejected ``no_market_price``.
- Live Alpaca keys: a request by a user needs ``confirm_live`` (409 ``live_flatten``), as a test
  alert does; a schedule the user set up does not ask.

Nothing here calls a broker: the signals and jobs are written in one transaction (the request's,
under the API's idempotency key), and the worker does the rest.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import procrastinate

from viewzenix.db import Connection, Database
from viewzenix.domain.model import Action, OrderSide, OrderType, Signal
from viewzenix.domain.parsing import signal_to_dict
from viewzenix.domain.symbols import canonical_symbol
from viewzenix.domain.windows import WindowsInvalid, due_controls, parse_windows, session_date
from viewzenix.exceptions import Conflict, NotFound
from viewzenix.jobs import defer_execute_signal
from viewzenix.repositories import controls as repo
from viewzenix.repositories import loss_limits as loss_limits_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories import signals as signals_repo
from viewzenix.services import broker_credentials
from viewzenix.services.common import Caller

logger = logging.getLogger(__name__)

MANUAL = "manual"
SCHEDULE = "schedule"
LOSS_LIMIT = "loss_limit"
# How often the worker looks for due auto-flattens / auto-cancels (cron, UTC): every minute, so
# a flatten at 15:55 runs by 15:56 at the latest.
SCHEDULED_CONTROLS_CRON = "* * * * *"
# Market-data sources the paper broker can ask for a quote at the moment of the order.
_QUOTING_SOURCES = ("alpaca", "ccxt:")


class LiveFlatten(Conflict):
    """This config trades a LIVE Alpaca account: closing sends real-money orders.

    Send it again with ``confirm_live: true`` if that is what you want."""

    code = "live_flatten"


class NoMarketPrice(Conflict):
    """No market price is known for a symbol to close on the paper broker; nothing was sent."""

    code = "no_market_price"


@dataclass(frozen=True)
class Sent:
    """What a close/flatten did for one symbol.

    ``action``: ``exit`` (close the position) or ``cancel`` (working orders, nothing held).
    ``status``: ``accepted`` (a signal was stored and its job deferred), ``already_closing``
    (an exit is under way: ``signal_id`` is that one's; nothing new sent). ``side``/``qty``: the
    exit order the engine will plan from the position as our books hold it now (qty in shares
    or coins); None for a cancel. ``open_orders``: working orders of the symbol it cancels.
    """

    symbol: str
    action: str
    status: str
    signal_id: uuid.UUID | None
    side: str | None = None
    qty: Decimal | None = None
    open_orders: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FlattenResult:
    """The answer of a close/flatten: the config, the source, one ``Sent`` per symbol touched."""

    config_id: uuid.UUID
    source: str
    sent: tuple[Sent, ...] = field(default_factory=tuple)
    # TradingView alerts of the config that waited for their job or an approval, refused
    # (``flattened``) so that none opens a position after the close.
    dropped: tuple[uuid.UUID, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "config_id": self.config_id,
            "source": self.source,
            "sent": [s.as_dict() for s in self.sent],
            "dropped": list(self.dropped),
        }


# --- public API ------------------------------------------------------------------------------


def close_position(
    db: Database,
    job_app: procrastinate.App,
    config_id: uuid.UUID,
    symbol: str,
    *,
    caller: Caller | None = None,
    source: str = MANUAL,
    confirm_live: bool = False,
) -> FlattenResult:
    """Close one position of a config: an ``exit`` signal for ``symbol`` (its working orders go too).

    ``symbol`` in any spelling (``BTCUSD`` = ``BTC/USD``). With ``caller`` the config is read
    under their RLS (another user's config is ``NotFound``) and the live/price checks apply.
    Raises NotFound (no such config; or nothing held nor working in ``symbol``: code
    ``no_position``), LiveFlatten (409), NoMarketPrice (409).
    """
    wanted = canonical_symbol(symbol.strip().upper())
    return _run(db, job_app, config_id, caller, source, confirm_live, only=wanted)


def flatten_config(
    db: Database,
    job_app: procrastinate.App,
    config_id: uuid.UUID,
    *,
    caller: Caller | None = None,
    source: str = MANUAL,
    confirm_live: bool = False,
) -> FlattenResult:
    """Close every position of a config and cancel its working orders; return what was sent.

    One ``exit`` signal per symbol held (its open orders are canceled first by the engine) and
    one ``cancel`` signal per other symbol with working orders; ``source`` is recorded on each
    (``manual``, ``schedule``, or a later caller's word such as ``loss_limit``: lower-case
    letters and ``_``). ``caller``: a user (their RLS; live keys need ``confirm_live``; a paper
    symbol without any price refuses the whole request); None: trusted system code (a periodic
    task), no checks. Runs in one transaction: the API request's when one is open, else its own
    (call it outside any other open transaction: it locks the config row until it commits).
    Nothing here calls a broker. Raises NotFound, LiveFlatten (409), NoMarketPrice (409).
    """
    return _run(db, job_app, config_id, caller, source, confirm_live, only=None)


def flatten_user(
    db: Database, job_app: procrastinate.App, caller: Caller, *, confirm_live: bool = False
) -> list[FlattenResult]:
    """Flatten every webhook config of ``caller`` (the panic button); one result per config.

    All or nothing: the live-keys and price checks of every config pass before any signal is
    written (one transaction). Raises LiveFlatten (409), NoMarketPrice (409).
    """
    with _atomic(db):
        with db.transaction(caller.claims) as conn:
            config_ids = repo.user_config_ids(conn)
        prepared = [_prepare(db, config_id, caller, confirm_live, only=None) for config_id in config_ids]
        with db.transaction() as conn:
            return [_send(conn, job_app, config, plan, MANUAL, drop_queued=True) for config, plan in prepared]


# --- the work --------------------------------------------------------------------------------


def _run(
    db: Database,
    job_app: procrastinate.App,
    config_id: uuid.UUID,
    caller: Caller | None,
    source: str,
    confirm_live: bool,
    *,
    only: str | None,
) -> FlattenResult:
    with _atomic(db):
        config, plan = _prepare(db, config_id, caller, confirm_live, only=only)
        with db.transaction() as conn:  # as the server: signals and jobs are not the user's to write
            return _send(conn, job_app, config, plan, source, drop_queued=True, only=only)


@contextmanager
def _atomic(db: Database) -> Iterator[None]:
    """One transaction for the block: the request's when one is open (the API), else a new one.

    The config row locked in ``_prepare`` stays locked until the signals are written.
    """
    with ExitStack() as stack:
        try:
            stack.enter_context(db.request_transaction())
        except RuntimeError:
            pass  # inside an API request's transaction already: join it
        yield


def _prepare(
    db: Database,
    config_id: uuid.UUID,
    caller: Caller | None,
    confirm_live: bool,
    *,
    only: str | None,
) -> tuple[dict[str, Any], list[_Planned]]:
    """Lock the config (as ``caller``: RLS), plan its flatten per symbol, run the caller's checks."""
    with db.transaction(caller.claims if caller else None) as conn:
        config = repo.lock_config(conn, config_id)
        if config is None:
            raise NotFound("No webhook config with this id.")
        plan = _plan(conn, config, only=only, close=True)
    if caller is not None:
        if only is not None and not plan:
            message = f"Nothing is held or working in {only} on this webhook config."
            raise NotFound(message, code="no_position")
        _check_live(db, caller, config, confirm_live)
        _check_prices(config, plan)
    return config, plan


@dataclass(frozen=True)
class _Planned:
    symbol: str
    action: Action
    qty: Decimal | None
    side: OrderSide | None
    last_price: Decimal | None
    open_orders: int
    closing_signal: uuid.UUID | None = None
    already_closing: bool = False


def _plan(conn: Connection, config: dict[str, Any], *, only: str | None, close: bool) -> list[_Planned]:
    """Per symbol (of ``only``, or all): exit a held position, else cancel its working orders."""
    working: dict[str, int] = {}
    for row in orders_repo.open_orders(conn, config["id"]):
        working[row["symbol"]] = working.get(row["symbol"], 0) + 1
    held = {p.symbol: p for p in positions_repo.open_for(conn, config["id"])}
    closing = repo.closing(conn, config["id"]) if close else {}
    planned = []
    for symbol in sorted(set(held) | set(working)):
        if only is not None and canonical_symbol(symbol) != only:
            continue
        position = held.get(symbol)
        if position is not None and not close:
            continue  # a cancel keeps a held position's protection (its stop loss, take profit)
        if position is not None:
            qty = abs(position.qty)
            side = OrderSide.SELL if position.qty > 0 else OrderSide.BUY
            planned.append(
                _Planned(
                    symbol,
                    Action.EXIT,
                    qty,
                    side,
                    position.last_price,
                    working.get(symbol, 0),
                    closing_signal=closing.get(symbol),
                    already_closing=symbol in closing,
                )
            )
        else:
            planned.append(_Planned(symbol, Action.CANCEL, None, None, None, working[symbol]))
    return planned


def _check_live(db: Database, caller: Caller, config: dict[str, Any], confirm_live: bool) -> None:
    if config["broker"] == "alpaca" and not confirm_live:
        if broker_credentials.describe(db, caller, config["id"])["live"]:
            raise LiveFlatten()


def _check_prices(config: dict[str, Any], plan: list[_Planned]) -> None:
    """On the paper broker, refuse when a symbol to close has no price at all (nothing sent)."""
    if config["broker"] != "simulated":
        return
    source = config.get("market_data_source") or "tradingview"
    if source.startswith(_QUOTING_SOURCES):
        return  # the paper broker asks the source for a quote when the order arrives
    missing = [
        p.symbol
        for p in plan
        if p.action is Action.EXIT and not p.already_closing and not (p.last_price and p.last_price > 0)
    ]
    if missing:
        names = ", ".join(missing)
        raise NoMarketPrice(
            f"No market price is known for {names} on this paper webhook: a market exit cannot be "
            "filled. Push a bar or an alert with a price for it first; nothing was sent.",
            errors={"symbols": missing},
        )


def _send(
    conn: Connection,
    job_app: procrastinate.App,
    config: dict[str, Any],
    plan: list[_Planned],
    source: str,
    *,
    drop_queued: bool = False,
    only: str | None = None,
) -> FlattenResult:
    """Store and defer the plan's signals; with ``drop_queued`` (a close or flatten), first refuse
    the config's alerts (of symbol ``only``, or all) that wait for their job or for approval."""
    dropped = _drop_queued(conn, config["id"], only, source) if drop_queued else ()
    sent = []
    for item in plan:
        if item.already_closing:
            sent.append(
                Sent(item.symbol, "exit", "already_closing", item.closing_signal, _side(item), item.qty)
            )
            continue
        signal_id = uuid.uuid4()
        signal = Signal(
            ticker=item.symbol,
            action=item.action,
            order_type=OrderType.MARKET if item.action is Action.EXIT else None,
            comment=f"{source} {'close' if item.action is Action.EXIT else 'cancel'}",
            source_format=source,
        )
        job_id = defer_execute_signal(
            job_app, conn, signal_id=signal_id, config_id=config["id"], symbol=item.symbol
        )
        raw = {"source": source, "action": str(item.action), "ticker": item.symbol}
        signals_repo.insert(
            conn,
            signal_id=signal_id,
            user_id=config["user_id"],
            config_id=config["id"],
            status="accepted",
            raw_body=json.dumps(raw),
            content_type=None,
            source_ip=None,
            signal=signal_to_dict(signal),
            ticker=item.symbol,
            action=str(item.action),
            job_id=job_id,
            source=source,
        )
        action = str(item.action)
        sent.append(Sent(item.symbol, action, "accepted", signal_id, _side(item), item.qty, item.open_orders))
        logger.info(
            "%s %s %s",
            source,
            item.action,
            item.symbol,
            extra={
                "action": f"{source}_{item.action}",
                "signal_id": signal_id,
                "config_id": config["id"],
                "job_id": job_id,
            },
        )
    return FlattenResult(config["id"], source, tuple(sent), dropped)


def _drop_queued(
    conn: Connection, config_id: uuid.UUID, only: str | None, source: str
) -> tuple[uuid.UUID, ...]:
    """Refuse (``rejected``, ``flattened``) the config's TradingView alerts not run yet.

    An alert accepted a moment before a flatten would otherwise open a position right after it;
    one already running (``submitting``) is not touched: its orders are recorded and the flatten's
    exit, planned after it under the symbol's lock, closes what it opens. A job that takes a
    dropped alert finds it not runnable (step 3 re-reads the signal under lock).
    """
    queued = [
        row["id"]
        for row in repo.queued_alerts(conn, config_id)
        if only is None or canonical_symbol(row["ticker"]) == only
    ]
    if queued:
        repo.refuse_queued(conn, queued, f"not run: the position was closed by a {source} flatten first")
    return tuple(queued)


def _side(item: _Planned) -> str | None:
    return None if item.side is None else str(item.side)


# --- the schedule ----------------------------------------------------------------------------


def run_scheduled_controls(
    db: Database, job_app: procrastinate.App, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Run every config's auto-flatten / auto-cancel that is due and has not run this session.

    For each config with ``trading_windows`` holding a ``flatten_at`` or
    ``cancel_at_window_end``: ``domain.windows.due_controls`` says what is due at ``now`` (UTC;
    default the clock); each (config, session date, kind) is claimed in
    ``public.scheduled_controls`` in the same transaction as the signals it sends, so it runs
    once per session however often this is called (a periodic task, every minute) and by
    however many workers. ``flatten``: every position closed and working order canceled, as
    ``flatten_config(source="schedule")`` does; ``cancel@HH:MM``: the working orders of every
    symbol not held canceled (positions, and a held symbol's stop loss and take profit, stay).
    Returns one
    ``{config_id, session_date, kind, sent}`` per control run now. A config whose windows do not
    parse (stored past the API) or whose control raises is logged and skipped: the other
    configs still run, and the failed one is tried again next call.
    """
    now = now or datetime.now(UTC)
    with db.transaction() as conn:
        rows = repo.scheduled_configs(conn)
    done: list[dict[str, Any]] = []
    for row in rows:
        try:  # one config's failure (bad stored JSON, a broker error...) must not stop the others
            _run_due_controls(db, job_app, row, now, done)
        except Exception:
            logger.exception(
                "scheduled controls failed for this config; the other configs still run",
                extra={"action": "scheduled_controls_failed", "config_id": row["id"]},
            )
    return done


def _run_due_controls(
    db: Database, job_app: procrastinate.App, row: dict[str, Any], now: datetime, done: list[dict[str, Any]]
) -> None:
    """Run one config's due controls (``run_scheduled_controls``), appending each run to ``done``."""
    try:
        windows = parse_windows(row["trading_windows"])
    except WindowsInvalid as error:  # stored past the API, or before a calendar went away: say why
        logger.warning(
            "trading windows not usable: %s",
            error.message,
            extra={"action": "scheduled_controls_invalid", "config_id": row["id"]},
        )
        return
    if windows is None:
        return
    day = session_date(windows, now)
    for kind in due_controls(windows, now):
        assert day is not None  # something is due only on a session day
        with db.transaction() as conn:
            if not repo.claim_scheduled(
                conn, config_id=row["id"], user_id=row["user_id"], session_date=day, kind=kind
            ):
                continue
            config = repo.lock_config(conn, row["id"])
            if config is None:
                continue
            plan = _plan(conn, config, only=None, close=kind == "flatten")
            result = _send(conn, job_app, config, plan, SCHEDULE, drop_queued=kind == "flatten")
            answer = json.loads(json.dumps(result.as_dict(), default=str))
            repo.record_scheduled_result(
                conn, config_id=row["id"], session_date=day, kind=kind, result=answer
            )
        done.append({"config_id": row["id"], "session_date": day, "kind": kind, "sent": answer["sent"]})
        logger.info(
            "scheduled %s ran for session %s: %s signal(s)",
            kind,
            day.isoformat(),
            len(answer["sent"]),
            extra={"action": "scheduled_control", "config_id": row["id"]},
        )


# --- the daily loss limit's flatten ------------------------------------------------------------


def flatten_loss_limit_breaches(
    db: Database,
    job_app: procrastinate.App,
    *,
    config_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> list[FlattenResult]:
    """Flatten every config whose daily loss limit was breached with ``flatten_on_loss_limit``, once.

    Each due breach (``public.loss_limit_breaches``: ``flatten_on_loss_limit``, no
    ``flattened_at`` yet, its session not over at ``now``) is claimed (``flattened_at``) in the
    transaction that stores the flatten's signals (source ``loss_limit``), so each breach is
    flattened once however many runs race: the signal job that found the breach calls this for
    its config after its plan commits, and the minute's scheduled-controls task calls it for all
    configs (the breaches a stopped worker left). ``config_id``: only that config's. Returns one
    ``FlattenResult`` per breach flattened now. Nothing here calls a broker.
    """
    now = now or datetime.now(UTC)
    done = []
    with db.transaction() as conn:
        for breach in loss_limits_repo.flatten_due(conn, now, config_id):
            loss_limits_repo.mark_flattened(conn, breach["id"], now)
            config = repo.lock_config(conn, breach["config_id"])
            if config is not None:
                plan = _plan(conn, config, only=None, close=True)
                done.append(_send(conn, job_app, config, plan, LOSS_LIMIT, drop_queued=True))
    for result in done:
        logger.warning(
            "daily loss limit: flattening the config (%s signal(s))",
            len(result.sent),
            extra={"action": "loss_limit_flatten", "config_id": result.config_id},
        )
    return done
