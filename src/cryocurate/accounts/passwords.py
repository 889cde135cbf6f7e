"""Password rules and hashing with Argon2id (argon2-cffi).

The rules follow NIST SP 800-63B: a minimum length (12 characters; a passphrase of three or
four words is the easy way there), a maximum that bounds the work one request can cause, a
refusal of passwords that are common (the 30,000 most frequent ones of leaked password lists,
as shipped by the ``zxcvbn`` package: nothing is downloaded), repetitive (``aaaaaaaaaaaa``)
or sequential (``123456789012``), or the user's own email, and no composition rules (no
"one digit and one symbol": they make passwords harder to remember, not to guess).

``PasswordHasher()``'s defaults are RFC 9106's low-memory profile (Argon2id, t=3, m=64 MiB,
p=4), which is what we want for a small server: a few logins a day, each costing ~50 ms. We
pin them here so an argon2-cffi upgrade changing its defaults is a decision, not an accident;
``verify_password`` says when a stored hash uses older parameters, so login can re-hash it.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cryocurate.errors import InputError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # Argon2 takes any length; this bounds the work one request can cause.

HASHER = PasswordHasher(
    time_cost=3, memory_cost=64 * 1024, parallelism=4, hash_len=32, salt_len=16, type=Type.ID
)
# Each hash takes 64 MiB and a core for ~50 ms. A class logging in at nine o'clock would
# otherwise run one per server thread at once (~40 × 64 MiB); this many at a time keeps the
# memory bounded and the cores free for everyone else's requests.
_HASHING = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


@functools.cache
def common_passwords() -> frozenset[str]:
    """The frequent passwords of leaked lists (lower-case), from zxcvbn's frequency lists:
    loaded on first use (setting a password), not when a server starts."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(p.lower() for p in FREQUENCY_LISTS["passwords"])


# Runs people type as "a password": digits (wrapping 9 → 0), the alphabet, keyboard rows.
_RUNS = ("0123456789" * 4, "abcdefghijklmnopqrstuvwxyz" * 2, "qwertyuiopasdfghjklzxcvbnm" * 2)


def _sequential(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    if len(steps) == 1 and steps <= {-1, 0, 1}:
        return True
    return any(text in run or text[::-1] in run for run in _RUNS)


def check_password_rules(password: str, *, email: str | None = None) -> None:
    """Refuse, in one line, a password that is too short, absurdly long, common, repetitive,
    sequential or the user's email (see the module's rules)."""
    if len(password) < MIN_LENGTH:
        raise InputError(
            f"the password must have at least {MIN_LENGTH} characters",
            hint="a few words are easier to remember than symbols",
        )
    if len(password) > MAX_LENGTH:
        raise InputError(f"the password must have at most {MAX_LENGTH} characters")
    folded = password.strip().lower()
    if len(set(folded)) < 3 or _sequential(folded):
        raise InputError("the password is too repetitive or sequential", hint="choose another")
    if folded in common_passwords():
        raise InputError("the password is one of the most common ones", hint="choose another")
    if email and folded in {email.lower(), email.lower().split("@", 1)[0]}:
        raise InputError("the password must not be your email", hint="choose another")


def hash_password(password: str, *, email: str | None = None) -> str:
    """The Argon2id hash (PHC string, salt included) to store for ``password``, after
    :func:`check_password_rules`."""
    check_password_rules(password, email=email)
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
