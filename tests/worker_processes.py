"""Real worker processes for the integration tests: start ``python -m viewzenix.worker``, wait, stop.

Import as ``from worker_processes import start_worker, wait_for, stop`` (``tests/`` is on
``sys.path``). Each process logs to a file the test names, so a failing test can show it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def start_worker(
    database_url: str, data_dir: Path, log: IO[bytes], env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """Start one worker process on ``database_url`` (concurrency 1, no reconciliation) logging to ``log``.

    ``env`` overrides its environment (``WORKER_CONCURRENCY``, ``WORKER_SHUTDOWN_TIMEOUT_SECONDS`` …).
    """
    return subprocess.Popen(
        [sys.executable, "-m", "viewzenix.worker"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "WORKER_CONCURRENCY": "1",
            "RECONCILE_CRON": "",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s until true; fail naming ``what`` after ``seconds`` (a deadline)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def stop(proc: subprocess.Popen, seconds: float = 30) -> int | None:
    """SIGTERM ``proc``, wait up to ``seconds``, then SIGKILL; return its exit code (None if killed)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None
