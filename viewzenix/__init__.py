"""Viewzenix: TradingView alerts to broker orders.

``create_app()`` is the only entry point for the web process (``wsgi:app``); the worker builds
the same runtime through ``viewzenix.runtime.build_runtime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from config import Config


def create_app(config: Config | None = None) -> Flask:
    """Build the Flask app: config, database pool, auth, API, dashboard, inbound webhooks, CLI commands.

    ``config``: a ``config.Config``; by default ``config.load_config()`` reads the environment.
    Raises ``config.ConfigError`` when a required setting is missing.
    """
    from flask import Flask
    from werkzeug.middleware.proxy_fix import ProxyFix

    from config import load_config
    from viewzenix import access_log, cli, dashboard, health, metrics
    from viewzenix.api import register_api
    from viewzenix.cookie_session import NoCookieSession
    from viewzenix.errors import register_error_handlers
    from viewzenix.logs import configure_logging
    from viewzenix.runtime import build_runtime
    from viewzenix.webhooks import register_webhooks

    config = config or load_config()
    configure_logging(config.LOG_LEVEL, config.LOG_FORMAT)
    app = Flask(__name__)
    app.config.from_object(config)
    app.session_interface = NoCookieSession()  # bearer and URL tokens only: no cookie session
    if config.TRUSTED_PROXY_COUNT:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.TRUSTED_PROXY_COUNT)  # type: ignore[method-assign]

    runtime = build_runtime(config, role="web")
    app.extensions["viewzenix"] = runtime

    register_error_handlers(app)
    app.register_blueprint(health.bp)
    register_webhooks(app)
    register_api(app)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(dashboard.views.fragments)
    access_log.install(app, config.ACCESS_LOG)
    metrics.install(app)  # GET /metrics; times the alert webhook requests
    cli.register(app)
    return app
