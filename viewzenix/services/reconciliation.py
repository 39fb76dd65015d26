"""Reconciliation: compare our books with the broker's, per webhook config; optionally repair ours.

The broker is the source of truth for orders, fills and positions (docs/architecture.md). Drift is
reported by kind:

- ``missing_on_our_side``: the broker has an order we never recorded;
- ``missing_at_broker``: we have an order the broker does not (a PENDING_NEW one only once it
  is older than ``PENDING_GRACE``: a job may be sending it right now);
- ``status_differs`` / ``filled_qty_differs``: both have it and disagree;
- ``position_differs``: net quantity per symbol disagrees;
- ``cash_differs``: our account's cash (``public.accounts``, as our fills say) and the broker's
  (``get_account().cash``) differ by more than ``CASH_TOLERANCE``. Reported, never repaired:
  deposits, withdrawals, dividends and fees we never see move the broker's cash, and which one
  it was is for a person to decide. Key ``cash``; ``ours``/``theirs`` are the two amounts.
  Only once our account is open (the config's first trade opens it with the broker's cash).

``drift_rate`` = orders in drift / orders compared × 100 (percent). With ``repair`` our side is
brought in line through the ledger — fills we lack recorded, statuses and filled quantities
taken from the broker, orders only the broker has recorded, unfilled orders it lacks closed as
``canceled`` (``missing_at_broker``), then positions set to the broker's — each repair recorded
as an ``OrderRepaired`` event or a logged position repair; a second repair changes nothing. Two
things are left to a person: an order with fills that the broker does not have (reported,
never rewritten), and anything a running job is changing (retried on the next run). Broker
calls run outside any transaction; each run is stored in ``public.reconciliations``.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from viewzenix import notifications
from viewzenix.brokers import BrokerNotAvailable
from viewzenix.brokers.base import BrokerOrder
from viewzenix.db import Connection, Database
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import OrderSide, OrderStatus, OrderType, TimeInForce
from viewzenix.domain.symbols import canonical_symbol
from viewzenix.exceptions import Forbidden, NotFound
from viewzenix.repositories import accounts as accounts_repo
from viewzenix.repositories import anomalies as anomalies_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories import reconciliations as runs_repo
from viewzenix.services import ledger
from viewzenix.services.accounts import Account, Accounts, BrokerFactory, accounts_for
from viewzenix.services.common import Caller

logger = logging.getLogger(__name__)

# Longer than a signal job's whole retry span (jobs.retry.SIGNAL_RETRY: about 4 minutes of waits).
PENDING_GRACE = timedelta(minutes=15)
# The broker's order list reaches this much further back than ours, so an order near the start
# of the window is never called missing for a clock difference.
WINDOW_MARGIN = timedelta(hours=1)
MISSING_AT_BROKER = "missing_at_broker"
# A broker report the ledger refused as impossible (public.order_anomalies), shown with each run.
ORDER_ANOMALY = "order_anomaly"
# Orders we closed because the broker never had them (execution, order sync, an earlier repair).
NEVER_SENT = ("never_submitted", "parent_not_filled", MISSING_AT_BROKER)
KINDS = (
    "missing_on_our_side",
    "missing_at_broker",
    "status_differs",
    "filled_qty_differs",
    "position_differs",
    "cash_differs",
)
CASH_DIFFERS = "cash_differs"
# One cent: both sides keep cash to the cent (Alpaca's account cash is a decimal string in USD;
# the paper broker's is exact), so anything more is a real difference, not rounding.
CASH_TOLERANCE = Decimal("0.01")
# Drifts that concern no order (not counted in orders_in_drift, never sent to order repair).
NOT_ORDERS = ("position_differs", "cash_differs")


@dataclass(frozen=True)
class Drift:
    """One disagreement: its ``kind``, the order (client_order_id) or symbol, both sides' values."""

    kind: str
    key: str
    ours: Any
    theirs: Any


@dataclass
class Reconciliation:
    """One config's comparison. ``drift_rate`` in percent of the orders compared."""

    config_id: uuid.UUID
    user_id: uuid.UUID
    broker: str
    repair: bool
    started_at: datetime
    orders_compared: int = 0
    positions_compared: int = 0
    drifts: list[Drift] = field(default_factory=list)
    repaired: int = 0
    repair_deferred: int = 0
    repair_refused: int = 0
    error: str | None = None

    @property
    def orders_in_drift(self) -> int:
        return len({d.key for d in self.drifts if d.kind not in NOT_ORDERS})

    @property
    def positions_in_drift(self) -> int:
        return len({d.key for d in self.drifts if d.kind == "position_differs"})

    @property
    def drift_rate(self) -> Decimal:
        if not self.orders_compared:
            return Decimal(0)
        return (Decimal(self.orders_in_drift) * 100 / self.orders_compared).quantize(Decimal("0.01"))

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(d.kind for d in self.drifts)
        counts = {kind: found.get(kind, 0) for kind in KINDS}
        if found.get(ORDER_ANOMALY):  # reports the ledger refused: for a person, never repaired
            counts[ORDER_ANOMALY] = found[ORDER_ANOMALY]
        if self.repair:
            counts.update(repair_deferred=self.repair_deferred, repair_refused=self.repair_refused)
        return counts


