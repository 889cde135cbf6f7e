"""Run Overview: ``GET /runs/{id}`` (HTML) and ``GET /runs/{id}.json`` (the same context).

The page shows the run's summary (a subset of its metadata, its files counted by type,
the tilt-series quality), the annotations table (with each annotation's metadata behind an info
button and a download button per annotation), the Download Run dialog and, for a ``class2d``
run, the grading summary (:mod:`cryocurate.grading.run_summary`) and the gallery of class
averages with each one's consensus grade (its spread and flag for reviewers and admins). The
view is thin: the context comes from :func:`cryocurate.catalog.run_pages.run_overview`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cryocurate.catalog.run_pages import run_overview
from cryocurate.errors import NotFoundError
from cryocurate.grading import access
from cryocurate.grading.annotations import grade_annotations_of_run
from cryocurate.grading.run_summary import grading_summaries
from cryocurate.web.auth import current_user
from cryocurate.web.deps import DbInt, PortalDep
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)  # pages, not the API


@router.get("/runs/{run_id:int}.json", include_in_schema=False)
@router.get("/runs/{run_id:int}", name="run_overview")
def run_page(run_id: DbInt, request: Request, portal: PortalDep) -> Response:
    """The Run Overview page of run ``run_id``."""
    user = current_user(request)
    detail = user is not None and access.sees_all(user)
    with portal.transaction() as session:
        links = grade_annotations_of_run(session, run_id)
        shown, hidden = access.visible_grade_links(session, links, user)
        context = run_overview(session, run_id, shown, hidden, grade_detail=detail)
        if context is not None and context["run"]["kind"] == "class2d":
            context["grading"] = grading_summaries(session, [run_id], user, {run_id: shown})[run_id]
    if context is None:
        raise NotFoundError(f"no run {run_id}")
    return render(request, "run.html", context)
