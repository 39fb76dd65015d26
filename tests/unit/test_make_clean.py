"""`make clean` never deletes data or keys; `make clean-data` asks first (or needs CONFIRM=1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _checkout(tmp_path: Path) -> Path:
    (tmp_path / ".data" / "pg").mkdir(parents=True)
    (tmp_path / ".data" / "credentials.key").write_text("key")
    (tmp_path / ".pytest_cache").mkdir()
    return tmp_path


def _make(folder: Path, target: str, answer: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    args = [
        "make",
        "-s",
        "-f",
        str(MAKEFILE),
        "-C",
        str(folder),
        target,
        *(f"{k}={v}" for k, v in env.items()),
    ]
    return subprocess.run(args, input=answer, capture_output=True, text=True, timeout=60)


def test_clean_keeps_the_data_and_the_key(tmp_path):
    folder = _checkout(tmp_path)
    assert _make(folder, "clean").returncode == 0
    assert (folder / ".data" / "credentials.key").read_text() == "key"
    assert not (folder / ".pytest_cache").exists()


def test_clean_data_asks_and_keeps_the_data_unless_told_yes(tmp_path):
    folder = _checkout(tmp_path)
    refused = _make(folder, "clean-data", answer="n\n")
    assert refused.returncode != 0
    assert "Delete .data" in refused.stdout and "kept .data" in refused.stdout
    assert (folder / ".data" / "credentials.key").exists()
    agreed = _make(folder, "clean-data", answer="y\n")
    assert agreed.returncode == 0 and not (folder / ".data").exists()


def test_clean_data_with_confirm_deletes_without_asking(tmp_path):
    folder = _checkout(tmp_path)
    result = _make(folder, "clean-data", CONFIRM="1")
    assert result.returncode == 0
    assert "Delete .data" not in result.stdout
    assert not (folder / ".data").exists()