def reconcile(
    db: Database,
    *,
    config_id: uuid.UUID | None = None,
    repair: bool = False,
    brokers: BrokerFactory | None = None,
    clock: Callable[[], datetime] | None = None,
    since: datetime | None = None,
    accounts: Accounts | None = None,
) -> list[dict[str, Any]]:
    """Reconcile one config (``config_id``) or every config; return the stored runs (dicts).

    ``since`` (UTC): compare only orders placed since then (the periodic run's window); all
    orders when None. Positions are always compared whole.

    Each run's keys: config_id, user_id, broker, repair, orders_compared, orders_in_drift,
    positions_compared, positions_in_drift, drift_rate (percent, Decimal), counts (per kind),
    drifts (list of {kind, key, ours, theirs}), repaired, error (the broker's error, if the
    comparison could not run), started_at, finished_at. A config whose broker cannot be
    reached is stored with ``error``; one whose broker has no adapter is skipped, and stored
    with ``error`` only when asked for by ``config_id``.

    Repair never races an execution job: a symbol with a signal being executed, an order being
    sent, or an order recorded since the broker was read is left for the next run
    (``counts["repair_deferred"]``); an order the broker lacks that has fills is reported, never
    rewritten (``counts["repair_refused"]``): that needs a person.
    """
    accounts = accounts_for(db, accounts, brokers)
    now = (clock or (lambda: datetime.now(UTC)))()
    runs = []
    for config in accounts.configs(config_id):
        result = Reconciliation(
            config_id=config["id"],
            user_id=config["user_id"],
            broker=config["broker"],
            repair=repair,
            started_at=now,
        )
        try:
            account = accounts.account(config)
        except BrokerNotAvailable as error:
            if config_id is None:
                continue
            result.error = f"{type(error).__name__}: {error}"
            runs.append(_store(db, result))
            continue
        try:
            _compare(db, account, result, now, since)
            if repair and result.drifts:
                _repair(db, account, result, now)
        except Exception as error:
            logger.exception("reconciliation failed", extra={"action": "reconcile_failed"})
            result.error = f"{type(error).__name__}: {error}"
        runs.append(_store(db, result, config.get("notification_preferences")))
        level = logging.WARNING if result.drifts else logging.INFO
        logger.log(
            level,
            "reconciled config %s: %s of %s orders in drift (%s %%), %s positions, %s repaired",
            config["id"],
            result.orders_in_drift,
            result.orders_compared,
            result.drift_rate,
            result.positions_in_drift,
            result.repaired,
            extra={"action": "reconciled", "config_id": config["id"]},
        )
    return runs


