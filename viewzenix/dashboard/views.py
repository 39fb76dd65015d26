"""Routes of the dashboard: page shells, the local sign-in exchange, and data fragments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import Blueprint, render_template, request
from markupsafe import Markup

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.job_admin import JobQueryArgsSchema
from viewzenix.dashboard import wording
from viewzenix.domain.model import OrderStatus, SignalStatus
from viewzenix.errors import ApiError, NotFound
from viewzenix.repositories.jobs import STATUSES as JOB_STATUSES
from viewzenix.runtime import get_runtime
from viewzenix.services import job_admin, local_signin, loss_limit, queries, webhook_refusals
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
    "executed": "Orders placed",
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
    return _page(
        "config_detail.html",
        active="configs",
        config_id=config_id,
        time_in_force_words=wording.TIME_IN_FORCE_WORDS,
    )


@bp.get("/signals")
def signals():
    return _page("signals.html", active="signals", statuses=[s.value for s in SignalStatus])


@bp.get("/signals/<uuid:signal_id>")
def signal_detail(signal_id: uuid.UUID):
    return _page("signal_detail.html", active="signals", signal_id=signal_id)


@bp.get("/trades")
def trades():
    return _page("trades.html", active="trades")


@bp.get("/orders")
def orders():
    return _page("orders.html", active="orders", statuses=[s.value for s in OrderStatus])


@bp.get("/admin")
def admin():
    # ?job=<id> opens that job's detail (a job row's link); not user data, only an id.
    job = request.args.get("job", type=int)
    return _page("admin.html", active="admin", job=job if job and 0 < job <= job_admin.MAX_JOB_ID else None)


@bp.after_app_request
def _swagger_signed_in(response):
    """Let Swagger UI's "Try it out" at /api/docs send the signed-in user's bearer token.

    flask-smorest renders the page; its inline script defines the global ``config`` that
    ``SwaggerUIBundle`` reads on load, so a script added after it can set a request interceptor.
    """
    if request.path == "/api/docs" and response.mimetype == "text/html" and not response.direct_passthrough:
        script = '<script src="/ui/static/swagger-auth.js"></script>\n</body>'
        response.set_data(response.get_data(as_text=True).replace("</body>", script, 1))
    return response


# --- local sign-in ------------------------------------------------------------------------------


@bp.post("/auth/local/exchange")
def local_exchange():
    """Exchange a one-time sign-in code for a local access token (local mode only, else 404)."""
    runtime = get_runtime()
    if runtime.local_signer is None:
        raise NotFound("Local sign-in is off: this app signs in through Supabase Auth.")
    body = request.get_json(silent=True)
    code = body.get("code") if isinstance(body, dict) else None
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


MAX_PAGE = 100_000  # far past any account's last page; keeps the offset inside bigint


def _page_number() -> int:
    raw = request.args.get("page") or "1"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        return 1
    return min(max(1, int(raw)), MAX_PAGE)


def _text_arg(name: str, max_length: int = 64) -> str | None:
    value = request.args.get(name) or None
    if value is None:
        return None
    if len(value) > max_length or not value.isprintable():
        raise ApiError(
            f"{name} must be at most {max_length} printable characters.", code="validation_error", status=422
        )
    return value


def _config_names() -> dict[uuid.UUID, str]:
    rows, _ = configs_service.list_page(get_runtime().db, current_caller(), filters={}, limit=1000, offset=0)
    return {r["id"]: r["name"] for r in rows}


@fragments.get("/configs")
def configs_fragment():
    rows, total = configs_service.list_page(
        get_runtime().db, current_caller(), filters={}, limit=1000, offset=0
    )
    base = get_runtime().config.PUBLIC_BASE_URL
    limited = {b["config_id"] for b in loss_limit.active_breaches(get_runtime().db, current_caller())}
    for row in rows:
        row["webhook_url"] = configs_service.masked_webhook_url(base, row)
        row["loss_limit_reached"] = row["id"] in limited
    return render_template("fragments/configs.html", rows=rows, total=total)


@fragments.get("/configs/<uuid:config_id>/refusals")
def refusals_fragment(config_id: uuid.UUID):
    """Hits on this webhook refused since a time (old token, turned off, rate limited), by kind."""
    rows = webhook_refusals.for_config(get_runtime().db, current_caller(), config_id)
    return render_template("fragments/refusals.html", rows=rows, messages=webhook_refusals.MESSAGES)


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
        "ticker": _text_arg("ticker"),
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
    row = {**row, "order_brief": row["orders"]}
    return render_template("fragments/signal_detail.html", s=row, words=OUTCOME_WORDS)


@fragments.get("/signals/<uuid:signal_id>/outcome")
def signal_outcome_fragment(signal_id: uuid.UUID):
    """One line: the signal's outcome so far (a test alert's answer, followed until it is final)."""
    row = queries.get_signal(get_runtime().db, current_caller(), signal_id)
    row = {**row, "order_brief": row["orders"]}
    final = row["status"] not in ("accepted", "submitting")
    return render_template("fragments/signal_outcome.html", s=row, final=final)


@fragments.get("/orders")
def orders_fragment():
    page = _page_number()
    filters = {
        "config_id": _uuid_arg("config_id"),
        "status": _choice("status", [s.value for s in OrderStatus]),
        "symbol": _text_arg("symbol"),
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


TRADE_PAGE_SIZE = 50


def _date_arg(name: str) -> datetime | None:
    """A ``YYYY-MM-DD`` or ISO datetime query argument, read as UTC when it has no offset."""
    value = request.args.get(name) or None
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(f"{name} must be a date (YYYY-MM-DD).", code="validation_error", status=422) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@fragments.get("/trades")
def trades_fragment():
    """Closed trades: the account page's newest (``compact``) or the trades page's filtered pages."""
    compact = request.args.get("compact") == "1"
    page = 1 if compact else _page_number()
    size = TRADES_SHOWN if compact else TRADE_PAGE_SIZE
    filters = {
        "config_id": _uuid_arg("config_id"),
        "symbol": _text_arg("symbol"),
        "side": _choice("side", ["long", "short"]),
        "outcome": _choice("outcome", ["win", "loss", "flat"]),
        "since": _date_arg("since"),
        "until": _date_arg("until"),
    }
    rows, total = queries.list_trades(
        get_runtime().db, current_caller(), filters=filters, limit=size, offset=(page - 1) * size
    )
    return render_template(
        "fragments/trades.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // size)),
        compact=compact,
        names=_config_names(),
    )


@fragments.get("/account")
def account_fragment():
    summary = queries.account_overview(get_runtime().db, current_caller(), _uuid_arg("config_id"))
    return render_template("fragments/account.html", a=summary)


@fragments.get("/performance")
def performance_fragment():
    figures = queries.performance(get_runtime().db, current_caller(), _uuid_arg("config_id"))
    return render_template("fragments/performance.html", p=figures)


def _refused_unless_admin():
    """The "Admins only" card (403) for a caller who is not an admin, else None."""
    caller = current_caller()
    if caller.is_admin:
        return None
    return render_template("fragments/admin_refused.html", email=caller.email), 403


@fragments.get("/admin")
def admin_fragment():
    refused = _refused_unless_admin()
    if refused:
        return refused
    job = request.args.get("job", type=int)
    return render_template("fragments/admin.html", statuses=JOB_STATUSES, job=job)


@fragments.get("/admin/metrics")
def admin_metrics_fragment():
    refused = _refused_unless_admin()
    if refused:
        return refused
    figures = job_admin.metrics(get_runtime().db, current_caller())
    state = job_admin.queue_state(get_runtime().db, current_caller())
    return render_template("fragments/admin_metrics.html", m=figures, queue=state)


def _job_filters() -> dict[str, Any]:
    """The job list's filters from the query string, validated by the admin API's own schema.

    ``since``/``until`` from a ``datetime-local`` input carry no offset: they are read as UTC.
    Raises marshmallow.ValidationError.
    """
    raw: dict[str, Any] = {k: v for k, v in request.args.items() if v and k not in ("status", "cursor")}
    statuses = [s for s in request.args.getlist("status") if s]
    if statuses:
        raw["status"] = statuses
    for name in ("since", "until"):
        if name in raw:
            try:
                value = datetime.fromisoformat(raw[name])
            except ValueError:
                continue  # the schema says what is wrong
            raw[name] = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if request.args.get("cursor"):
        raw["cursor"] = request.args["cursor"]
    return JobQueryArgsSchema().load(raw)


def _texts(messages: Any) -> list[str]:
    """The strings of marshmallow's messages, however nested (a list field: {index: [...]})."""
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, dict):
        messages = messages.values()
    return [text for item in messages for text in _texts(item)]


