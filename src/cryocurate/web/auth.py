"""Who is asking: sessions, API tokens, CSRF and roles for the web app, plus the login,
logout, invite and user-admin pages.

Why a middleware *and* dependencies: the middleware runs for every request, so no route can
forget the rules that must hold everywhere. It finds the user (a session cookie or an
``Authorization: Bearer`` API token), refuses a state-changing request made with a session
cookie that lacks the session's CSRF token, and, when the portal is private
(``[web] private = true`` in ``cryocurate.toml``), refuses anonymous visitors. Routes then say
what *they* need with dependencies::

    from cryocurate.web.auth import current_user, require_csrf, require_role, require_user

    @router.post("/grades")
    def grade(user: User = Depends(require_role(Role.labeller, Role.admin))): ...

    @router.get("/me-or-nobody")
    def page(user: User | None = Depends(current_user)): ...

Templates that post forms need ``csrf_token(request)`` in a hidden ``csrf_token`` field;
scripts using ``fetch`` send it as ``X-CSRF-Token`` (``GET /me`` answers it as JSON).

Requests with a bearer token are exempt from CSRF: browsers never add that header on their
own, so a forged cross-site request cannot carry it. Anonymous requests carry no authority to
forge, except logging in, so the login and invite forms check a pre-session token kept in a
cookie of its own (double submit) via :func:`require_csrf`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from cryocurate import accounts
from cryocurate.accounts.crypto import new_token, same_secret
from cryocurate.catalog.models import Role, User
from cryocurate.errors import (
    AuthenticationError,
    CryocurateError,
    ForbiddenError,
    InputError,
    NotFoundError,
)
from cryocurate.portal import Portal
from cryocurate.web import errors as web_errors
from cryocurate.web.deps import portal_of
from cryocurate.web.pages.render import jsonable, render

SESSION_COOKIE = "cryocurate_session"
PRESESSION_COOKIE = "cryocurate_csrf"  # anonymous forms (login, invite): double submit
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reachable by anonymous visitors of a private portal: what it takes to log in.
OPEN_PREFIXES = ("/login", "/logout", "/invite/", "/static/")
MAX_FORM_BYTES = 1 << 20  # the largest form body the middleware reads to find the CSRF token

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Identity:
    """Who made a request, and how: ``via`` is ``"session"``, ``"token"`` or None."""

    user: User | None = None
    via: str | None = None
    session_token: str | None = None


ANONYMOUS = Identity()


class AuthProblem(Exception):
    """Raised by the dependencies: 401 (log in first) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# ----------------------------------------------------------------------------------------------
# Finding the user


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _identify(portal: Portal, bearer: str | None, cookie: str | None) -> Identity | None:
    """The identity for a request's credentials; None when a bearer token is not valid."""
    if bearer is None and not cookie:
        return ANONYMOUS  # most visitors of a public portal: no database work
    with portal.transaction() as session:
        if bearer is not None:
            user = accounts.resolve_api_token(session, bearer)
            return Identity(user, "token") if user is not None else None
        if cookie:
            user = accounts.resolve_session(session, cookie)
            if user is not None:
                return Identity(user, "session", cookie)
    return ANONYMOUS


def identity(request: Request) -> Identity:
    """The request's identity as the middleware found it."""
    return getattr(request.state, "identity", ANONYMOUS)  # type: ignore[no-any-return]


def current_user(request: Request) -> User | None:
    """Dependency: the logged-in user (by session or API token), or None for a visitor."""
    return identity(request).user


def require_user(request: Request) -> User:
    """Dependency: the logged-in user; anonymous visitors get 401 (pages: the login page)."""
    user = current_user(request)
    if user is None:
        raise AuthProblem(401, "log in first")
    return user


def require_role(*roles: Role | str) -> Callable[[Request], User]:
    """Dependency factory: the logged-in user if their role is one of ``roles``, else 403."""
    allowed = frozenset(accounts.parse_role(r) for r in roles)
    names = " or ".join(sorted(r.value for r in allowed))

    def dependency(request: Request) -> User:
        user = require_user(request)
        if user.role not in allowed:
            raise AuthProblem(403, f"this needs the {names} role")
        return user

    return dependency


