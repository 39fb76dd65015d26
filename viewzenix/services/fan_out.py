"""One alert, several accounts (issue 17 item 5): webhook groups and their intake.

A **webhook group** is a URL of its own, ``POST /webhooks/groups/<group_id>/<token>`` — as a
TradersPost strategy's webhook feeds every subscription of that strategy — whose alerts are stored
once per **member** webhook config: each member keeps its own sizing, broker, risk rules, symbol
mapping, source allowlist and dedupe window, and gets its own signal (under that config, so its
page shows it), its own execution job (its own per-(config, symbol) lock) and its own outcome.
The member signals of one delivery share ``fan_out_id`` and carry ``group_id``.

- A parsed alert costs one round trip for the whole group (``routing_repo.GROUP_INTAKE``).
- One member's refusal (turned off, source not allowed) or later failure (its broker down) does
  not touch the others: their jobs are separate.
- Dedupe is per member config: a resend to the group is a duplicate on every member, so it makes
  no order at all; the first delivery made exactly one signal (one order plan) per member.
- The group's token is hashed like a config's (SHA-256; shown once at creation or rotation).

Answer: ``{group_id, fan_out_id, status: "fanned_out", signals: [{config_id, signal_id, status,
ticker, duplicate_of, code, message}]}`` — 200 when any member accepted (or is a duplicate); when
every member refused, that first refusal's status and code; 422 ``group_empty`` for a group with
no members (nothing stored); 404 for an unknown group or a wrong token.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import procrastinate

from viewzenix import notifications
from viewzenix.db import Database
from viewzenix.exceptions import Invalid, NotFound
from viewzenix.repositories import routing as repo
from viewzenix.services import approvals, intake, routing
from viewzenix.services.common import Caller
from viewzenix.services.webhook_configs import new_token, token_digest

logger = logging.getLogger(__name__)

MAX_MEMBERS = 20  # every member is a row written inside TradingView's 3 s


class GroupEmpty(Invalid):
    """This webhook group has no member webhooks: the alert was not stored. Add members first."""

    code = "group_empty"


@dataclass(frozen=True)
class FanOutOutcome:
    """What became of an alert on a group's URL: one entry per member (``signals``)."""

    group_id: uuid.UUID
    fan_out_id: uuid.UUID
    signals: list[dict[str, Any]] = field(default_factory=list)

    def answer(self) -> tuple[dict[str, Any], int]:
        """Return ``(body, status)``: 200 unless every member refused (then the first refusal's)."""
        body: dict[str, Any] = {
            "group_id": str(self.group_id),
            "fan_out_id": str(self.fan_out_id),
            "status": "fanned_out",
            "signals": self.signals,
        }
        refused = [s for s in self.signals if s["status"] == "rejected"]
        if self.signals and len(refused) == len(self.signals):
            first = refused[0]
            message = "Every member webhook refused the alert."
            body.update(status=first["http_status"], code=first["code"], message=message)
            return body, first["http_status"]
        return body, 200


def _entry(
    config_id: uuid.UUID,
    signal_id: uuid.UUID,
    status: str,
    ticker: str | None,
    *,
    duplicate_of: uuid.UUID | None = None,
    code: str | None = None,
    message: str | None = None,
    http_status: int | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "config_id": str(config_id),
        "signal_id": str(signal_id),
        "status": status,
        "ticker": ticker,
    }
    if duplicate_of is not None:
        entry["duplicate_of"] = str(duplicate_of)
    if code is not None:
        entry.update(code=code, message=message, http_status=http_status)
    return entry


