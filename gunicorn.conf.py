"""gunicorn settings for the ``web`` process, from the environment (PORT, WEB_CONCURRENCY)."""

import os
import shutil
import sys
import tempfile

# This file's folder (the project's), so config imports however gunicorn was started (--chdir);
# once, though gunicorn reads this file again on every reload (SIGHUP).
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from config import gunicorn_workers  # noqa: E402

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = gunicorn_workers(os.environ)
worker_class = "sync"
# TradingView cancels a request after 3 s; nothing here should take longer than a few.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
# No gunicorn access log: its lines carry the full path, and a webhook URL's path is its secret.
# The app logs requests itself, tokens redacted (ACCESS_LOG, viewzenix/access_log.py).
accesslog = None
errorlog = "-"

# prometheus-client multiprocess mode: every worker writes its metrics to files in this folder,
# and GET /metrics merges them. It must be set before the workers start (they inherit it) and be
# empty at start-up; a dead worker's live gauges are dropped in child_exit.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="viewzenix-metrics-")


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
