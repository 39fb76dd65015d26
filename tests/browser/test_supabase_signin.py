"""Sign-in with SUPABASE_URL set: supabase-js in the browser against a fake Supabase Auth.

The fake (pytest-httpserver, named as a fake) answers the Supabase Auth endpoints supabase-js
calls, with the shapes from Supabase's docs: ``POST /auth/v1/token?grant_type=password`` → a
session (``access_token``, ``refresh_token``, ``expires_in``, ``expires_at``, ``user``),
``POST /auth/v1/logout`` → 204, and ``/auth/v1/.well-known/jwks.json`` for the backend's verifier.
It answers CORS preflights, as Supabase does for browsers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from playwright.sync_api import Page, expect
from werkzeug import Request, Response
from werkzeug.serving import make_server

pytestmark = [pytest.mark.browser, pytest.mark.db]

ANON_KEY = "fake-public-anon-key"
PASSWORD = "correct horse battery staple"


class FakeSupabaseAuth:
    """A fake Supabase Auth server: one user, ES256 keys published as JWKS."""

    def __init__(self, httpserver) -> None:
        self.server = httpserver
        self.url = httpserver.url_for("").rstrip("/")
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())
        self.email = "supa@example.test"
        self.requests: list[Request] = []
        httpserver.expect_request("/auth/v1/.well-known/jwks.json").respond_with_json(
            {
                "keys": [
                    {
                        **ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True),
                        "kid": self.kid,
                        "alg": "ES256",
                    }
                ]
            }
        )
        httpserver.expect_request("/auth/v1/token", method="OPTIONS").respond_with_handler(self.preflight)
        httpserver.expect_request("/auth/v1/token", method="POST").respond_with_handler(self.token)
        httpserver.expect_request("/auth/v1/logout", method="OPTIONS").respond_with_handler(self.preflight)
        httpserver.expect_request("/auth/v1/logout", method="POST").respond_with_handler(self.logout)

    def cors(self, request: Request) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
            "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "*"),
        }

    def preflight(self, request: Request) -> Response:
        return Response(status=204, headers=self.cors(request))

    def access_token(self) -> str:
        now = int(time.time())
        claims = {
            "iss": f"{self.url}/auth/v1",
            "aud": "authenticated",
            "sub": self.user_id,
            "role": "authenticated",
            "email": self.email,
            "app_metadata": {"provider": "email"},
            "user_metadata": {},
            "iat": now,
            "exp": now + 3600,
            "aal": "aal1",
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})

    def token(self, request: Request) -> Response:
        self.requests.append(request)
        body = json.loads(request.get_data())
        if request.args.get("grant_type") != "password" or body.get("password") != PASSWORD:
            payload, status = (
                {"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"},
                400,
            )
        else:
            payload, status = (
                {
                    "access_token": self.access_token(),
                    "token_type": "bearer",
                    "expires_in": 3600,
                    "expires_at": int(time.time()) + 3600,
                    "refresh_token": "fake-refresh-token",
                    "user": {
                        "id": self.user_id,
                        "aud": "authenticated",
                        "role": "authenticated",
                        "email": self.email,
                        "app_metadata": {"provider": "email"},
                        "user_metadata": {},
                        "created_at": "2026-01-01T00:00:00Z",
                    },
                },
                200,
            )
        return Response(
            json.dumps(payload), status=status, content_type="application/json", headers=self.cors(request)
        )

    def logout(self, request: Request) -> Response:
        self.requests.append(request)
        return Response(status=204, headers=self.cors(request))


@pytest.fixture()
def supabase_site(httpserver, database_url, tmp_path):
    """(base URL, fake auth): the app with SUPABASE_URL pointing at the fake, on a local port."""
    from config import TestingConfig
    from viewzenix import create_app

    fake = FakeSupabaseAuth(httpserver)
    app = create_app(
        TestingConfig(
            {
                "DATABASE_URL": database_url,
                "DATA_DIR": str(tmp_path),
                "SUPABASE_URL": fake.url,
                "SUPABASE_KEY": ANON_KEY,
            }
        )
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", fake
    server.shutdown()
    app.extensions["viewzenix"].close()


def test_supabase_email_password_sign_in_and_out(page: Page, supabase_site, shot) -> None:
    base, fake = supabase_site
    page.goto(f"{base}/configs")
    page.wait_for_url(f"{base}/signin?next=%2Fconfigs")
    expect(page.locator("#google-signin")).to_be_visible()
    expect(page.locator("#local-signin")).to_have_count(0)
    page.fill("input[name=email]", fake.email)
    page.fill("input[name=password]", "wrong")
    page.click("#password-signin button[type=submit]")
    expect(page.locator("#signin-error")).to_have_text("Invalid login credentials")
    page.fill("input[name=password]", PASSWORD)
    page.click("#password-signin button[type=submit]")
    page.wait_for_url(f"{base}/configs")
    expect(page.locator("#configs")).to_contain_text("No webhooks yet")  # the fragment took the token
    expect(page.locator("#vz-email")).to_have_text(fake.email)
    shot("supabase-signed-in")
    assert fake.requests[0].headers["apikey"] == ANON_KEY
    page.click("#signout")
    page.wait_for_url(f"{base}/signin")
    assert fake.requests[-1].path == "/auth/v1/logout"
