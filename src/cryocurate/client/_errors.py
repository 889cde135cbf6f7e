"""The client's errors (it shares no code with the server, so it has its own small tree).

::

    ClientError             anything the client raises on purpose
    ├── APIError            the server answered with an error envelope (``status``, ``message``)
    └── DownloadError       a download ended short, or its size disagrees with the server's
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of the client's errors."""


class APIError(ClientError):
    """The server refused a request: ``status`` is the HTTP status, ``message`` its reason
    (for a bad filter, the field and the valid names)."""

    def __init__(self, status: int, message: str, url: str = "") -> None:
        self.status, self.message, self.url = status, message, url
        super().__init__(f"{status}: {message}" + (f" ({url})" if url else ""))


class DownloadError(ClientError):
    """A download could not be completed."""
