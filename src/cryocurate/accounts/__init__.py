"""Accounts: users with roles, passwords, invites, browser sessions and API tokens.

Why a package of its own: the web app, the CLI and later the grading code all need the same
rules (who exists, who may log in, which secret belongs to whom), and none of those rules
depends on HTTP or on a terminal. Every function here takes an SQLAlchemy ``Session`` (from
``Portal.transaction()``) and raises :mod:`cryocurate.errors` errors; the web layer
(:mod:`cryocurate.web.auth`) and the CLI (:mod:`cryocurate.cli.users`) only translate.

Secrets handed to people (session cookies, invite links, API tokens) are random
``secrets.token_urlsafe(32)`` strings, stored only as their SHA-256 hashes
(:mod:`.crypto`); passwords are Argon2id hashes (:mod:`.passwords`). Logging in through a
server goes through :func:`log_in` (:mod:`.throttle`), which counts attempts in the catalog.
"""

from __future__ import annotations

from cryocurate.accounts.invites import INVITE_LIFETIME, accept_invite, create_invite, peek_invite
from cryocurate.accounts.passwords import check_password_rules, hash_password, verify_password
from cryocurate.accounts.sessions import (
    SESSION_LIFETIME,
    csrf_token_for,
    end_session,
    resolve_session,
    start_session,
)
from cryocurate.accounts.throttle import log_in
from cryocurate.accounts.tokens import create_api_token, resolve_api_token, revoke_api_token
from cryocurate.accounts.users import (
    add_user,
    authenticate,
    disable_user,
    end_sessions,
    get_user,
    list_users,
    normalize_email,
    parse_role,
    set_password,
)
from cryocurate.catalog.models import Role, User
from cryocurate.errors import AuthenticationError

__all__ = [
    "INVITE_LIFETIME",
    "SESSION_LIFETIME",
    "AuthenticationError",
    "Role",
    "User",
    "accept_invite",
    "add_user",
    "authenticate",
    "check_password_rules",
    "create_api_token",
    "create_invite",
    "csrf_token_for",
    "disable_user",
    "end_session",
    "end_sessions",
    "get_user",
    "hash_password",
    "list_users",
    "log_in",
    "normalize_email",
    "parse_role",
    "peek_invite",
    "resolve_api_token",
    "resolve_session",
    "revoke_api_token",
    "set_password",
    "start_session",
    "verify_password",
]
