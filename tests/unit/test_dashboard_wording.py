"""The dashboard's words for outcomes and reasons (presentation only, no database)."""

from __future__ import annotations

from decimal import Decimal

from viewzenix.dashboard.wording import plain_message, plain_number, signal_outcome, signal_reason


def order(status, purpose="entry", **more):
    return {
        "purpose": purpose,
        "side": "buy",
        "qty": "5",
        "symbol": "NVDA",
        "order_type": "market",
        "status": status,
        "filled_qty": "0",
        "filled_avg_price": None,
        "limit_price": None,
        "stop_price": None,
        "status_code": None,
        "status_message": None,
        **more,
    }


def signal(status="executed", orders=(), **more):
    return {
        "status": status,
        "order_brief": list(orders),
        "reject_message": None,
        "outcome_message": None,
        **more,
    }


def test_a_resting_limit_entry_is_working_not_executed() -> None:
    resting = order("accepted", order_type="limit", limit_price="136")
    assert signal_outcome(signal(orders=[resting]))[:2] == ("working", "working (not filled)")
    assert signal_reason(signal(orders=[resting])) == "entry: buy 5 NVDA limit @ 136.00 → working"


def test_filled_partly_filled_and_denied_with_its_code() -> None:
    filled = order("filled", filled_qty="5", filled_avg_price="136")
    assert signal_outcome(signal(orders=[filled]))[1] == "filled"
    partly = order("partially_filled", filled_qty="2")
    assert signal_outcome(signal(orders=[partly]))[1] == "partly filled"
    denied = order(
        "denied", status_code="symbol_not_allowed", status_message="NVDA is not in allowed_symbols"
    )
    css, words, code = signal_outcome(signal(status="denied", orders=[denied]))
    assert (css, words, code) == (
        "denied",
        "denied: NVDA is not in the allowed symbols",
        "symbol_not_allowed",
    )


def test_bracket_legs_do_not_decide_the_outcome() -> None:
    legs = [order("filled", filled_qty="5"), order("held", purpose="stop_loss", stop_price="130")]
    assert signal_outcome(signal(orders=legs))[1] == "filled"


def test_internal_ids_become_words() -> None:
    text = "nothing to do: vzx-0123456789abcdef0123456789abcdef-sl already closed the position"
    assert plain_message(text) == "nothing to do: the stop-loss order already closed the position"
    assert signal_reason(signal(status="ignored", outcome_message=text)).startswith(
        "nothing to do: the stop-loss"
    )


def test_numbers_are_written_as_they_are() -> None:
    assert [plain_number(v) for v in (Decimal("10.0000"), Decimal("1E-7"), Decimal("1250.50"), None)] == [
        "10",
        "0.0000001",
        "1,250.5",
        "—",
    ]


def test_a_protective_fill_has_its_pnl_against_the_entry() -> None:
    from viewzenix.dashboard.wording import protective_pnl, signed_money

    long_stop = order(
        "filled",
        purpose="stop_loss",
        side="sell",
        filled_qty="5",
        filled_avg_price="136",
        parent_side="buy",
        parent_avg_price="140",
    )
    short_target = order(
        "filled",
        purpose="take_profit",
        side="buy",
        filled_qty="2",
        filled_avg_price="90",
        parent_side="sell",
        parent_avg_price="100",
    )
    assert signed_money(protective_pnl(long_stop)) == "\u221220.00"
    assert signed_money(protective_pnl(short_target)) == "+20.00"
    assert protective_pnl(order("filled", filled_qty="5", filled_avg_price="136")) is None  # an entry
