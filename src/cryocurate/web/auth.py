"""Who is asking: sessions, API tokens, CSRF and roles for the web app (the login, logout,
invite and user-admin pages are :mod:`cryocurate.web.pages.accounts`).

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

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from cryocurate import accounts
from cryocurate.accounts.crypto import new_token, same_secret
from cryocurate.catalog.models import Role, User
from cryocurate.errors import AuthenticationError, ForbiddenError
from cryocurate.portal import Portal
from cryocurate.web import errors as web_errors
from cryocurate.web.deps import portal_of

SESSION_COOKIE = "cryocurate_session"
PRESESSION_COOKIE = "cryocurate_csrf"  # anonymous forms (login, invite): double submit
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reachable by anonymous visitors of a private portal: what it takes to log in.
OPEN_PREFIXES = ("/login", "/logout", "/invite/", "/static/")
MAX_FORM_BYTES = 1 << 20  # the largest form body the middleware reads to find the CSRF token
CSRF_REFUSED = "missing or wrong CSRF token (reload the page and try again)"

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
        raise AuthenticationError("log in first")
    return user


def require_role(*roles: Role | str) -> Callable[[Request], User]:
    """Dependency factory: the logged-in user if their role is one of ``roles``, else 403."""
    allowed = frozenset(accounts.parse_role(r) for r in roles)
    names = " or ".join(sorted(r.value for r in allowed))

    def dependency(request: Request) -> User:
        user = require_user(request)
        if user.role not in allowed:
            raise ForbiddenError(f"this needs the {names} role")
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
        raise ForbiddenError(CSRF_REFUSED)


def _is_form(headers: Headers) -> bool:
    kind = headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in ("application/x-www-form-urlencoded", "multipart/form-data")


def ensure_presession(request: Request, response: Response) -> Response:
    """Set the pre-session cookie that :func:`csrf_token` used for an anonymous form."""
    pre = getattr(request.state, "presession", None)
    if pre:
        set_cookie(request, response, PRESESSION_COOKIE, pre, max_age=None)
    return response


def set_cookie(
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
            # A bearer token is a script's: the envelope, whatever page it asked for.
            await web_errors.envelope("invalid or revoked API token", 401)(scope, receive, send)
            return
        scope.setdefault("state", {})["identity"] = ident
        if (
            portal.settings.private
            and ident.user is None
            and not scope["path"].startswith(OPEN_PREFIXES)
        ):
            refusal = AuthenticationError("this portal is private: log in first")
            await web_errors.answer(request, refusal)(scope, receive, send)
            return
        if scope["method"] in UNSAFE_METHODS and ident.via == "session":
            receive, sent = await _csrf_from_request(scope, receive)
            expected = accounts.csrf_token_for(ident.session_token or "")
            if not csrf_ok(expected, sent):
                refusal = ForbiddenError(CSRF_REFUSED)
                await web_errors.answer(Request(scope), refusal)(scope, receive, send)
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
# Installing


def install(app: FastAPI) -> None:
    """Add the auth middleware (its dependencies' refusals, AuthenticationError and
    ForbiddenError, are answered by the app's error boundary, :mod:`cryocurate.web.errors`)."""
    app.add_middleware(AuthMiddleware)