@fragments.get("/admin/jobs")
def admin_jobs_fragment():
    """The job list (first page: the table; with ``cursor``: the next rows and a new "Load more")."""
    refused = _refused_unless_admin()
    if refused:
        return refused
    try:
        args = _job_filters()
    except ma.ValidationError as error:
        errors = {
            field: " ".join(_texts(messages)) for field, messages in error.normalized_messages().items()
        }
        return render_template("fragments/admin_jobs_error.html", errors=errors), 422
    limit, cursor = args.pop("limit"), args.pop("cursor", None)
    page = job_admin.list_jobs(get_runtime().db, current_caller(), filters=args, limit=limit, cursor=cursor)
    more_query = None
    if page["next_cursor"] is not None:
        query = {**request.args.to_dict(flat=False), "cursor": [str(page["next_cursor"])]}
        more_query = urlencode(query, doseq=True)
    return render_template(
        "fragments/admin_jobs.html", jobs=page["jobs"], more_query=more_query, rows_only=cursor is not None
    )


@fragments.get("/admin/jobs/<int:job_id>")
def admin_job_fragment(job_id: int):
    refused = _refused_unless_admin()
    if refused:
        return refused
    job = job_admin.get_job(get_runtime().db, current_caller(), job_id)
    return render_template("fragments/admin_job.html", j=job, now=datetime.now(UTC))


