"""The account pages: log in, log out, ``/me``, invites, and the admin's user list.

Thin over :mod:`cryocurate.accounts`: logging in goes through
:func:`cryocurate.accounts.log_in` (throttled in the catalog, per account at an address and
per address), spending an invite through :func:`cryocurate.accounts.accept_invite` (atomic,
ends the user's other sessions). Forms that fail are shown again with their one error line
and the error's status (a wrong password 401, too many attempts 429 with ``Retry-After``);
who may see what is decided by the dependencies of :mod:`cryocurate.web.auth`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from cryocurate import accounts
from cryocurate.accounts.passwords import MIN_LENGTH
from cryocurate.catalog.models import Role, User
from cryocurate.errors import (
    AuthenticationError,
    CryocurateError,
    InputError,
    NotFoundError,
    TooManyRequestsError,
)
from cryocurate.web.auth import (
    SESSION_COOKIE,
    csrf_token,
    current_user,
    ensure_presession,
    identity,
    require_csrf,
    require_role,
    require_user,
    set_cookie,
)
from cryocurate.web.deps import DbInt, portal_of
from cryocurate.web.pages.render import jsonable, render

router = APIRouter(include_in_schema=False)


def client_address(request: Request) -> str:
    """The address login throttling counts: the TCP peer, or what a trusted proxy says it
    forwarded for (``cryocurate serve`` believes ``X-Forwarded-For`` only from the proxies
    in ``[web] trusted_proxies``; uvicorn then puts that address here)."""
    return request.client.host if request.client else "unknown"


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or ``https://…``): no open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def user_view(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role.value,
        "lab": user.lab,
        "created_at": user.created_at,
        "disabled": user.disabled,
        "has_password": user.password_hash is not None,
    }


def _login_context(request: Request, **extra: Any) -> dict[str, Any]:
    user = current_user(request)
    return {
        "user": user_view(user) if user else None,
        "csrf_token": csrf_token(request),
        "next": _safe_next(request.query_params.get("next")),
        "error": None,
        **extra,
    }


def _log_in(request: Request, response: Response, user: User) -> Response:
    with portal_of(request).transaction() as session:
        token = accounts.start_session(session, user)
    max_age = int(accounts.SESSION_LIFETIME.total_seconds())
    set_cookie(request, response, SESSION_COOKIE, token, max_age=max_age)
    return response


@router.get("/login", name="login")
def login_page(request: Request) -> Response:
    context = _login_context(request)
    return ensure_presession(request, render(request, "login.html", context))


@router.post("/login", dependencies=[Depends(require_csrf)])
def login(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
) -> Response:
    target = _safe_next(next)
    try:
        user = accounts.log_in(portal_of(request), email, password, client_address(request))
    except (AuthenticationError, TooManyRequestsError) as err:
        context = _login_context(request, error=str(err), next=target, email=email)
        page = render(request, "login.html", context, status_code=err.http_status)
        if isinstance(err, TooManyRequestsError):
            page.headers["Retry-After"] = str(err.retry_after)
        return page
    return _log_in(request, RedirectResponse(target, status_code=303), user)


@router.post("/logout", name="logout")
def logout(request: Request) -> Response:
    # A session's POST was checked for CSRF by the middleware; without a session, nothing
    # to end.
    ident = identity(request)
    if ident.session_token:
        with portal_of(request).transaction() as session:
            accounts.end_session(session, ident.session_token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me")
def me(request: Request, user: User = Depends(require_user)) -> Response:
    """The logged-in user, and the CSRF token scripts send as ``X-CSRF-Token``."""
    via_session = identity(request).via == "session"
    body = {"user": user_view(user), "csrf_token": csrf_token(request) if via_session else None}
    return JSONResponse(jsonable(body))


@router.get("/invite/{token}", name="invite")
def invite_page(request: Request, token: str) -> Response:
    try:
        with portal_of(request).transaction() as session:
            invited = accounts.peek_invite(session, token)
    except InputError as err:
        return render(request, "invite.html", _invite_context(request, None, str(err)), 400)
    context = _invite_context(request, invited, None)
    return ensure_presession(request, render(request, "invite.html", context))


def _invite_context(request: Request, invited: User | None, error: str | None) -> dict[str, Any]:
    return {
        "invited": user_view(invited) if invited else None,
        "error": error,
        "csrf_token": csrf_token(request),
        "min_length": MIN_LENGTH,
        "user": None,
    }


@router.post("/invite/{token}", dependencies=[Depends(require_csrf)])
def accept_invite(
    request: Request, token: str, password: str = Form(""), confirm: str = Form("")
) -> Response:
    try:
        if password != confirm:
            raise InputError("the two passwords differ")
        with portal_of(request).transaction() as session:
            user = accounts.accept_invite(session, token, password)
    except InputError as err:
        with portal_of(request).transaction() as session:
            try:
                invited: User | None = accounts.peek_invite(session, token)
            except InputError:
                invited = None
        return render(request, "invite.html", _invite_context(request, invited, str(err)), 400)
    return _log_in(request, RedirectResponse("/", status_code=303), user)


AdminUser = Depends(require_role(Role.admin))


def _admin_page(
    request: Request,
    admin: User,
    *,
    invite_url: str | None = None,
    invited: str | None = None,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    with portal_of(request).transaction() as session:
        users = [user_view(u) for u in accounts.list_users(session)]
    context = {
        "user": user_view(admin),
        "users": users,
        "roles": [r.value for r in Role],
        "invite_url": invite_url,
        "invited": invited,
        "notice": notice,
        "error": error,
        "csrf_token": csrf_token(request),
    }
    return render(request, "admin_users.html", context, status_code=status)


def _invite_url(request: Request, token: str) -> str:
    return str(request.base_url).rstrip("/") + f"/invite/{token}"


@router.get("/admin/users", name="admin_users")
def admin_users(request: Request, admin: User = AdminUser) -> Response:
    return _admin_page(request, admin)


@router.post("/admin/users")
def admin_add_user(
    request: Request,
    admin: User = AdminUser,
    email: str = Form(""),
    role: str = Form(""),
    display_name: str = Form(""),
    lab: str = Form(""),
) -> Response:
    try:
        with portal_of(request).transaction() as session:
            user = accounts.add_user(session, email, role, display_name=display_name, lab=lab)
            token = accounts.create_invite(session, user)
            address = user.email
    except CryocurateError as err:
        return _admin_page(request, admin, error=str(err), status=400)
    return _admin_page(request, admin, invite_url=_invite_url(request, token), invited=address)


def _user_by_id(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user


@router.post("/admin/users/{user_id:int}/invite")
def admin_reinvite(request: Request, user_id: DbInt, admin: User = AdminUser) -> Response:
    try:
        with portal_of(request).transaction() as session:
            user = _user_by_id(session, user_id)
            token = accounts.create_invite(session, user)
            address = user.email
    except CryocurateError as err:
        return _admin_page(request, admin, error=str(err), status=400)
    return _admin_page(request, admin, invite_url=_invite_url(request, token), invited=address)


@router.post("/admin/users/{user_id:int}/disable")
def admin_disable(request: Request, user_id: DbInt, admin: User = AdminUser) -> Response:
    try:
        with portal_of(request).transaction() as session:
            user = _user_by_id(session, user_id)
            if user.id == admin.id:
                raise InputError("you cannot disable yourself")
            accounts.disable_user(session, user.email)
    except CryocurateError as err:
        return _admin_page(request, admin, error=str(err), status=400)
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id:int}/end-sessions")
def admin_end_sessions(request: Request, user_id: DbInt, admin: User = AdminUser) -> Response:
    """Log a user out everywhere (a lost laptop, a shared computer); the admin's own current
    session is kept when they end their own."""
    try:
        with portal_of(request).transaction() as session:
            user = _user_by_id(session, user_id)
            keep = identity(request).session_token if user.id == admin.id else None
            ended = accounts.end_sessions(session, user, keep=keep)
            address = user.email
    except CryocurateError as err:
        return _admin_page(request, admin, error=str(err), status=400)
    plural = "" if ended == 1 else "s"
    return _admin_page(request, admin, notice=f"Ended {ended} session{plural} of {address}.")
