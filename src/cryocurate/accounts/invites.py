"""One-time, expiring invite links: how a user gets (or resets) a password.

An admin adds a user and hands them a link; following it lets them choose a password, after
which the link is spent. Only the token's hash is stored; issuing a new invite spends the
user's older, unused ones, so only the newest link an admin handed out works.

Spending a link is one conditional update (``… WHERE used_at IS NULL``), so of several
requests racing with the same link exactly one sets the password; setting it ends every
session the user had (whoever held an old cookie is logged out).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.accounts.crypto import aware, new_token, token_hash, utcnow
from cryocurate.accounts.passwords import hash_password
from cryocurate.accounts.users import end_sessions
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
    """Set the invited user's password, spend the invite and end the user's sessions.

    The password is checked and hashed first (slow, and nothing is spent if it is refused);
    then the invite is spent with ``UPDATE … WHERE used_at IS NULL``: a parallel request that
    spent it first leaves this one 0 rows, and an InputError."""
    invite = _valid_invite(session, token)
    user = invite.user
    password_hash = hash_password(password, email=user.email)
    now = utcnow()
    spent = session.execute(
        sa.update(Invite)
        .where(Invite.id == invite.id, Invite.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if spent != 1:
        raise InputError("this invite link is not valid (used or replaced)", hint="ask an admin")
    user.password_hash = password_hash
    end_sessions(session, user)
    session.flush()
    return user