def is_private(request: Request) -> bool:
    return portal_of(request).settings.private


# ----------------------------------------------------------------------------------------------
# CSRF


def csrf_token(request: Request) -> str:
    """The CSRF token forms and scripts must send back with this request's session (or, for
    an anonymous visitor, with their pre-session cookie, which :func:`ensure_presession`
    sets)."""
    ident = identity(request)
    if ident.session_token:
        return accounts.csrf_token_for(ident.session_token)
    pre = getattr(request.state, "presession", None) or request.cookies.get(PRESESSION_COOKIE)
    if not pre:
        pre = new_token()
        request.state.presession = pre
    return accounts.csrf_token_for(pre)


def _expected_csrf(request: Request) -> str | None:
    ident = identity(request)
    if ident.session_token:
        return accounts.csrf_token_for(ident.session_token)
    pre = request.cookies.get(PRESESSION_COOKIE)
    return accounts.csrf_token_for(pre) if pre else None


def csrf_ok(expected: str | None, sent: str | None) -> bool:
    """Whether ``sent`` is the expected token (compared in constant time)."""
    return bool(expected) and bool(sent) and same_secret(str(expected), str(sent))


async def require_csrf(request: Request) -> None:
    """Dependency: refuse (403) a state-changing request without the right CSRF token, sent
    as the ``X-CSRF-Token`` header or a ``csrf_token`` form field. Bearer-token requests
    pass. The middleware already applies this to every request made with a session cookie;
    use it explicitly on routes anonymous visitors post to."""
    if request.method not in UNSAFE_METHODS or identity(request).via == "token":
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request.headers):
        sent_value = (await request.form()).get(CSRF_FIELD)
        sent = sent_value if isinstance(sent_value, str) else None
    if not csrf_ok(_expected_csrf(request), sent):
        raise AuthProblem(403, "missing or wrong CSRF token (reload the page and try again)")


def _is_form(headers: Headers) -> bool:
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")


def ensure_presession(request: Request, response: Response) -> Response:
    """Set the pre-session cookie that :func:`csrf_token` used for an anonymous form."""
    pre = getattr(request.state, "presession", None)
    if pre:
        _set_cookie(request, response, PRESESSION_COOKIE, pre, max_age=None)
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# ----------------------------------------------------------------------------------------------
# The middleware


def _problem_response(scope: Scope, status: int, message: str) -> Response:
    """The middleware's refusals (private portal, CSRF) answered by the web's error boundary."""
    error = AuthenticationError(message) if status == 401 else ForbiddenError(message)
    return web_errors.answer(Request(scope), error)


