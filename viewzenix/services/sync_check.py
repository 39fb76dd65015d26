"""Drift check and repair of what the Supabase hooks keep in step: watchers and user profiles.

Deliveries get lost (Supabase never retries; pg_net drops bodies over 64 KB). ``check`` compares
the source — ``public.user_symbols`` / ``auth.users`` in this database or another one
(``SYNC_SOURCE_DATABASE_URL``), or for users the Supabase Auth admin API — with our target
(``public.watchers`` / ``public.users``), and reports rows **missing** here, **extra** here and
**differing**, with a drift rate (percent of compared keys in disagreement). ``repair=True``
applies the difference with the receiver's own ordered writes, so it is idempotent and never
overwrites a newer version a webhook applied meanwhile: the target is read before the source, an
upsert only lands when the source's ``updated_at`` is newer, and an extra row is deleted only if
it is still the version that was compared. Each run is recorded in ``private.sync_checks``.

What differs: for watchers ``strategy`` and ``active``; for profiles the email, and a missing
username (display name and avatar may be edited by the user here, so they are filled in when
empty, never compared).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from viewzenix.db import Connection, Database
from viewzenix.repositories import hook_sync as repo
from viewzenix.services.single_tenant import DEFAULT_USER_ID
from viewzenix.services.supabase_hooks import (
    InvalidRecord,
    profile_fields,
    username_candidates,
    watcher_fields,
)

if TYPE_CHECKING:
    from config import Config

logger = logging.getLogger(__name__)

TARGETS = ("watchers", "users")
AUTH_PAGE_SIZE = 1000
# A repair that would remove more than this share of the target's rows is refused unless forced:
# a wrong source (an empty table, the wrong project) would otherwise delete every row.
REPAIR_LIMIT_PERCENT = Decimal(50)


@dataclass
class DriftReport:
    """One check: counts, keys in each kind of drift (at most 100 each listed), the drift rate (%)."""

    target: str
    source: str
    source_rows: int = 0
    target_rows: int = 0
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    repaired: int = 0
    repaired_keys: list[str] = field(default_factory=list)
    removals_refused: bool = False
    error: str | None = None

    @property
    def in_drift(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.differing)

    @property
    def drift_rate(self) -> Decimal:
        compared = self.target_rows + len(self.missing)
        return (Decimal(100) * self.in_drift / compared).quantize(Decimal("0.01")) if compared else Decimal(0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "source": self.source,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "missing": len(self.missing),
            "extra": len(self.extra),
            "differing": len(self.differing),
            "invalid": len(self.invalid),
            "drift_rate": float(self.drift_rate),
            "repaired": self.repaired,
            "removals_refused": self.removals_refused,
            "error": self.error,
            "keys": {k: getattr(self, k)[:100] for k in KEY_LISTS},
        }


KEY_LISTS = ("missing", "extra", "differing", "invalid", "repaired_keys")


class RepairRefused(RuntimeError):
    """The drift is too large to repair without --force (is the source right?).

    ``report``: the run's report (what was repaired besides the refused removals).
    """

    def __init__(self, message: str, report: DriftReport | None = None) -> None:
        super().__init__(message)
        self.report = report


# --- sources ---------------------------------------------------------------------------------


class DatabaseSource:
    """Rows of ``public.user_symbols`` / ``auth.users`` in a database (ours, or another by URL)."""

    def __init__(self, db: Database | None = None, url: str | None = None) -> None:
        assert (db is None) != (url is None)
        self.db, self.url = db, url
        self.name = "same" if db is not None else "database"

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        if self.db is not None:
            with self.db.transaction() as conn:
                yield conn
        else:
            with psycopg.connect(self.url, row_factory=dict_row) as conn:  # type: ignore[arg-type]
                yield conn  # type: ignore[misc]

    def user_symbols(self) -> list[dict[str, Any]]:
        with self._connection() as conn:
            rows = conn.execute(
                "select user_id::text, symbol, timeframe, strategy, active, updated_at::text "
                "from public.user_symbols"
            ).fetchall()
        return [{**r, "updated_at": _iso(r["updated_at"])} for r in rows]

    def users(self) -> list[dict[str, Any]]:
        with self._connection() as conn:
            rows = conn.execute(
                "select id::text, email, raw_user_meta_data, updated_at::text from auth.users"
            ).fetchall()
        return [{**r, "updated_at": _iso(r["updated_at"])} for r in rows]

    def user_exists(self, user_id: str) -> bool:
        with self._connection() as conn:
            return conn.execute("select 1 from auth.users where id = %s", (user_id,)).fetchone() is not None

    def user(self, user_id: str) -> dict[str, Any] | None:
        """Return one ``auth.users`` row (as ``users()`` shapes them), None when there is none."""
        with self._connection() as conn:
            row = conn.execute(
                "select id::text, email, raw_user_meta_data, updated_at::text from auth.users where id = %s",
                (user_id,),
            ).fetchone()
        return None if row is None else {**row, "updated_at": _iso(row["updated_at"])}


def _iso(value: str | None) -> str | None:
    # Postgres text of timestamptz ("2026-11-27 10:00:00+00") → ISO 8601 the validators read.
    return None if value is None else value.replace(" ", "T", 1)


_auth_clients: dict[tuple[str, str], Any] = {}


def auth_admin_client(url: str, key: str) -> Any:
    """Return the process's one supabase-py client for project ``url`` (created once, then reused).

    ``key``: the project's service-role (secret) key — admin calls only, never a user session
    (flask-supabase's per-request client, which signs out on teardown, is not used).
    """
    client = _auth_clients.get((url, key))
    if client is None:
        from supabase import create_client

        client = _auth_clients[(url, key)] = create_client(url, key)
    return client


class AuthApiSource:
    """Users from the Supabase Auth admin API (``GET /auth/v1/admin/users``), paged.

    Pages shift while users sign up or are deleted, so a user missing from the pages is looked up
    once more by id (``GET /auth/v1/admin/users/<id>``) before it counts as gone, and the first
    page is read again at the end to catch sign-ups made during the listing.
    """

    name = "auth-api"

    def __init__(self, client: Any, page_size: int = AUTH_PAGE_SIZE) -> None:
        self.client = client
        self.page_size = page_size

    def _page(self, page: int) -> list[dict[str, Any]]:
        return [
            _auth_user_row(u) for u in self.client.auth.admin.list_users(page=page, per_page=self.page_size)
        ]

    def users(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            rows = self._page(page)
            for row in rows:
                seen[row["id"]] = row
            if len(rows) < self.page_size:
                break
            page += 1
        for row in self._page(1):  # the final re-check: sign-ups during the listing
            seen.setdefault(row["id"], row)
        return list(seen.values())

    def user_exists(self, user_id: str) -> bool:
        from supabase_auth.errors import AuthApiError

        try:
            self.client.auth.admin.get_user_by_id(user_id)
        except AuthApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def user(self, user_id: str) -> dict[str, Any] | None:
        """Return one user (``GET /auth/v1/admin/users/<id>``), None on 404."""
        from supabase_auth.errors import AuthApiError

        try:
            answer = self.client.auth.admin.get_user_by_id(user_id)
        except AuthApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _auth_user_row(answer.user)

    def user_symbols(self) -> list[dict[str, Any]]:
        raise ValueError("the Auth admin API has users only; watchers need a database source")


def _auth_user_row(user: Any) -> dict[str, Any]:
    updated = user.updated_at
    return {
        "id": str(user.id),
        "email": user.email,
        "raw_user_meta_data": user.user_metadata or {},
        "updated_at": updated.isoformat() if isinstance(updated, datetime) else updated,
    }


# --- the check -------------------------------------------------------------------------------


def check(
    db: Database,
    target: str,
    source: DatabaseSource | AuthApiSource,
    *,
    repair: bool = False,
    force: bool = False,
    users_on_delete: str = "anonymise",
) -> DriftReport:
    """Compare ``target`` (watchers | users) with ``source``; repair if asked; record the run.

    A repair applies every missing and differing row (safe: ordered writes never overwrite a
    newer version) and the removals of extra rows — unless they would remove more than
    ``REPAIR_LIMIT_PERCENT`` of the target's rows and ``force`` is not set: then only the
    removals are skipped, the run is recorded with the refusal (``removals_refused``), and
    RepairRefused is raised after the rest was repaired. ``repaired_keys`` lists what changed
    (at most 100 are recorded). A repair applies the source's version also when it is as new as
    ours (the source is the truth).
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}")
    report = DriftReport(target, source.name)
    compare = _compare_watchers if target == "watchers" else _compare_users
    try:
        fixes = compare(db, source, report)
        if repair and report.in_drift:
            deleting = Decimal(100) * len(report.extra) / max(report.target_rows, 1)
            if report.extra and deleting > REPAIR_LIMIT_PERCENT and not force:
                report.removals_refused = True
                report.error = (
                    f"removals refused: they would remove {len(report.extra)} of {report.target_rows} rows "
                    f"(above {REPAIR_LIMIT_PERCENT} %); check the source, then repair with --force"
                )
                fixes = [fix for fix in fixes if fix.kind != "extra"]
            with db.transaction() as conn:
                for fix in fixes:
                    if fix.apply(conn, users_on_delete):
                        report.repaired += 1
                        report.repaired_keys.append(fix.key)
            if report.removals_refused:
                raise RepairRefused(report.error, report)
    except Exception as exc:
        report.error = report.error or f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        _record(db, report)
    log = logger.warning if report.repaired else logger.info
    log(
        "sync check %s (%s): %s in drift (%s %%), repaired %s",
        target,
        source.name,
        report.in_drift,
        report.drift_rate,
        report.repaired,
        extra={
            "action": "sync_repaired" if report.repaired else "sync_check",
            "target": target,
            "drift_rate": float(report.drift_rate),
            "repaired": report.repaired,
            "repaired_keys": report.repaired_keys[:100],
        },
    )
    return report


