"""The HTTP side of the client: one ``httpx.Client`` per :class:`Client`, JSON in and out.

Why separate from the models: the models only build specs and turn rows into objects; every
request, page loop and error translation is here, so the wire protocol (``/api/v1``,
``/files``, ``/download``) is visible in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from cryocurate import __version__
from cryocurate.client._errors import APIError

API = "/api/v1"
MAX_PAGE = 1000  # the server's largest page


class Client:
    """A connection to a cryocurate portal, e.g. ``Client("http://127.0.0.1:8000")``.

    ``page_size`` is how many rows each request asks for when a search is fetched page by page
    (at most 1000). Use it as a context manager, or call :meth:`close`, to free connections.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        page_size: int = MAX_PAGE,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE}")
        base = url.rstrip("/")
        self.url = base.removesuffix(API)
        self.page_size = page_size
        self.http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            transport=transport or httpx.HTTPTransport(retries=3),
            headers={"User-Agent": f"cryocurate-client/{__version__}"},
            follow_redirects=True,
        )

    # -- plumbing --------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; an error answer becomes an :class:`APIError`."""
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def file_url(self, relpath: str) -> str:
        """The URL path of a file of the data tree (``GET /files/<path>``)."""
        return "/files/" + quote(relpath.lstrip("/"))

    # -- the API ---------------------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        """The server's entities, fields and relationships (``GET /api/v1/schema``)."""
        return self.request("GET", f"{API}/schema").json()  # type: ignore[no-any-return]

    def query(
        self,
        plural: str,
        where: dict[str, Any] | None = None,
        order_by: Sequence[str] = (),
        limit: int = 100,
        offset: int = 0,
        include: Sequence[str] = (),
    ) -> dict[str, Any]:
        """One page of a search, as the server sends it: ``{"items", "total", "limit",
        "offset"}`` (``include`` embeds related rows, or ids with ``rel.id``)."""
        body = {
            "where": where or {},
            "order_by": list(order_by),
            "limit": limit,
            "offset": offset,
            "include": list(include),
        }
        return self.request("POST", f"{API}/{plural}/query", json=body).json()  # type: ignore[no-any-return]

    def query_pages(
        self,
        plural: str,
        where: dict[str, Any],
        order_by: Sequence[str],
        limit: int | None,
        offset: int,
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows of a search, page by page: all of them (``limit=None``) or ``limit``."""
        remaining = limit
        while remaining is None or remaining > 0:
            size = self.page_size if remaining is None else min(self.page_size, remaining)
            page = self.query(plural, where, order_by, size, offset)
            items = page["items"]
            if items:
                yield items
            offset += len(items)
            if remaining is not None:
                remaining -= len(items)
            if len(items) < size or offset >= page["total"]:
                return

    def get_row(self, plural: str, ident: Any) -> dict[str, Any] | None:
        try:
            response = self.request("GET", f"{API}/{plural}/{quote(str(ident))}")
        except APIError as err:
            if err.status == 404:
                return None
            raise
        return response.json()  # type: ignore[no-any-return]

    def count(self, plural: str, where: dict[str, Any] | None = None) -> int:
        return int(self.query(plural, where, limit=0)["total"])

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


def _api_error(response: httpx.Response) -> APIError:
    message = response.reason_phrase or "error"
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        message = str(body.get("error") or body.get("detail") or message)
    return APIError(response.status_code, message, str(response.request.url))
