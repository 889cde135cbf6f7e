"""Campaign admin pages and the campaign overview.

``GET/POST /admin/campaigns``
    The campaigns with their progress, and the form that creates one (runs ticked from the
    catalog, grouped by lab and dataset; labellers ticked from the users).
``GET /admin/campaigns/{id}`` and its forms (``…/descriptions``, ``…/labellers``, ``…/runs``,
``…/rubric``, ``…/rubric/remove``)
    Editing a running campaign: the scale's descriptions, more labellers, more runs, and the
    rubric's example images.
``GET /campaigns/{id}/overview`` (and ``.json``)
    Progress toward the campaign's target per lab, per run and per labeller.

Why the admin forms post and redirect (303) rather than answer the page: a reload never posts
twice. Errors re-render the page with the message and status 400, so what was typed is not
lost on the way. Every rule (what a campaign may hold, who may grade) lives in
:mod:`cryocurate.grading`; these views only parse forms and arrange data for the templates.

Who sees the overview: labellers of the campaign see the per-lab and per-run counts and their
own row (never another labeller's, so nobody is ranked against colleagues), reviewers and
admins see every labeller. Anyone else gets 404: a campaign's existence is not public.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from cryocurate import accounts, grading
from cryocurate.catalog.models import (
    Campaign,
    ClassAverage,
    Dataset,
    GradeScale,
    ItemKind,
    Role,
    Run,
    RunKind,
    TiltSeries,
    User,
)
from cryocurate.errors import CryocurateError, InputError
from cryocurate.grading import access
from cryocurate.grading.campaigns import DEFAULT_REPEAT_SHARE, labeller_users
from cryocurate.grading.items import class_image_url
from cryocurate.grading.progress import NO_LAB
from cryocurate.grading.scales import value_of
from cryocurate.web.auth import csrf_token, require_role, require_user
from cryocurate.web.deps import DbInt, portal_of
from cryocurate.web.pages.render import render

router = APIRouter(include_in_schema=False)

AdminUser = Depends(require_role(Role.admin))
IdList = Annotated[list[DbInt], Form()]
TextList = Annotated[list[str], Form()]


def _me(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "role": user.role.value}


def _pct(done: int, target: int) -> float:
    return round(100 * done / target, 1) if target else 0.0


# ----------------------------------------------------------------------------------------------
# What the forms offer


def _catalog_runs(session: Session) -> list[dict[str, Any]]:
    """Every run a campaign can take, grouped by lab then dataset: class2d runs (with their
    class count) and runs with tilt series."""
    n_classes = (
        sa.select(ClassAverage.run_id, sa.func.count().label("n"))
        .group_by(ClassAverage.run_id)
        .subquery()
    )
    n_tilt = (
        sa.select(TiltSeries.run_id, sa.func.count().label("n"))
        .group_by(TiltSeries.run_id)
        .subquery()
    )
    query = (
        sa.select(Run, Dataset, n_classes.c.n, n_tilt.c.n)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .outerjoin(n_classes, n_classes.c.run_id == Run.id)
        .outerjoin(n_tilt, n_tilt.c.run_id == Run.id)
        .order_by(Dataset.lab, Dataset.id, Run.name)
    )
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for run, dataset, classes, tilts in session.execute(query):
        kind = "class2d" if run.kind is RunKind.class2d else "tilt_series" if tilts else None
        if kind is None:
            continue
        group = groups.setdefault(
            (dataset.lab or NO_LAB, dataset.id),
            {
                "lab": dataset.lab or NO_LAB,
                "dataset_id": dataset.id,
                "dataset_title": dataset.title,
                "runs": [],
            },
        )
        group["runs"].append(
            {
                "id": run.id,
                "name": run.name,
                "kind": kind,
                "items": (classes or 0) if kind == "class2d" else tilts,
            }
        )
    return list(groups.values())


def _people(session: Session) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "email": u.email, "name": u.display_name, "role": u.role.value, "lab": u.lab}
        for u in accounts.list_users(session)
        if not u.disabled
    ]


def _campaign_rows(session: Session) -> list[dict[str, Any]]:
    rows = []
    for campaign in grading.list_campaigns(session):
        row = grading.campaign_summary(session, campaign)
        rows.append({**row, "percent": _pct(row["done"], row["target"])})
    return rows


# ----------------------------------------------------------------------------------------------
# The list and the create form


def _list_page(
    request: Request,
    admin: User,
    *,
    error: str | None = None,
    form: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    with portal_of(request).transaction() as session:
        context = {
            "user": _me(admin),
            "campaigns": _campaign_rows(session),
            "run_groups": _catalog_runs(session),
            "people": _people(session),
            "scales": [s.value for s in GradeScale],
            "default_repeat_share": DEFAULT_REPEAT_SHARE,
            "form": form or {},
            "error": error,
            "csrf_token": csrf_token(request),
        }
    return render(request, "admin_campaigns.html", context, status_code=status)


@router.get("/admin/campaigns", name="admin_campaigns")
def admin_campaigns(request: Request, admin: User = AdminUser) -> Response:
    return _list_page(request, admin)


def _optional_int(text: str, what: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{what} must be a whole number, not {text!r}") from None


def _share(text: str) -> float:
    text = text.strip().rstrip("%").strip()
    if not text:
        return DEFAULT_REPEAT_SHARE
    try:
        return float(text)
    except ValueError:
        raise InputError(f"the repeat share must be a number, not {text!r}") from None


@router.post("/admin/campaigns")
def admin_create_campaign(
    request: Request,
    admin: User = AdminUser,
    name: str = Form(""),
    description: str = Form(""),
    scale: str = Form(GradeScale.letters.value),
    run: IdList = [],  # noqa: B006 - FastAPI copies defaults per request
    labeller: TextList = [],  # noqa: B006
    grades_per_item: str = Form(""),
    repeat_share: str = Form(""),
) -> Response:
    """Create a campaign from the form, then show its edit page."""
    form = {
        "name": name,
        "description": description,
        "scale": scale,
        "runs": list(run),
        "labellers": list(labeller),
        "grades_per_item": grades_per_item,
        "repeat_share": repeat_share,
    }
    try:
        try:
            grade_scale = GradeScale(scale)
        except ValueError:
            raise InputError(f"unknown scale {scale!r}") from None
        spec = grading.CampaignSpec(
            name=name,
            run_ids=list(run),
            scale=grade_scale,
            labellers=list(labeller),
            grades_per_item=_optional_int(grades_per_item, "grades per item"),
            repeat_share=_share(repeat_share),
            description=description.strip() or None,
        )
        with portal_of(request).transaction() as session:
            creator = session.get(User, admin.id)
            campaign_id = grading.create_campaign(session, spec, created_by=creator).id
    except CryocurateError as err:
        return _list_page(request, admin, error=str(err), form=form, status=400)
    return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)


# ----------------------------------------------------------------------------------------------
# One campaign's edit page


def _example_image(session: Session, campaign: Campaign, example: Any) -> dict[str, Any]:
    """Where a rubric example's image is: the class average's PNG (tilt series: its run's
    page, as the portal stores no single picture of a tilt series)."""
    if example.class_average_id is not None:
        ca = example.class_average
        run = ca.run
        return {
            "item_id": ca.id,
            "label": f"class {ca.class_index} of {run.name}",
            "image_url": class_image_url(run.dataset_id, run.name, ca.class_index),
            "run_url": f"/runs/{run.id}",
        }
    ts = example.tiltseries
    return {
        "item_id": ts.id,
        "label": f"tilt series {ts.id} of {ts.run.name}",
        "image_url": None,
        "run_url": f"/runs/{ts.run_id}",
    }


def _edit_context(session: Session, campaign_id: int) -> dict[str, Any]:
    campaign = grading.load_campaign(session, campaign_id)
    labellers = labeller_users(session, campaign)
    taken = {u.id for u in labellers}
    in_campaign = {link.run_id for link in campaign.runs}
    wanted = "class2d" if campaign.item_kind is ItemKind.class_average else "tilt_series"
    groups = []
    for group in _catalog_runs(session):
        runs = [r for r in group["runs"] if r["kind"] == wanted and r["id"] not in in_campaign]
        if runs:
            groups.append({**group, "runs": runs})
    examples: dict[int, list[dict[str, Any]]] = {}
    for example in campaign.rubric_examples:
        examples.setdefault(example.value, []).append(
            {
                "id": example.id,
                "caption": example.caption,
                **_example_image(session, campaign, example),
            }
        )
    progress = grading.campaign_progress(session, campaign)
    return {
        "campaign": {
            "id": campaign.id,
            "name": campaign.name,
            "description": campaign.description,
            "scale": campaign.scale.value,
            "item_kind": campaign.item_kind.value,
            "grades_per_item": campaign.grades_per_item,
            "repeat_share": campaign.repeat_share,
            "created_at": campaign.created_at,
            "closed": campaign.closed,
        },
        "levels": [
            {**level, "examples": examples.get(int(level["value"]), [])}
            for level in campaign.levels
        ],
        "runs": progress["per_run"],
        "progress": {k: progress[k] for k in ("done", "target", "items", "grades_per_item")},
        "labellers": [
            {"id": u.id, "email": u.email, "name": u.display_name, "lab": u.lab} for u in labellers
        ],
        "candidates": [p for p in _people(session) if p["id"] not in taken],
        "run_groups": groups,
    }


def _edit_page(
    request: Request, admin: User, campaign_id: int, *, error: str | None = None, status: int = 200
) -> Response:
    with portal_of(request).transaction() as session:
        context = _edit_context(session, campaign_id)
    context.update(user=_me(admin), error=error, csrf_token=csrf_token(request))
    return render(request, "admin_campaign.html", context, status_code=status)


@router.get("/admin/campaigns/{campaign_id:int}", name="admin_campaign")
def admin_campaign(request: Request, campaign_id: DbInt, admin: User = AdminUser) -> Response:
    return _edit_page(request, admin, campaign_id)


def _edit(request: Request, admin: User, campaign_id: int, change: Any) -> Response:
    """Apply ``change(session, campaign)`` in one transaction; back to the edit page (303), or
    the page with the error (400). No such campaign is not the form's error: the boundary's 404."""
    with portal_of(request).transaction() as session:
        grading.get_campaign(session, campaign_id)
    try:
        with portal_of(request).transaction() as session:
            change(session, grading.get_campaign(session, campaign_id))
    except CryocurateError as err:
        return _edit_page(request, admin, campaign_id, error=str(err), status=400)
    return RedirectResponse(f"/admin/campaigns/{campaign_id}", status_code=303)


@router.post("/admin/campaigns/{campaign_id:int}/descriptions")
def admin_descriptions(
    request: Request,
    campaign_id: DbInt,
    admin: User = AdminUser,
    key: TextList = [],  # noqa: B006
    text: TextList = [],  # noqa: B006
) -> Response:
    """The scale's descriptions, one text per grade key (the form sends them in pairs)."""

    def change(session: Session, campaign: Campaign) -> None:
        if len(key) != len(text):
            raise InputError("every grade needs its description")
        if any(not t.strip() for t in text):
            raise InputError("a description is empty", hint="say what the grade means")
        grading.set_descriptions(session, campaign, dict(zip(key, text, strict=True)))

    return _edit(request, admin, campaign_id, change)


