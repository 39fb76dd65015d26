"""deploy/prometheus/alerts.yml: valid for Prometheus (``promtool check rules``), and each rule
fires where it should and stays quiet where it should not (``promtool test rules`` on
alerts_test.yml, against recorded series).

promtool is Debian's ``prometheus`` package. Without it these tests are skipped, loudly; with
``VIEWZENIX_REQUIRE_PROMTOOL`` set (``.ci/run`` installs the package and sets it) a missing
promtool is an error, so CI never skips them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts_test.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("VIEWZENIX_REQUIRE_PROMTOOL"):
        raise pytest.UsageError("VIEWZENIX_REQUIRE_PROMTOOL is set but promtool is not installed")
    message = "promtool not installed (apt-get install prometheus): the alert rules are NOT checked"
    print(f"\n== {message} ==")
    pytest.skip(message)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def test_the_alert_rules_are_valid():
    result = run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_rule_behaves_as_its_recorded_series_say():
    result = run("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_has_a_firing_and_a_quiet_test():
    rules = set(re.findall(r"^\s*- alert: (\w+)", RULES.read_text(), re.M))
    tested = RULE_TESTS.read_text()
    firing = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts:\n\s+- exp_labels", tested))
    quiet = set(re.findall(r"alertname: (\w+)\n\s+exp_alerts: \[\]", tested))
    assert rules, "no rule found in alerts.yml"
    assert rules - firing == set(), "rules without a test where they fire"
    assert rules - quiet == set(), "rules without a test where they stay quiet"
