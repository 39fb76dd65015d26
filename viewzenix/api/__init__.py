"""The REST API under ``/api`` (flask-smorest): OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``."""

from __future__ import annotations

from flask import Flask

from viewzenix.errors import Api


def register_api(app: Flask) -> Api:
    """Create the Api and register every blueprint (each requires a bearer token).

    Then every mutating ``/api`` endpoint honours Idempotency-Key (``viewzenix.api.idempotency``):
    its view is wrapped here, once, so blueprints need nothing of their own.
    """
    from viewzenix.api import (
        account,
        orders,
        positions,
        reconciliations,
        signals,
        trades,
        webhook_configs,
    )
    from viewzenix.api.idempotency import IdempotencyKeyDoc, make_api_idempotent

    api = Api(app, spec_kwargs={"extra_plugins": [IdempotencyKeyDoc()]})
    for module in (webhook_configs, signals, orders, positions, account, trades, reconciliations):
        api.register_blueprint(module.bp)
    make_api_idempotent(app)
    return api
