"""Server-side browser sessions: a random cookie token → a row naming the user.

The cookie holds the token; the catalog holds its hash, the user, and a sliding expiry
(weeks, so a grader is not logged out mid-session). Logging out deletes the row, so a copied
cookie dies with it. The CSRF token of a session is derived from the cookie's token, so it
needs no storage and changes with every login.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.accounts.crypto import aware, new_token, token_hash, utcnow
from cryocurate.catalog.models import User, UserSession

SESSION_LIFETIME = dt.timedelta(days=14)  # since the last request (sliding)
SESSION_MAX_AGE = dt.timedelta(days=90)  # since login, however active
TOUCH_EVERY = dt.timedelta(minutes=5)  # write last_seen at most this often


def start_session(session: Session, user: User) -> str:
    """Log ``user`` in: a new session row, and the token for their cookie."""
    token, now = new_token(), utcnow()
    session.add(
        UserSession(
            token_hash=token_hash(token),
            user_id=user.id,
            created_at=now,
            last_seen=now,
            expires_at=now + SESSION_LIFETIME,
        )
    )
    session.flush()
    return token


def resolve_session(session: Session, token: str) -> User | None:
    """The user of a live session, sliding its expiry forward; None for an unknown, expired
    or disabled one (an expired row is deleted)."""
    row = session.scalar(sa.select(UserSession).where(UserSession.token_hash == token_hash(token)))
    if row is None:
        return None
    now = utcnow()
    if aware(row.expires_at) <= now or row.user.disabled:
        session.delete(row)
        return None
    if now - aware(row.last_seen) >= TOUCH_EVERY:
        row.last_seen = now
        row.expires_at = min(now + SESSION_LIFETIME, aware(row.created_at) + SESSION_MAX_AGE)
    return row.user


def end_session(session: Session, token: str) -> None:
    """Log out: delete the session (harmless if it is already gone)."""
    session.execute(sa.delete(UserSession).where(UserSession.token_hash == token_hash(token)))


def csrf_token_for(token: str) -> str:
    """The CSRF token that goes with a session (or pre-session) cookie token."""
    return hmac.new(token.encode("utf-8"), b"cryocurate csrf", hashlib.sha256).hexdigest()
