"""Login throttling: every attempt is counted in the catalog *before* its password is checked.

Why in the catalog: a counter in one process's memory is multiplied by ``serve --workers N``
and forgotten by a restart. Why counted first: if attempts were counted after their password
check, sixty parallel guesses would all be checked before the first failure was written. So
an attempt first *reserves* its slot with a conditional update (compare-and-set on the count:
one winner per slot on SQLite and PostgreSQL alike), and only a reserved attempt reaches
Argon2.

What is counted, and why it does not lock the owner out:

* **an account at an address** (the email as typed, with the client's address): 5 attempts
  freely, then each further one waits twice as long as the one before (1 s, 2 s, 4 s … at
  most 15 minutes). A successful login resets it. An attacker elsewhere fills *their*
  counter, never the owner's, so the owner is never refused for someone else's guesses.
* **an address**, whatever the email (password spraying: many accounts, one password): 30
  failures freely, then the same doubling delay. A successful login gives its attempt back
  but does not reset the count, so logging in to one's own account between guesses does not
  buy more guesses.

A counter untouched for a day (an address: an hour) starts again from zero. The email is
counted as typed (normalised), whether or not an account has it, so the answers do not tell
which emails exist. Refusals are :class:`~cryocurate.errors.TooManyRequestsError` with
``retry_after`` seconds. Keys are stored as SHA-256 hashes: the table names no one.

Which address a request comes from is the web server's business: ``cryocurate serve`` trusts
``X-Forwarded-For`` only from the proxies listed in ``[web] trusted_proxies``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cryocurate.accounts.users import authenticate, normalize_email
from cryocurate.catalog.models import LoginThrottle, User
from cryocurate.errors import InputError, TooManyRequestsError
from cryocurate.portal import Portal

DAY, HOUR = 24 * 3600.0, 3600.0


@dataclass(frozen=True)
class Limit:
    """``free`` attempts without delay, then ``base`` seconds doubling up to ``cap``; a counter
    idle for ``forget_after`` seconds starts again."""

    name: str
    free: int
    base: float
    cap: float
    forget_after: float

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th attempt before the next one."""
        if attempts < self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(attempts - self.free, 30))


ACCOUNT_AT_ADDRESS = Limit("account at this address", 5, 1.0, 15 * 60.0, DAY)
ADDRESS = Limit("address", 30, 1.0, 15 * 60.0, HOUR)
_MAX_ROUNDS = 200  # compare-and-set retries under contention (each round, someone wins)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def _account_key(email: str, address: str) -> str:
    try:
        account = normalize_email(email)
    except InputError:
        account = email.strip().lower()[:320]
    return _key("account-at-address", account, address)


def _address_key(address: str) -> str:
    return _key("address", address)


def _insert_missing(session: Session, key: str, now: float) -> None:
    values = {"key": key, "failures": 0, "next_at": now, "last_at": now}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(LoginThrottle).values(**values).on_conflict_do_nothing())


def reserve(portal: Portal, key: str, limit: Limit, now: float | None = None) -> None:
    """Count one attempt under ``key``, or refuse it (TooManyRequestsError) if it comes before
    the counter's delay is over. Each step is its own short transaction, so a parallel
    attempt sees this one's count as soon as it is made."""
    for _ in range(_MAX_ROUNDS):
        at = time.time() if now is None else now
        with portal.transaction() as session:
            row = session.execute(
                sa.select(
                    LoginThrottle.failures, LoginThrottle.next_at, LoginThrottle.last_at
                ).where(LoginThrottle.key == key)
            ).first()
        if row is None:
            with portal.transaction() as session:
                _insert_missing(session, key, at)
            continue
        failures, next_at, last_at = row
        stale = at - last_at >= limit.forget_after
        if not stale and at < next_at:
            raise TooManyRequestsError(
                f"too many login attempts for this {limit.name}",
                retry_after=math.ceil(next_at - at),
                hint="wait and try again; the wait doubles with each failed attempt",
            )
        attempts = 1 if stale else failures + 1
        with portal.transaction() as session:
            won = session.execute(
                sa.update(LoginThrottle)
                .where(LoginThrottle.key == key, LoginThrottle.failures == failures)
                .where(LoginThrottle.last_at == last_at)
                .values(failures=attempts, next_at=at + limit.delay(attempts), last_at=at)
            ).rowcount
        if won == 1:
            return
    raise TooManyRequestsError("too many login attempts at once", retry_after=1)


def _reset(portal: Portal, key: str) -> None:
    with portal.transaction() as session:
        session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == key))


def _give_back(portal: Portal, key: str) -> None:
    """Undo one counted attempt (a counter back at zero is deleted: a successful login leaves
    no row behind)."""
    with portal.transaction() as session:
        session.execute(
            sa.delete(LoginThrottle).where(LoginThrottle.key == key, LoginThrottle.failures <= 1)
        )
        session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.key == key, LoginThrottle.failures > 1)
            .values(failures=LoginThrottle.failures - 1)
        )


def forget_idle(portal: Portal, now: float | None = None) -> int:
    """Delete counters nobody has touched for a day (the table stays small); how many."""
    cutoff = (time.time() if now is None else now) - max(ACCOUNT_AT_ADDRESS.forget_after, DAY)
    with portal.transaction() as session:
        deleted = session.execute(sa.delete(LoginThrottle).where(LoginThrottle.last_at < cutoff))
    return int(deleted.rowcount or 0)


def log_in(portal: Portal, email: str, password: str, address: str) -> User:
    """The user whose email and password these are, throttled per account at ``address`` and
    per ``address`` (see the module's rules): TooManyRequestsError before any password check
    when an attempt comes too soon, AuthenticationError for wrong credentials."""
    address = (address or "unknown")[:200]
    address_key, account_key = _address_key(address), _account_key(email, address)
    reserve(portal, address_key, ADDRESS)
    reserve(portal, account_key, ACCOUNT_AT_ADDRESS)
    with portal.transaction() as session:
        user = authenticate(session, email, password)
    _reset(portal, account_key)
    _give_back(portal, address_key)
    forget_idle(portal)
    return user
