"""The alert format page lists every code a refused alert can carry: the intake refusals (every
AlertRejected subclass and the intake's other errors) and the order engine's denials."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "alert-format.md"


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_intake_refusal_code_is_documented():
    from viewzenix.domain.parsing import AlertRejected
    from viewzenix.services.intake import ConfigInactive
    from viewzenix.services.single_tenant import InvalidPassphrase
    from viewzenix.webhooks.limits import RateLimited, SourceNotAllowed

    # Importing the services registers their AlertRejected subclasses; named here so it is sure.
    extra = {AlertRejected, ConfigInactive, InvalidPassphrase, RateLimited, SourceNotAllowed}
    codes = {c.code for c in _subclasses(AlertRejected) | extra}
    codes |= {"single_tenant_disabled", "database_unavailable", "not_found"}
    page = PAGE.read_text()
    assert sorted(c for c in codes if f"`{c}`" not in page) == []


def test_every_order_engine_denial_code_is_documented():
    tree = ast.parse((ROOT / "viewzenix" / "domain" / "engine.py").read_text())
    codes = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "Denial"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert len(codes) >= 15
    page = PAGE.read_text()
    assert sorted(c for c in codes if f"`{c}`" not in page) == []
