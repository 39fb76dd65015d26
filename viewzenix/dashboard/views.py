"""Routes of the dashboard: page shells, the local sign-in exchange, and data fragments."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, abort, render_template, request

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.domain.model import OrderStatus, SignalStatus
from viewzenix.errors import ApiError
from viewzenix.runtime import get_runtime
from viewzenix.services import local_signin, queries
from viewzenix.services import webhook_configs as configs_service

bp = Blueprint(
    "dashboard",
    __name__,
    static_folder="static",
    static_url_path="/ui/static",
    template_folder="templates",
)

PAGE_SIZE = 50
TRADES_SHOWN = 25
# Plain words for the outcome of a signal, by status (the reason itself comes from the row).
OUTCOME_WORDS = {
    "accepted": "Waiting for the worker",
    "submitting": "Orders being sent to the broker",
    "executed": "Executed",
    "ignored": "Nothing to do",
    "denied": "Denied by your risk rules",
    "rejected": "Refused",
    "failed": "Failed (retried automatically)",
    "duplicate": "Duplicate of an earlier alert: ran nothing",
}


def _client_config() -> dict[str, Any]:
    config = get_runtime().config
    if config.SUPABASE_URL:
        return {"mode": "supabase", "supabase_url": config.SUPABASE_URL, "supabase_key": config.SUPABASE_KEY}
    return {"mode": "local"}


def _page(template: str, **context: Any):
    return render_template(template, vz_config=_client_config(), **context)


# --- pages (no user data) ---------------------------------------------------------------------


@bp.get("/")
def overview():
    return _page("overview.html", active="overview")


@bp.get("/signin")
def signin():
    return _page("signin.html", active="signin")


@bp.get("/configs")
def configs():
    return _page("configs.html", active="configs")


@bp.get("/configs/<uuid:config_id>")
def config_detail(config_id: uuid.UUID):
    return _page("config_detail.html", active="configs", config_id=config_id)


@bp.get("/signals")
def signals():
    return _page("signals.html", active="signals", statuses=[s.value for s in SignalStatus])


@bp.get("/signals/<uuid:signal_id>")
def signal_detail(signal_id: uuid.UUID):
    return _page("signal_detail.html", active="signals", signal_id=signal_id)


@bp.get("/orders")
def orders():
    return _page("orders.html", active="orders", statuses=[s.value for s in OrderStatus])


@bp.get("/admin")
def admin():
    return _page("admin.html", active="admin")


# --- local sign-in ------------------------------------------------------------------------------


@bp.post("/auth/local/exchange")
def local_exchange():
    """Exchange a one-time sign-in code for a local access token (local mode only, else 404)."""
    runtime = get_runtime()
    if runtime.local_signer is None:
        abort(404)
    body = request.get_json(silent=True) or {}
    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ApiError('Send {"code": "<sign-in code>"}.', code="validation_error", status=422)
    return local_signin.exchange(runtime.db, runtime.local_signer, code.strip())


# --- fragments (bearer token, as the caller) -------------------------------------------------------

fragments = Blueprint("dashboard_fragments", __name__, url_prefix="/ui/fragments")
fragments.before_request(authenticate)


def _uuid_arg(name: str) -> uuid.UUID | None:
    value = request.args.get(name) or None
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ApiError(f"{name} must be a UUID.", code="validation_error", status=422) from None


def _choice(name: str, allowed: list[str]) -> str | None:
    value = request.args.get(name) or None
    if value is not None and value not in allowed:
        raise ApiError(f"{name} must be one of {', '.join(allowed)}.", code="validation_error", status=422)
    return value


def _page_number() -> int:
    try:
        return max(1, int(request.args.get("page") or 1))
    except ValueError:
        return 1


def _config_names() -> dict[uuid.UUID, str]:
    rows, _ = configs_service.list_page(get_runtime().db, current_caller(), filters={}, limit=1000, offset=0)
    return {r["id"]: r["name"] for r in rows}


@fragments.get("/configs")
def configs_fragment():
    rows, total = configs_service.list_page(
        get_runtime().db, current_caller(), filters={}, limit=1000, offset=0
    )
    base = get_runtime().config.PUBLIC_BASE_URL
    for row in rows:
        row["webhook_url"] = configs_service.masked_webhook_url(base, row)
    return render_template("fragments/configs.html", rows=rows, total=total)


@fragments.get("/config-options")
def config_options_fragment():
    rows, _ = configs_service.list_page(get_runtime().db, current_caller(), filters={}, limit=1000, offset=0)
    return render_template("fragments/config_options.html", rows=rows)


@fragments.get("/signals")
def signals_fragment():
    page = _page_number()
    is_test = {"true": True, "false": False}.get(request.args.get("is_test", ""))
    filters = {
        "config_id": _uuid_arg("config_id"),
        "status": _choice("status", [s.value for s in SignalStatus]),
        "ticker": request.args.get("ticker") or None,
        "is_test": is_test,
    }
    rows, total = queries.list_signals(
        get_runtime().db, current_caller(), filters=filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render_template(
        "fragments/signals.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        names=_config_names(),
        words=OUTCOME_WORDS,
    )


@fragments.get("/signals/<uuid:signal_id>")
def signal_fragment(signal_id: uuid.UUID):
    row = queries.get_signal(get_runtime().db, current_caller(), signal_id)
    return render_template("fragments/signal_detail.html", s=row, words=OUTCOME_WORDS)


@fragments.get("/orders")
def orders_fragment():
    page = _page_number()
    filters = {
        "config_id": _uuid_arg("config_id"),
        "status": _choice("status", [s.value for s in OrderStatus]),
        "symbol": request.args.get("symbol") or None,
    }
    rows, total = queries.list_orders(
        get_runtime().db, current_caller(), filters=filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render_template(
        "fragments/orders.html", rows=rows, total=total, page=page, pages=max(1, -(-total // PAGE_SIZE))
    )


@fragments.get("/orders/<uuid:order_id>")
def order_fragment(order_id: uuid.UUID):
    row = queries.get_order(get_runtime().db, current_caller(), order_id)
    return render_template("fragments/order_detail.html", o=row)


@fragments.get("/positions")
def positions_fragment():
    rows = queries.list_positions(get_runtime().db, current_caller(), config_id=_uuid_arg("config_id"))
    return render_template("fragments/positions.html", rows=rows, names=_config_names())


@fragments.get("/trades")
def trades_fragment():
    rows, total = queries.list_closed_trades(
        get_runtime().db, current_caller(), config_id=_uuid_arg("config_id"), limit=TRADES_SHOWN
    )
    return render_template("fragments/trades.html", rows=rows, total=total, names=_config_names())


@fragments.get("/account")
def account_fragment():
    summary = queries.account_overview(get_runtime().db, current_caller())
    return render_template("fragments/account.html", a=summary)


@fragments.get("/admin")
def admin_fragment():
    claims = current_caller().claims
    if (claims.get("app_metadata") or {}).get("role") != "admin":
        return render_template("fragments/admin_refused.html", email=current_caller().email), 403
    return render_template("fragments/admin.html")


@bp.app_template_filter("money")
def money(value: Any, places: int = 2) -> str:
    """Format a Decimal with thousands separators and ``places`` decimals; None → "—"."""
    if value is None:
        return "—"
    return f"{value:,.{places}f}"