@bp.app_context_processor
def _wording() -> dict[str, Any]:
    return {
        "signal_outcome": wording.signal_outcome,
        "signal_reason": wording.signal_reason,
        "order_phrase": wording.order_phrase,
        "protective_pnl": wording.protective_pnl,
        "signed_money": wording.signed_money,
        "purpose_words": wording.PURPOSE_WORDS,
        "open_statuses": wording.OPEN_STATUSES,
    }


@bp.app_template_filter("money")
def money(value: Any, places: int = 2) -> str:
    """Format an amount with thousands separators and ``places`` decimals; None → "—"."""
    if value is None:
        return "—"
    return f"{value:,.{places}f}"


@bp.app_template_filter("age")
def age(value: datetime | None, now: datetime | None = None) -> str:
    """Say how long ago ``value`` was: "42 s ago", "5 min ago", "3 h ago", "2 d ago"; None → "—"."""
    if value is None:
        return "—"
    seconds = max(((now or datetime.now(UTC)) - value).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


@bp.app_template_filter("qty")
def qty(value: Any) -> str:
    """Format a quantity or price as written, without trailing zeros or exponent: 10, 0.0000001, 1,250.5."""
    return wording.plain_number(value)


@bp.app_template_filter("pct")
def pct(value: Any, places: int = 1) -> str:
    """Format a fraction as a percentage (0.5 → "50.0 %"); None → "—"."""
    if value is None:
        return "—"
    return f"{Decimal(value) * 100:,.{places}f} %"


@bp.app_template_filter("duration")
def duration(seconds: Any) -> str:
    """Format seconds as "3 d 4 h", "2 h 5 min", "45 s", "0.4 s"; None → "—"."""
    if seconds is None:
        return "—"
    if Decimal(seconds) < 10:
        return f"{Decimal(seconds):.1f} s"
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@bp.app_template_filter("when")
def when(value: datetime | None) -> Markup:
    """Render a timestamp as ``<time datetime=ISO>`` showing UTC ``YYYY-MM-DD HH:MM:SS`` (no
    microseconds) until the page's script shows it in the chosen zone; None → "—"."""
    if value is None:
        return Markup("—")
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    else:
        value = value.replace(tzinfo=UTC)
    iso = value.isoformat(timespec="seconds")
    return Markup('<time datetime="{}">{}</time>').format(iso, value.strftime("%Y-%m-%d %H:%M:%S"))