class AuthMiddleware:
    """Pure ASGI (the request body stays streamable): identify, check CSRF, keep private."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        portal = portal_of(request)
        ident = await run_in_threadpool(
            _identify, portal, _bearer(request.headers), request.cookies.get(SESSION_COOKIE)
        )
        if ident is None:
            await JSONResponse(
                {"ok": False, "error": "invalid or revoked API token", "status": 401},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = ident
        if (
            portal.settings.private
            and ident.user is None
            and not scope["path"].startswith(OPEN_PREFIXES)
        ):
            await _problem_response(scope, 401, "this portal is private: log in first")(
                scope, receive, send
            )
            return
        if scope["method"] in UNSAFE_METHODS and ident.via == "session":
            receive, sent = await _csrf_from_request(scope, receive)
            expected = accounts.csrf_token_for(ident.session_token or "")
            if not csrf_ok(expected, sent):
                await _problem_response(
                    scope, 403, "missing or wrong CSRF token (reload the page and try again)"
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _csrf_from_request(scope: Scope, receive: Receive) -> tuple[Receive, str | None]:
    """The token a request sent (header, or form field: then the body is read and replayed)."""
    headers = Headers(scope=scope)
    if CSRF_HEADER in headers or not _is_form(headers):
        return receive, headers.get(CSRF_HEADER)
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > MAX_FORM_BYTES:
            return receive, None
    body = b"".join(chunks)

    def replay() -> Receive:
        done = False

        async def again() -> Message:
            nonlocal done
            if done:
                return await receive()
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        return again

    form = await Request(scope, replay()).form()
    value = form.get(CSRF_FIELD)
    return replay(), value if isinstance(value, str) else None


# ----------------------------------------------------------------------------------------------
# Pages: login, logout, invite, user admin

router = APIRouter(include_in_schema=False)

# Failed logins per email: (first failure time, count). In memory, per process: it slows
# down guessing, which is all a small portal needs.
_FAILURES: dict[str, tuple[float, int]] = {}
MAX_FAILURES, FAILURE_WINDOW_S = 10, 15 * 60


def _too_many_failures(email: str) -> bool:
    first, count = _FAILURES.get(email.strip().lower(), (0.0, 0))
    return count >= MAX_FAILURES and time.monotonic() - first < FAILURE_WINDOW_S


def _note_failure(email: str) -> None:
    key, now = email.strip().lower(), time.monotonic()
    first, count = _FAILURES.get(key, (now, 0))
    _FAILURES[key] = (first, count + 1) if now - first < FAILURE_WINDOW_S else (now, 1)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or ``https://…``): no open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _user_view(user: User) -> dict[str, Any]:
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
        "user": _user_view(user) if user else None,
        "csrf_token": csrf_token(request),
        "next": _safe_next(request.query_params.get("next")),
        "error": None,
        **extra,
    }


def _log_in(request: Request, response: Response, user: User) -> Response:
    with portal_of(request).transaction() as session:
        token = accounts.start_session(session, user)
    max_age = int(accounts.SESSION_LIFETIME.total_seconds())
    _set_cookie(request, response, SESSION_COOKIE, token, max_age=max_age)
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
    if _too_many_failures(email):
        error = "too many failed attempts; wait a quarter of an hour and try again"
        context = _login_context(request, error=error, next=target, email=email)
        return render(request, "login.html", context, status_code=429)
    try:
        with portal_of(request).transaction() as session:
            user = accounts.authenticate(session, email, password)
    except accounts.AuthenticationError as err:
        _note_failure(email)
        context = _login_context(request, error=str(err), next=target, email=email)
        return render(request, "login.html", context, status_code=400)
    _FAILURES.pop(email.strip().lower(), None)
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
    body = {"user": _user_view(user), "csrf_token": csrf_token(request) if via_session else None}
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
        "invited": _user_view(invited) if invited else None,
        "error": error,
        "csrf_token": csrf_token(request),
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
    error: str | None = None,
    status: int = 200,
) -> Response:
    with portal_of(request).transaction() as session:
        users = [_user_view(u) for u in accounts.list_users(session)]
    context = {
        "user": _user_view(admin),
        "users": users,
        "roles": [r.value for r in Role],
        "invite_url": invite_url,
        "invited": invited,
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


def _user_by_id(session: Any, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"no user with id {user_id}")
    return user  # type: ignore[no-any-return]


@router.post("/admin/users/{user_id:int}/invite")
def admin_reinvite(request: Request, user_id: int, admin: User = AdminUser) -> Response:
    try:
        with portal_of(request).transaction() as session:
            user = _user_by_id(session, user_id)
            token = accounts.create_invite(session, user)
            address = user.email
    except CryocurateError as err:
        return _admin_page(request, admin, error=str(err), status=400)
    return _admin_page(request, admin, invite_url=_invite_url(request, token), invited=address)


@router.post("/admin/users/{user_id:int}/disable")
def admin_disable(request: Request, user_id: int, admin: User = AdminUser) -> Response:
    try:
        with portal_of(request).transaction() as session:
            user = _user_by_id(session, user_id)
            if user.id == admin.id:
                raise InputError("you cannot disable yourself")
            accounts.disable_user(session, user.email)
    except CryocurateError as err:
        return _admin_page(request, admin, error=str(err), status=400)
    return RedirectResponse("/admin/users", status_code=303)


# ----------------------------------------------------------------------------------------------
# Installing


async def _auth_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthProblem)
    return _problem_response(request.scope, exc.status, exc.message)


def install(app: FastAPI) -> None:
    """Add the auth middleware, its error handler and the login/invite/admin pages."""
    app.add_middleware(AuthMiddleware)
    app.add_exception_handler(AuthProblem, _auth_problem)
    app.include_router(router)
