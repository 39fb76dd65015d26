"""Symmetric encryption of secrets at rest (notification URLs, credentials): Fernet keys.

``encrypt(text) -> token`` and ``decrypt(token) -> text`` use ``cryptography``'s ``MultiFernet``
(AES-128-CBC + HMAC-SHA256, with a timestamp; cryptography.io "Fernet (symmetric encryption)")
keyed by ``CREDENTIALS_ENCRYPTION_KEY``: one or more url-safe base64 32-byte keys separated by
commas (``Fernet.generate_key()``; ``python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"``). The first key encrypts; every key decrypts, so a key is
rotated by putting the new one first, running ``rotate(token)`` over stored tokens (or letting
writes re-encrypt), then dropping the old one.

Keys come from ``configure(keys)`` (the runtime calls it with the app config's value), else the
``CREDENTIALS_ENCRYPTION_KEY`` environment variable when first used. Without either, a development
machine gets a key generated once and kept in ``key_file`` (default ``.data/credentials.key``);
production refuses to start without the variable (``config.ProductionConfig``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

ENV_VAR = "CREDENTIALS_ENCRYPTION_KEY"

_lock = threading.Lock()
_fernet: MultiFernet | None = None


class DecryptionFailed(Exception):
    """A stored secret could not be decrypted: the key that encrypted it is not configured."""


class BadKey(ValueError):
    """CREDENTIALS_ENCRYPTION_KEY is not a list of url-safe base64 32-byte keys."""


def _parse(keys: str) -> MultiFernet:
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        raise BadKey(f"{ENV_VAR} is empty")
    try:
        return MultiFernet([Fernet(k) for k in parts])
    except (ValueError, TypeError) as error:
        raise BadKey(
            f"{ENV_VAR} must be Fernet keys (url-safe base64, 32 bytes), comma-separated: {error}"
        ) from None


def configure(keys: str | None, key_file: Path | None = None) -> None:
    """Use ``keys`` (comma-separated Fernet keys, first encrypts); else a key kept in ``key_file``.

    Raises ``BadKey`` for a malformed key. With neither, keys are read from the environment on
    first use.
    """
    global _fernet
    with _lock:
        if keys:
            _fernet = _parse(keys)
        elif key_file is not None:
            _fernet = _parse(_load_or_create(key_file))
        else:
            _fernet = None


def _load_or_create(key_file: Path) -> str:
    if key_file.exists():
        return key_file.read_text().strip()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _current() -> MultiFernet:
    global _fernet
    if _fernet is None:
        with _lock:
            if _fernet is None:
                keys = os.environ.get(ENV_VAR)
                if not keys:
                    raise BadKey(f"{ENV_VAR} is not set")
                _fernet = _parse(keys)
    return _fernet


def encrypt(text: str) -> str:
    """Return ``text`` encrypted with the first key, as an ASCII Fernet token."""
    return _current().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    """Return the text of a token from ``encrypt``. Raises ``DecryptionFailed`` (no key fits, or tampered)."""
    try:
        return _current().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as error:
        raise DecryptionFailed(DecryptionFailed.__doc__) from error


def rotate(token: str) -> str:
    """Return ``token`` re-encrypted with the first key (``MultiFernet.rotate``).

    Raises ``DecryptionFailed``.
    """
    try:
        return _current().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as error:
        raise DecryptionFailed(DecryptionFailed.__doc__) from error