@router.post("/admin/campaigns/{campaign_id:int}/state")
def admin_campaign_state(
    request: Request,
    campaign_id: DbInt,
    admin: User = AdminUser,
    state: str = Form(""),
) -> Response:
    """Close the campaign (no more grades; its consensus becomes public) or reopen it."""

    def change(session: Session, campaign: Campaign) -> None:
        if state not in ("closed", "open"):
            raise InputError("the state is 'closed' or 'open'")
        grading.set_closed(session, campaign, state == "closed")

    return _edit(request, admin, campaign_id, change)


@router.post("/admin/campaigns/{campaign_id:int}/labellers")
def admin_add_labellers(
    request: Request,
    campaign_id: DbInt,
    admin: User = AdminUser,
    labeller: TextList = [],  # noqa: B006
) -> Response:
    def change(session: Session, campaign: Campaign) -> None:
        if not labeller:
            raise InputError("tick at least one person to add")
        grading.add_labellers(session, campaign, labeller)

    return _edit(request, admin, campaign_id, change)


@router.post("/admin/campaigns/{campaign_id:int}/runs")
def admin_add_runs(
    request: Request,
    campaign_id: DbInt,
    admin: User = AdminUser,
    run: IdList = [],  # noqa: B006
) -> Response:
    def change(session: Session, campaign: Campaign) -> None:
        if not run:
            raise InputError("tick at least one run to add")
        grading.add_runs(session, campaign, run)

    return _edit(request, admin, campaign_id, change)


