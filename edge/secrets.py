"""Template encryption at rest: AES-256-GCM, key from a systemd credential or a
0600 key file.  The envelope is JSON; the model binding and format are
authenticated (associated data), so swapping or editing anything is detected."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from .errors import FacelatchError
from .fileio import check_trusted_file, write_atomic

ENVELOPE = "facelatch-template-aesgcm"
CREDENTIAL = "template-key"


def generate_key(path) -> None:
    path = Path(path)
    if path.exists():
        raise FacelatchError(f"key file {path} already exists; not overwriting it")
    write_atomic(path, base64.b64encode(os.urandom(32)) + b"\n", mode=0o600)


def find_credential(configured: str, credential: str) -> Path | None:
    """The configured file, else the systemd credential ``credential``, else None."""
    if configured:
        return Path(configured)
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / credential).exists():
        return Path(creds) / credential
    return None


def find_key_file(configured: str = "") -> Path | None:
    """The configured key file, else the systemd credential, else None."""
    return find_credential(configured, CREDENTIAL)


def read_private(path, what: str) -> bytes:
    """The bytes of a secret file that only its owner may read (else a FacelatchError)."""
    path = Path(path)
    try:
        check_trusted_file(path, what, private=True)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FacelatchError(f"{what} not found: {path}") from None
    except OSError as e:
        raise FacelatchError(f"cannot read {what} {path}: {e.strerror}") from None
    return raw


def read_key(path) -> bytes:
    raw = read_private(path, "key file")
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise FacelatchError(f"key file {path} does not hold a base64 256-bit key (make one with facelatch keygen)")
    return key


def encrypt(plaintext: bytes, key: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, plaintext, ENVELOPE.encode())
    return json.dumps({"format": ENVELOPE, "version": 1, "nonce": base64.b64encode(nonce).decode(),
                       "ciphertext": base64.b64encode(ct).decode()}).encode()


def is_encrypted(blob: bytes) -> bool:
    try:
        return json.loads(blob).get("format") == ENVELOPE
    except (ValueError, AttributeError):
        return False


def decrypt(blob: bytes, key: bytes | None, where: str) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if key is None:
        raise FacelatchError(f"template {where} is encrypted; give its key (template.key_file, --key-file, or the "
                             f"systemd credential '{CREDENTIAL}')")
    try:
        d = json.loads(blob)
        nonce, ct = base64.b64decode(d["nonce"], validate=True), base64.b64decode(d["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise FacelatchError(f"template {where} is corrupt (bad encrypted envelope); re-enroll") from None
    try:
        return AESGCM(key).decrypt(nonce, ct, ENVELOPE.encode())
    except (InvalidTag, ValueError):
        raise FacelatchError(f"template {where} cannot be decrypted: wrong key, or the file was tampered with") from None
