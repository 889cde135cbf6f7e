"""How large a request body may be, per route, refused (413) before it is read.

Why a pure ASGI middleware: a route's body is read by FastAPI before the view runs, and the
auth middleware reads form bodies for their CSRF token, so a cap set in a view comes too late
(an anonymous 200 MB JSON search grew the server by 580 MiB before this). The middleware looks
at ``Content-Length`` first and refuses a body announced too large without reading a byte; a
body without a length (chunked) or with a false one is counted as it streams, and the request
is refused the moment it passes the cap: the rest is never read and the view's answer, if it
started one, is replaced by the 413.

The caps (:data:`LIMITS`, the first matching rule wins)::

    /login, /invite/…                          64 KiB   a log-in or password form
    POST /api/v1/campaigns/{id}/grades         MAX_BATCH grades × 2 KiB (200 KiB)
    /api/…                                     2 MiB    a JSON search (where trees are bounded
                                                        separately: catalog.filters)
    anything else                              1 MiB    the admin forms (a campaign ticking
                                                        thousands of runs is ~100 KiB)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryocurate.errors import TooLargeError
from cryocurate.web.errors import answer
from cryocurate.web.grading_api import MAX_BATCH

KiB, MiB = 1 << 10, 1 << 20
GRADE_BYTES = 2 * KiB  # one grade of a batch, generously: request id, item, grade, times


@dataclass(frozen=True)
class Limit:
    pattern: re.Pattern[str]
    max_bytes: int
    what: str


LIMITS: tuple[Limit, ...] = (
    Limit(re.compile(r"^/(login|invite/)"), 64 * KiB, "a log-in form"),
    Limit(
        re.compile(r"^/api/v1/campaigns/[0-9]+/grades$"),
        MAX_BATCH * GRADE_BYTES,
        f"a batch of at most {MAX_BATCH} grades",
    ),
    Limit(re.compile(r"^/api/"), 2 * MiB, "an API request"),
)
DEFAULT = Limit(re.compile(""), 1 * MiB, "a form")


def limit_for(path: str) -> Limit:
    """The cap that applies to a request for ``path``."""
    return next((rule for rule in LIMITS if rule.pattern.match(path)), DEFAULT)


def _too_large(limit: Limit) -> TooLargeError:
    return TooLargeError(
        f"the request body is larger than the {_size(limit.max_bytes)} allowed for {limit.what}",
        hint="send less at once",
    )


def _size(n: int) -> str:
    return f"{n // MiB} MiB" if n % MiB == 0 else f"{n // KiB} KiB"


class _Tripped(Exception):
    """Raised into the app from ``receive`` when the body passes its cap."""


class BodyLimit:
    """Refuse (413) a request body larger than :func:`limit_for` its path allows."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await answer(Request(scope), _too_large(limit))(scope, receive, send)
            return
        received = 0
        tripped = False
        started = False

        async def counted() -> Message:
            nonlocal received, tripped
            if tripped:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    tripped = True
                    raise _Tripped
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if tripped:
                return  # the app's answer to a half-read body: ours replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _Tripped:
            pass
        except Exception:
            if not tripped:
                raise
        if tripped and not started:
            await answer(Request(scope), _too_large(limit))(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