def _ids(text: str) -> list[int]:
    parts = text.replace(",", " ").split()
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise InputError(f"not a list of ids: {text!r}", hint="e.g. 12, 40") from None


def _examples_of(campaign: Campaign, value: int) -> tuple[list[int], list[str | None]]:
    kept = [e for e in campaign.rubric_examples if e.value == value]
    ids = [
        int(e.class_average_id if e.class_average_id is not None else e.tiltseries_id) for e in kept
    ]
    return ids, [e.caption for e in kept]


@router.post("/admin/campaigns/{campaign_id:int}/rubric")
def admin_add_examples(
    request: Request,
    campaign_id: DbInt,
    admin: User = AdminUser,
    grade: str = Form(""),
    item_ids: str = Form(""),
    caption: str = Form(""),
) -> Response:
    """Add example images to a grade (the grade's earlier examples stay)."""

    def change(session: Session, campaign: Campaign) -> None:
        new = _ids(item_ids)
        if not new:
            raise InputError("give the id of at least one class average")
        value = value_of(campaign.levels, grade)
        ids, captions = _examples_of(campaign, value)
        fresh = [i for i in new if i not in ids]
        grading.set_rubric_examples(
            session,
            campaign,
            grade,
            ids + fresh,
            captions + [caption.strip() or None] * len(fresh),
        )

    return _edit(request, admin, campaign_id, change)


