"""One-time, expiring invite links: how a user gets (or resets) a password.

An admin adds a user and hands them a link; following it lets them choose a password, after
which the link is spent. Only the token's hash is stored; issuing a new invite spends the
user's older, unused ones, so only the newest link an admin handed out works.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.accounts.crypto import aware, new_token, token_hash, utcnow
from cryocurate.accounts.passwords import hash_password
from cryocurate.catalog.models import Invite, User
from cryocurate.errors import InputError

INVITE_LIFETIME = dt.timedelta(days=7)


def create_invite(session: Session, user: User, lifetime: dt.timedelta = INVITE_LIFETIME) -> str:
    """A new invite token for ``user`` (shown once; only its hash is kept)."""
    if user.disabled:
        raise InputError(f"{user.email} is disabled", hint="an invite would not let them in")
    now = utcnow()
    session.execute(
        sa.update(Invite)
        .where(Invite.user_id == user.id, Invite.used_at.is_(None))
        .values(used_at=now)
    )
    token = new_token()
    session.add(
        Invite(
            token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=now + lifetime
        )
    )
    session.flush()
    return token


def _valid_invite(session: Session, token: str) -> Invite:
    invite = session.scalar(sa.select(Invite).where(Invite.token_hash == token_hash(token)))
    if invite is None or invite.used_at is not None or invite.user.disabled:
        raise InputError("this invite link is not valid (used or replaced)", hint="ask an admin")
    if aware(invite.expires_at) <= utcnow():
        raise InputError("this invite link has expired", hint="ask an admin for a new one")
    return invite


def peek_invite(session: Session, token: str) -> User:
    """The user an invite is for, without using it; InputError if it is unknown, used or
    expired."""
    return _valid_invite(session, token).user


def accept_invite(session: Session, token: str, password: str) -> User:
    """Set the invited user's password and spend the invite."""
    invite = _valid_invite(session, token)
    invite.user.password_hash = hash_password(password)
    invite.used_at = utcnow()
    session.flush()
    return invite.user
