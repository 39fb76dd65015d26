"""viewzenix.crypto: Fernet encryption at rest with key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from viewzenix import crypto


@pytest.fixture(autouse=True)
def restore_keys():
    saved = crypto._fernet
    yield
    crypto._fernet = saved


def test_round_trip_and_the_token_hides_the_text():
    crypto.configure(Fernet.generate_key().decode())
    token = crypto.encrypt("tgram://123:secret/456")
    assert "secret" not in token
    assert crypto.decrypt(token) == "tgram://123:secret/456"


def test_rotation_new_key_first_still_reads_old_tokens_and_rotate_moves_them():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    crypto.configure(old)
    token = crypto.encrypt("s3cret")
    crypto.configure(f"{new},{old}")
    assert crypto.decrypt(token) == "s3cret"
    rotated = crypto.rotate(token)
    crypto.configure(new)
    assert crypto.decrypt(rotated) == "s3cret"
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt(token)


def test_a_malformed_key_is_refused():
    with pytest.raises(crypto.BadKey, match="CREDENTIALS_ENCRYPTION_KEY must be Fernet keys"):
        crypto.configure("not-a-key")


def test_a_development_key_is_kept_in_its_file(tmp_path):
    crypto.configure(None, key_file=tmp_path / "k")
    token = crypto.encrypt("x")
    crypto.configure(None, key_file=tmp_path / "k")
    assert crypto.decrypt(token) == "x"
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