def receive(
    db: Database,
    job_app: procrastinate.App,
    *,
    group_id: uuid.UUID,
    token: str,
    alert: intake.Alert,
    public_base_url: str = "",
) -> FanOutOutcome:
    """Store the alert once per member of the group; defer each accepted member's execution.

    A member in approval mode holds its signal ``awaiting_approval`` (no job) and is notified
    with the link (``public_base_url``: the dashboard's address), as for its own URL. Raises
    ``intake.WebhookNotFound`` (404) for an unknown group or a wrong token (nothing written),
    ``GroupEmpty`` (422) for a group without members.
    """
    received = intake.read(alert)
    digest = token_digest(token)
    fan_out_id = uuid.uuid4()
    if received.rejection is None:
        return _receive_parsed(
            db,
            group_id=group_id,
            digest=digest,
            received=received,
            fan_out_id=fan_out_id,
            public_base_url=public_base_url,
        )
    entries: list[dict[str, Any]] = []
    with db.transaction() as conn:
        members = repo.group_members_for_intake(conn, group_id)
        if not members or not hmac.compare_digest(bytes(members[0]["group_token_hash"]), digest):
            _not_found(group_id)
        if members[0]["id"] is None:
            raise GroupEmpty()
        for member in members:
            mine = replace(received, signal_id=uuid.uuid4())
            if not routing.source_allowed(member["allowed_source_ips"], alert.source_ip):
                mine = replace(mine, rejection=routing.SourceRefused())
            outcome = intake.store_alert(conn, job_app, config=member, received=mine)
            rejection = outcome.rejection
            entries.append(
                _entry(
                    member["id"],
                    outcome.signal_id,
                    outcome.status,
                    outcome.ticker,
                    code=rejection.code if rejection else None,
                    message=outcome.message,
                    http_status=rejection.status if rejection else None,
                )
            )
        repo.link_fan_out(conn, [uuid.UUID(e["signal_id"]) for e in entries], group_id, fan_out_id)
    return FanOutOutcome(group_id, fan_out_id, entries)


def _not_found(group_id: uuid.UUID) -> None:
    logger.info(
        "webhook group with unknown id or wrong token",
        extra={"action": "intake_not_found", "group_id": group_id},
    )
    raise intake.WebhookNotFound()


def _receive_parsed(
    db: Database,
    *,
    group_id: uuid.UUID,
    digest: bytes,
    received: intake.Received,
    fan_out_id: uuid.UUID,
    public_base_url: str = "",
) -> FanOutOutcome:
    assert received.parsed is not None
    parsed = received.parsed
    signal = parsed.signal
    inactive, source_refused = intake.ConfigInactive(), routing.SourceRefused()
    params = {**intake.parsed_alert_params(received, digest), "group_id": group_id, "fan_out_id": fan_out_id}
    with db.statement() as conn:
        rows = repo.group_intake(conn, params)
    if not rows:
        _not_found(group_id)
    if rows[0]["config_id"] is None:
        raise GroupEmpty()
    statuses = {inactive.code: inactive.status, source_refused.code: source_refused.status}
    entries = []
    for row in rows:
        outcome = row["outcome"]
        entries.append(
            _entry(
                row["config_id"],
                row["signal_id"],
                outcome,
                row["ticker"],
                duplicate_of=row["claimed_by"] if outcome == "duplicate" else None,
                code=row["reject_code"],
                message=row["reject_message"],
                http_status=statuses.get(row["reject_code"]),
            )
        )
    logger.info(
        "alert fanned out to %d webhooks",
        len(rows),
        extra={"action": "signal_fanned_out", "group_id": group_id, "fan_out_id": fan_out_id},
    )
    refused = [row for row in rows if row["outcome"] == "rejected"]
    if refused:  # off the hot path: the refusals' notifications, in their own transaction
        with db.transaction() as conn:
            preferences = repo.notification_preferences(conn, [row["config_id"] for row in refused])
            for row in refused:
                notifications.signal_refused(
                    conn,
                    preferences.get(row["config_id"]),
                    config_id=row["config_id"],
                    signal_id=row["signal_id"],
                    code=row["reject_code"],
                    message=row["reject_message"],
                )
    for row in rows:  # off the hot path: each waiting member's notification, with its link
        if row["outcome"] == "awaiting_approval":
            approvals.notify_waiting(
                db,
                config_id=row["config_id"],
                signal_id=row["signal_id"],
                ticker=row["ticker"],
                action=str(signal.action),
                public_base_url=public_base_url,
            )
    return FanOutOutcome(group_id, fan_out_id, entries)


# --- managing groups (REST API, under the caller's claims: RLS holds) ---


def group_url(base_url: str, group_id: uuid.UUID, token: str) -> str:
    """Return the URL to paste into TradingView's alert dialog for the group."""
    return f"{base_url}/webhooks/groups/{group_id}/{token}"


