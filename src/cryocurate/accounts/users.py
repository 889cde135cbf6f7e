"""Users: adding, finding, listing and disabling them, and checking a password at login.

Emails are the identity and are stored lower-cased (a CHECK constraint keeps it so), so
``Ada@Lab.org`` and ``ada@lab.org`` are one person. A user is never deleted, only disabled:
grades will refer to them, and a disabled user's sessions and tokens stop working at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.accounts.crypto import token_hash
from cryocurate.accounts.passwords import HASHER, hash_password, verify_password
from cryocurate.catalog.models import Role, User, UserSession
from cryocurate.errors import AuthenticationError, ConflictError, InputError, NotFoundError

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# A hash to verify against when the email is unknown, so a login's timing does not reveal
# which emails have accounts.
_DUMMY_HASH = HASHER.hash("not a real password, only for equal timing")


def normalize_email(email: str) -> str:
    """The stored form of ``email`` (trimmed, lower-case), or an InputError if it is not one."""
    value = email.strip().lower()
    if len(value) > 320 or not EMAIL.match(value):
        raise InputError(f"not an email address: {email!r}")
    return value


def parse_role(role: str | Role) -> Role:
    """``"reviewer"`` → ``Role.reviewer``; an InputError naming the roles otherwise."""
    try:
        return Role(str(role).strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InputError(f"unknown role {role!r}", hint=f"one of {names}") from None


def get_user(session: Session, email: str) -> User:
    """The user with ``email``, or NotFoundError."""
    user = session.scalar(sa.select(User).where(User.email == normalize_email(email)))
    if user is None:
        raise NotFoundError(f"no user {email.strip().lower()!r}", hint="add one with `users add`")
    return user


def add_user(
    session: Session,
    email: str,
    role: str | Role,
    *,
    display_name: str | None = None,
    lab: str | None = None,
) -> User:
    """A new user without a password (they set one through an invite); ConflictError if the
    email is taken."""
    address, parsed = normalize_email(email), parse_role(role)
    if session.scalar(sa.select(User.id).where(User.email == address)) is not None:
        raise ConflictError(f"a user {address!r} already exists")
    user = User(
        email=address,
        role=parsed,
        display_name=(display_name or "").strip() or None,
        lab=(lab or "").strip() or None,
        disabled=False,
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> Sequence[User]:
    """Every user, by email."""
    return session.scalars(sa.select(User).order_by(User.email)).all()


def disable_user(session: Session, email: str) -> User:
    """Disable a user and end their sessions (their API tokens stop working too)."""
    user = get_user(session, email)
    user.disabled = True
    end_sessions(session, user)
    return user


def end_sessions(session: Session, user: User, *, keep: str | None = None) -> int:
    """End every browser session of ``user`` (but the one whose cookie token is ``keep``):
    how many ended. Their API tokens are not touched (revoke those by name)."""
    query = sa.delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        query = query.where(UserSession.token_hash != token_hash(keep))
    ended = session.execute(query).rowcount
    session.flush()
    return int(ended or 0)


def set_password(session: Session, user: User, password: str) -> int:
    """Give ``user`` a new password (checked against the rules) and end all their sessions:
    whoever was logged in with the old one is logged out. How many sessions ended."""
    if user.disabled:
        raise InputError(f"{user.email} is disabled", hint="a password would not let them in")
    user.password_hash = hash_password(password, email=user.email)
    return end_sessions(session, user)


def authenticate(session: Session, email: str, password: str) -> User:
    """The user whose email and password these are; AuthenticationError otherwise (wrong
    email or password, or a disabled account: deliberately not saying which). Re-hashes a
    password stored with older Argon2 parameters. Not throttled: the login page goes through
    :func:`cryocurate.accounts.throttle.log_in`."""
    try:
        address = normalize_email(email)
    except InputError:
        address = ""
    user = session.scalar(sa.select(User).where(User.email == address)) if address else None
    if user is None or user.password_hash is None:
        verify_password(_DUMMY_HASH, password)
        raise AuthenticationError("wrong email or password")
    matches, needs_rehash = verify_password(user.password_hash, password)
    if not matches or user.disabled:
        raise AuthenticationError("wrong email or password")
    if needs_rehash:
        user.password_hash = HASHER.hash(password)
    return user
