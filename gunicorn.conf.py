"""gunicorn settings for the ``web`` process, from the environment (PORT, WEB_CONCURRENCY)."""

import multiprocessing
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"
# TradingView cancels a request after 3 s; nothing here should take longer than a few.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
