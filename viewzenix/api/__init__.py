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
        approvals,
        broker_credentials,
        controls,
        job_admin,
        market_data,
        openapi,
        orders,
        positions,
        reconciliations,
        routing,
        signals,
        trades,
        webhook_configs,
        webhook_groups,
    )
    from viewzenix.api.idempotency import IdempotencyKeyDoc, make_api_idempotent
    from viewzenix.api.job_runner import bp as job_runner_bp
    from viewzenix.api.plain_routes_doc import document_plain_routes

    api = Api(app, spec_kwargs={"extra_plugins": [IdempotencyKeyDoc()]})
    openapi.register(api)  # Decimals documented as the strings they are on the wire
    for module in (
        webhook_configs,
        broker_credentials,
        signals,
        orders,
        positions,
        account,
        trades,
        reconciliations,
        job_admin,
        market_data,
        controls,
        approvals,
        routing,
        webhook_groups,
    ):
        api.register_blueprint(module.bp)
    api.register_blueprint(job_runner_bp)  # authenticated by the runner secret; not idempotent
    make_api_idempotent(app)
    document_plain_routes(api, app)
    _serve_swagger_ui_assets(app)
    return api


def _serve_swagger_ui_assets(app: Flask) -> None:
    """Serve Swagger UI's files (from PyPI's flask-swagger-ui) at ``/api/docs/static/``.

    ``/api/docs`` then works offline: config ``OPENAPI_SWAGGER_UI_URL`` points here, not to a CDN.
    """
    from pathlib import Path

    import flask_swagger_ui
    from flask import Blueprint

    dist = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
    app.register_blueprint(
        Blueprint("swagger_ui_assets", __name__, static_folder=str(dist), static_url_path="/api/docs/static")
    )
