"""Password hashing with scrypt (standard library), a memory-hard KDF.

Encoded as ``scrypt$N$r$p$SALT$HASH`` (base64), so the cost can be raised
later without breaking stored hashes: ``needs_rehash`` says when a stored
hash was made with weaker parameters than the hasher's. The default cost
follows OWASP's scrypt guidance (N=2^15, r=8, p=3: about 32 MiB and a third
of a second here). Tokens and session ids are random and long, so a fast
hash suffices for them (``token_hash``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading

N, R, P = 2**15, 8, 3
SALT_BYTES = 16
HASH_BYTES = 32
_MAXMEM = 256 * 1024 * 1024
# At most two hashes at once in this process, whoever calls: each takes
# ~32 MiB and a core (the use cases also run them on two threads of their own).
_KDF_SLOTS = threading.BoundedSemaphore(2)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    with _KDF_SLOTS:
        return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=dklen)


class ScryptHasher:
    """The PasswordHasher port with scrypt at cost ``n``, ``r``, ``p``."""

    def __init__(self, n: int = N, r: int = R, p: int = P) -> None:
        self.n, self.r, self.p = n, r, p
        # checked when a user does not exist, so that a login for an unknown
        # name costs as long as one for a known name
        self.dummy = f"scrypt${n}${r}${p}${_b64(b'0' * SALT_BYTES)}${_b64(b'1' * HASH_BYTES)}"

    def hash(self, password: str) -> str:
        salt = os.urandom(SALT_BYTES)
        digest = _scrypt(password, salt, self.n, self.r, self.p, HASH_BYTES)
        return f"scrypt${self.n}${self.r}${self.p}${_b64(salt)}${_b64(digest)}"

    def verify(self, password: str, encoded: str) -> bool:
        """True when ``password`` matches; False for a wrong password or a hash
        this code cannot read (never raises on bad stored data)."""
        try:
            scheme, n, r, p, salt, expected = encoded.split("$")
            if scheme != "scrypt":
                return False
            digest = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(_unb64(expected)))
        except (ValueError, TypeError):  # also bad base64 and text that is not UTF-8
            return False
        return hmac.compare_digest(digest, _unb64(expected))

    def needs_rehash(self, encoded: str) -> bool:
        try:
            scheme, n, r, p, *_ = encoded.split("$")
            return scheme != "scrypt" or int(n) < self.n or int(r) < self.r or int(p) < self.p
        except ValueError:
            return True


def new_secret(prefix: str = "") -> str:
    """A random token: 256 bits, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
