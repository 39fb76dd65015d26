"""Specifications for viewzenix.auth: verifying Supabase access tokens and local-mode tokens.

Real cryptography throughout (EC P-256 and RSA keys generated here); Supabase Auth's JWKS endpoint
is faked at its HTTP boundary with pytest-httpserver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from viewzenix.auth import (
    AuthError,
    AuthUnavailable,
    Claims,
    LocalSigner,
    TokenExpired,
    TokenInvalid,
    TokenMalformed,
    TokenMissing,
    TokenVerifier,
    bearer_token,
)

JWKS_PATH = "/auth/v1/.well-known/jwks.json"
# The Supabase CLI's default local JWT secret: a legacy HS256 secret of the usual shape.
LEGACY_JWT_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
DROP = object()  # marks a claim to leave out


# --- helpers --------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj: Any) -> str:
    return b64url(json.dumps(obj).encode())


@dataclass
class SigningKey:
    """A private key as Supabase Auth holds it, with the public JWK Supabase publishes for it."""

    private_key: Any
    kid: str
    alg: str

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        public_key = self.private_key.public_key()
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            members = ECAlgorithm.to_jwk(public_key, as_dict=True)
        else:
            members = RSAAlgorithm.to_jwk(public_key, as_dict=True)
            members.pop("key_ops", None)
        jwk_dict = {**members, "kid": self.kid, "use": "sig", "key_ops": ["verify"], "ext": True}
        if with_alg:
            jwk_dict["alg"] = self.alg
        return jwk_dict

    def sign(self, claims: dict[str, Any], *, alg: str | None = None) -> str:
        return jwt.encode(claims, self.private_key, algorithm=alg or self.alg, headers={"kid": self.kid})


def new_ec_key() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), str(uuid.uuid4()), "ES256")


@pytest.fixture(scope="session")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def es256_key() -> SigningKey:
    return new_ec_key()


@pytest.fixture
def rs256_key(rsa_private_key: rsa.RSAPrivateKey) -> SigningKey:
    return SigningKey(rsa_private_key, str(uuid.uuid4()), "RS256")


class FakeSupabaseJwks:
    """Serves `/auth/v1/.well-known/jwks.json` the way Supabase Auth does, from `published`."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.published: list[dict[str, Any]] = []
        self.status = 200
        self.body: str | None = None  # a raw body instead of the key set
        self.delay_seconds = 0.0
        server.expect_request(JWKS_PATH, method="GET").respond_with_handler(self._respond)

    @property
    def supabase_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    @property
    def issuer(self) -> str:
        return f"{self.supabase_url}/auth/v1"

    @property
    def fetches(self) -> int:
        return sum(1 for request, _ in self.server.log if request.path == JWKS_PATH)

    @property
    def requests(self) -> list[Request]:
        return [request for request, _ in self.server.log if request.path == JWKS_PATH]

    def publish(self, *keys: SigningKey) -> None:
        self.published = [key.public_jwk() for key in keys]

    def _respond(self, request: Request) -> Response:
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        body = self.body if self.body is not None else json.dumps({"keys": self.published})
        return Response(body, status=self.status, content_type="application/json")


@pytest.fixture
def fake_supabase_jwks(httpserver: HTTPServer) -> FakeSupabaseJwks:
    """A fake of Supabase Auth's `/auth/v1/.well-known/jwks.json` endpoint.

    Shaped like Supabase's published JWKS: `{"keys": [{"kty": "EC", "crv": "P-256", "x": ...,
    "y": ..., "kid": ..., "alg": "ES256", "use": "sig", "key_ops": ["verify"], "ext": true}]}`.
    Tests choose the published keys (`publish`), the status, a raw body or a delay, and count
    `fetches`. Its `supabase_url` plays the project URL (`https://<ref>.supabase.co`).
    """
    return FakeSupabaseJwks(httpserver)


