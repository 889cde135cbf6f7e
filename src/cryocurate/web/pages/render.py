"""One way to answer a page: the same context as HTML or as JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates

from cryocurate import __version__, accounts


def _nav_user(request: Request) -> dict[str, Any]:
    """``nav_user`` for every template: who is logged in (None for a visitor), so the header
    can offer the grading and admin links on pages whose context does not carry the user.
    Read from the identity the auth middleware stored, without importing the auth module
    (which imports this one)."""
    identity = getattr(request.state, "identity", None)
    user = getattr(identity, "user", None)
    path = request.url.path
    # Logging in from a page comes back to it; from the front page (or the login page
    # itself), to the user's home.
    back = "/home" if path in ("/", "/login") or path.startswith("/invite/") else path
    if user is None:
        return {"nav_user": None, "nav_path": path, "nav_login_next": back}
    token = getattr(identity, "session_token", None)
    return {
        "nav_user": {
            "email": user.email,
            "role": str(user.role.value),
            # The header's Log out button is a form: it needs the session's CSRF token.
            "csrf_token": accounts.csrf_token_for(token) if token else None,
        },
        "nav_path": path,
        "nav_login_next": back,
    }


TEMPLATES = Jinja2Templates(
    directory=str(Path(__file__).parent.parent / "templates"), context_processors=[_nav_user]
)


def wants_json(request: Request) -> bool:
    """``/x.json``, ``?format=json`` or ``Accept: application/json`` (and not text/html)."""
    if request.url.path.endswith(".json") or request.query_params.get("format") == "json":
        return True
    accept = request.headers.get("accept", "").lower()  # media types are case-insensitive
    return "application/json" in accept and "text/html" not in accept


def jsonable(value: Any) -> Any:
    """Plain JSON: dataclasses, enums, dates, paths; NaN and ±inf as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """The page for ``context`` as HTML, or as JSON when the client asks for it."""
    if wants_json(request):
        return JSONResponse(jsonable(context), status_code=status_code)
    return TEMPLATES.TemplateResponse(
        request, template, {**context, "version": __version__}, status_code=status_code
    )


__all__ = ["HTMLResponse", "jsonable", "render", "wants_json"]
