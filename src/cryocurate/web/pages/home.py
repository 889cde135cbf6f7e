"""Where a logged-in user starts, and each campaign's own page.

``GET /home``
    The user's home: what their role lets them do, in one place. A labeller sees the
    campaigns they grade in with their progress; a reviewer every campaign with its flagged
    items still to settle and its agreement; an admin the same plus managing campaigns and
    users. The header's name link leads here, so nothing a role may use is more than two
    clicks away.
``GET /campaigns/{id}``
    A campaign's page: what it grades, on which scale (its rubric), over which runs, and the
    links to grade, see progress, review, agreement and edit, each shown only to whom may use
    it. Every campaign page's breadcrumb leads back here.

Both are thin: the rules and counts are :mod:`cryocurate.grading.dashboard`'s.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cryocurate.catalog.models import User
from cryocurate.grading import dashboard
from cryocurate.web.auth import require_user
from cryocurate.web.deps import DbInt, portal_of
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)  # pages, not the API


@router.get("/home.json", include_in_schema=False)
@router.get("/home", name="home")
def home_page(request: Request, user: User = Depends(require_user)) -> Response:
    """The logged-in user's home: their work, by role."""
    with portal_of(request).transaction() as session:
        context = dashboard.home(session, user)
    return render(request, "home.html", context)


@router.get("/campaigns/{campaign_id:int}.json", include_in_schema=False)
@router.get("/campaigns/{campaign_id:int}", name="campaign_page")
def campaign_page(
    campaign_id: DbInt, request: Request, user: User = Depends(require_user)
) -> Response:
    """One campaign: its scale, runs and the pages this user may open for it."""
    with portal_of(request).transaction() as session:
        context = dashboard.campaign_page(session, campaign_id, user)
    return render(request, "campaign.html", context)
