"""The REST API under ``/api`` (flask-smorest): OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``."""

from __future__ import annotations

from flask import Flask

from viewzenix.errors import Api


def register_api(app: Flask) -> Api:
    """Create the Api and register every blueprint (each requires a bearer token: a user's access
    token, or for ``/api/jobs/run`` the runner secret).

    Then every mutating ``/api`` endpoint honours Idempotency-Key (``viewzenix.api.idempotency``):
    its view is wrapped here, once, so blueprints need nothing of their own.
    """
    from viewzenix.api import (
        account,
        broker_credentials,
        openapi,
        orders,
        positions,
        reconciliations,
        signals,
        webhook_configs,
    )
    from viewzenix.api.idempotency import IdempotencyKeyDoc, make_api_idempotent
    from viewzenix.api.job_runner import bp as job_runner_bp

    api = Api(app, spec_kwargs={"extra_plugins": [IdempotencyKeyDoc()]})
    openapi.register(api)  # Decimals documented as the strings they are on the wire
    for module in (webhook_configs, broker_credentials, signals, orders, positions, account, reconciliations):
        api.register_blueprint(module.bp)
    api.register_blueprint(job_runner_bp)  # authenticated by the runner secret; not idempotent
    make_api_idempotent(app)
    return api
