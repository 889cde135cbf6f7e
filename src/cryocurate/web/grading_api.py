"""The grading JSON API under ``/api/v1/campaigns``: what the grading page and scripts use.

Every route needs a logged-in user (session cookie, or ``Authorization: Bearer`` token); the
auth middleware has already refused state-changing session requests without the CSRF token.
Views are thin over :mod:`cryocurate.grading`; who sees what is
:mod:`cryocurate.grading.access`; their errors become the API's one error envelope at the web's
error boundary (:mod:`cryocurate.web.errors`). Grades are posted in batches (the page's outbox),
each recorded in its own transaction so one bad grade never holds back the others.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from cryocurate import grading
from cryocurate.accounts.users import EMAIL
from cryocurate.catalog.filters import DB_INT_MAX
from cryocurate.catalog.models import Campaign, User
from cryocurate.errors import NotFoundError
from cryocurate.grading import access
from cryocurate.grading.items import class_image_url
from cryocurate.grading.progress import my_progress
from cryocurate.grading.queue import positions, run_items
from cryocurate.web.auth import require_user
from cryocurate.web.deps import JSON_INT_MAX, DbInt, JsonInt, portal_of
from cryocurate.web.pages.render import jsonable

router = APIRouter(prefix="/api/v1/campaigns", tags=["grading"])
MAX_BATCH = 100
# Whose grades: an email (documented as the accounts module checks it).
LabellerQuery = Query(
    None,
    description="a labeller's email",
    json_schema_extra={"pattern": EMAIL.pattern, "maxLength": 320},
)


class GradeIn(BaseModel):
    """One keypress from the page's outbox (``grade`` null is a skip). Numbers and booleans
    are strict (``"repeat": "no"`` is refused, not read as true); a grade is a key or a value
    of the scale, never longer than a few characters."""

    request_id: str = Field(min_length=8, max_length=64)
    item_id: JsonInt = Field(ge=0, le=JSON_INT_MAX)
    grade: Annotated[str, Field(max_length=16)] | Annotated[int, Field(strict=True)] | None = None
    repeat: bool = Field(False, strict=True)
    given_at: dt.datetime | None = None
    seconds_on_item: float | None = Field(None, allow_inf_nan=False)


class GradesIn(BaseModel):
    grades: list[GradeIn] = Field(min_length=1, max_length=MAX_BATCH)


def _ok(body: Any) -> JSONResponse:
    return JSONResponse(jsonable(body))


def _summary(
    session: Any, campaign: Campaign, user: User, *, per_run: bool = False
) -> dict[str, Any]:
    """The campaign's summary with the user's own progress (``per_run``: with their counts
    per run too, as the grading page shows them)."""
    labeller = grading.is_labeller(session, campaign, user)
    mine = my_progress(session, campaign, user) if labeller else None
    if mine is not None and not per_run:
        mine = {"done": mine["done"], "total": mine["total"]}
    return {
        "id": campaign.id,
        "name": campaign.name,
        "description": campaign.description,
        "scale": campaign.scale,
        "item_kind": campaign.item_kind,
        "closed": campaign.closed,
        "is_labeller": labeller,
        "my_progress": mine,
    }


@router.get("")
def list_campaigns(request: Request, user: User = Depends(require_user)) -> Response:
    """Campaigns the user grades in (reviewers and admins: all), with their own progress."""
    with portal_of(request).transaction() as session:
        campaigns = grading.list_campaigns(session, None if access.sees_all(user) else user)
        return _ok({"campaigns": [_summary(session, c, user) for c in campaigns]})


def _rubric_url(example: Any) -> str | None:
    ca = example.class_average
    if ca is not None:
        run = ca.run
        return class_image_url(run.dataset_id, run.name, ca.class_index)
    return None


@router.get("/{campaign_id:int}")
def get_campaign(
    campaign_id: DbInt, request: Request, user: User = Depends(require_user)
) -> Response:
    """The campaign as the grading page needs it: scale, rubric, runs, progress."""
    with portal_of(request).transaction() as session:
        access.visible_campaign(session, campaign_id, user)
        campaign = grading.load_campaign(session, campaign_id)
        keys = {int(lv["value"]): lv["key"] for lv in campaign.levels}
        progress = access.visible_progress(session, campaign, user)
        body = {
            **_summary(session, campaign, user, per_run=True),
            "levels": campaign.levels,
            "rubric": [
                {
                    "value": e.value,
                    "key": keys.get(e.value),
                    "image_url": _rubric_url(e),
                    "caption": e.caption,
                    "class_average_id": e.class_average_id,
                    "tiltseries_id": e.tiltseries_id,
                }
                for e in campaign.rubric_examples
            ],
            "grades_per_item": campaign.grades_per_item,
            "repeat_share": campaign.repeat_share,
            "runs": grading.campaign_runs(campaign),
            "progress": progress,
        }
        return _ok(body)


@router.get("/{campaign_id:int}/queue")
def queue(
    campaign_id: DbInt,
    request: Request,
    start: int | None = Query(None, ge=0, le=DB_INT_MAX),
    limit: int = Query(20, ge=1, le=200),
    user: User = Depends(require_user),
) -> Response:
    """The user's own queue from ``start`` (default: where they resume)."""
    with portal_of(request).transaction() as session:
        campaign = access.visible_campaign(session, campaign_id, user)
        if not grading.is_labeller(session, campaign, user):
            raise NotFoundError(f"campaign {campaign_id} has no items for {user.email}")
        where = grading.resume(session, campaign, user)
        first = start if start is not None else (where.position or 0)
        items = grading.window(session, campaign, user, first, limit)
        return _ok(
            {
                "resume": where.position,
                "skipped_only": where.skipped_only,
                "start": first,
                "queue_length": positions(session, campaign, user),
                "items": items,
                "my_progress": my_progress(session, campaign, user),
            }
        )


