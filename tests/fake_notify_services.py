"""Fakes of two notification services, as real HTTP servers on local ports (pytest-httpserver).

``FakeTelegram``: the Telegram Bot API's ``POST /bot<token>/sendMessage`` (core.telegram.org/bots/api
#sendmessage: JSON body with ``chat_id`` and ``text``; answer ``{"ok": true, "result": Message}``,
or ``{"ok": false, "error_code", "description"}``). apprise's Telegram plugin has a fixed API host
(``NotifyTelegram.notify_url``); the fixture points it at this fake.

``FakeNtfy``: a self-hosted ntfy server's "publish as JSON" endpoint, ``POST /`` with
``{"topic", "title", "message", ...}`` (docs.ntfy.sh/publish/#publish-as-json; the answer is the
message: ``{"id", "time", "event": "message", "topic", "message"}``), reached by apprise with
``ntfy://127.0.0.1:<port>/<topic>``. ``down = True`` makes it answer 503, like a
server in maintenance.
"""

from __future__ import annotations

import json
import time

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

BOT_TOKEN = "123456789:AAFakeBotTokenForTestsOnly_abcdefgh"
CHAT_ID = "-1001234567890"


class FakeTelegram:
    """Telegram Bot API fake; ``messages``: the sendMessage JSON bodies received, in order."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1")
        self.messages: list[dict] = []
        self.down = False
        self.server.expect_request(f"/bot{BOT_TOKEN}/sendMessage", method="POST").respond_with_handler(
            self._send_message
        )

    def _send_message(self, request: Request) -> Response:
        if self.down:
            body = {"ok": False, "error_code": 502, "description": "Bad Gateway"}
            return Response(json.dumps(body), status=502, content_type="application/json")
        payload = json.loads(request.get_data())
        self.messages.append(payload)
        result = {
            "message_id": len(self.messages),
            "date": int(time.time()),
            "chat": {"id": int(payload["chat_id"]), "type": "channel"},
            "text": payload.get("text", ""),
        }
        return Response(json.dumps({"ok": True, "result": result}), content_type="application/json")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def api_url(self) -> str:
        """What replaces ``https://api.telegram.org/bot``."""
        return f"http://{self.address}/bot"

    @property
    def apprise_url(self) -> str:
        return f"tgram://{BOT_TOKEN}/{CHAT_ID}"


class FakeNtfy:
    """Self-hosted ntfy fake; ``messages``: (topic, title, body) published, in order."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1")
        self.messages: list[tuple[str, str | None, str]] = []
        self.down = False
        self.server.expect_request("/", method="POST").respond_with_handler(self._publish)

    def _publish(self, request: Request) -> Response:
        if self.down:
            return Response("503 Service Unavailable", status=503)
        payload = json.loads(request.get_data())
        self.messages.append((payload["topic"], payload.get("title"), payload.get("message", "")))
        body = {
            "id": f"m{len(self.messages)}",
            "time": int(time.time()),
            "event": "message",
            "topic": payload["topic"],
            "message": payload.get("message", ""),
        }
        return Response(json.dumps(body), content_type="application/json")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def apprise_url(self) -> str:
        return f"ntfy://{self.address}/alerts"
