"""The REST API under ``/api`` (flask-smorest): OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``."""

from __future__ import annotations

from flask import Flask

from viewzenix.errors import Api


def register_api(app: Flask) -> Api:
    """Create the Api and register every blueprint (each requires a bearer token)."""
    from viewzenix.api import account, orders, positions, reconciliations, signals, webhook_configs

    api = Api(app)
    for module in (webhook_configs, signals, orders, positions, account, reconciliations):
        api.register_blueprint(module.bp)
    return api
