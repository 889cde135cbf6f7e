"""The grading pages: ``GET /campaigns`` (the campaigns I may open), the grading screen
``GET /campaigns/{id}/grade`` and its grid mode ``GET /campaigns/{id}/grid?run=RUN_ID``.

Why the views are this thin: the grading screen must never wait for the server between a
keypress and the next image, so it is driven by one ES module (``static/grade.js``) that reads
the queue from the JSON API (``/api/v1/campaigns/...``), keeps an outbox of grades in
``localStorage`` and sends it in the background. The pages only check who is asking, name
the campaign, and hand the script what it cannot fetch itself without a round trip: the
CSRF token for its POSTs and the user id that keys its outbox (so two people sharing one
browser never send each other's grades).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup

from cryocurate.catalog.models import User
from cryocurate.errors import ForbiddenError
from cryocurate.grading import dashboard, is_labeller
from cryocurate.grading.access import visible_campaign
from cryocurate.portal import Portal
from cryocurate.web.auth import csrf_token, require_user
from cryocurate.web.deps import DbInt, portal_of
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)  # pages, not the API


def _script_json(data: dict[str, Any]) -> Markup:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` are
    escaped so no value can close the script element."""
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)  # escaped above


def campaigns_context(portal: Portal, user: User) -> dict[str, Any]:
    """The campaigns ``user`` sees (a labeller: those they grade in; reviewers and admins:
    all), each with their own progress if they grade in it and the pages they may open."""
    with portal.transaction() as session:
        cards = [
            dashboard.campaign_card(session, c, user)
            for c in dashboard.visible_campaigns(session, user)
        ]
    return {
        "campaigns": cards,
        "user": {"id": user.id, "email": user.email, "role": user.role.value},
    }


@router.get("/campaigns", name="my_campaigns")
def campaigns_page(request: Request, user: User = Depends(require_user)) -> Response:
    """Every campaign this user may open, with where to grade next and how far they are."""
    return render(request, "campaigns.html", campaigns_context(portal_of(request), user))


def _screen_context(
    request: Request, user: User, campaign_id: int, mode: str, run_id: int | None
) -> dict[str, Any]:
    with portal_of(request).transaction() as session:
        campaign = visible_campaign(session, campaign_id, user)
        labeller = is_labeller(session, campaign, user)
        name, closed, kind = campaign.name, campaign.closed, campaign.item_kind.value
    if not labeller:
        # A screen that could only say "you cannot grade here" is no page to offer.
        raise ForbiddenError(
            f"you are not a labeller of campaign {campaign_id}",
            hint=f"its page is /campaigns/{campaign_id}; an admin adds labellers",
        )
    config = {
        "campaign_id": campaign_id,
        "user_id": user.id,
        "csrf_token": csrf_token(request),
        "mode": mode,
        "run_id": run_id,
        "item_kind": kind,
        "api": "/api/v1",
    }
    return {
        "campaign": {"id": campaign_id, "name": name, "closed": closed, "item_kind": kind},
        "is_labeller": labeller,
        "mode": mode,
        "config": config,
        "config_json": _script_json(config),
    }


@router.get("/campaigns/{campaign_id:int}/grade", name="grade_screen")
def grade_page(
    campaign_id: DbInt, request: Request, user: User = Depends(require_user)
) -> Response:
    """The one-item-at-a-time grading screen (the script loads the queue)."""
    context = _screen_context(request, user, campaign_id, "grade", None)
    return render(request, "grade.html", context)


@router.get("/campaigns/{campaign_id:int}/grid", name="grade_grid")
def grid_page(
    campaign_id: DbInt,
    request: Request,
    run: DbInt | None = None,
    user: User = Depends(require_user),
) -> Response:
    """Grid mode: a whole run's class averages at once, graded from the keyboard."""
    context = _screen_context(request, user, campaign_id, "grid", run)
    return render(request, "grade_grid.html", context)