@dataclass(frozen=True)
class Fix:
    """One repair: ``kind`` missing | differing | extra, the row's ``key``, and the write."""

    kind: str
    key: str
    apply: Callable[[Connection, str], bool]


def _compare_watchers(db: Database, source: Any, report: DriftReport) -> list[Fix]:
    # Target first, then source: a change landing in between looks like drift the repair's
    # ordered writes then leave alone, never like a row to delete that still exists.
    with db.transaction() as conn:
        target = {
            repo.watcher_key(r["user_id"], r["symbol"], r["timeframe"]): r
            for r in conn.execute(
                "select user_id, symbol, timeframe, strategy, active, source_updated_at from public.watchers"
            )
        }
    wanted: dict[str, dict[str, Any]] = {}
    for record in source.user_symbols():
        try:
            fields = watcher_fields(record)
        except InvalidRecord as exc:
            report.invalid.append(f"{record.get('user_id')}/{record.get('symbol')}: {exc.errors}")
            continue
        wanted[repo.watcher_key(fields["user_id"], fields["symbol"], fields["timeframe"])] = fields
    report.source_rows, report.target_rows = len(wanted), len(target)
    fixes: list[Fix] = []
    for key, fields in wanted.items():
        have = target.get(key)
        if have is None:
            kind = "missing"
        elif (have["strategy"], have["active"]) != (fields["strategy"], fields["active"]):
            kind = "differing"
        else:
            continue
        getattr(report, kind).append(key)
        upsert = lambda conn, _mode, f=fields: repo.upsert_watcher(conn, f, repair=True) is not None  # noqa: E731
        fixes.append(Fix(kind, key, upsert))
    for key, have in target.items():
        if key not in wanted:
            report.extra.append(key)
            fixes.append(
                Fix(
                    "extra",
                    key,
                    lambda conn, _mode, h=have: repo.delete_watcher(
                        conn,
                        {"user_id": h["user_id"], "symbol": h["symbol"], "timeframe": h["timeframe"]},
                        h["source_updated_at"],
                    ),
                )
            )
    return fixes


