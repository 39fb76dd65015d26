"""Encryption of secrets at rest (viewzenix.crypto): Fernet under MultiFernet, key rotation."""

from __future__ import annotations

import pytest

from config import ConfigError, load_config
from viewzenix import crypto
from viewzenix.crypto import Cipher, UnreadableSecret, cipher_from_setting, generate_key


def test_encrypts_to_text_that_does_not_contain_the_secret_and_decrypts_back():
    cipher = Cipher([generate_key()])
    token = cipher.encrypt("my-alpaca-secret")
    assert "my-alpaca-secret" not in token
    assert token != cipher.encrypt("my-alpaca-secret")  # random IV: same text, new token
    assert cipher.decrypt(token) == "my-alpaca-secret"


def test_rotation_new_key_first_reads_old_tokens_and_rotate_moves_them_to_the_new_key():
    old, new = generate_key(), generate_key()
    token = Cipher([old]).encrypt("secret")

    during = cipher_from_setting(f"{new}, {old}")  # step 1: new key first, old kept
    assert during.decrypt(token) == "secret"
    rotated = during.rotate(token)  # step 2: re-encrypt under the new key

    after = cipher_from_setting(new)  # step 3: old key removed
    assert after.decrypt(rotated) == "secret"
    with pytest.raises(UnreadableSecret):
        after.decrypt(token)


def test_a_tampered_token_or_a_wrong_key_is_refused():
    cipher = Cipher([generate_key()])
    token = cipher.encrypt("secret")
    with pytest.raises(UnreadableSecret):
        cipher.decrypt(token[:-4] + "AAAA")
    with pytest.raises(UnreadableSecret):
        Cipher([generate_key()]).decrypt(token)


def test_a_malformed_key_stops_start_up_naming_the_variable():
    with pytest.raises(ConfigError, match="key 2 of CREDENTIALS_ENCRYPTION_KEY is not a Fernet key"):
        load_config({"CREDENTIALS_ENCRYPTION_KEY": f"{generate_key()},not-a-key"})


def test_module_functions_need_a_configured_cipher(monkeypatch):
    monkeypatch.setattr(crypto, "_cipher", None)  # restored after the test (the app's own)
    with pytest.raises(crypto.CipherNotConfigured):
        crypto.encrypt("x")
    crypto.configure(Cipher([generate_key()]))
    assert crypto.decrypt(crypto.encrypt("x")) == "x"
