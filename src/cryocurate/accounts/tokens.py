"""Per-user API tokens for scripts (``Authorization: Bearer <token>``).

A token is shown once when made, stored hashed, named so its owner knows which script holds
it, and revocable. It acts as its user, with their role; a disabled user's tokens stop working.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.accounts.crypto import new_token, token_hash, utcnow
from cryocurate.catalog.models import ApiToken, User
from cryocurate.errors import InputError, NotFoundError

PREFIX = "cc_"  # makes a leaked token recognisable to secret scanners and people


def create_api_token(session: Session, user: User, name: str) -> str:
    """A new token for ``user`` called ``name``; the returned string is not stored anywhere."""
    label = name.strip()
    if not label or len(label) > 100:
        raise InputError("an API token needs a name of 1 to 100 characters")
    if user.disabled:
        raise InputError(f"{user.email} is disabled")
    token = PREFIX + new_token()
    session.add(ApiToken(name=label, token_hash=token_hash(token), user_id=user.id))
    session.flush()
    return token


def resolve_api_token(session: Session, token: str) -> User | None:
    """The user a live token belongs to (noting its use), or None."""
    row = session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None or row.revoked or row.user.disabled:
        return None
    row.last_used = utcnow()
    return row.user


def revoke_api_token(session: Session, user: User, name: str) -> int:
    """Revoke ``user``'s live tokens called ``name``; how many there were (NotFoundError if
    none)."""
    rows = session.scalars(
        sa.select(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.name == name, ApiToken.revoked.is_(False)
        )
    ).all()
    if not rows:
        raise NotFoundError(f"{user.email} has no live API token called {name!r}")
    for row in rows:
        row.revoked = True
    return len(rows)
