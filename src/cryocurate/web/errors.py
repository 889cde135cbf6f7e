"""The web app's one error boundary: every error becomes one answer, chosen in one place.

Views and services raise errors from the project's tree (:mod:`cryocurate.errors`); they never
build error responses or ``HTTPException``\\ s. :func:`install` registers handlers that turn

* a :class:`~cryocurate.errors.CryocurateError` into the status the error says
  (``error.http_status``): 400, 401, 403, 404, 409, 413, 429;
* FastAPI's :class:`~fastapi.exceptions.RequestValidationError` (a parameter or body that does
  not fit the route) into a 400 with one line per problem (``limit: …; body.where: …``);
* Starlette's ``HTTPException`` (an unknown URL's 404, a wrong method's 405, a missing static
  file) into the same kind of answer;
* anything else into a plain 500 that shows no traceback, after one line with the traceback
  in the server log (``cryocurate.web`` logger). That last one is a pure ASGI middleware, not
  an exception handler: Starlette's handler for ``Exception`` re-raises into the server, which
  would log the same traceback a second time.

Which shape: the JSON envelope ``{"ok": false, "error": "...", "status": N}`` for the API
(``/api/…``, ``/me``, ``….json``, ``?format=json``), for clients that ask for JSON and not
HTML, and, when the client states no preference (a script, ``curl``, ``fetch()``), for
downloads and data files (a download's refusal has the API's shape) and non-GET calls. An HTML
page with the portal's header and links back otherwise: browsers (their ``Accept`` names
``text/html``) and page URLs. A page ``GET`` that needs a login is redirected to
``/login?next=…`` instead; a 429 carries ``Retry-After``, a 401 envelope
``WWW-Authenticate: Bearer``.

Middleware cannot raise into exception handlers (it runs outside them), so it answers with
:func:`answer`, the same function the handlers use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryocurate import __version__
from cryocurate.errors import (
    AuthenticationError,
    CryocurateError,
    InputError,
    TooManyRequestsError,
)
from cryocurate.web.pages.render import TEMPLATES, wants_json

log = logging.getLogger("cryocurate.web")

_TITLES = {
    400: "That request cannot be answered",
    401: "Log in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "That clashes with what is stored",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong on the server",
}
SERVER_ERROR = (
    "something went wrong on the server; it has been logged (try again later, or tell the "
    "portal's admin)"
)


# ----------------------------------------------------------------------------------------------
# Choosing the shape


_DATA_PREFIXES = ("/download/", "/files/", "/data/")
_DATA_SUFFIXES = (".ndjson", ".png", ".csv", ".zip")


def wants_json_error(request: Request) -> bool:
    """Whether ``request``'s error is answered as the JSON envelope rather than a page: what
    :func:`~cryocurate.web.pages.render.wants_json` says a page's JSON twin is, and the API."""
    path = request.url.path
    if path.startswith("/api/") or path == "/me" or wants_json(request):
        return True
    if "text/html" in request.headers.get("accept", "").lower():
        return False  # a browser's navigation or form
    # No preference: a script. Downloads, data files and non-GET calls (fetch) get the
    # envelope they can parse; a page's URL gets the page.
    data = path.startswith(_DATA_PREFIXES) or path.endswith(_DATA_SUFFIXES)
    return data or request.method not in ("GET", "HEAD")