def _compare_users(db: Database, source: Any, report: DriftReport) -> list[Fix]:
    with db.transaction() as conn:
        target = {
            str(r["id"]): r
            for r in conn.execute(
                "select id, email, username, display_name, avatar_url, source_updated_at "
                "from public.users where deleted_at is null and id <> %s",
                (DEFAULT_USER_ID,),
            )
        }
    wanted: dict[str, dict[str, Any]] = {}
    for record in source.users():
        try:
            fields = profile_fields(record)
        except InvalidRecord as exc:
            report.invalid.append(f"{record.get('id')}: {exc.errors}")
            continue
        wanted[str(fields["id"])] = fields
    report.source_rows, report.target_rows = len(wanted), len(target)
    fixes: list[Fix] = []
    for key, fields in wanted.items():
        have = target.get(key)
        kind = profile_drift(have, fields)
        if kind is None:
            continue
        getattr(report, kind).append(key)
        fixes.append(Fix(kind, key, profile_fix(have, fields)))
    gone = [key for key in target if key not in wanted]
    for key in _confirmed_gone(source, gone):
        report.extra.append(key)
        fixes.append(Fix("extra", key, profile_removal(target[key])))
    return fixes


def profile_drift(have: dict[str, Any] | None, fields: dict[str, Any]) -> str | None:
    """Return ``missing``, ``differing`` or None (in step) for our profile ``have`` vs the source's."""
    if have is None:
        return "missing"
    if have["email"] != fields["email"] or have["username"] is None:
        return "differing"
    return None


def profile_fix(have: dict[str, Any] | None, fields: dict[str, Any]) -> Callable[[Connection, str], bool]:
    """Return the write that makes our profile ``have`` (None: absent) the source's ``fields``."""
    profile = {
        **fields,
        "set_display_name": have is None or have["display_name"] is None,
        "set_avatar_url": have is None or have["avatar_url"] is None,
    }
    candidates = username_candidates(fields["email"], fields["id"])
    return lambda conn, _mode: repo.upsert_profile(conn, profile, candidates, repair=True) is not None