@router.get("/{campaign_id:int}/runs/{run_id:int}/items")
def grid_items(
    campaign_id: DbInt, run_id: DbInt, request: Request, user: User = Depends(require_user)
) -> Response:
    """One run's items in class order, with the user's grades: the grid mode."""
    with portal_of(request).transaction() as session:
        campaign = access.visible_campaign(session, campaign_id, user)
        return _ok({"items": run_items(session, campaign, user, run_id)})


@router.post("/{campaign_id:int}/grades")
def post_grades(
    campaign_id: DbInt, body: GradesIn, request: Request, user: User = Depends(require_user)
) -> Response:
    """Record a batch of grades and skips for the user sending them (idempotent)."""
    portal = portal_of(request)
    requests = [
        grading.GradeRequest(
            request_id=g.request_id,
            item_id=g.item_id,
            grade=g.grade,
            repeat=g.repeat,
            given_at=g.given_at,
            seconds_on_item=g.seconds_on_item,
        )
        for g in body.grades
    ]
    # The access rule runs inside each grade's transaction: one transaction per grade.
    outcomes = grading.record_many(portal, campaign_id, user.id, requests, check=_visible)
    results = []
    for request_, outcome in zip(requests, outcomes, strict=True):
        if isinstance(outcome, grading.Ack):
            results.append(outcome.as_dict())
        else:
            results.append(
                {
                    "request_id": request_.request_id,
                    "status": "error",
                    "item_id": request_.item_id,
                    "grade": None,
                    "error": outcome,
                }
            )
    return _ok({"results": results})


def _visible(session: Any, campaign: Campaign, user: User) -> None:
    access.visible_campaign(session, campaign.id, user)


@router.get("/{campaign_id:int}/grades")
def get_grades(
    campaign_id: DbInt,
    request: Request,
    labeller: str | None = LabellerQuery,
    user: User = Depends(require_user),
) -> Response:
    """Current grades: a labeller's own; reviewers and admins everyone's (or ``labeller``'s)."""
    with portal_of(request).transaction() as session:
        campaign = access.visible_campaign(session, campaign_id, user)
        whose: User | None = access.grades_owner(session, user, labeller)
        if labeller is None and access.sees_all(user):
            whose = None
        return _ok({"grades": grading.grade_rows(session, campaign, whose)})


@router.get("/{campaign_id:int}/items/{item_id:int}/history")
def item_history(
    campaign_id: DbInt,
    item_id: DbInt,
    request: Request,
    labeller: str | None = LabellerQuery,
    user: User = Depends(require_user),
) -> Response:
    """Every grade and skip one labeller gave one item (a labeller: their own)."""
    with portal_of(request).transaction() as session:
        campaign = access.visible_campaign(session, campaign_id, user)
        whose = access.grades_owner(session, user, labeller or None)
        return _ok({"history": grading.history(session, campaign, item_id, whose)})


@router.get("/{campaign_id:int}/progress")
def progress(campaign_id: DbInt, request: Request, user: User = Depends(require_user)) -> Response:
    """Progress toward the target per lab and run (per labeller: reviewers and admins)."""
    with portal_of(request).transaction() as session:
        campaign = access.visible_campaign(session, campaign_id, user)
        return _ok(access.visible_progress(session, campaign, user))