def _same_site_referer(request: Request) -> str | None:
    """The page the visitor came from, when it is on this site (a path, never a host)."""
    referer = request.headers.get("referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.url.netloc:
        return None
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or path == request.url.path:
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def _ways_back(request: Request, status: int) -> list[dict[str, str]]:
    links = []
    if status == 401:
        target = quote(_target(request), safe="")
        links.append({"url": f"/login?next={target}", "label": "Log in"})
    back = _same_site_referer(request)
    if back:
        links.append({"url": back, "label": "Back to the previous page"})
    links.append({"url": "/", "label": "Browse datasets (home)"})
    return links


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _target(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


# ----------------------------------------------------------------------------------------------
# Answering


def envelope(message: str, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON API's one error shape, ``{"ok": false, "error": …, "status": N}`` (a 401 says
    how to authenticate)."""
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    body = {"ok": False, "error": message, "status": status}
    return JSONResponse(body, status_code=status, headers=headers)


def respond(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The answer for an error of HTTP ``status`` saying ``message``: envelope or page."""
    if wants_json_error(request):
        return envelope(message, status, headers)
    context = {
        "status": status,
        "title": _TITLES.get(status) or _phrase(status),
        "message": message,
        "links": _ways_back(request, status),
        "version": __version__,
    }
    return TEMPLATES.TemplateResponse(
        request, "error.html", context, status_code=status, headers=headers
    )


def answer(request: Request, error: CryocurateError) -> Response:
    """The answer for one of our errors, with the status it says. Exception handlers and
    middleware (which cannot raise into the handlers) both answer through here."""
    status = error.http_status
    if (
        isinstance(error, AuthenticationError)
        and request.method in ("GET", "HEAD")
        and not wants_json_error(request)
    ):
        return RedirectResponse(f"/login?next={quote(_target(request), safe='')}", 303)
    headers = {}
    if isinstance(error, TooManyRequestsError):
        headers["Retry-After"] = str(error.retry_after)
    return respond(request, status, str(error), headers)


def validation_message(problems: Sequence[dict[str, Any]]) -> str:
    """FastAPI's validation problems as one line: ``limit: Input should be …; body: …``."""
    lines = []
    for problem in problems:
        loc = problem.get("loc") or ()
        # Names and list positions; not pydantic's names of union members ("list[…]").
        names = [str(p) for p in loc[1:] if isinstance(p, int) or _is_name(str(p))]
        while names and names[0].isdigit():  # ("body", 12): where in the text JSON broke
            names.pop(0)
        where = ".".join(names) or (str(loc[0]) if loc else "request")
        line = f"{where}: {problem.get('msg', 'not valid')}"
        if line not in lines:
            lines.append(line)
    return "; ".join(lines[:5]) or "the request is not valid"


_TYPE_NAMES = frozenset(("str", "int", "float", "bool", "dict", "list", "none", "json-or-python"))


def _is_name(part: str) -> bool:
    return part.isidentifier() and part not in _TYPE_NAMES


async def _our_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CryocurateError)
    return answer(request, exc)


async def _not_valid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return answer(request, InputError(validation_message(exc.errors())))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status < 400:  # Starlette's 304s and the like: nothing to explain
        return Response(status_code=status, headers=exc.headers)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if status == 404 and detail in (None, "Not Found"):
        detail = f"nothing at {request.url.path}"
    elif status == 405 and detail in (None, "Method Not Allowed"):
        detail = f"{request.method} is not allowed on {request.url.path}"
    return respond(request, status, detail or _phrase(status), dict(exc.headers or {}))


class LastResort:
    """Anything that escaped every handler: one log line with the traceback, a plain 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            request = Request(scope)
            log.error(
                "500 on %s %s: %s: %s",
                request.method,
                request.url.path,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            if not started:  # else the client sees a cut response; nothing more can be sent
                await respond(request, 500, SERVER_ERROR)(scope, receive, send)


# ----------------------------------------------------------------------------------------------
# What /openapi.json says about errors

_DESCRIPTIONS = {
    400: "The request does not fit: a parameter, the body or the filter (one line says what)",
    401: "Log in first, or the API token is invalid or revoked (private portals: every route)",
    403: "Not allowed for this user, or a session's request without its CSRF token",
    404: "No such entity (or not visible to this user)",
    409: "The request clashes with what is stored",
    413: "The request body is larger than this route accepts (see the deployment notes)",
}
_UNSAFE = ("post", "put", "patch", "delete")


def _envelope_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["ok", "error", "status"],
        "properties": {
            "ok": {"type": "boolean", "enum": [False]},
            "error": {"type": "string"},
            "status": {"type": "integer"},
        },
    }


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Write the boundary's answers into an OpenAPI document, in place: FastAPI's 422 (this
    app answers validation errors with 400) is dropped, and each operation lists the statuses
    it can really answer, as the envelope (and, outside ``/api/``, as a page for browsers):
    400, 401 and 413 everywhere (parameters, the token check and the body cap apply to every
    route), 403 for state-changing methods (CSRF) and routes that need a user, 404 where the
    path names something, 409 for state-changing methods and downloads (the data changed)."""
    openapi.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = (
        _envelope_schema()
    )
    ref = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.pop("422", None)
            statuses = [400, 401, 413]
            if method in _UNSAFE or path.startswith(("/api/v1/campaigns", "/campaigns")):
                statuses.append(403)
            if "{" in path:
                statuses.append(404)
            if method in _UNSAFE or path.startswith("/download/"):
                statuses.append(409)
            content: dict[str, Any] = {"application/json": {"schema": ref}}
            if not path.startswith("/api/"):
                content["text/html"] = {"schema": {"type": "string"}}
            for status in statuses:
                responses.setdefault(
                    str(status), {"description": _DESCRIPTIONS[status], "content": content}
                )
    schemas = openapi["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return openapi


def _documented(app: FastAPI) -> Any:
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(plain())
        return app.openapi_schema

    return openapi


def install(app: FastAPI) -> None:
    """Register the boundary on ``app`` and document it in ``/openapi.json``. Call it after
    every other ``add_middleware``: the last-resort middleware must be the outermost one, so
    it also covers theirs."""
    app.add_exception_handler(CryocurateError, _our_error)
    app.add_exception_handler(RequestValidationError, _not_valid)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_middleware(LastResort)
    app.openapi = _documented(app)  # type: ignore[method-assign]
