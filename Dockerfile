# Viewzenix: one image for the four Procfile processes (web is the default command; compose.yaml
# runs migrate, worker and streams from the same image). Production requirements only, installed
# from the hash-locked requirements.lock (make lock). Linted by hadolint in CI; no Docker engine
# or registry was available where this file was written, so it has not been built there.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: -r /tmp/requirements.lock

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIEWZENIX_ENV=production \
    LOG_FORMAT=json \
    PORT=8000 \
    DATA_DIR=/tmp/viewzenix
RUN groupadd --system --gid 10001 viewzenix \
    && useradd --system --uid 10001 --gid viewzenix --no-create-home --shell /usr/sbin/nologin viewzenix
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY config.py wsgi.py gunicorn.conf.py Procfile ./
COPY viewzenix ./viewzenix
COPY supabase ./supabase
USER 10001:10001
EXPOSE 8000
# Liveness for the web process (GET /healthz: 200 once the database answers). compose.yaml turns
# it off for worker and streams, which serve no HTTP; alert on GET /readyz for those.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=2)"]
# SIGTERM: gunicorn stops gracefully; the worker finishes or hands back its jobs within
# WORKER_SHUTDOWN_TIMEOUT_SECONDS (15 s), so give containers a longer stop grace period (30 s).
STOPSIGNAL SIGTERM
CMD ["gunicorn", "wsgi:app", "--config", "gunicorn.conf.py"]