@router.post("/admin/campaigns/{campaign_id:int}/rubric/remove")
def admin_remove_example(
    request: Request, campaign_id: DbInt, admin: User = AdminUser, example_id: int = Form(0)
) -> Response:
    def change(session: Session, campaign: Campaign) -> None:
        example = next((e for e in campaign.rubric_examples if e.id == example_id), None)
        if example is None:
            raise InputError(f"no example {example_id} in this campaign")
        ids, captions = _examples_of(campaign, example.value)
        index = [e.id for e in campaign.rubric_examples if e.value == example.value].index(
            example_id
        )
        del ids[index], captions[index]
        grading.set_rubric_examples(session, campaign, example.value, ids, captions)

    return _edit(request, admin, campaign_id, change)


# ----------------------------------------------------------------------------------------------
# The overview


def overview_context(session: Session, campaign_id: int, viewer: User) -> dict[str, Any]:
    """The overview's data as ``viewer`` may see it; NotFoundError for anyone who may not."""
    campaign = access.visible_campaign(session, campaign_id, viewer)
    progress = access.visible_progress(session, campaign, viewer)

    def with_pct(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "percent": _pct(r["done"], r["target"])} for r in rows]

    people = progress["per_labeller"]
    return {
        "campaign": {
            "id": campaign.id,
            "name": campaign.name,
            "description": campaign.description,
            "scale": campaign.scale.value,
            "grades_per_item": campaign.grades_per_item,
            "closed": campaign.closed,
        },
        "viewer": _me(viewer),
        "sees_all_labellers": access.sees_all(viewer),
        "progress": {
            "done": progress["done"],
            "target": progress["target"],
            "items": progress["items"],
            "grades_per_item": progress["grades_per_item"],
            "percent": _pct(progress["done"], progress["target"]),
        },
        "per_lab": with_pct(progress["per_lab"]),
        "per_run": with_pct(progress["per_run"]),
        "per_labeller": [{**p, "percent": _pct(p["graded"], p["items"])} for p in people],
    }


@router.get("/campaigns/{campaign_id:int}/overview.json")
@router.get("/campaigns/{campaign_id:int}/overview", name="campaign_overview")
def campaign_overview(
    request: Request, campaign_id: DbInt, viewer: User = Depends(require_user)
) -> Response:
    with portal_of(request).transaction() as session:
        context = overview_context(session, campaign_id, viewer)
    context["user"] = context["viewer"]
    return render(request, "campaign_overview.html", context)