def latest(db: Database, caller: Caller, config_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Return the newest run per config of the caller's (RLS), by config id."""
    with db.transaction(caller.claims) as conn:
        return runs_repo.latest(conn, config_id)


def reconcile_as_admin(
    db: Database, caller: Caller, *, config_id: uuid.UUID | None, repair: bool
) -> list[dict[str, Any]]:
    """Run ``reconcile`` for an admin (``app_metadata.role`` = admin); return the runs.

    Raises Forbidden (``admin_required``) for anyone else, NotFound for an unknown config.
    Runs outside the request's transaction (an Idempotency-Key's): reconciliation calls brokers,
    and running it twice is safe (a second repair changes nothing).
    """
    if not caller.is_admin:
        raise Forbidden(
            "Reconciliation across accounts is for admins (app_metadata.role = admin).",
            code="admin_required",
        )
    with db.detached():  # broker calls: never inside the request's transaction (a repeat is safe)
        runs = reconcile(db, config_id=config_id, repair=repair)
    if config_id is not None and not runs:
        raise NotFound("No webhook config with this id.")
    return runs


# --- comparing ------------------------------------------------------------------------------


def _compare(
    db: Database,
    account: Account,
    result: Reconciliation,
    now: datetime,
    since: datetime | None,
) -> None:
    broker, config_id = account.broker, account.config_id
    with db.transaction() as conn:
        ours = {r["client_order_id"]: r for r in runs_repo.orders_to_compare(conn, config_id, since)}
        our_positions = {canonical_symbol(p.symbol): p.qty for p in positions_repo.open_for(conn, config_id)}
        our_account = accounts_repo.summary(conn, config_id)
    theirs = {
        o.client_order_id: o for o in broker.list_orders(None if since is None else since - WINDOW_MARGIN)
    }
    their_positions = {canonical_symbol(p.symbol): p.qty for p in broker.get_positions()}
    older = [key for key in theirs if key not in ours]
    if older:  # the broker's window reaches further back: ours may hold them
        with db.transaction() as conn:
            for key in older:
                row = runs_repo.order_any_age(conn, config_id, key)
                if row is not None:
                    ours[key] = row

    for key in sorted(set(ours) | set(theirs)):
        mine, report = ours.get(key), theirs.get(key)
        if (
            mine is not None
            and mine["status"] == OrderStatus.PENDING_NEW
            and now - mine["created_at"] < PENDING_GRACE
        ):
            continue  # a job may be sending it right now
        if (
            mine is not None
            and report is None
            and mine["status_code"] in NEVER_SENT
            and not mine["filled_qty"]
        ):
            continue  # closed as never sent (a leg of an entry that ended unfilled, a repair): none there
        result.orders_compared += 1
        if mine is None:
            result.drifts.append(Drift("missing_on_our_side", key, None, _brief(report)))
        elif report is None:
            result.drifts.append(Drift(MISSING_AT_BROKER, key, _brief_row(mine), None))
        else:
            if mine["status"] != report.status:
                result.drifts.append(Drift("status_differs", key, mine["status"], str(report.status)))
            if mine["filled_qty"] != report.filled_qty:
                result.drifts.append(
                    Drift("filled_qty_differs", key, str(mine["filled_qty"]), str(report.filled_qty))
                )
    with db.transaction() as conn:
        for anomaly in anomalies_repo.since(conn, config_id, since):
            detail = anomaly["detail"]
            result.drifts.append(
                Drift(ORDER_ANOMALY, anomaly["client_order_id"], anomaly["kind"], detail.get("message"))
            )
    symbols = sorted(set(our_positions) | set(their_positions))
    result.positions_compared = len(symbols)
    for symbol in symbols:
        mine_qty, their_qty = our_positions.get(symbol, Decimal(0)), their_positions.get(symbol, Decimal(0))
        if mine_qty != their_qty:
            result.drifts.append(Drift("position_differs", symbol, str(mine_qty), str(their_qty)))
    their_cash = broker.get_account().cash
    opened = our_account is not None and our_account["updated_at"] is not None  # no books before a trade
    if opened and abs(our_account["cash"] - their_cash) > CASH_TOLERANCE:
        result.drifts.append(Drift(CASH_DIFFERS, "cash", str(our_account["cash"]), str(their_cash)))


# --- repairing ------------------------------------------------------------------------------


def _repair(db: Database, account: Account, result: Reconciliation, now: datetime) -> None:
    """Bring our side in line, in one transaction, after reading the broker (outside it).

    Everything the broker says is read before the transaction, after the row version of each
    order and position concerned is read. A row whose version moved meanwhile (a job or the
    stream recorded something, even in a transaction that began before the broker was read) is
    left alone this time, so a repair never applies a stale answer over a newer write: it never
    moves an order or a position backwards.
    """
    book, broker = account.book, account.broker
    order_keys = [d.key for d in result.drifts if d.kind not in (*NOT_ORDERS, ORDER_ANOMALY)]
    with db.transaction() as conn:
        versions = runs_repo.order_versions(conn, book.config_id, order_keys)
        position_versions = runs_repo.position_versions(conn, book.config_id)
    reports = {key: broker.get_order_by_client_order_id(key) for key in dict.fromkeys(order_keys)}
    their_positions = {canonical_symbol(p.symbol): p for p in broker.get_positions()}
    own_fills: Counter[str] = Counter()
    with db.transaction() as conn:
        # entries before legs, so an adopted leg finds its adopted parent
        for key, report in sorted(
            reports.items(), key=lambda kv: bool(kv[1] and kv[1].parent_client_order_id)
        ):
            row = orders_repo.get_by_client_order_id(conn, book.config_id, key, for_update=True)
            if row is not None and (
                row["version"] != versions.get(key) or runs_repo.order_being_sent(conn, row["id"])
            ):
                result.repair_deferred += 1
            elif report is None:
                if row is None:
                    continue
                if row["filled_qty"] > 0:
                    result.repair_refused += 1  # filled history is not rewritten by a machine
                    logger.warning(
                        "order %s has fills and the broker has no such order: not repaired",
                        key,
                        extra={"action": "repair_refused", "client_order_id": key},
                    )
                    continue
                message = "the broker has no such order; closed by reconciliation"
                ledger.close_unsent(conn, book, row, MISSING_AT_BROKER, message, now, repair=True)
                result.repaired += 1
            elif row is None:
                if key in versions:
                    result.repair_deferred += 1  # it existed when read: gone since (cannot be)
                    continue
                recorded = ledger.adopt_order(conn, book, report, _request_of(report), now)
                added = 0 if recorded is None else len(recorded.new_fills)
                own_fills[canonical_symbol(report.symbol)] += added
                result.repaired += 1
            else:
                own_fills[canonical_symbol(report.symbol)] += _align_order(conn, book, report, now)
                result.repaired += 1
        # Compared by canonical symbol (BTCUSD = BTC/USD); repaired under the spelling our books hold.
        ours = {canonical_symbol(p.symbol): p for p in positions_repo.open_for(conn, book.config_id)}
        for key in sorted(set(ours) | set(their_positions)):
            mine = ours.get(key)
            symbol = mine.symbol if mine else key
            theirs = their_positions.get(key)
            their_qty = theirs.qty if theirs else Decimal(0)
            if (mine.qty if mine else Decimal(0)) == their_qty:
                continue
            positions_repo.lock(conn, config_id=book.config_id, user_id=book.user_id, symbol=symbol)
            # Each fill this repair recorded moved the version once; any other move is a writer's.
            version = runs_repo.position_versions(conn, book.config_id).get(symbol, 0)
            if version != position_versions.get(symbol, 0) + own_fills[key] or runs_repo.symbol_busy(
                conn, book.config_id, symbol
            ):
                result.repair_deferred += 1
                continue
            avg = theirs.avg_entry_price if theirs else Decimal(0)
            ledger.set_position(conn, book, symbol, their_qty, avg, "reconciliation: the broker's position")
            result.repaired += 1


def _align_order(conn: Connection, book: ledger.Book, report: BrokerOrder, now: datetime) -> int:
    """Record the broker's fills and state of an order both sides have; force what still differs.

    Returns the number of fills recorded (each moved the position's version once).
    """
    note = "reconciliation: the broker's state"
    recorded = ledger.record_report(conn, book, report, now, repair=note)
    row = orders_repo.get_by_client_order_id(conn, book.config_id, report.client_order_id)
    if row["status"] != report.status or row["filled_qty"] != report.filled_qty:
        ledger.force_state(conn, book, row, report, note, now)
    return 0 if recorded is None else len(recorded.new_fills)


def _request_of(report: BrokerOrder) -> OrderRequest:
    return OrderRequest(
        client_order_id=report.client_order_id,
        symbol=report.symbol,
        side=OrderSide(report.side),
        qty=report.qty,
        order_type=OrderType(report.order_type),
        time_in_force=TimeInForce(report.time_in_force),
        purpose=_purpose_of(report),
        parent_client_order_id=report.parent_client_order_id,
        limit_price=report.limit_price,
        stop_price=report.stop_price,
    )


def _purpose_of(report: BrokerOrder) -> OrderPurpose:
    """An adopted order's purpose: a leg (it has a parent) is its take-profit (limit) or stop-loss."""
    if report.parent_client_order_id is None:
        return OrderPurpose.ENTRY
    return OrderPurpose.TAKE_PROFIT if report.order_type == OrderType.LIMIT else OrderPurpose.STOP_LOSS


def _brief(report: BrokerOrder | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {"status": str(report.status), "filled_qty": str(report.filled_qty), "symbol": report.symbol}


def _brief_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"status": row["status"], "filled_qty": str(row["filled_qty"]), "symbol": row["symbol"]}


def _store(db: Database, result: Reconciliation, preferences: dict[str, Any] | None = None) -> dict[str, Any]:
    with db.transaction() as conn:
        run = runs_repo.insert_run(
            conn,
            config_id=result.config_id,
            user_id=result.user_id,
            broker=result.broker,
            started_at=result.started_at,
            repair=result.repair,
            orders_compared=result.orders_compared,
            orders_in_drift=result.orders_in_drift,
            positions_compared=result.positions_compared,
            positions_in_drift=result.positions_in_drift,
            drift_rate=result.drift_rate,
            counts=result.counts,
            drifts=[asdict(d) for d in result.drifts],
            repaired=result.repaired,
            error=result.error,
        )
        notifications.drift_found(conn, preferences, run)
        return run
