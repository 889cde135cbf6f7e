"""Random secrets for people, and the hashes we keep of them.

Session cookies, invite links and API tokens are bearer secrets: whoever holds one is that
user. Storing only a SHA-256 hash means a leaked catalog (a backup, a shared SQLite file)
grants nothing. SHA-256 without salt is right here, unlike for passwords: the secrets are 256
random bits, so there is nothing to guess.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh URL-safe secret (256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the catalog stores for ``token``: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_secret(a: str, b: str) -> bool:
    """Compare two secrets in constant time (no timing hint of how much matched)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes even for ``timezone=True`` columns; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
