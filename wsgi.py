"""WSGI entry point: ``gunicorn 'wsgi:app'`` and ``flask --app wsgi ...``."""

import sys

from config import ConfigError
from viewzenix import create_app

try:
    app = create_app()
except ConfigError as error:  # a bad setting stops the process naming the variable
    print(f"configuration error: {error}", file=sys.stderr, flush=True)
    raise
