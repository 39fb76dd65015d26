"""Execute one stored signal: plan its orders, record them, send them, record the answers.

The job ``viewzenix.execute_signal`` calls ``execute_signal``. Jobs of one (config, symbol) run
one at a time (procrastinate lock). Every broker call may be a network call, so none is made
inside a database transaction and no row lock is held across one. The transactions:

1. **Read** (short): the signal (still runnable?), its config, our open orders in the symbol.
2. **Broker, no transaction**: a simulator works resting orders against the alert's price
   (``PriceDriven``); each of our open orders in the symbol is looked up by client_order_id;
   the account is read (sizing).
3. **Plan** (one transaction): the ledger records what step 2 reported; the engine plans with
   our position and open orders; the ledger records the orders as PENDING_NEW, the denials as
   DENIED and the cancels as requested; the signal becomes ``submitting``. Commit.
4. **Submit, per order**: cancel or submit at the broker (no transaction); each answer is
   recorded in a new transaction before the next broker call. ``DuplicateOrder`` means an
   earlier attempt got through: the order is looked up and recorded. ``BrokerUnavailable`` (a
   timeout, a 5xx) is raised for procrastinate to retry; the order stays PENDING_NEW. A leg
   whose parent ended unfilled is not sent.
5. **Finish** (one transaction, with the last answer): our open orders in the symbol that no
   answer covered are refreshed from the broker first (held legs, OCO siblings), and the signal
   gets its outcome.

A retry that finds the signal's orders already recorded (a crash or a timeout after step 3)
skips planning and, for each PENDING_NEW order, asks the broker by client_order_id first:
found → recorded; not found → submitted. So a crash or a timeout never makes a second order.
``DuplicateOrder`` with the order not visible yet (a broker whose reads lag its writes) is looked
up again with backoff, then ``OrderNotVisibleYet`` (transient) retries the job. A PENDING_NEW
order of an earlier signal whose job has ended for good, and that the broker does not have, is
closed as CANCELED (``never_submitted``) by the next signal of the symbol or the order sync —
at once for a broker that reads its own books, else only after repeated "not found" answers
past a grace period (``services.accounts``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from viewzenix.brokers import BrokerNotAvailable
from viewzenix.brokers.base import (
    BrokerOrder,
    DuplicateOrder,
    NativeBrackets,
    OrderNotCancelable,
    OrderNotFound,
    OrderNotVisibleYet,
    OrderShapeRefused,
    PriceDriven,
)
from viewzenix.db import Connection, Database, ending_transaction
from viewzenix.domain.engine import is_stale, needs_account, plan_signal
from viewzenix.domain.model import (
    AccountState,
    OpenOrder,
    OrderSide,
    OrderStatus,
    OrderType,
    Signal,
    SignalStatus,
)
from viewzenix.domain.serialization import signal_from_dict
from viewzenix.domain.symbols import canonical_symbol
from viewzenix.repositories import execution_reads
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.repositories import signals as signals_repo
from viewzenix.repositories.webhook_configs import trading_settings
from viewzenix.services import ledger
from viewzenix.services.accounts import Accounts, BrokerFactory, accounts_for
from viewzenix.services.loss_limit import enforce as enforce_loss_limit

logger = logging.getLogger(__name__)

NOT_FOUND = "not_found"
# A primary order in one of these did not reach the broker, or the broker refused it.
_NOT_PLACED = (OrderStatus.DENIED, OrderStatus.REJECTED, OrderStatus.PENDING_NEW)
# Canceled by us before the broker had it (ledger.close_unsent).
_NEVER_SENT = ("never_submitted", "parent_not_filled", "missing_at_broker", "position_changed")
_POSITION_CHANGED = (
    "not sent: an order this signal canceled filled meanwhile, so the position changed since the "
    "plan; send the signal again"
)
# What the engine gets when it needs no account (fixed and dollar sizing never read it).
_NO_ACCOUNT = AccountState(cash=Decimal(0), equity=Decimal(0))


def execute_signal(
    db: Database,
    signal_id: uuid.UUID,
    job_id: int | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    brokers: BrokerFactory | None = None,
    accounts: Accounts | None = None,
    on_flatten_due: Callable[[uuid.UUID], object] | None = None,
) -> str:
    """Execute a stored signal once; return its final status (a ``SignalStatus`` value).

    Runs a signal that is ``accepted``, ``submitting`` (a run that died after recording its
    orders), or ``failed`` when ``job_id`` is the signal's own job (procrastinate retrying);
    otherwise does nothing and returns the current status (``not_found`` when the signal is
    gone). An exception marks the signal ``failed`` with the error text in a new transaction
    and is re-raised for procrastinate to retry; orders already recorded stay as they are, and
    the retry resumes them. ``clock``: UTC now (tests). ``accounts``: the seam to brokers
    (the runtime's); without it one is built on ``db`` with ``brokers`` (tests pass fakes).
    ``on_flatten_due(config_id)``: called once the job is over (done or failed) when its plan
    recorded the session's first breach of a daily loss limit with ``flatten_on_loss_limit``
    (the worker passes ``services.flatten.flatten_loss_limit_breaches``); an error there is
    logged, not raised: the breach stays due and the minute's scheduled task flattens it.
    """
    ids = {"signal_id": signal_id, "job_id": job_id}
    now = (clock or _utc_now)()
    execution = _Execution(db, signal_id, job_id, now, accounts_for(db, accounts, brokers, clock))
    try:
        return execution.run()
    except Exception as error:
        logger.exception("signal execution failed: %s", error, extra={"action": "signal_failed", **ids})
        try:
            fail_signal(db, signal_id, f"{type(error).__name__}: {error}", job_id)
        except Exception:
            logger.exception(
                "could not mark the signal failed", extra={"action": "signal_fail_unrecorded", **ids}
            )
        raise
    finally:
        if execution.flatten_due and on_flatten_due is not None:
            try:
                on_flatten_due(execution.config["id"])
            except Exception:
                logger.exception(
                    "loss limit flatten not started; the scheduled task retries it",
                    extra={"action": "loss_limit_flatten_failed", **ids},
                )


class _NotRunnable(Exception):
    """The signal, read under lock, may not run (any more): roll the plan's transaction back."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _runnable(row: dict[str, Any], job_id: int | None) -> bool:
    if row["status"] in (SignalStatus.ACCEPTED, SignalStatus.SUBMITTING):
        return True
    return row["status"] == SignalStatus.FAILED and job_id is not None and row["job_id"] == job_id


class _Execution:
    commit_without_flush = False  # until the broker is known (``run``)
    seen: dict[str, dict[str, Any]] | None = None  # until its orders are sent (``_submit``)

    def __init__(
        self, db: Database, signal_id: uuid.UUID, job_id: int | None, now: datetime, accounts: Accounts
    ) -> None:
        self.db = db
        self.signal_id = signal_id
        self.job_id = job_id
        self.now = now
        self.accounts = accounts
        self.ids = {"signal_id": signal_id, "job_id": job_id}
        self.flatten_due = False  # set by the plan: the session's first loss-limit breach, flatten on

    def run(self) -> str:
        # 1. Read, in autocommit (no BEGIN/COMMIT): nothing is written and step 3 reads again
        # under lock.
        with self.db.statement() as conn:
            row, config, config_open = execution_reads.for_execution(conn, self.signal_id)
            if row is None or config is None:
                logger.warning("signal not found", extra={"action": "signal_not_found", **self.ids})
                return NOT_FOUND
            if not _runnable(row, self.job_id):
                logger.info(
                    "signal already %s; nothing to do",
                    row["status"],
                    extra={"action": "signal_already_processed", **self.ids},
                )
                return row["status"]
            self.config = config
            # Did an earlier run of this signal record its orders or cancels? Then resume it.
            recorded = row["recorded"]
            signal = signal_from_dict(row["signal"] or {})
            signal = replace(signal, ticker=canonical_symbol(signal.ticker))  # BTCUSD → BTC/USD
            open_rows = [r for r in config_open if r["symbol"] == signal.ticker]
            self.has_account = row["has_account"]
            self.had_open_orders = bool(open_rows)
        self.settings = trading_settings(config)
        try:
            account = self.accounts.account(config)
        except BrokerNotAvailable as error:
            return self._finish(SignalStatus.FAILED, error.message, action="broker_not_available")
        self.book, self.broker = account.book, account.broker
        self.commit_without_flush = getattr(self.broker, "commits_in_our_wal", False) is True
        self.symbol = signal.ticker
        if recorded:
            return self._resume()
        return self._plan_and_submit(signal, open_rows)

    # --- step 2 and 3 -----------------------------------------------------------------------

    def _plan_and_submit(self, signal: Signal, open_rows: list[dict[str, Any]]) -> str:
        crossed: list[BrokerOrder] = []
        priced = signal.signal_price is not None and signal.signal_price > 0
        # A fresh price marks the symbol: the exchange's (a PriceDriven broker) and our books'.
        mark = signal.signal_price if priced and not is_stale(signal, self.settings, self.now) else None
        if mark is not None and isinstance(self.broker, PriceDriven):
            crossed = self.broker.process_price(self.symbol, mark, self.now)
        known = {r.client_order_id for r in crossed}
        reports = self._look_up(
            [r["client_order_id"] for r in open_rows if r["client_order_id"] not in known]
        )
        # PENDING_NEW orders of earlier signals the broker has never seen: their jobs have ended
        # for good (the per-symbol lock runs jobs in order), so they will never be sent.
        found = known | {r.client_order_id for r in reports}
        never_sent = [
            r
            for r in open_rows
            if r["status"] == OrderStatus.PENDING_NEW
            and r["signal_id"] != self.signal_id
            and r["client_order_id"] not in found
        ]
        # The account is a broker call: only for equity-based sizing, or to open our books.
        account = None
        if not self.has_account or needs_account(signal, self.settings):
            account = self.broker.get_account()

        try:
            return self._plan(signal, mark, crossed, reports, never_sent, account)
        except _NotRunnable as stop:  # rolled back: a batched plan's mark included
            return stop.status

    def _plan(
        self,
        signal: Signal,
        mark: Decimal | None,
        crossed: list[BrokerOrder],
        reports: list[BrokerOrder],
        never_sent: list[dict[str, Any]],
        account: AccountState | None,
    ) -> str:
        """Step 3: record what step 2 reported, plan, record the plan (one transaction)."""
        with self._transaction() as conn:
            # Nothing to record first (the usual case): the signal, position and open orders are
            # read together, in the same lock order (signal, then position).
            batched = not crossed and not reports and not never_sent and account is None
            if batched:
                row, locked, config_open = execution_reads.lock_for_planning(
                    conn,
                    self.signal_id,
                    config_id=self.book.config_id,
                    user_id=self.book.user_id,
                    symbol=self.symbol,
                    mark=mark,
                )
            else:
                row = signals_repo.get_for_execution(conn, self.signal_id, lock=True)
            if row is None or not _runnable(row, self.job_id) or row["recorded"]:
                # Another run got here first: nothing of this one may stay (the batched read
                # marked the position with this signal's price), so the transaction rolls back.
                raise _NotRunnable(NOT_FOUND if row is None else row["status"])
            if batched:
                notes: list[str] = []
            else:
                if account is not None:
                    ledger.open_account(conn, self.book, account.cash)
                notes = self._record_reports(conn, [*crossed, *reports])
                rule = self.accounts.not_found_rule(self.broker)
                for row in never_sent:  # closed only once the broker's "not found" is final
                    ledger.record_not_found(conn, self.book, row, self.now, **rule)
                locked = positions_repo.lock(  # created at zero on first use, so the mark sticks
                    conn, config_id=self.book.config_id, user_id=self.book.user_id, symbol=self.symbol
                )
                config_open = orders_repo.open_orders(conn, self.book.config_id)
            position = locked.state()
            if mark is not None and not batched:  # batched: the position's lock was the mark
                ledger.mark(conn, self.book, self.symbol, mark)
            open_orders = [_open_order(r) for r in config_open]
            plan = plan_signal(
                signal=signal,
                signal_id=self.signal_id,
                position=position,
                account=account or _NO_ACCOUNT,
                open_orders=open_orders,
                settings=self.settings,
                now=self.now,
            )
            # The daily loss limit denies entries (no statement when off or for an exit). On the
            # session's first breach with flatten_on_loss_limit, flatten_due is set: the config is
            # flattened (services.flatten) after this transaction commits.
            limited = enforce_loss_limit(
                conn, self.config, plan, symbol=self.symbol, signal_id=self.signal_id, now=self.now
            )
            plan, self.flatten_due = limited.plan, limited.flatten_due
            intent = None if plan.intent is None else str(plan.intent)
            if plan.ignored_reason is not None:
                message = "; ".join([plan.ignored_reason, *notes])
                with ending_transaction(conn):
                    signals_repo.finish(conn, self.signal_id, SignalStatus.IGNORED.value, message)
                return self._logged(SignalStatus.IGNORED, message)
            notes += [f"denied {d.code}: {d.message}" for d in plan.denials if d.order is None]
            if (
                not plan.orders
                and not plan.cancel_client_order_ids
                and not any(d.order for d in plan.denials)
            ):
                status = SignalStatus.DENIED if plan.denials else SignalStatus.IGNORED
                message = "; ".join(notes) or "nothing to do"
                if intent:
                    message = f"{intent}: {message}"
                with ending_transaction(conn):
                    signals_repo.finish(conn, self.signal_id, status.value, message)
                return self._logged(status, message)
            for denial in plan.denials:
                ledger.record_denial(
                    conn, self.book, denial, signal_id=self.signal_id, intent=intent, at=self.now
                )
            for request in plan.orders:
                ledger.record_new_order(
                    conn, self.book, request, signal_id=self.signal_id, intent=intent, at=self.now
                )
            for client_order_id in plan.cancel_client_order_ids:
                target = orders_repo.get_by_client_order_id(conn, self.book.config_id, client_order_id)
                if target is not None:
                    ledger.request_cancel(
                        conn,
                        self.book,
                        target,
                        signal_id=self.signal_id,
                        reason=f"canceled by signal {self.signal_id} ({plan.intent})",
                        at=self.now,
                    )
            # Status SUBMITTING: the plan's last statements, the COMMIT sent with them.
            rows, cancels = execution_reads.set_submitting(
                conn, self.signal_id, cancels=bool(plan.cancel_client_order_ids)
            )
        self.notes = notes
        return self._submit(rows, cancels)

    # --- step 4 and 5 -----------------------------------------------------------------------

    def _resume(self) -> str:
        logger.info(
            "resuming a signal whose orders are recorded", extra={"action": "signal_resumed", **self.ids}
        )
        self.notes = []
        with self._transaction() as conn:
            rows = orders_repo.for_signal(conn, self.signal_id)
            cancels = orders_repo.cancels_by(conn, self.signal_id)
        return self._submit(rows, cancels, resumed=True)

    def _submit(
        self, rows: list[dict[str, Any]], cancels: list[dict[str, Any]], *, resumed: bool = False
    ) -> str:
        """Cancel, then send each PENDING_NEW order; each answer is recorded before the next call.

        The last answer is recorded with the signal's outcome (``_conclude``). A take-profit or
        stop-loss whose parent ended unfilled (rejected, canceled, expired, denied) is not sent.
        A broker with ``NativeBrackets`` (Alpaca) gets an entry and its PENDING_NEW legs in one
        call. An order the adapter refuses before sending (``OrderShapeRefused``) is DENIED.
        """
        self.had_cancels = bool(cancels)
        self.sent_legs = any(r["parent_order_id"] is not None for r in rows)
        # The signal's orders as this run last recorded them, for its outcome (``_finish_with_outcome``).
        self.seen = {r["client_order_id"]: r for r in rows}
        cancels = [r for r in cancels if OrderStatus(r["status"]).is_open]
        self.unrecorded: list[BrokerOrder] = []
        self.unsent: list[tuple[dict[str, Any], str, str]] = []
        self.refused: list[tuple[dict[str, Any], str, str]] = []
        cancel_notes = self._cancel(cancels)
        # An order canceled to make room that filled meanwhile (a resting exit filling as a
        # flatten replaces it) moved the position the plan was made from: sending the plan's
        # orders now could sell twice. None is sent; the signal says why (send it again).
        moved = _filled_while_canceling(cancels, self.unrecorded)
        states = {r["client_order_id"]: (OrderStatus(r["status"]), r["filled_qty"]) for r in rows}
        brackets = isinstance(self.broker, NativeBrackets)
        sent: set[str] = set()
        for row in rows:
            if row["status"] != OrderStatus.PENDING_NEW or row["client_order_id"] in sent:
                continue
            if moved:
                self.unsent.append((row, "position_changed", _POSITION_CHANGED))
                continue
            parent = states.get(row["parent_client_order_id"]) if row["parent_client_order_id"] else None
            if parent is not None and parent[0].is_terminal and parent[1] == 0:
                self.unsent.append((row, "parent_not_filled", "not sent: its parent order ended unfilled"))
                continue
            legs = []
            if brackets and row["parent_client_order_id"] is None:
                legs = [
                    r
                    for r in rows
                    if r["parent_client_order_id"] == row["client_order_id"]
                    and r["status"] == OrderStatus.PENDING_NEW
                ]
            self._flush()
            if legs:
                reports = self._send_with_legs(row, legs, look_up_first=resumed)
                if reports:  # a refused entry's legs are closed below as parent_not_filled
                    sent.update(r["client_order_id"] for r in legs)
            else:
                reports = self._send(row, look_up_first=resumed)
            for report in reports:
                states[report.client_order_id] = (report.status, report.filled_qty)
            if not reports:  # refused before sending
                states[row["client_order_id"]] = (OrderStatus.DENIED, Decimal(0))
            self.unrecorded.extend(reports)
        return self._conclude(cancel_notes)

    def _flush(self) -> None:
        """Record the broker's answers (and refusals) not recorded yet, in a new transaction."""
        if not self.unrecorded and not self.refused:
            return
        with self._transaction() as conn:
            self._record_pending(conn)

    def _record_pending(self, conn: Connection) -> None:
        for row, code, message in self.refused:
            ledger.deny_unsent(conn, self.book, row, code, message, self.now)
            self.seen = None  # changed without its row: read again
        for report in self.unrecorded:
            self._saw(ledger.record_report(conn, self.book, report, self.now))
        self.unrecorded = []
        self.refused = []

    def _saw(self, recorded: ledger.Recorded | None) -> None:
        """Keep the row a report left of one of the signal's orders (read under its lock)."""
        if recorded is None or self.seen is None:
            return
        row = recorded.after
        known = self.seen.get(row["client_order_id"])
        if known is not None:
            self.seen[row["client_order_id"]] = {
                **row,
                "parent_client_order_id": known["parent_client_order_id"],
            }

    def _cancel(self, cancels: list[dict[str, Any]]) -> list[str]:
        notes = []
        for row in cancels:
            client_order_id = row["client_order_id"]
            self._flush()
            try:
                report = self.broker.cancel_order(client_order_id)
            except OrderNotFound as error:
                report = None
                notes.append(f"could not cancel {client_order_id}: {error}")
            except OrderNotCancelable as error:
                report = self.broker.get_order_by_client_order_id(client_order_id)
                notes.append(f"could not cancel {client_order_id}: {error}")
            if report is not None:
                self.unrecorded.append(report)
        return notes

    def _send(self, row: dict[str, Any], *, look_up_first: bool) -> list[BrokerOrder]:
        """Send one order (looked up first on a resumed run); [] when refused before sending."""
        client_order_id = row["client_order_id"]
        extra = {"action": "order_already_submitted", "client_order_id": client_order_id, **self.ids}
        if look_up_first:
            found = self.broker.get_order_by_client_order_id(client_order_id)
            if found is not None:
                logger.info("order %s found at the broker", client_order_id, extra=extra)
                return [found]
        try:
            return [self.broker.submit_order(orders_repo.request_from_row(row))]
        except OrderShapeRefused as refusal:
            self.refused.append((row, refusal.code, refusal.message))
            return []
        except DuplicateOrder as duplicate:
            # Already submitted (Alpaca: a retried POST may have placed it): look it up, again
            # with backoff while the broker's reads lag; still unseen, the job is retried.
            logger.info("order %s was already submitted", client_order_id, extra=extra)
            found = self.accounts.look_up_existing(self.broker, client_order_id)
            if found is None:
                raise OrderNotVisibleYet(client_order_id=client_order_id) from duplicate
            return [found]

    def _send_with_legs(
        self, row: dict[str, Any], legs: list[dict[str, Any]], *, look_up_first: bool
    ) -> list[BrokerOrder]:
        """Send an entry with its legs in one call (``NativeBrackets``); [] when the entry is refused.

        Found at the broker already (a resumed run, or DuplicateOrder): the entry and its legs
        are looked up instead. Legs the broker cannot attach are DENIED.
        """
        assert isinstance(self.broker, NativeBrackets)
        client_order_id = row["client_order_id"]
        extra = {"action": "order_already_submitted", "client_order_id": client_order_id, **self.ids}
        if look_up_first:
            found = self._look_up([client_order_id])
            if found:
                logger.info("order %s found at the broker", client_order_id, extra=extra)
                return found + self._look_up([leg["client_order_id"] for leg in legs])
        try:
            result = self.broker.submit_with_legs(
                orders_repo.request_from_row(row), [orders_repo.request_from_row(leg) for leg in legs]
            )
        except OrderShapeRefused as refusal:
            self.refused.append((row, refusal.code, refusal.message))
            return []
        except DuplicateOrder as duplicate:
            logger.info("order %s was already submitted", client_order_id, extra=extra)
            entry = self.accounts.look_up_existing(self.broker, client_order_id)
            if entry is None:
                raise OrderNotVisibleYet(client_order_id=client_order_id) from duplicate
            return [entry, *self._look_up([leg["client_order_id"] for leg in legs])]
        by_id = {leg["client_order_id"]: leg for leg in legs}
        for leg_id, (code, message) in result.refused.items():
            self.refused.append((by_id[leg_id], code, message))
        return list(result.reports)

    def _conclude(self, cancel_notes: list[str]) -> str:
        """Record the last answers; refresh open orders no answer covered; finish the signal.

        One transaction when every open order of the symbol was answered for in this run (the
        usual case); else the others (legs, OCO siblings) are looked up first, outside it.
        """
        reported = {r.client_order_id for r in self.unrecorded}
        reported |= {row["client_order_id"] for row, _, _ in self.refused}
        with self._transaction() as conn:
            self._record_pending(conn)
            for row, code, message in self.unsent:
                ledger.close_unsent(conn, self.book, row, code, message, self.now)
                self.seen = None  # changed without its row: read again
            # Other open orders of the symbol can only have moved (held legs, OCO siblings, legs
            # of a canceled parent) when some existed before, or this run canceled or sent legs.
            others = []
            if self.had_open_orders or self.had_cancels or self.sent_legs:
                others = [
                    r["client_order_id"]
                    for r in orders_repo.open_orders(conn, self.book.config_id, self.symbol)
                    if r["client_order_id"] not in reported
                ]
            if not others:
                return self._finish_with_outcome(conn, cancel_notes)
        refreshed = self._look_up(others)
        with self._transaction() as conn:
            self._record_reports(conn, refreshed)
            return self._finish_with_outcome(conn, cancel_notes)

    def _finish_with_outcome(self, conn: Connection, cancel_notes: list[str]) -> str:
        """Give the signal its outcome, from its orders as recorded (one statement with the COMMIT).

        With the paper exchange the rows this run's records left (``seen``: each read under its
        order's lock) are used: its reports reach our books through this job, but for a dashboard
        cancel or a reconciliation landing between the job's last record of an order and this
        finish, which the message then does not show (the status cannot differ: both count the
        order as placed). With another broker (its stream records fills at any time), or after a
        step that changed an order without its row, the orders are read again in this transaction.
        """
        if self.seen is not None and self.commit_without_flush:
            rows = list(self.seen.values())
        else:
            rows = orders_repo.for_signal(conn, self.signal_id)
        canceled = 0
        if self.had_cancels:
            cancels = orders_repo.cancels_by(conn, self.signal_id)
            canceled = sum(1 for r in cancels if r["status"] == OrderStatus.CANCELED)
        status, message = _outcome(rows, canceled, [*cancel_notes, *self.notes])
        intent = next((r["intent"] for r in rows if r["intent"]), None)
        if intent:
            message = f"{intent}: {message}"
        with ending_transaction(conn):  # the COMMIT goes with the outcome
            signals_repo.finish(conn, self.signal_id, status.value, message)
        return self._logged(status, message)

    # --- helpers ----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One of the job's transactions (``Database.transaction``).

        With a broker whose books share our WAL (the paper broker) it commits without waiting
        for the flush: a crash of Postgres then loses a suffix of the job's commits and the
        exchange's, which is the state a crash of the worker at that earlier moment leaves, and
        the job is not finished either (procrastinate's synchronous commit of the job's end comes
        after them in the WAL and flushes them). The retry resumes from what survived, asking the
        broker before it submits again (docs/scaling.md). Alpaca is outside our WAL: its orders
        are recorded PENDING_NEW with a synchronous commit before they are sent.
        """
        with self.db.transaction(without_flush=self.commit_without_flush) as conn:
            yield conn

    def _look_up(self, client_order_ids: list[str]) -> list[BrokerOrder]:
        reports = []
        for client_order_id in client_order_ids:
            found = self.broker.get_order_by_client_order_id(client_order_id)
            if found is not None:
                reports.append(found)
        return reports

    def _record_reports(self, conn: Connection, reports: list[BrokerOrder]) -> list[str]:
        """Record the broker's reports of our orders; return a note per resting order they filled."""
        notes = []
        for report in reports:
            recorded = ledger.record_report(conn, self.book, report, self.now)
            self._saw(recorded)
            if recorded is not None and recorded.new_fills and report.status is OrderStatus.FILLED:
                notes.append(f"price filled resting order {report.client_order_id}")
        return notes

    def _finish(self, status: SignalStatus, message: str, *, action: str) -> str:
        with self._transaction() as conn, ending_transaction(conn):
            signals_repo.finish(conn, self.signal_id, status.value, message)
        logger.warning(message, extra={"action": action, **self.ids})
        return status.value

    def _logged(self, status: SignalStatus, message: str) -> str:
        logger.info("signal %s: %s", status, message, extra={"action": f"signal_{status}", **self.ids})
        return status.value


def _open_order(row: dict[str, Any]) -> OpenOrder:
    return OpenOrder(
        order_id=str(row["id"]),
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=OrderSide(row["side"]),
        order_type=OrderType(row["order_type"]),
        qty=row["qty"] - row["filled_qty"],
        purpose=row["purpose"],
    )


def _outcome(rows: list[dict[str, Any]], canceled: int, notes: list[str]) -> tuple[SignalStatus, str]:
    """The signal's status and message from its orders as recorded.

    executed: an entry or exit order reached the broker and was not refused there, or open
    orders were canceled; rejected: the broker refused every one sent; denied: our rules refused
    every one; ignored: nothing to do. Take-profit and stop-loss legs follow their parent.
    """
    primary = [r for r in rows if r["parent_order_id"] is None]  # legs follow their parent
    placed = [
        r
        for r in primary
        if r["status"] not in _NOT_PLACED
        and not (r["status"] == OrderStatus.CANCELED and r["status_code"] in _NEVER_SENT)
    ]
    rejected = [r for r in primary if r["status"] == OrderStatus.REJECTED]
    denied = [r for r in rows if r["status"] == OrderStatus.DENIED]
    body = [_describe(r) for r in rows if r["status"] != OrderStatus.DENIED]
    body += [f"denied {r['status_code']}: {r['status_message']}" for r in denied]
    if canceled:
        body.append(f"canceled {canceled} open order(s)")
    message = "; ".join(body + notes) or "nothing to do"
    if placed or canceled:
        return SignalStatus.EXECUTED, message
    if rejected:
        return SignalStatus.REJECTED, message
    if denied:
        return SignalStatus.DENIED, message
    if any(r["status"] == OrderStatus.CANCELED and r["status_code"] in _NEVER_SENT for r in primary):
        return SignalStatus.FAILED, message  # its orders were closed before the broker had them
    return SignalStatus.IGNORED, message


def _describe(row: dict[str, Any]) -> str:
    text = f"{row['purpose']} {row['side']} {_fmt(row['qty'])} {row['symbol']} {row['order_type']}"
    text += f" {row['status']}"
    if row["status"] == OrderStatus.FILLED and row["filled_avg_price"] is not None:
        text += f" @ {_fmt(row['filled_avg_price'])}"
    if row["status_code"] and row["status"] != OrderStatus.FILLED:
        text += f" ({row['status_code']}: {row['status_message']})"
    return text


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def fail_signal(db: Database, signal_id: uuid.UUID, reason: str, job_id: int | None = None) -> None:
    """In a new transaction, mark a signal ``failed`` with ``reason`` while it is still runnable.

    Runnable: ``accepted`` or ``submitting``, or ``failed`` by its own job ``job_id`` (a retry's
    error replaces the last one). A finished signal is left as it is.
    """
    with db.transaction() as conn:
        row = signals_repo.get_for_update(conn, signal_id)
        if row is None or not _runnable(row, job_id):
            return
        message = f"execution failed: {reason}"
        signals_repo.finish(conn, signal_id, SignalStatus.FAILED.value, message[:2000])


def _filled_while_canceling(cancels: list[dict[str, Any]], reports: list[BrokerOrder]) -> bool:
    """Whether a cancel's answer shows fills our books did not have when the plan was made."""
    before = {r["client_order_id"]: r["filled_qty"] or Decimal(0) for r in cancels}
    return any(r.client_order_id in before and r.filled_qty > before[r.client_order_id] for r in reports)
