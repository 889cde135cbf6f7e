"""Password hashing with Argon2id (argon2-cffi).

``PasswordHasher()``'s defaults are RFC 9106's low-memory profile (Argon2id, t=3, m=64 MiB,
p=4), which is what we want for a small server: a few logins a day, each costing ~50 ms. We
pin them here so an argon2-cffi upgrade changing its defaults is a decision, not an accident;
``verify_password`` says when a stored hash uses older parameters, so login can re-hash it.
"""

from __future__ import annotations

import os
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cryocurate.errors import InputError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # Argon2 takes any length; this bounds the work one request can cause.

HASHER = PasswordHasher(
    time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32, salt_len=16, type=Type.ID
)
# Each hash takes 64 MiB and a core for ~50 ms. A class logging in at nine o'clock would
# otherwise run one per server thread at once (~40 × 64 MiB); this many at a time keeps the
# memory bounded and the cores free for everyone else's requests.
_HASHING = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def check_password_rules(password: str) -> None:
    """Refuse a password that is too short or absurdly long, in one line."""
    if len(password) < MIN_LENGTH:
        raise InputError(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InputError(f"the password must have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """The Argon2id hash (PHC string, salt included) to store for ``password``."""
    check_password_rules(password)
    with _HASHING:
        return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> tuple[bool, bool]:
    """``(matches, needs_rehash)``: whether ``password`` matches, and whether the stored hash
    should be replaced because it was made with other parameters."""
    if len(password) > MAX_LENGTH:
        return False, False
    try:
        with _HASHING:
            HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, HASHER.check_needs_rehash(stored_hash)
