"""A loopback HTTP server for the fakes that answer GET requests with JSON (shared plumbing).

``serving(answer)`` runs a ``ThreadingHTTPServer`` on a free 127.0.0.1 port; every GET is answered
with ``answer(path, query, headers) -> (status, body)`` as JSON. Yields the base URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Answer = Callable[[str, dict[str, list[str]], Any], tuple[int, dict[str, Any]]]


@contextmanager
def serving(answer: Answer, name: str) -> Iterator[str]:
    """Serve ``answer`` on loopback until the block ends; yield ``http://127.0.0.1:<port>``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            status, body = answer(parsed.path, parse_qs(parsed.query), self.headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name=name)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
