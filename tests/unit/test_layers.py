"""Imports point one way: services and the domain never import Flask (HTTP stays at the edge)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def _modules(package: str) -> list[str]:
    import importlib
    import pkgutil

    path = importlib.import_module(package).__path__
    return [f"{package}.{m.name}" for m in pkgutil.iter_modules(path)]


# Every module of the services, the domain, the brokers and the low half of the job queue.
FLASK_FREE = [
    "viewzenix.exceptions",
    "viewzenix.jobs",
    *_modules("viewzenix.services"),
    *_modules("viewzenix.domain"),
    *_modules("viewzenix.brokers"),
    *_modules("viewzenix.notifications"),
    "viewzenix.marketdata",
    *_modules("viewzenix.marketdata"),
]


def test_services_and_domain_do_not_import_flask():
    code = (
        "import importlib, sys\n"
        f"for name in {FLASK_FREE!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'flask' or m.startswith('flask.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_service_error_carries_code_status_hint_and_docstring_message():
    from viewzenix.exceptions import NotFound
    from viewzenix.services.intake import ConfigInactive, WebhookNotFound

    error = WebhookNotFound()
    assert isinstance(error, NotFound)
    assert error.body() == {"code": "not_found", "status": 404, "message": "No webhook at this URL."}
    inactive = ConfigInactive()
    assert (inactive.code, inactive.status) == ("config_inactive", 403)
    assert inactive.message == "This webhook config is turned off (is_active is false)."
