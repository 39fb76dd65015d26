""".env.example in step with config.py: production's required variables are the ones marked
"Required in production", every variable config.py reads is listed, and the deploy page's
checklist covers every variable in the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import config

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^#? ?([A-Z][A-Z0-9_]+)=")


def _entries() -> list[tuple[str, str]]:
    """Return ``(variable, the comment block just above it)`` for each variable in the file."""
    entries, comment = [], []
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = LINE.match(line)
        if match:
            entries.append((match[1], " ".join(comment)))
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("# "))
        else:
            comment = []
    return entries


def test_the_variables_marked_required_are_the_ones_production_requires():
    marked = {name for name, comment in _entries() if "Required in production" in comment}
    assert marked == set(config.ProductionConfig.REQUIRED)


def test_production_refuses_to_start_without_each_required_variable():
    complete = {
        "SECRET_KEY": "s" * 32,
        "DATABASE_URL": "postgresql://localhost/x",
        "SUPABASE_URL": "https://example.supabase.co",
        "CREDENTIALS_ENCRYPTION_KEY": "uGJ1bpCJqy1UzXYtGwl5E1j6dCqnJW0P3c8kCmCgBlo=",
    }
    assert set(complete) == set(config.ProductionConfig.REQUIRED)
    config.ProductionConfig(complete)
    for name in complete:
        with pytest.raises(config.ConfigError, match=name):
            config.ProductionConfig({k: v for k, v in complete.items() if k != name})


def test_every_variable_config_reads_is_in_env_example():
    source = (ROOT / "config.py").read_text()
    read = set(re.findall(r'env(?:\.get)?\(\s*(?:env,\s*)?"([A-Z][A-Z0-9_]+)"', source))
    read |= set(re.findall(r'_(?:int|bool|decimal)\(env, "([A-Z][A-Z0-9_]+)"', source))
    listed = {name for name, _ in _entries()}
    assert read, "no variable found in config.py"
    assert read - listed == set()


def test_the_deploy_checklist_names_every_variable():
    page = (ROOT / "docs" / "deploy-supabase.md").read_text()
    checklist = page[page.index("## Checklist: every variable") :]
    missing = [name for name, _ in _entries() if f"`{name}`" not in checklist]
    assert missing == []
