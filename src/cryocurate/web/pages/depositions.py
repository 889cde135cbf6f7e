"""The Deposition page (``/depositions/{id}`` and ``.json``): what was submitted together."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cryocurate.catalog.search import deposition_overview
from cryocurate.errors import NotFoundError
from cryocurate.grading import access
from cryocurate.web.auth import current_user
from cryocurate.web.deps import DbInt, PortalDep
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)


@router.get("/depositions/{deposition_id:int}", name="deposition_page")
@router.get("/depositions/{deposition_id:int}.json")
def deposition_page(request: Request, portal: PortalDep, deposition_id: DbInt) -> Response:
    with portal.transaction() as session:
        guards = access.annotation_guards(current_user(request))
        context = deposition_overview(session, deposition_id, guards)
    if context is None:
        raise NotFoundError(f"no deposition {deposition_id}")
    return render(request, "deposition.html", context)