def profile_removal(have: dict[str, Any]) -> Callable[[Connection, str], bool]:
    """Return the write that removes our profile ``have`` (anonymise or delete: the mode given)."""
    return lambda conn, mode: repo.remove_profile(conn, have["id"], have["source_updated_at"], mode)


def _confirmed_gone(source: Any, keys: Iterable[str]) -> list[str]:
    """Keys the listing did not show that a look-up by id confirms are gone (the final re-check)."""
    if isinstance(source, AuthApiSource):
        return [key for key in keys if not source.user_exists(key)]
    return list(keys)


def _record(db: Database, report: DriftReport) -> None:
    detail = report.as_dict()["keys"]
    with db.transaction() as conn:
        conn.execute(
            "insert into private.sync_checks (target, source, finished_at, source_rows, target_rows, "
            "missing, extra, differing, drift_rate, repaired, error, detail) "
            "values (%s, %s, now(), %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                report.target,
                report.source,
                report.source_rows,
                report.target_rows,
                len(report.missing),
                len(report.extra),
                len(report.differing),
                report.drift_rate,
                report.repaired,
                report.error,
                psycopg.types.json.Jsonb(detail),
            ),
        )


def source_for(
    target: str,
    db: Database,
    *,
    choice: str,
    source_database_url: str | None,
    supabase_url: str | None,
    supabase_key: str | None,
) -> DatabaseSource | AuthApiSource:
    """Build the source named by ``choice`` (auto | same | database | auth-api).

    auto: ``source_database_url`` when set, else this database. Raises ValueError naming what is
    missing (``SYNC_SOURCE_DATABASE_URL``, ``SUPABASE_URL``/``SUPABASE_SERVICE_ROLE_KEY``).
    """
    if choice == "auto":
        choice = "database" if source_database_url else "same"
    if choice == "same":
        return DatabaseSource(db=db)
    if choice == "database":
        if not source_database_url:
            raise ValueError("set SYNC_SOURCE_DATABASE_URL to compare with another database")
        return DatabaseSource(url=source_database_url)
    if choice == "auth-api":
        if target != "users":
            raise ValueError("the Auth admin API is a source of users only")
        if not (supabase_url and supabase_key):
            raise ValueError("the Auth admin API needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
        return AuthApiSource(auth_admin_client(supabase_url, supabase_key))
    raise ValueError(f"unknown source {choice!r}: use same, database or auth-api")


def configured_source(target: str, db: Database, config: Config) -> DatabaseSource | AuthApiSource:
    """Build ``target``'s source from ``config`` (SYNC_USERS_SOURCE for users, else auto).

    Raises ValueError naming what is missing (see ``source_for``).
    """
    return source_for(
        target,
        db,
        choice=config.SYNC_USERS_SOURCE if target == "users" else "auto",
        source_database_url=config.SYNC_SOURCE_DATABASE_URL,
        supabase_url=config.SUPABASE_URL,
        supabase_key=config.SUPABASE_SERVICE_ROLE_KEY,
    )


SYNC_CHECK = "viewzenix.sync_check"


def register_periodic_check(job_app: Any, db: Database, config: Config) -> None:
    """Register the periodic drift check on ``job_app`` (worker side), on ``config``'s schedule.

    Every ``SYNC_CHECK_CRON`` (UTC; "" = never) it checks watchers and users against their
    sources (``SYNC_SOURCE_DATABASE_URL``, ``SYNC_USERS_SOURCE``), records each run's drift rate
    in ``private.sync_checks`` (shown by ``GET /hooks/supabase/health``), repairs when
    ``SYNC_CHECK_REPAIR`` is true (never above 50 % drift), and purges hook events older than
    ``HOOK_EVENTS_RETENTION_DAYS`` with their tombstones (the hourly ``purge_expired``).
    """
    if not config.SYNC_CHECK_CRON:
        return

    @job_app.periodic(cron=config.SYNC_CHECK_CRON, periodic_id="sync_check")
    @job_app.task(name=SYNC_CHECK, queue="maintenance", pass_context=False)
    def sync_check_task(timestamp: int | None = None) -> None:
        for target in TARGETS:
            try:
                source = configured_source(target, db, config)
                check(
                    db,
                    target,
                    source,
                    repair=config.SYNC_CHECK_REPAIR,
                    users_on_delete=config.SUPABASE_USERS_ON_DELETE,
                )
            except Exception as exc:  # one target failing must not stop the other
                logger.warning(
                    "sync check of %s failed: %s", target, exc, extra={"action": "sync_check_failed"}
                )
