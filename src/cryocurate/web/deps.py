"""What a route needs from the app, given once: the portal it serves, a catalog session, and
the type of the integers it takes.

Routes take them as FastAPI dependencies (``portal: PortalDep``, ``session: SessionDep``) or,
in helpers that only have the request, call :func:`portal_of`. One definition, so no module
keeps its own copy of "where the portal lives" and a change (several roots, a per-request
portal) is a change here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BeforeValidator, Field
from sqlalchemy.orm import Session

from cryocurate.catalog.filters import DB_INT_MAX, DB_INT_MIN
from cryocurate.portal import Portal


def portal_of(request: Request) -> Portal:
    """The portal root this app was created for (``create_app`` stores it on the app)."""
    return request.app.state.portal  # type: ignore[no-any-return]


def catalog_session(request: Request) -> Iterator[Session]:
    """One catalog transaction for the route: committed when the route returns, rolled back
    if it raises (so an error answered by the boundary leaves nothing half-changed)."""
    with portal_of(request).transaction() as session:
        yield session


PortalDep = Annotated[Portal, Depends(portal_of)]
SessionDep = Annotated[Session, Depends(catalog_session)]


DbInt = Annotated[int, Field(ge=DB_INT_MIN, le=DB_INT_MAX)]
"""An integer from a request (an id in the path, an offset, an id in a body) that a database
column can hold: Python's ints have no bound, SQLite's are 64-bit and fail on a bigger one
(OverflowError, a 500). Out of range is a 400 from the error boundary, and ``/openapi.json``
documents the range."""


def _json_number_only(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("expected a JSON integer")  # lax ints take true and "10": JSON has no such
    return value


JsonInt = Annotated[int, BeforeValidator(_json_number_only)]
"""An integer from a JSON body: ``576`` or ``576.0`` (JSON Schema counts both as integers),
never ``true`` or ``"576"`` (pydantic's lax ints would take both). Give it bounds where it is
used, within :data:`JSON_INT_MAX`."""

JSON_INT_MAX = 2**53
"""The largest integer a JSON body may carry: every number up to it is exact as a float too
(JavaScript's safe range), so ``9007199254740992.0`` cannot round past a database's range."""
