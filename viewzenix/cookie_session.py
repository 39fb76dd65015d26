"""No cookie sessions: every request is authenticated by its bearer token or URL token.

Flask opens a signed-cookie session on every request when ``SECRET_KEY`` is set, building an
``itsdangerous`` serializer each time, whether or not a view reads it. Viewzenix never does:
the dashboard keeps its Supabase (or local) session in the browser and sends a bearer token,
TradingView's alerts carry their token in the URL, Supabase's hooks a signature. So the app
uses ``NoCookieSession``: ``flask.session`` is Flask's ``NullSession`` (reading gives nothing, writing
raises ``RuntimeError``), no ``Set-Cookie`` is ever sent, and no request pays for the
serializer: opening and saving a request's session took 15 µs with Flask's default interface
and 1 µs with this one (docs/scaling.md, "Eighth pass"). A session signed with a development
``SECRET_KEY`` cannot be forged into meaning anything, since nothing reads one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask.sessions import NullSession, SessionInterface

if TYPE_CHECKING:
    from flask import Flask, Request, Response
    from flask.sessions import SessionMixin


class NoCookieSession(SessionInterface):
    """A session interface that opens a ``NullSession`` for every request and saves nothing."""

    def open_session(self, app: Flask, request: Request) -> NullSession:
        return NullSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None
