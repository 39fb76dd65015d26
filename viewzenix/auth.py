"""Verify Supabase Auth access tokens, and sign local ones when there is no Supabase.

Pure library code: no Flask. The HTTP layer calls `bearer_token()` on the `Authorization` header,
then `TokenVerifier.verify()`, and maps `AuthError.status` / `.code` / `.message` to its response.

Supabase: access tokens carry `iss` = `<SUPABASE_URL>/auth/v1`, `aud` = "authenticated",
`sub` = user id (uuid), `role` = "authenticated" (anonymous sign-ins too, plus `is_anonymous`),
`exp`, `iat`. Asymmetric signing keys (ES256, RS256) are published at
`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`; legacy projects sign with one HS256 secret, which
also signs the public `anon` and the `service_role` API keys (no `sub`, no `aud`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import pathlib
import stat
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from viewzenix.exceptions import ViewzenixError

logger = logging.getLogger(__name__)

AUTHENTICATED_ROLE = "authenticated"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "iss", "role")
# Algorithms a published (public) key may verify. Symmetric algorithms never come from a key set:
# a "public" HMAC key would let anyone mint tokens.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (32 bytes).
# Supabase: the legacy JWT secret is at least 32 characters.
MIN_HS256_SECRET_BYTES = 32
# Cloudflare (in front of Supabase) may refuse urllib's default "Python-urllib/x.y" User-Agent.
JWKS_REQUEST_HEADERS = {"User-Agent": "viewzenix-auth/1", "Accept": "application/json"}


# --- errors ---------------------------------------------------------------------------------------


class AuthError(ViewzenixError):
    """Authentication failed."""

    code = "auth_error"
    status = 401


class TokenMissing(AuthError):
    """No access token was sent: send `Authorization: Bearer <access token>`."""

    code = "token_missing"


class TokenMalformed(AuthError):
    """The access token is not a well-formed JWT."""

    code = "token_malformed"


class TokenExpired(AuthError):
    """The access token has expired: refresh the session and retry."""

    code = "token_expired"


class TokenInvalid(AuthError):
    """The access token is not valid for this service."""

    code = "token_invalid"


class AuthUnavailable(AuthError):
    """The signing keys needed to verify the access token cannot be fetched right now."""

    code = "auth_unavailable"
    status = 503


# --- Authorization header -------------------------------------------------------------------------


def bearer_token(authorization_header: str | None) -> str:
    """Return the token from an `Authorization: Bearer <token>` header value.

    The scheme is case-insensitive (RFC 6750 / RFC 9110 §11.1); surrounding whitespace is ignored.
    Raises TokenMissing when the header is absent or blank, TokenMalformed when it uses another
    scheme, has no token or has extra parts. Messages never repeat the header's content.
    """
    if authorization_header is None or not authorization_header.strip():
        raise TokenMissing()
    parts = authorization_header.split()
    if parts[0].lower() != "bearer":
        raise TokenMalformed("Authorization header must use the Bearer scheme")
    if len(parts) != 2:
        raise TokenMalformed("Authorization header must be 'Bearer <access token>'")
    return parts[1]


# --- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claims:
    """The verified identity carried by an access token.

    `sub` is the Supabase user id; `email` is None when absent or empty (anonymous users);
    `raw` is the full verified claims dict (what Supabase puts in `request.jwt.claims`).
    """

    sub: uuid.UUID
    role: str
    email: str | None
    is_anonymous: bool
    raw: dict[str, Any] = field(repr=False)


class TokenVerifier:
    """Verify Supabase access tokens.

    Keys: `public_keys` (fixed asymmetric PyJWKs), `jwks_url` (fetched with PyJWT's PyJWKClient,
    cached for `jwks_cache_seconds`; an unknown kid refetches once, at most every
    `jwks_refetch_cooldown_seconds`), `hs256_secret` (legacy shared secret). The algorithm always
    comes from the key, never from the token header: an asymmetric key verifies only with its own
    algorithm (the JWK's "alg" when present, else ES256 for EC P-256, RS256 for RSA); the secret
    verifies only HS256. Tokens whose header says HS256 go to the secret (never to a published
    key, and without touching the network); every other token must name a known `kid`.

    Claims: `aud` == audience, `iss` == issuer exactly, `exp` with `leeway_seconds`, `role` ==
    "authenticated", `sub` a canonical UUID; exp, iat, sub, aud, iss and role are required.
    Raises ValueError on a bad configuration.

    Supabase: the legacy `anon` / `service_role` keys are HS256 JWTs without `sub` and `aud`, so a
    verifier that skips `aud` accepts the public anon key; this one refuses them.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str = "authenticated",
        jwks_url: str | None = None,
        hs256_secret: str | None = None,
        public_keys: Sequence[jwt.PyJWK] | None = None,
        leeway_seconds: int = 30,
        jwks_cache_seconds: float = 300,
        jwks_timeout_seconds: float = 5,
        jwks_refetch_cooldown_seconds: float = 30,
    ) -> None:
        if not issuer:
            raise ValueError("issuer is required")
        if not audience:
            raise ValueError("audience is required")
        if jwks_url is None and hs256_secret is None and not public_keys:
            raise ValueError("give at least one of jwks_url, hs256_secret, public_keys")
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must be >= 0")
        if hs256_secret is not None and len(hs256_secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ValueError(f"hs256_secret must be at least {MIN_HS256_SECRET_BYTES} bytes (RFC 7518 §3.2)")
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.leeway_seconds = leeway_seconds
        self._hs256_secret = hs256_secret
        self._static_keys: dict[str, jwt.PyJWK] = {}
        for key in public_keys or ():
            if not key.key_id:
                raise ValueError("every public key needs a kid")
            if key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(
                    f"public key {key.key_id!r} has algorithm {key.algorithm_name!r}; "
                    "only asymmetric keys may be public"
                )
            if key.key_id in self._static_keys:
                raise ValueError(f"duplicate kid {key.key_id!r} in public_keys")
            self._static_keys[key.key_id] = key
        self._jwks_client: jwt.PyJWKClient | None = None
        if jwks_url is not None:
            try:
                # No per-kid cache (cache_keys): PyJWT keeps those forever, so a key revoked
                # in Supabase would stay trusted until restart. The key-set cache expires.
                self._jwks_client = jwt.PyJWKClient(
                    jwks_url,
                    cache_keys=False,
                    cache_jwk_set=True,
                    lifespan=jwks_cache_seconds,
                    headers=dict(JWKS_REQUEST_HEADERS),
                    timeout=jwks_timeout_seconds,
                    cooldown_duration=jwks_refetch_cooldown_seconds,
                )
            except jwt.PyJWKClientError as exc:
                raise ValueError(f"bad JWKS configuration: {exc}") from None

    @classmethod
    def for_supabase(cls, supabase_url: str, jwt_secret: str | None = None) -> TokenVerifier:
        """Return a verifier for the Supabase project at `supabase_url` (`https://<ref>.supabase.co`).

        issuer = `<supabase_url>/auth/v1`; asymmetric keys come from
        `<issuer>/.well-known/jwks.json`; when `jwt_secret` (the legacy JWT secret) is given,
        HS256 tokens are verified with it too. Raises ValueError on a bad URL or a short secret.
        Supabase: the JWKS endpoint is cached 10 min at their edge; we cache it 5 min more.
        """
        issuer = f"{supabase_url.rstrip('/')}/auth/v1"
        return cls(
            issuer=issuer,
            jwks_url=f"{issuer}/.well-known/jwks.json",
            hs256_secret=jwt_secret,
        )

    def verify(self, token: str) -> Claims:
        """Verify an access token and return its Claims.

        Raises TokenMissing (empty), TokenMalformed (not a JWT), TokenExpired (`exp` passed,
        beyond the leeway), TokenInvalid (signature, algorithm, kid, aud, iss, role, sub, missing
        claim), AuthUnavailable (the JWKS endpoint cannot be reached: HTTP 503, not 401).
        """
        if not token:
            raise TokenMissing()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenMalformed() from None
        key: jwt.PyJWK | str
        if header.get("alg") == "HS256":
            if self._hs256_secret is None:
                raise TokenInvalid("HS256 tokens are not accepted: no JWT secret is configured")
            key, algorithm = self._hs256_secret, "HS256"
        else:
            jwk = self._asymmetric_key(header.get("kid"))
            key, algorithm = jwk, jwk.algorithm_name
        payload = self._decode(token, key, algorithm)
        return self._claims(payload)

    def _asymmetric_key(self, kid: str | None) -> jwt.PyJWK:
        if not kid:
            raise TokenInvalid("token header has no kid: cannot choose a signing key")
        if kid in self._static_keys:
            return self._static_keys[kid]
        if self._jwks_client is None:
            raise TokenInvalid("no trusted signing key matches the token's kid")
        try:
            key = self._jwks_client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            logger.warning(
                "JWKS fetch failed: %s",
                exc,
                extra={"action": "jwks_fetch_failed", "jwks_url": self.jwks_url},
            )
            raise AuthUnavailable() from None
        except json.JSONDecodeError:
            logger.warning(
                "JWKS endpoint did not return JSON",
                extra={"action": "jwks_fetch_failed", "jwks_url": self.jwks_url},
            )
            raise AuthUnavailable() from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
            # Unknown kid after the one refetch, or a key set without usable signing keys.
            logger.info(
                "no JWKS key for token: %s",
                exc,
                extra={"action": "jwks_kid_not_found", "jwks_url": self.jwks_url},
            )
            raise TokenInvalid("no trusted signing key matches the token's kid") from None
        if key.algorithm_name not in ASYMMETRIC_ALGORITHMS:
            raise TokenInvalid("the signing key named by the token's kid is not an asymmetric key")
        return key

    def _decode(self, token: str, key: jwt.PyJWK | str, algorithm: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": list(REQUIRED_CLAIMS), "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except jwt.InvalidAlgorithmError:
            raise TokenInvalid(
                f"token algorithm does not match its signing key, which requires {algorithm}"
            ) from None
        except jwt.InvalidSignatureError:
            raise TokenInvalid("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenInvalid(f"token lacks the required {exc.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise TokenInvalid(f"token audience is not {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise TokenInvalid(f"token issuer is not {self.issuer!r}") from None
        except jwt.ImmatureSignatureError:
            raise TokenInvalid("token is not valid yet (iat or nbf is in the future)") from None
        except jwt.exceptions.InvalidSubjectError:
            raise TokenInvalid("token subject (sub) is not a user id (UUID)") from None
        except jwt.InvalidKeyError:
            raise TokenInvalid("the signing key for this token is unusable or too weak") from None
        except jwt.DecodeError:
            raise TokenMalformed() from None
        except jwt.PyJWTError as exc:
            # InvalidIssuedAtError, InvalidJTIError...: PyJWT's messages name the claim only.
            raise TokenInvalid(f"token claims are invalid: {exc}") from None

    def _claims(self, payload: dict[str, Any]) -> Claims:
        role = payload.get("role")
        if role != AUTHENTICATED_ROLE:
            raise TokenInvalid(f"token role must be {AUTHENTICATED_ROLE!r}, not {role!r}")
        sub = payload.get("sub")
        try:
            user_id = uuid.UUID(sub)
        except (TypeError, ValueError, AttributeError):
            raise TokenInvalid("token subject (sub) is not a user id (UUID)") from None
        if str(user_id) != sub.lower():
            raise TokenInvalid("token subject (sub) is not a canonical UUID")
        email = payload.get("email")
        if email is not None and not isinstance(email, str):
            raise TokenInvalid("token email claim is not a string")
        is_anonymous = payload.get("is_anonymous", False)
        if not isinstance(is_anonymous, bool):
            raise TokenInvalid("token is_anonymous claim is not a boolean")
        return Claims(sub=user_id, role=role, email=email or None, is_anonymous=is_anonymous, raw=payload)


# --- local mode -----------------------------------------------------------------------------------


def jwk_thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """Return the RFC 7638 SHA-256 thumbprint (base64url, no padding) of an EC public key.

    The thumbprint hashes the required members {crv, kty, x, y}, sorted, without whitespace.
    """
    jwk_dict = ECAlgorithm.to_jwk(public_key, as_dict=True)
    members = {name: jwk_dict[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


class LocalSigner:
    """Sign ES256 access tokens locally (no Supabase) with a key kept in the data folder.

    Tokens are shaped like Supabase's so the rest of the app cannot tell them apart; only their
    issuer differs: ISSUER = "http://localhost/auth/v1", fixed, so a local token is never
    mistaken for one of a real Supabase project (whose issuer is https://<ref>.supabase.co/auth/v1).
    """

    ISSUER = "http://localhost/auth/v1"
    ALGORITHM = "ES256"

    def __init__(self, private_key_pem: bytes, kid: str) -> None:
        if not kid:
            raise ValueError("kid is required")
        private_key = serialization.load_pem_private_key(private_key_pem, password=None)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            private_key.curve, ec.SECP256R1
        ):
            raise ValueError("LocalSigner needs an EC P-256 private key (ES256)")
        self._private_key = private_key
        self.kid = kid

    @classmethod
    def load_or_create(cls, path: pathlib.Path) -> LocalSigner:
        """Load the signing key PEM at `path`, creating it first if absent.

        Creates parent folders and an EC P-256 key file with mode 0600 (written to a temporary
        file, then linked into place, so a concurrent creator never sees a partial file and never
        overwrites another's key). kid = RFC 7638 thumbprint of the public key.
        Raises ValueError when the existing file is not an EC P-256 private key PEM.
        """
        path = pathlib.Path(path)
        if not path.exists():
            _create_key_file(path)
        pem = path.read_bytes()
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning(
                "local signing key file is readable by others (mode %o): chmod 600 it",
                mode,
                extra={"action": "local_key_mode_too_open", "path": str(path)},
            )
        try:
            private_key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not an unencrypted private key PEM: {exc}") from None
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an EC P-256 private key")
        return cls(pem, kid=jwk_thumbprint(private_key.public_key()))

    @property
    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK dict: kty, crv, x, y, kid, alg="ES256", use="sig"."""
        jwk_dict = ECAlgorithm.to_jwk(self._private_key.public_key(), as_dict=True)
        return {**jwk_dict, "kid": self.kid, "alg": self.ALGORITHM, "use": "sig"}

    def issue(
        self,
        user_id: uuid.UUID,
        email: str,
        ttl_seconds: int = 3600 * 24 * 7,
        *,
        app_metadata: dict[str, Any] | None = None,
        user_metadata: dict[str, Any] | None = None,
    ) -> str:
        """Return a signed ES256 access token for `user_id`, valid `ttl_seconds` (default 7 days).

        Claims follow Supabase's access tokens: iss, aud="authenticated", sub, role="authenticated",
        email, phone="", app_metadata={"provider": "email", "providers": ["email"]},
        user_metadata={}, aal="aal1", session_id (new uuid4), is_anonymous=False, iat, exp;
        header kid. ``app_metadata`` adds to the default (e.g. ``{"role": "admin"}``);
        ``user_metadata`` replaces the empty default. Raises
        ValueError when ttl_seconds <= 0.
        """
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        now = int(time.time())
        claims = {
            "iss": self.ISSUER,
            "aud": "authenticated",
            "sub": str(uuid.UUID(str(user_id))),
            "role": AUTHENTICATED_ROLE,
            "email": email,
            "phone": "",
            "app_metadata": {"provider": "email", "providers": ["email"], **(app_metadata or {})},
            "user_metadata": dict(user_metadata or {}),
            "aal": "aal1",
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "iat": now,
            "exp": now + ttl_seconds,
        }
        return jwt.encode(claims, self._private_key, algorithm=self.ALGORITHM, headers={"kid": self.kid})

    def verifier(self) -> TokenVerifier:
        """Return a TokenVerifier that accepts exactly this signer's tokens (no network)."""
        return TokenVerifier(issuer=self.ISSUER, public_keys=[jwt.PyJWK(self.public_jwk)])


def _create_key_file(path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            # mkstemp creates the file with mode 0600; make it explicit whatever the umask.
            os.fchmod(tmp.fileno(), 0o600)
            tmp.write(pem)
            tmp.flush()
            os.fsync(tmp.fileno())
        try:
            os.link(tmp_name, path)  # atomic, and never replaces a key another process wrote
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp_name)
    logger.info("created local signing key", extra={"action": "local_key_created", "path": str(path)})
