"""Encryption of secrets at rest (broker credentials; later notification targets).

``encrypt(str) -> str`` and ``decrypt(str) -> str`` with the server key(s) in
``CREDENTIALS_ENCRYPTION_KEY``: one or more Fernet keys (url-safe base64 of 32 random bytes, what
``Fernet.generate_key()`` prints), comma-separated, the first one current. Tokens are
``cryptography``'s Fernet (AES-128-CBC + HMAC-SHA256, with a timestamp) through ``MultiFernet``:
encryption always uses the first key, decryption tries each key in turn, so a key is rotated by

1. putting a new key first and keeping the old ones after it (every process restarted with it),
2. re-encrypting every stored value with the first key (``Cipher.rotate``; the command
   ``flask --app wsgi rotate-credentials`` does it for broker credentials),
3. removing the old key.

Without the key, values cannot be read: losing it means asking users for their secrets again.
The process-wide cipher is set once at start (``configure``, from ``viewzenix.runtime``);
nothing here reads the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = [
    "Cipher",
    "CipherNotConfigured",
    "UnreadableSecret",
    "cipher_from_setting",
    "configure",
    "decrypt",
    "encrypt",
    "generate_key",
    "load_or_create_key",
]

logger = logging.getLogger(__name__)


class CipherNotConfigured(RuntimeError):
    """No encryption key is configured in this process (CREDENTIALS_ENCRYPTION_KEY)."""


class UnreadableSecret(ValueError):
    """The value was not encrypted with any configured key, or it was altered."""


class Cipher:
    """Encrypt and decrypt text with a list of Fernet keys, the first one current.

    Raises ValueError for an empty list or a malformed key (the message says which position).
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one Fernet key is needed")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError) as error:
                raise ValueError(
                    f"key {position} of CREDENTIALS_ENCRYPTION_KEY is not a Fernet key (url-safe "
                    "base64 of 32 bytes; make one with `python -c 'from cryptography.fernet import "
                    "Fernet; print(Fernet.generate_key().decode())'`)"
                ) from error
        self._fernet = MultiFernet(fernets)

    def encrypt(self, text: str) -> str:
        """Return the Fernet token (ASCII text) of ``text`` under the current key."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the text of a token made under any configured key. Raises UnreadableSecret."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as error:
            raise UnreadableSecret(UnreadableSecret.__doc__) from error

    def rotate(self, token: str) -> str:
        """Return ``token`` re-encrypted under the current key. Raises UnreadableSecret."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as error:
            raise UnreadableSecret(UnreadableSecret.__doc__) from error


def cipher_from_setting(value: str) -> Cipher:
    """Build the cipher of a ``CREDENTIALS_ENCRYPTION_KEY`` value (comma-separated keys)."""
    return Cipher([k for k in (part.strip() for part in value.split(",")) if k])


def generate_key() -> str:
    """Return a new random Fernet key (text)."""
    return Fernet.generate_key().decode("ascii")


def load_or_create_key(path: Path) -> str:
    """Return the key stored in ``path``, creating it (mode 0600) first if missing.

    For development and tests only: production sets CREDENTIALS_ENCRYPTION_KEY.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    logger.warning(
        "no CREDENTIALS_ENCRYPTION_KEY: created a development key in %s",
        path,
        extra={"action": "credentials_key_created"},
    )
    return key


_cipher: Cipher | None = None


def configure(cipher: Cipher | None) -> None:
    """Set the process-wide cipher used by ``encrypt`` and ``decrypt`` (None unsets it)."""
    global _cipher
    _cipher = cipher


def _current() -> Cipher:
    if _cipher is None:
        raise CipherNotConfigured(CipherNotConfigured.__doc__)
    return _cipher


def encrypt(text: str) -> str:
    """Encrypt ``text`` with the process-wide cipher. Raises CipherNotConfigured."""
    return _current().encrypt(text)


def decrypt(token: str) -> str:
    """Decrypt a token with the process-wide cipher. Raises CipherNotConfigured, UnreadableSecret."""
    return _current().decrypt(token)


def rotate(token: str) -> str:
    """Re-encrypt a token under the current key. Raises CipherNotConfigured, UnreadableSecret."""
    return _current().rotate(token)