def supabase_claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    """Claims shaped like a Supabase Auth access token; a DROP value leaves the claim out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "sub": str(uuid.uuid4()),
        "email": "trader@example.com",
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not DROP}


def legacy_api_key(role: str) -> str:
    """A legacy Supabase `anon` / `service_role` API key: an HS256 JWT with no sub and no aud."""
    now = int(time.time())
    claims = {
        "iss": "supabase",
        "ref": "abcd",
        "role": role,
        "iat": now,
        "exp": now + 10 * 365 * 86400,
    }
    return jwt.encode(claims, LEGACY_JWT_SECRET, algorithm="HS256")


def forge_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Sign by hand: PyJWT refuses to use a PEM public key as an HMAC secret, attackers do not."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def supabase_verifier(fake: FakeSupabaseJwks, **kwargs: Any) -> TokenVerifier:
    return TokenVerifier(issuer=fake.issuer, jwks_url=f"{fake.supabase_url}{JWKS_PATH}", **kwargs)


# --- accepting Supabase tokens --------------------------------------------------------------------


class TestAcceptsSupabaseAccessTokens:
    def test_accepts_es256_token_signed_with_a_key_from_supabase_jwks(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        claims = supabase_claims(fake_supabase_jwks.issuer)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        verified = verifier.verify(es256_key.sign(claims))

        assert verified == Claims(
            sub=uuid.UUID(claims["sub"]),
            role="authenticated",
            email="trader@example.com",
            is_anonymous=False,
            raw=claims,
        )

    def test_accepts_rs256_token_signed_with_a_key_from_supabase_jwks(
        self, fake_supabase_jwks: FakeSupabaseJwks, rs256_key: SigningKey, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key, rs256_key)
        claims = supabase_claims(fake_supabase_jwks.issuer)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        assert verifier.verify(rs256_key.sign(claims)).sub == uuid.UUID(claims["sub"])

    def test_accepts_hs256_token_signed_with_the_legacy_jwt_secret_without_fetching_jwks(
        self, fake_supabase_jwks: FakeSupabaseJwks
    ) -> None:
        claims = supabase_claims(fake_supabase_jwks.issuer)
        token = jwt.encode(claims, LEGACY_JWT_SECRET, algorithm="HS256")
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

        assert verifier.verify(token).sub == uuid.UUID(claims["sub"])
        assert fake_supabase_jwks.fetches == 0

    def test_accepts_hs256_token_while_jwks_endpoint_is_down(
        self, fake_supabase_jwks: FakeSupabaseJwks
    ) -> None:
        fake_supabase_jwks.status = 500
        claims = supabase_claims(fake_supabase_jwks.issuer)
        token = jwt.encode(claims, LEGACY_JWT_SECRET, algorithm="HS256")
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

        assert verifier.verify(token).role == "authenticated"

    def test_accepts_anonymous_sign_in_and_reports_it(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        claims = supabase_claims(fake_supabase_jwks.issuer, email="", is_anonymous=True)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        verified = verifier.verify(es256_key.sign(claims))

        assert verified.is_anonymous is True
        assert verified.email is None
        assert verified.role == "authenticated"

    def test_accepts_token_expired_within_the_leeway(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        now = int(time.time())
        claims = supabase_claims(fake_supabase_jwks.issuer, iat=now - 3600, exp=now - 10)
        verifier = supabase_verifier(fake_supabase_jwks, leeway_seconds=30)

        assert verifier.verify(es256_key.sign(claims)).sub == uuid.UUID(claims["sub"])

    def test_for_supabase_ignores_a_trailing_slash_in_the_project_url(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url + "/")

        assert verifier.issuer == fake_supabase_jwks.issuer
        assert verifier.jwks_url == fake_supabase_jwks.issuer + "/.well-known/jwks.json"
        verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))

    def test_sends_an_explicit_user_agent_to_the_jwks_endpoint(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        # Cloudflare may answer 403 to urllib's default "Python-urllib/x.y".
        fake_supabase_jwks.publish(es256_key)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))

        user_agent = fake_supabase_jwks.requests[0].headers["User-Agent"]
        assert not user_agent.startswith("Python-urllib")


# --- the JWKS cache, rotation and revocation ------------------------------------------------------


class TestFetchesSigningKeysFromJwks:
    def test_fetches_jwks_once_for_many_tokens(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        for _ in range(3):
            verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))

        assert fake_supabase_jwks.fetches == 1

    def test_refetches_jwks_when_a_token_names_a_new_kid(self, fake_supabase_jwks: FakeSupabaseJwks) -> None:
        old_key, new_key = new_ec_key(), new_ec_key()
        fake_supabase_jwks.publish(old_key)
        verifier = supabase_verifier(fake_supabase_jwks, jwks_refetch_cooldown_seconds=0)
        verifier.verify(old_key.sign(supabase_claims(fake_supabase_jwks.issuer)))

        fake_supabase_jwks.publish(old_key, new_key)  # Supabase: standby key created, rotated
        claims = supabase_claims(fake_supabase_jwks.issuer)

        assert verifier.verify(new_key.sign(claims)).sub == uuid.UUID(claims["sub"])
        assert fake_supabase_jwks.fetches == 2

    def test_refuses_token_whose_kid_is_still_unknown_after_one_refetch(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        verifier = supabase_verifier(fake_supabase_jwks, jwks_refetch_cooldown_seconds=0)
        unpublished = new_ec_key()

        with pytest.raises(TokenInvalid, match="kid"):
            verifier.verify(unpublished.sign(supabase_claims(fake_supabase_jwks.issuer)))
        assert fake_supabase_jwks.fetches == 2

    def test_does_not_refetch_jwks_for_unknown_kids_within_the_cooldown(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)
        verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))

        for _ in range(5):
            with pytest.raises(TokenInvalid):
                verifier.verify(new_ec_key().sign(supabase_claims(fake_supabase_jwks.issuer)))

        assert fake_supabase_jwks.fetches == 1

    def test_stops_trusting_a_key_removed_from_jwks_once_the_cache_expires(
        self, fake_supabase_jwks: FakeSupabaseJwks
    ) -> None:
        revoked, current = new_ec_key(), new_ec_key()
        fake_supabase_jwks.publish(revoked, current)
        verifier = supabase_verifier(fake_supabase_jwks, jwks_cache_seconds=0.2)
        token = revoked.sign(supabase_claims(fake_supabase_jwks.issuer))
        verifier.verify(token)

        fake_supabase_jwks.publish(current)  # Supabase: previously used key revoked
        time.sleep(0.3)

        with pytest.raises(TokenInvalid):
            verifier.verify(token)

    def test_reports_auth_unavailable_when_jwks_endpoint_answers_500(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.status = 500
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(AuthUnavailable) as raised:
            verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))
        assert (raised.value.status, raised.value.code) == (503, "auth_unavailable")

    def test_reports_auth_unavailable_when_jwks_endpoint_answers_html(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.body = "<html><body>Bad gateway</body></html>"
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(AuthUnavailable):
            verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))

    def test_reports_auth_unavailable_when_jwks_endpoint_times_out(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        fake_supabase_jwks.delay_seconds = 1.0
        verifier = supabase_verifier(fake_supabase_jwks, jwks_timeout_seconds=0.2)

        started = time.monotonic()
        with pytest.raises(AuthUnavailable):
            verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))
        assert time.monotonic() - started < 0.9

    def test_reports_auth_unavailable_when_jwks_endpoint_refuses_connections(
        self, es256_key: SigningKey
    ) -> None:
        verifier = TokenVerifier.for_supabase("http://127.0.0.1:1")

        with pytest.raises(AuthUnavailable):
            verifier.verify(es256_key.sign(supabase_claims("http://127.0.0.1:1/auth/v1")))

    def test_refuses_asymmetric_token_when_project_publishes_no_keys(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        # A legacy-secret project: its key set holds no public keys.
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

        with pytest.raises(TokenInvalid, match="kid"):
            verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))


# --- the algorithm comes from the key -------------------------------------------------------------


class TestTakesTheAlgorithmFromTheKey:
    @pytest.mark.parametrize("legacy_secret", [None, LEGACY_JWT_SECRET], ids=["no-secret", "secret"])
    def test_refuses_hs256_token_signed_with_the_rsa_public_key_as_secret(
        self,
        fake_supabase_jwks: FakeSupabaseJwks,
        rs256_key: SigningKey,
        legacy_secret: str | None,
    ) -> None:
        fake_supabase_jwks.publish(rs256_key)
        public_pem = rs256_key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = {"alg": "HS256", "typ": "JWT", "kid": rs256_key.kid}
        token = forge_hs256(header, supabase_claims(fake_supabase_jwks.issuer), public_pem)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, legacy_secret)

        with pytest.raises(TokenInvalid):
            verifier.verify(token)

    def test_refuses_hs256_token_signed_with_the_ec_jwk_as_secret(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        header = {"alg": "HS256", "typ": "JWT", "kid": es256_key.kid}
        jwk_bytes = json.dumps(es256_key.public_jwk()).encode()
        token = forge_hs256(header, supabase_claims(fake_supabase_jwks.issuer), jwk_bytes)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

        with pytest.raises(TokenInvalid):
            verifier.verify(token)

    def test_refuses_hs256_token_when_no_jwt_secret_is_configured(
        self, fake_supabase_jwks: FakeSupabaseJwks
    ) -> None:
        token = jwt.encode(supabase_claims(fake_supabase_jwks.issuer), LEGACY_JWT_SECRET, algorithm="HS256")
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(TokenInvalid, match="HS256"):
            verifier.verify(token)

    @pytest.mark.parametrize("with_kid", [True, False], ids=["kid", "no-kid"])
    @pytest.mark.parametrize("alg", ["none", "None", "NONE"])
    def test_refuses_unsigned_token_with_alg_none(
        self,
        fake_supabase_jwks: FakeSupabaseJwks,
        es256_key: SigningKey,
        alg: str,
        with_kid: bool,
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        header = {"alg": alg, "typ": "JWT"} | ({"kid": es256_key.kid} if with_kid else {})
        claims = supabase_claims(fake_supabase_jwks.issuer)
        token = f"{b64url_json(header)}.{b64url_json(claims)}."
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

        with pytest.raises(TokenInvalid):
            verifier.verify(token)

    def test_refuses_rs256_token_naming_an_ec_key(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey, rs256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key, rs256_key)
        claims = supabase_claims(fake_supabase_jwks.issuer)
        token = jwt.encode(claims, rs256_key.private_key, algorithm="RS256", headers={"kid": es256_key.kid})
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(TokenInvalid, match="ES256"):
            verifier.verify(token)

    def test_honours_the_alg_published_in_the_jwk(
        self, fake_supabase_jwks: FakeSupabaseJwks, rsa_private_key: rsa.RSAPrivateKey
    ) -> None:
        ps256_key = SigningKey(rsa_private_key, str(uuid.uuid4()), "PS256")
        fake_supabase_jwks.publish(ps256_key)
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)
        claims = supabase_claims(fake_supabase_jwks.issuer)

        assert verifier.verify(ps256_key.sign(claims)).sub == uuid.UUID(claims["sub"])
        with pytest.raises(TokenInvalid, match="PS256"):
            verifier.verify(ps256_key.sign(claims, alg="RS256"))

    def test_infers_es256_for_an_ec_p256_jwk_without_alg(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.published = [es256_key.public_jwk(with_alg=False)]
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        verifier.verify(es256_key.sign(supabase_claims(fake_supabase_jwks.issuer)))

    def test_refuses_token_without_kid(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        token = jwt.encode(
            supabase_claims(fake_supabase_jwks.issuer), es256_key.private_key, algorithm="ES256"
        )
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(TokenInvalid, match="kid"):
            verifier.verify(token)

    def test_refuses_tampered_payload(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        claims = supabase_claims(fake_supabase_jwks.issuer)
        header, _, signature = es256_key.sign(claims).split(".")
        forged = {**claims, "sub": str(uuid.uuid4())}
        token = f"{header}.{b64url_json(forged)}.{signature}"
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(TokenInvalid, match="signature"):
            verifier.verify(token)

    def test_refuses_token_signed_with_a_weak_rsa_key(self, fake_supabase_jwks: FakeSupabaseJwks) -> None:
        weak = SigningKey(
            rsa.generate_private_key(public_exponent=65537, key_size=1024),
            str(uuid.uuid4()),
            "RS256",
        )
        fake_supabase_jwks.publish(weak)
        with pytest.warns(jwt.InsecureKeyLengthWarning):
            token = weak.sign(supabase_claims(fake_supabase_jwks.issuer))
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(TokenInvalid, match="weak"):
            verifier.verify(token)


# --- claims ---------------------------------------------------------------------------------------


class TestChecksClaims:
    @pytest.fixture
    def verifier(self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey) -> TokenVerifier:
        fake_supabase_jwks.publish(es256_key)
        return TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

    def test_refuses_anon_key_as_bearer_token(self, verifier: TokenVerifier) -> None:
        with pytest.raises(TokenInvalid):
            verifier.verify(legacy_api_key("anon"))

    def test_refuses_service_role_key_as_bearer_token(self, verifier: TokenVerifier) -> None:
        with pytest.raises(TokenInvalid):
            verifier.verify(legacy_api_key("service_role"))

    @pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "iss", "role"])
    def test_refuses_token_missing_a_required_claim(
        self,
        verifier: TokenVerifier,
        fake_supabase_jwks: FakeSupabaseJwks,
        es256_key: SigningKey,
        claim: str,
    ) -> None:
        token = es256_key.sign(supabase_claims(fake_supabase_jwks.issuer, **{claim: DROP}))

        with pytest.raises(TokenInvalid, match=claim):
            verifier.verify(token)

    @pytest.mark.parametrize("aud", ["anon", "authenticated-but-not", ["service_role"]])
    def test_refuses_token_for_another_audience(
        self,
        verifier: TokenVerifier,
        fake_supabase_jwks: FakeSupabaseJwks,
        es256_key: SigningKey,
        aud: Any,
    ) -> None:
        token = es256_key.sign(supabase_claims(fake_supabase_jwks.issuer, aud=aud))

        with pytest.raises(TokenInvalid, match="audience"):
            verifier.verify(token)

    @pytest.mark.parametrize(
        "iss",
        ["https://otherref.supabase.co/auth/v1", "supabase", "{issuer}/", "{issuer}/../auth/v1"],
    )
    def test_refuses_token_from_another_issuer(
        self,
        verifier: TokenVerifier,
        fake_supabase_jwks: FakeSupabaseJwks,
        es256_key: SigningKey,
        iss: str,
    ) -> None:
        claims = supabase_claims(fake_supabase_jwks.issuer, iss=iss.format(issuer=fake_supabase_jwks.issuer))

        with pytest.raises(TokenInvalid, match="issuer"):
            verifier.verify(es256_key.sign(claims))

    def test_refuses_token_from_another_issuer_signed_with_the_legacy_secret(
        self, verifier: TokenVerifier
    ) -> None:
        claims = supabase_claims("https://otherref.supabase.co/auth/v1")
        token = jwt.encode(claims, LEGACY_JWT_SECRET, algorithm="HS256")

        with pytest.raises(TokenInvalid, match="issuer"):
            verifier.verify(token)

    def test_refuses_expired_token_beyond_the_leeway(
        self, verifier: TokenVerifier, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        now = int(time.time())
        claims = supabase_claims(fake_supabase_jwks.issuer, iat=now - 3600, exp=now - 60)

        with pytest.raises(TokenExpired) as raised:
            verifier.verify(es256_key.sign(claims))
        assert (raised.value.status, raised.value.code) == (401, "token_expired")

    def test_refuses_token_issued_in_the_future(
        self, verifier: TokenVerifier, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        now = int(time.time())
        claims = supabase_claims(fake_supabase_jwks.issuer, iat=now + 600, exp=now + 3600)

        with pytest.raises(TokenInvalid, match="not valid yet"):
            verifier.verify(es256_key.sign(claims))

    @pytest.mark.parametrize("role", ["anon", "service_role", "supabase_admin", "postgres"])
    def test_refuses_token_whose_role_is_not_authenticated(
        self,
        verifier: TokenVerifier,
        fake_supabase_jwks: FakeSupabaseJwks,
        es256_key: SigningKey,
        role: str,
    ) -> None:
        token = es256_key.sign(supabase_claims(fake_supabase_jwks.issuer, role=role))

        with pytest.raises(TokenInvalid, match="role"):
            verifier.verify(token)

    @pytest.mark.parametrize(
        "sub",
        [
            "user-123",
            "",
            "00000000000000000000000000000000",
            "{12345678-1234-5678-1234-567812345678}",
            "urn:uuid:12345678-1234-5678-1234-567812345678",
            42,
        ],
    )
    def test_refuses_token_whose_sub_is_not_a_uuid(
        self,
        verifier: TokenVerifier,
        fake_supabase_jwks: FakeSupabaseJwks,
        es256_key: SigningKey,
        sub: Any,
    ) -> None:
        token = es256_key.sign(supabase_claims(fake_supabase_jwks.issuer, sub=sub))

        with pytest.raises(TokenInvalid, match="sub"):
            verifier.verify(token)

    def test_accepts_an_uppercase_uuid_sub(
        self, verifier: TokenVerifier, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        user_id = uuid.uuid4()
        claims = supabase_claims(fake_supabase_jwks.issuer, sub=str(user_id).upper())

        assert verifier.verify(es256_key.sign(claims)).sub == user_id

    def test_refuses_non_boolean_is_anonymous(
        self, verifier: TokenVerifier, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        token = es256_key.sign(supabase_claims(fake_supabase_jwks.issuer, is_anonymous="false"))

        with pytest.raises(TokenInvalid, match="is_anonymous"):
            verifier.verify(token)


# --- malformed input and messages -----------------------------------------------------------------


class TestRefusesMalformedTokens:
    @pytest.fixture
    def verifier(self, fake_supabase_jwks: FakeSupabaseJwks) -> TokenVerifier:
        return TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

    def test_refuses_empty_token_as_missing(self, verifier: TokenVerifier) -> None:
        with pytest.raises(TokenMissing):
            verifier.verify("")

    @pytest.mark.parametrize(
        "token",
        ["not-a-jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9", "....", f"{b64url_json([1, 2])}.e30.x"],
    )
    def test_refuses_text_that_is_not_a_jwt(self, verifier: TokenVerifier, token: str) -> None:
        with pytest.raises(TokenMalformed) as raised:
            verifier.verify(token)
        assert (raised.value.status, raised.value.code) == (401, "token_malformed")

    def test_refuses_token_whose_payload_is_not_json(
        self, verifier: TokenVerifier, fake_supabase_jwks: FakeSupabaseJwks
    ) -> None:
        header = b64url_json({"alg": "HS256", "typ": "JWT"})
        signing_input = f"{header}.{b64url(b'not json')}"
        signature = hmac.new(LEGACY_JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()

        with pytest.raises(TokenMalformed):
            verifier.verify(f"{signing_input}.{b64url(signature)}")

    def test_error_messages_never_echo_the_token(
        self, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        now = int(time.time())
        issuer = fake_supabase_jwks.issuer
        bad_tokens = [
            es256_key.sign(supabase_claims(issuer, exp=now - 3600)),
            es256_key.sign(supabase_claims(issuer, aud="anon")),
            es256_key.sign(supabase_claims(issuer, iss="https://evil.example/auth/v1")),
            es256_key.sign(supabase_claims(issuer, sub="not-a-uuid")),
            es256_key.sign(supabase_claims(issuer, role="service_role")),
            new_ec_key().sign(supabase_claims(issuer)),
            legacy_api_key("anon"),
            "garbage-" + es256_key.sign(supabase_claims(issuer)),
        ]
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url, LEGACY_JWT_SECRET)

        for token in bad_tokens:
            with pytest.raises(AuthError) as raised:
                verifier.verify(token)
            for part in [token, *token.split(".")]:
                assert part not in raised.value.message
                assert part not in str(raised.value)


class TestBearerToken:
    @pytest.mark.parametrize(
        ("header", "token"),
        [
            ("Bearer abc.def.ghi", "abc.def.ghi"),
            ("bearer abc.def.ghi", "abc.def.ghi"),
            ("BEARER abc.def.ghi", "abc.def.ghi"),
            ("  Bearer   abc.def.ghi  ", "abc.def.ghi"),
        ],
    )
    def test_returns_the_token_of_a_bearer_header(self, header: str, token: str) -> None:
        assert bearer_token(header) == token

    @pytest.mark.parametrize("header", [None, "", "   "])
    def test_reports_a_missing_header_as_token_missing(self, header: str | None) -> None:
        with pytest.raises(TokenMissing) as raised:
            bearer_token(header)
        assert (raised.value.status, raised.value.code) == (401, "token_missing")

    @pytest.mark.parametrize(
        "header", ["Basic dXNlcjpwYXNzd29yZA==", "Token abc.def.ghi", "abc.def.ghi", "Bearerabc"]
    )
    def test_refuses_another_scheme_without_repeating_the_credentials(self, header: str) -> None:
        with pytest.raises(TokenMalformed) as raised:
            bearer_token(header)
        assert header.split()[-1] not in raised.value.message

    @pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer a b"])
    def test_refuses_a_bearer_header_without_exactly_one_token(self, header: str) -> None:
        with pytest.raises(TokenMalformed):
            bearer_token(header)


class TestErrors:
    @pytest.mark.parametrize(
        ("error", "code", "status"),
        [
            (TokenMissing, "token_missing", 401),
            (TokenMalformed, "token_malformed", 401),
            (TokenExpired, "token_expired", 401),
            (TokenInvalid, "token_invalid", 401),
            (AuthUnavailable, "auth_unavailable", 503),
        ],
    )
    def test_each_error_has_a_code_a_status_and_a_default_message(
        self, error: type[AuthError], code: str, status: int
    ) -> None:
        raised = error()

        assert isinstance(raised, AuthError)
        assert (raised.code, raised.status) == (code, status)
        assert raised.message
        assert str(raised) == raised.message


# --- configuration --------------------------------------------------------------------------------


class TestConfiguration:
    def test_refuses_a_legacy_secret_shorter_than_32_bytes(self) -> None:
        with pytest.raises(ValueError, match="32"):
            TokenVerifier.for_supabase("https://abcd.supabase.co", "too-short")

    def test_needs_at_least_one_key_source(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            TokenVerifier(issuer="https://abcd.supabase.co/auth/v1")

    def test_refuses_a_symmetric_key_among_public_keys(self) -> None:
        hmac_jwk = jwt.PyJWK(
            {"kty": "oct", "kid": "k1", "k": b64url(LEGACY_JWT_SECRET.encode()), "alg": "HS256"}
        )

        with pytest.raises(ValueError, match="asymmetric"):
            TokenVerifier(issuer="https://abcd.supabase.co/auth/v1", public_keys=[hmac_jwk])

    def test_refuses_a_jwks_url_that_is_not_http(self) -> None:
        with pytest.raises(ValueError, match="JWKS"):
            TokenVerifier(issuer="x", jwks_url="file:///etc/passwd")


# --- local mode -----------------------------------------------------------------------------------


class TestLocalSigner:
    def test_issues_supabase_shaped_tokens_its_verifier_accepts(self, tmp_path: Any) -> None:
        signer = LocalSigner.load_or_create(tmp_path / "signing_key.pem")
        user_id = uuid.uuid4()

        token = signer.issue(user_id, "trader@example.com")
        claims = signer.verifier().verify(token)

        assert (claims.sub, claims.email, claims.role, claims.is_anonymous) == (
            user_id,
            "trader@example.com",
            "authenticated",
            False,
        )
        raw = claims.raw
        assert raw["iss"] == LocalSigner.ISSUER == "http://localhost/auth/v1"
        assert raw["aud"] == "authenticated"
        assert raw["phone"] == ""
        assert raw["app_metadata"] == {"provider": "email", "providers": ["email"]}
        assert raw["user_metadata"] == {}
        assert raw["aal"] == "aal1"
        assert uuid.UUID(raw["session_id"]).version == 4
        assert raw["exp"] - raw["iat"] == 7 * 24 * 3600
        assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": signer.kid, "typ": "JWT"}

    def test_issues_a_new_session_id_per_token(self, tmp_path: Any) -> None:
        signer = LocalSigner.load_or_create(tmp_path / "signing_key.pem")
        user_id = uuid.uuid4()
        verifier = signer.verifier()

        first = verifier.verify(signer.issue(user_id, "a@example.com")).raw["session_id"]
        second = verifier.verify(signer.issue(user_id, "a@example.com")).raw["session_id"]

        assert first != second

    def test_honours_ttl_seconds(self, tmp_path: Any) -> None:
        signer = LocalSigner.load_or_create(tmp_path / "signing_key.pem")

        raw = signer.verifier().verify(signer.issue(uuid.uuid4(), "a@example.com", 60)).raw

        assert raw["exp"] - raw["iat"] == 60
        with pytest.raises(ValueError):
            signer.issue(uuid.uuid4(), "a@example.com", ttl_seconds=0)

    def test_creates_a_private_key_file_with_mode_0600_and_its_folders(self, tmp_path: Any) -> None:
        path = tmp_path / "data" / "auth" / "signing_key.pem"

        LocalSigner.load_or_create(path)

        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert isinstance(key.curve, ec.SECP256R1)
        assert [p.name for p in path.parent.iterdir()] == ["signing_key.pem"]  # no temp left

    def test_reuses_the_persisted_key_across_loads(self, tmp_path: Any) -> None:
        path = tmp_path / "signing_key.pem"
        first = LocalSigner.load_or_create(path)
        pem = path.read_bytes()
        token = first.issue(uuid.uuid4(), "a@example.com")

        second = LocalSigner.load_or_create(path)

        assert second.kid == first.kid
        assert path.read_bytes() == pem
        assert second.verifier().verify(token).email == "a@example.com"

    def test_uses_the_rfc7638_thumbprint_as_kid(self, tmp_path: Any) -> None:
        path = tmp_path / "signing_key.pem"
        signer = LocalSigner.load_or_create(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        jwk_dict = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)  # type: ignore[arg-type]
        # RFC 7638 §3.2: required members in lexicographic order, no whitespace.
        canonical = f'{{"crv":"P-256","kty":"EC","x":"{jwk_dict["x"]}","y":"{jwk_dict["y"]}"}}'

        assert signer.kid == b64url(hashlib.sha256(canonical.encode()).digest())

    def test_tokens_are_refused_by_a_verifier_for_another_key(self, tmp_path: Any) -> None:
        signer = LocalSigner.load_or_create(tmp_path / "one.pem")
        other = LocalSigner.load_or_create(tmp_path / "two.pem")

        with pytest.raises(TokenInvalid):
            other.verifier().verify(signer.issue(uuid.uuid4(), "a@example.com"))

    def test_tokens_are_refused_by_a_verifier_using_another_key_under_the_same_kid(
        self, tmp_path: Any
    ) -> None:
        signer = LocalSigner.load_or_create(tmp_path / "one.pem")
        impostor_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        impostor = LocalSigner(impostor_pem, kid=signer.kid)

        with pytest.raises(TokenInvalid, match="signature"):
            signer.verifier().verify(impostor.issue(uuid.uuid4(), "a@example.com"))

    def test_tokens_are_refused_by_a_supabase_verifier(
        self, tmp_path: Any, fake_supabase_jwks: FakeSupabaseJwks, es256_key: SigningKey
    ) -> None:
        fake_supabase_jwks.publish(es256_key)
        signer = LocalSigner.load_or_create(tmp_path / "signing_key.pem")
        verifier = TokenVerifier.for_supabase(fake_supabase_jwks.supabase_url)

        with pytest.raises(TokenInvalid):
            verifier.verify(signer.issue(uuid.uuid4(), "a@example.com"))

    def test_refuses_a_key_file_that_is_not_a_private_key_and_leaves_it_alone(self, tmp_path: Any) -> None:
        path = tmp_path / "signing_key.pem"
        path.write_text("not a key")

        with pytest.raises(ValueError, match="private key"):
            LocalSigner.load_or_create(path)
        assert path.read_text() == "not a key"

    def test_refuses_a_key_that_is_not_ec_p256(self, rsa_private_key: rsa.RSAPrivateKey) -> None:
        pem = rsa_private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

        with pytest.raises(ValueError, match="P-256"):
            LocalSigner(pem, kid="k1")
