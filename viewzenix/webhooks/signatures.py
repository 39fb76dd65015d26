"""Signature checks of inbound webhooks, on the raw body bytes, before anything is parsed.

Two schemes; which ones a receiver accepts is configuration (``SUPABASE_HOOK_SCHEMES``):

- ``hmac`` (the Supabase seed's contract): header ``x-hmac-sha256`` = lowercase hex
  HMAC-SHA256 of the raw body with ``WEBHOOK_SECRET``.
- ``standard`` (Standard Webhooks, https://www.standardwebhooks.com): headers ``webhook-id``,
  ``webhook-timestamp`` (Unix seconds, at most 5 minutes off our clock) and
  ``webhook-signature`` (space-separated ``v1,<base64>``) over ``<id>.<timestamp>.<body>``, with
  one of several ``whsec_`` secrets (``STANDARD_WEBHOOK_SECRETS``: new and old during a
  rotation). Verified by the ``standardwebhooks`` package; it raises plain ``ValueError`` or
  ``binascii.Error`` on some malformed headers, which are refused like a wrong signature
  (Supabase and Standard Webhooks docs).

Every comparison is constant-time (``hmac.compare_digest``). Pure Python, no Flask: the HTTP
layer passes the headers in.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from viewzenix.exceptions import Unauthenticated

SCHEMES = ("hmac", "standard")
HMAC_HEADER = "x-hmac-sha256"
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
# Standard Webhooks: reject timestamps more than 5 minutes off.
TOLERANCE_SECONDS = 5 * 60


class MissingSignature(Unauthenticated):
    """The request carries no signature this receiver accepts."""

    code = "missing_signature"


class InvalidSignature(Unauthenticated):
    """The signature does not match the body."""

    code = "invalid_signature"


@dataclass(frozen=True)
class Verified:
    """A verified delivery: the ``scheme`` that verified it and its ``webhook_id`` (standard only)."""

    scheme: str
    webhook_id: str | None = None


class SignatureVerifier:
    """Verify deliveries against the configured schemes and secrets.

    ``schemes``: subset of ``("hmac", "standard")``. ``hmac_secret``: WEBHOOK_SECRET (UTF-8).
    ``standard_secrets``: ``whsec_<base64>`` strings (or bare base64), tried in order.
    Raises ValueError when a scheme is enabled without its secret, or a secret is not base64.
    """

    def __init__(
        self,
        schemes: Sequence[str],
        *,
        hmac_secret: str | None = None,
        standard_secrets: Sequence[str] = (),
    ) -> None:
        unknown = set(schemes) - set(SCHEMES)
        if unknown:
            raise ValueError(f"unknown signature scheme(s): {', '.join(sorted(unknown))}")
        if "hmac" in schemes and not hmac_secret:
            raise ValueError("the hmac scheme needs WEBHOOK_SECRET")
        if "standard" in schemes and not standard_secrets:
            raise ValueError("the standard scheme needs STANDARD_WEBHOOK_SECRETS")
        self.schemes = tuple(s for s in SCHEMES if s in schemes)
        self._hmac_key = hmac_secret.encode() if hmac_secret else None
        if any(not secret.removeprefix("whsec_") for secret in standard_secrets):
            # standardwebhooks raises its own EmptyWebhookSecretError (an Exception) for this one.
            raise ValueError("STANDARD_WEBHOOK_SECRETS holds an empty secret (a bare whsec_)")
        try:
            self._standard = tuple(Webhook(secret) for secret in standard_secrets)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"STANDARD_WEBHOOK_SECRETS holds a secret that is not base64: {exc}") from None

    def verify(self, raw: bytes, headers: Mapping[str, str], *, now: float | None = None) -> Verified:
        """Return how ``raw`` was verified; raise MissingSignature or InvalidSignature (both 401).

        ``headers``: the request headers, any case. When both schemes are accepted and both
        headers are present, Standard Webhooks is checked (it also proves freshness).
        ``errors.reason`` says why a signature was refused: ``mismatch``, ``malformed_header``,
        ``timestamp_too_old``, ``timestamp_too_new``.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        if "standard" in self.schemes and any(h in lowered for h in STANDARD_HEADERS):
            return self._verify_standard(raw, lowered, now)
        if "hmac" in self.schemes and HMAC_HEADER in lowered:
            return self._verify_hmac(raw, lowered[HMAC_HEADER])
        accepted = " or ".join(
            {"hmac": f"{HMAC_HEADER}", "standard": "webhook-id/webhook-timestamp/webhook-signature"}[s]
            for s in self.schemes
        )
        raise MissingSignature(f"The request carries no signature: send {accepted}.")

    def _verify_hmac(self, raw: bytes, header: str) -> Verified:
        assert self._hmac_key is not None
        expected = hmac.new(self._hmac_key, raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), header.strip().encode("ascii", "replace")):
            raise InvalidSignature(errors={"reason": "mismatch", "scheme": "hmac"})
        return Verified("hmac")

    def _verify_standard(self, raw: bytes, headers: dict[str, str], now: float | None) -> Verified:
        missing = [h for h in STANDARD_HEADERS if not headers.get(h)]
        if missing:
            raise InvalidSignature(
                f"Standard Webhooks headers missing: {', '.join(missing)}.",
                errors={"reason": "malformed_header", "scheme": "standard"},
            )
        raw_timestamp = headers["webhook-timestamp"].strip()
        if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= 12):
            raise InvalidSignature(
                "webhook-timestamp must be Unix seconds.",
                errors={"reason": "malformed_header", "scheme": "standard"},
            )
        sent_at = int(raw_timestamp)
        skew = (time.time() if now is None else now) - sent_at
        if abs(skew) > TOLERANCE_SECONDS:
            reason = "timestamp_too_old" if skew > 0 else "timestamp_too_new"
            raise InvalidSignature(
                f"webhook-timestamp is {abs(int(skew))} s off; at most {TOLERANCE_SECONDS} s is accepted.",
                errors={"reason": reason, "scheme": "standard"},
            )
        reason = "mismatch"
        subset = {h: headers[h] for h in STANDARD_HEADERS}
        for webhook in self._standard:
            try:
                webhook.verify(raw, subset, json_parse=False)
            except WebhookVerificationError:
                continue
            except ValueError:  # binascii.Error, UnicodeDecodeError, a bad "v1,…" split
                reason = "malformed_header"
                break
            return Verified("standard", headers["webhook-id"])
        raise InvalidSignature(errors={"reason": reason, "scheme": "standard"})


def sign_hmac(secret: str, raw: bytes) -> str:
    """Return the ``x-hmac-sha256`` value for ``raw`` (lowercase hex). For senders and tests."""
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
