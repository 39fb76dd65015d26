"""``/api/webhook-groups``: one TradingView alert to several webhook configs (issue 17 item 5).

The rules are ``viewzenix.services.fan_out``'s; a group's URL token is shown once (create, rotate).
"""

from __future__ import annotations

import uuid

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from viewzenix.api.auth import authenticate, current_caller
from viewzenix.api.validators import storable_text
from viewzenix.runtime import get_runtime
from viewzenix.services import fan_out as service

bp = Blueprint(
    "webhook_groups",
    __name__,
    url_prefix="/api/webhook-groups",
    description="Webhook groups: one URL whose alerts go to several webhook configs, each its own account.",
)
bp.before_request(authenticate)


class WebhookGroupCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=[validate.Length(min=1, max=200), storable_text])
    config_ids = ma.fields.List(
        ma.fields.UUID(), load_default=list, metadata={"description": "Member webhook configs, in order"}
    )


class WebhookGroupUpdateSchema(ma.Schema):
    name = ma.fields.String(validate=[validate.Length(min=1, max=200), storable_text])
    config_ids = ma.fields.List(ma.fields.UUID())


class WebhookGroupSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    config_ids = ma.fields.List(ma.fields.UUID())
    token_hint = ma.fields.String()
    created_at = ma.fields.DateTime()
    webhook_url = ma.fields.String(metadata={"description": "Token masked except on create and rotate"})


class WebhookGroupWithTokenSchema(WebhookGroupSchema):
    token = ma.fields.String(metadata={"description": "Shown once"})


def _base_url() -> str:
    return get_runtime().config.PUBLIC_BASE_URL


def _masked(row: dict) -> dict:
    return {**row, "webhook_url": service.masked_group_url(_base_url(), row)}


def _with_token(row: dict, token: str) -> dict:
    return {**row, "token": token, "webhook_url": service.group_url(_base_url(), row["id"], token)}


@bp.route("")
class WebhookGroups(MethodView):
    @bp.response(200, WebhookGroupSchema(many=True))
    def get(self):
        """List your webhook groups, newest first."""
        return [_masked(r) for r in service.list_groups(get_runtime().db, current_caller())]

    @bp.arguments(WebhookGroupCreateSchema)
    @bp.response(201, WebhookGroupWithTokenSchema)
    def post(self, data):
        """Create a group of your webhook configs; the answer holds its URL with the token, shown once.

        422 ``unknown_config`` (not yours or no such config), ``duplicate_member``, ``too_many_members``.
        """
        row, token = service.create_group(
            get_runtime().db, current_caller(), name=data["name"], config_ids=data["config_ids"]
        )
        return _with_token(row, token)


@bp.route("/<uuid:group_id>")
class WebhookGroupById(MethodView):
    @bp.response(200, WebhookGroupSchema)
    def get(self, group_id: uuid.UUID):
        """Get one webhook group (token masked)."""
        return _masked(service.get_group(get_runtime().db, current_caller(), group_id))

    @bp.arguments(WebhookGroupUpdateSchema)
    @bp.response(200, WebhookGroupSchema)
    def patch(self, data, group_id: uuid.UUID):
        """Rename the group and/or replace its members. 422 as on create, and ``group_includes_itself``."""
        return _masked(service.update_group(get_runtime().db, current_caller(), group_id, data))

    @bp.response(204)
    def delete(self, group_id: uuid.UUID):
        """Delete the group (its member webhooks and their signals stay)."""
        service.delete_group(get_runtime().db, current_caller(), group_id)


@bp.route("/<uuid:group_id>/rotate-token")
class WebhookGroupRotateToken(MethodView):
    @bp.response(200, WebhookGroupWithTokenSchema)
    def post(self, group_id: uuid.UUID):
        """Replace the group's URL token; the old URL stops working at once. The new URL is shown once."""
        row, token = service.rotate_group_token(get_runtime().db, current_caller(), group_id)
        return _with_token(row, token)