def masked_group_url(base_url: str, row: dict[str, Any]) -> str:
    """Return the group's URL with the token masked (its first 4 characters shown)."""
    return f"{base_url}/webhooks/groups/{row['id']}/{row['token_hint']}{'•' * 8}"


def _members(conn: Any, config_ids: list[uuid.UUID], group_id: uuid.UUID | None) -> list[uuid.UUID]:
    """Validate ``config_ids`` as the caller's own configs; raise ``Invalid`` (422, field config_ids)."""
    if len(config_ids) > MAX_MEMBERS:
        raise Invalid(
            f"A group has at most {MAX_MEMBERS} member webhooks.",
            code="too_many_members",
            errors={"config_ids": [f"At most {MAX_MEMBERS}."]},
        )
    if group_id is not None and group_id in config_ids:
        raise Invalid(
            "A group cannot include itself.",
            code="group_includes_itself",
            errors={"config_ids": [f"{group_id} is this group."]},
        )
    if len(set(config_ids)) != len(config_ids):
        raise Invalid(
            "A webhook is listed twice.", code="duplicate_member", errors={"config_ids": ["Listed twice."]}
        )
    unknown = [c for c in config_ids if c not in repo.visible_config_ids(conn, config_ids)]
    if unknown:
        # Another user's config and a config that does not exist answer alike: nothing to probe.
        raise Invalid(
            "No webhook config of yours has this id.",
            code="unknown_config",
            errors={"config_ids": [f"{c} is not one of your webhook configs." for c in unknown]},
        )
    return config_ids


def list_groups(db: Database, caller: Caller) -> list[dict[str, Any]]:
    """Return the caller's groups ``[{id, name, token_hint, created_at, config_ids}]``, newest first."""
    with db.transaction(caller.claims) as conn:
        return repo.groups(conn)


def get_group(db: Database, caller: Caller, group_id: uuid.UUID) -> dict[str, Any]:
    """Return one of the caller's groups. Raises NotFound (also for another user's group)."""
    with db.transaction(caller.claims) as conn:
        row = repo.group(conn, group_id)
    if row is None:
        raise NotFound("No webhook group with this id.")
    return row


def create_group(
    db: Database, caller: Caller, *, name: str, config_ids: list[uuid.UUID]
) -> tuple[dict[str, Any], str]:
    """Create a group of the caller's configs; return ``(row, token)`` — the token is shown once.

    Raises ``Invalid`` (422): ``unknown_config`` (not yours, or no such config),
    ``duplicate_member``, ``too_many_members``; field ``config_ids``.
    """
    token = new_token()
    with db.transaction(caller.claims) as conn:
        members = _members(conn, config_ids, None)
        group_id = repo.insert_group(
            conn, user_id=caller.user_id, name=name, token_hash=token.digest, token_hint=token.hint
        )
        repo.set_members(conn, group_id, caller.user_id, members)
        return repo.group(conn, group_id), token.token


def update_group(db: Database, caller: Caller, group_id: uuid.UUID, values: dict[str, Any]) -> dict[str, Any]:
    """Rename a group and/or replace its members (``config_ids``, in order). Raises NotFound, Invalid."""
    with db.transaction(caller.claims) as conn:
        if repo.group(conn, group_id) is None:
            raise NotFound("No webhook group with this id.")
        if "name" in values:
            repo.update_group(conn, group_id, {"name": values["name"]})
        if "config_ids" in values:
            repo.set_members(conn, group_id, caller.user_id, _members(conn, values["config_ids"], group_id))
        return repo.group(conn, group_id)


def rotate_group_token(db: Database, caller: Caller, group_id: uuid.UUID) -> tuple[dict[str, Any], str]:
    """Replace the group's URL token (the old URL stops at once); return ``(row, token)``."""
    token = new_token()
    with db.transaction(caller.claims) as conn:
        found = repo.update_group(
            conn, group_id, {"security_token_hash": token.digest, "token_hint": token.hint}
        )
        if not found:
            raise NotFound("No webhook group with this id.")
        return repo.group(conn, group_id), token.token


def delete_group(db: Database, caller: Caller, group_id: uuid.UUID) -> None:
    """Delete one of the caller's groups (its member webhooks stay). Raises NotFound."""
    with db.transaction(caller.claims) as conn:
        if not repo.delete_group(conn, group_id):
            raise NotFound("No webhook group with this id.")
