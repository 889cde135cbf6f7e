"""The Deposition page (``/depositions/{id}`` and ``.json``): what was submitted together."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from cryocurate.catalog.search import deposition_overview
from cryocurate.grading import access
from cryocurate.portal import Portal
from cryocurate.web.auth import current_user
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)


@router.get("/depositions/{deposition_id:int}", name="deposition_page")
@router.get("/depositions/{deposition_id:int}.json")
def deposition_page(request: Request, deposition_id: int) -> Response:
    portal: Portal = request.app.state.portal
    with portal.transaction() as session:
        guards = access.annotation_guards(current_user(request))
        context = deposition_overview(session, deposition_id, guards)
    if context is None:
        raise HTTPException(404, f"no deposition {deposition_id}")
    return render(request, "deposition.html", context)
