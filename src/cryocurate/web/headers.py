"""The security headers of every response, set in one place.

The portal serves two kinds of content from one origin, and they get different rules:

**Pages (and the API, static assets, everything else).** A Content-Security-Policy that lets a
page run only the portal's own script files (``script-src 'self'``: no inline ``<script>``,
no ``on…=`` attributes, no ``eval``) and load nothing from anywhere else; ``frame-ancestors
'none'`` and ``X-Frame-Options: DENY`` (no page of the portal is meant to be framed, so none
can be clickjacked); ``Referrer-Policy: same-origin`` (links out to EMPIAR or ORCID do not
tell them the portal's URLs, which may name private campaigns); ``X-Content-Type-Options:
nosniff``. ``<script type="application/json">`` blocks carry page configuration as data,
which the policy allows: the browser never runs them.

**Files of the data tree** (``/files/…``, ``/data/…``) **and downloads** (``/download/…``).
They come from outside (an import copies whatever a folder holds, an extraction reads what a
job wrote), so none of them may ever run in the portal's origin, where it could read the CSRF
token from ``GET /me`` and act as the admin who opened it. Each gets
``Content-Security-Policy: sandbox; default-src 'none'`` (a document opened from it has an
opaque origin, no script, no plugin, no form, loads nothing), ``nosniff`` (the browser keeps
to the declared type) and ``Content-Disposition: attachment`` (it is saved, not shown),
except the image types the pages themselves show, PNG and JPEG, which stay ``inline`` so a
class average or key photo opens in a tab. SVG is not one of them: it is a document that can
hold script, and no page shows an SVG from the tree. The response policy does not reach the
pages that embed these files: an ``<img>`` or a ``fetch`` (the viewer's Zarr chunks and MRC
slices) reads them as before.

A pure ASGI middleware (:class:`SecurityHeaders`), added last in ``create_app`` so it is the
outermost one and also covers the answers the auth middleware gives on its own (the login
redirect, 401, 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAGE_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # data: for the icons Swagger UI's stylesheet carries inline (/docs).
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
DATA_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
# What may be shown in a browser tab straight from the tree; everything else is saved.
INLINE_TYPES = frozenset({"image/png", "image/jpeg"})
DATA_PREFIXES = ("/files/", "/data/", "/download/")

COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


def is_data_path(path: str) -> bool:
    """Whether ``path`` serves a file of the data tree or a download (the stricter rules)."""
    return path.startswith(DATA_PREFIXES)


def _media_type(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


def _disposition(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name.lower() == b"content-disposition":
            return value
    return None


def secured(
    path: str, status: int, headers: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """``headers`` of a response to ``path`` with the security headers set (replacing any
    a route set itself: these are not a route's to choose). A data path's file (2xx, 304)
    gets the data rules; its refusals and redirects are the portal's own pages."""
    ours = {name for name, _ in COMMON} | {b"content-security-policy"}
    out = [(n, v) for n, v in headers if n.lower() not in ours]
    out.extend(COMMON)
    if not is_data_path(path) or not (200 <= status < 300 or status == 304):
        out.append((b"content-security-policy", PAGE_CSP.encode()))
        return out
    out.append((b"content-security-policy", DATA_CSP.encode()))
    disposition = _disposition(out)
    inline = _media_type(out) in INLINE_TYPES
    if disposition is None or (not inline and not disposition.lower().startswith(b"attachment")):
        out = [(n, v) for n, v in out if n.lower() != b"content-disposition"]
        name = path.rstrip("/").rsplit("/", 1)[-1]
        out.append((b"content-disposition", _content_disposition(name, inline).encode()))
    return out


def _content_disposition(name: str, inline: bool) -> str:
    """``attachment; filename=…`` (or ``inline``) named after the URL's last segment: a plain
    ASCII ``filename`` and, for other names, RFC 5987's ``filename*``."""
    kind = "inline" if inline else "attachment"
    if not name:
        return kind
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "._-+") else "_" for c in name)
    if plain == name:
        return f'{kind}; filename="{plain}"'
    return f"{kind}; filename=\"{plain}\"; filename*=utf-8''{quote(name, safe='')}"


class SecurityHeaders:
    """Pure ASGI middleware: every HTTP response leaves with :func:`secured` headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                message["headers"] = secured(path, message["status"], headers)
            await send(message)

        await self.app(scope, receive, send_secured)


__all__ = [
    "DATA_CSP",
    "INLINE_TYPES",
    "PAGE_CSP",
    "SecurityHeaders",
    "is_data_path",
    "secured",
]
