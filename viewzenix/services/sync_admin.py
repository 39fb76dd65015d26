"""The admin tools of the Supabase sync: check and repair one table, or one user's profile.

For operators without a shell (``flask sync check`` needs one): ``POST /api/admin/sync/<table>``
runs the drift check of ``watchers`` or ``users`` against its configured source and repairs
(``services.sync_check.check``: the same rules as the periodic check — removals above half of
the target's rows are skipped unless ``force``); ``POST /api/admin/sync/users/<user_id>`` asks
whether one user's profile is in step with the source (the specification's ``testUserSync``)
and fixes it. Admins only (``app_metadata.role`` = ``admin``). Each call is recorded in
``private.job_admin_actions`` (``sync_table`` / ``sync_user``, with the report as ``detail``),
refusals included.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from viewzenix.db import Database
from viewzenix.exceptions import Conflict, NotFound
from viewzenix.repositories import jobs as jobs_repo
from viewzenix.services import sync_check
from viewzenix.services.common import Caller
from viewzenix.services.job_admin import SYNC_TABLE, SYNC_USER, require_admin
from viewzenix.services.supabase_hooks import InvalidRecord, profile_fields

if TYPE_CHECKING:
    from config import Config

logger = logging.getLogger(__name__)

# Source table names an operator may type, mapped to our targets.
TABLES = {"watchers": "watchers", "user_symbols": "watchers", "users": "users", "auth.users": "users"}


class SyncSourceUnavailable(Conflict):
    """The sync's source is not configured for this target (see the message)."""

    code = "sync_source_unavailable"


def _source(db: Database, config: Config, target: str) -> Any:
    try:
        return sync_check.configured_source(target, db, config)
    except ValueError as exc:
        raise SyncSourceUnavailable(f"The {target} sync has no usable source: {exc}.") from None


def _record(
    db: Database,
    caller: Caller,
    action: str,
    message: str,
    detail: dict[str, Any],
    code: str | None = None,
) -> dict[str, Any]:
    with db.transaction() as conn:
        return jobs_repo.record_action(
            conn,
            action=action,
            result="refused" if code and code != "removals_refused" else "done",
            code=code,
            message=message,
            actor_id=caller.user_id,
            actor_email=caller.email,
            detail=detail,
        )


def sync_table(
    db: Database, config: Config, caller: Caller, table: str, *, repair: bool = True, force: bool = False
) -> dict[str, Any]:
    """Check ``table`` (watchers | users, or user_symbols | auth.users) against its source; repair.

    Returns the drift report (``DriftReport.as_dict``: counts, drift rate, keys, ``repaired``,
    ``removals_refused``) plus ``action`` (the audit record). Removals above half of the target
    are skipped unless ``force`` (``removals_refused`` true, the rest repaired). Raises Forbidden
    for non-admins, NotFound (``unknown_table``) for another table, SyncSourceUnavailable (409).
    """
    require_admin(caller)
    target = TABLES.get(table)
    if target is None:
        raise NotFound(
            f"No sync for {table!r}: use watchers (from public.user_symbols) or users (from auth.users).",
            code="unknown_table",
        )
    try:
        source = _source(db, config, target)
    except SyncSourceUnavailable as error:
        _record(db, caller, SYNC_TABLE, error.message, {"target": target}, error.code)
        raise
    try:
        report = sync_check.check(
            db, target, source, repair=repair, force=force, users_on_delete=config.SUPABASE_USERS_ON_DELETE
        )
    except sync_check.RepairRefused as refused:  # the rest was repaired; the run is recorded
        assert refused.report is not None
        report = refused.report
    body = report.as_dict()
    message = (
        f"{target}: {body['missing']} missing, {body['extra']} extra, {body['differing']} differing "
        f"({body['drift_rate']} %); repaired {body['repaired']}"
        + ("; removals refused (above half of the rows: force to apply)" if body["removals_refused"] else "")
    )
    body["action"] = _record(
        db, caller, SYNC_TABLE, message, body, "removals_refused" if body["removals_refused"] else None
    )
    logger.info(
        message, extra={"action": "admin_sync_table", "target": target, "admin_id": str(caller.user_id)}
    )
    return body


def sync_user(
    db: Database, config: Config, caller: Caller, user_id: uuid.UUID, *, repair: bool = True
) -> dict[str, Any]:
    """Say whether user ``user_id``'s profile (``public.users``) is in step with the source; fix it.

    Returns ``{user_id, source, state, repaired, message, profile, action}``: ``state`` is
    ``in_step``, ``missing`` (the source has the user, we have no profile: created),
    ``differing`` (email or username: updated), ``extra`` (the source has no such user: our
    profile is anonymised or deleted, ``SUPABASE_USERS_ON_DELETE``) or ``invalid`` (the source's
    record cannot be applied; ``errors`` says why; nothing changed). ``profile``: ours after the
    call (None when absent). Raises Forbidden, NotFound (``user_not_found``: neither side knows
    the user, recorded), SyncSourceUnavailable.
    """
    require_admin(caller)
    try:
        source = _source(db, config, "users")
    except SyncSourceUnavailable as error:
        _record(db, caller, SYNC_USER, error.message, {"user_id": str(user_id)}, error.code)
        raise
    record = source.user(str(user_id))
    with db.transaction() as conn:
        have = _profile(conn, user_id)
    result: dict[str, Any] = {"user_id": user_id, "source": source.name, "repaired": False}
    fix = None
    if record is None and have is None:
        error = NotFound(f"No user {user_id} in the source ({source.name}) nor here.", code="user_not_found")
        detail = {"user_id": str(user_id), "state": "absent"}
        _record(db, caller, SYNC_USER, error.message, detail, error.code)
        raise error
    if record is None:
        result["state"] = "extra"
        fix = sync_check.profile_removal(have)
    else:
        try:
            fields = profile_fields(record)
        except InvalidRecord as exc:
            result.update(state="invalid", errors=exc.errors)
        else:
            kind = sync_check.profile_drift(have, fields)
            result["state"] = kind or "in_step"
            if kind is not None:
                fix = sync_check.profile_fix(have, fields)
    if fix is not None and repair:
        with db.transaction() as conn:
            result["repaired"] = fix(conn, config.SUPABASE_USERS_ON_DELETE)
    with db.transaction() as conn:
        result["profile"] = _profile(conn, user_id, include_deleted=True)
    done = result["repaired"]
    result["message"] = {
        "in_step": "The profile is in step with the source.",
        "missing": "The source has this user and we had no profile: "
        + ("created." if done else "not created."),
        "differing": "The profile differed from the source: " + ("updated." if done else "not updated."),
        "extra": "The source has no such user: our profile was "
        + (f"{config.SUPABASE_USERS_ON_DELETE}d." if done else "left as is."),
        "invalid": "The source's record cannot be applied (see errors); nothing changed.",
    }[result["state"]]
    result["action"] = _record(
        db,
        caller,
        SYNC_USER,
        f"user {user_id}: {result['state']}; {result['message']}",
        {k: v for k, v in result.items() if k != "profile"},
    )
    return result


def _profile(conn: Any, user_id: uuid.UUID, *, include_deleted: bool = False) -> dict[str, Any] | None:
    row = conn.execute(
        "select id, email, username, display_name, avatar_url, source_updated_at, deleted_at "
        "from public.users where id = %s",
        (user_id,),
    ).fetchone()
    if row is None or (row["deleted_at"] is not None and not include_deleted):
        return None
    return row
