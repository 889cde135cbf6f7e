"""What a user's home and a campaign's page list: per campaign, what this user can do there.

Why one module: the home page (``/home``), the campaign list (``/campaigns``) and a campaign's
own page (``/campaigns/ID``) must agree on who may do what, or a page offers a link that
answers 403 (or hides one the user needs). The rules are :mod:`cryocurate.grading.access`'s:

* a labeller grades the campaigns they are a labeller of, and sees their overview;
* reviewers and admins see every campaign, its agreement and its flagged items to settle;
* admins also edit campaigns (and manage users, which is not a campaign's business).

The counts are aggregate queries (one per figure), never a load of every item.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    CampaignLabeller,
    ConsensusGrade,
    ItemKind,
    ReviewDecision,
    Role,
    User,
)
from cryocurate.grading.access import sees_all, visible_campaign
from cryocurate.grading.campaigns import is_labeller
from cryocurate.grading.progress import campaign_summary, my_progress


def review_counts(session: Session, campaign: Campaign) -> dict[str, Any]:
    """``{"computed", "flagged", "open"}``: whether a consensus is stored, how many items it
    flagged, and how many of those no reviewer has settled yet."""
    # One pass over the campaign's consensus rows (a review decision is at most one per
    # item: its key is the campaign and item), not a query per figure.
    flagged_row = ConsensusGrade.flagged.is_(True)
    computed, flagged, settled = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(flagged_row),
            sa.func.count(ReviewDecision.item_id).filter(flagged_row),
        )
        .select_from(ConsensusGrade)
        .outerjoin(
            ReviewDecision,
            sa.and_(
                ReviewDecision.campaign_id == ConsensusGrade.campaign_id,
                ReviewDecision.item_id == ConsensusGrade.item_id,
            ),
        )
        .where(ConsensusGrade.campaign_id == campaign.id)
    ).one()
    return {
        "computed": bool(computed),
        "flagged": int(flagged or 0),
        "open": int((flagged or 0) - (settled or 0)),
    }


def actions(campaign: Campaign, user: User, labeller: bool) -> list[dict[str, str]]:
    """The campaign's pages ``user`` may open, in the order a person uses them."""
    base = f"/campaigns/{campaign.id}"
    out: list[dict[str, str]] = []
    if labeller and not campaign.closed:
        out.append({"key": "grade", "label": "Grade", "href": f"{base}/grade"})
        if campaign.item_kind is ItemKind.class_average:  # a tilt series is graded alone
            out.append({"key": "grid", "label": "Grid", "href": f"{base}/grid"})
    out.append({"key": "overview", "label": "Progress", "href": f"{base}/overview"})
    if sees_all(user):
        out.append({"key": "review", "label": "Review", "href": f"{base}/review"})
        out.append({"key": "agreement", "label": "Agreement", "href": f"{base}/agreement"})
    if user.role is Role.admin:
        out.append({"key": "edit", "label": "Edit", "href": f"/admin/campaigns/{campaign.id}"})
    return out


def campaign_card(session: Session, campaign: Campaign, user: User) -> dict[str, Any]:
    """One campaign as ``user`` sees it: facts, their own progress if they grade in it, the
    whole campaign's progress and review counts if they see everything, and their actions."""
    labeller = is_labeller(session, campaign, user)
    card: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "description": campaign.description,
        "scale": campaign.scale.value,
        "item_kind": campaign.item_kind.value,
        "closed": campaign.closed,
        "is_labeller": labeller,
        "mine": None,
        "summary": None,
        "review": None,
    }
    if labeller:
        mine = my_progress(session, campaign, user)
        card["mine"] = {"done": mine["done"], "total": mine["total"], "per_run": mine["per_run"]}
    if sees_all(user):
        card["summary"] = campaign_summary(session, campaign)
        card["review"] = review_counts(session, campaign)
    card["actions"] = actions(campaign, user, labeller)
    return card


def visible_campaigns(session: Session, user: User) -> list[Campaign]:
    """Every campaign for reviewers and admins; a labeller's own campaigns otherwise."""
    query = sa.select(Campaign).order_by(Campaign.id)
    if not sees_all(user):
        query = query.join(CampaignLabeller).where(CampaignLabeller.user_id == user.id)
    return list(session.scalars(query))


def home(session: Session, user: User) -> dict[str, Any]:
    """A user's home: the campaigns they grade in (with their progress), and for reviewers
    and admins every campaign with its flagged items, plus the admin's tools."""
    cards = [campaign_card(session, c, user) for c in visible_campaigns(session, user)]
    grading = [c for c in cards if c["is_labeller"]]
    reviewing = [c for c in cards if c["review"] is not None]
    tools = []
    if user.role is Role.admin:
        tools = [
            {"key": "campaigns", "label": "Manage campaigns", "href": "/admin/campaigns"},
            {"key": "users", "label": "Manage users", "href": "/admin/users"},
        ]
    return {
        "user": {
            "id": user.id,
            "email": user.email,
            "name": user.display_name or user.email,
            "role": user.role.value,
            "lab": user.lab,
        },
        "grading": grading,
        "reviewing": reviewing,
        "tools": tools,
        "n_open_reviews": sum(c["review"]["open"] for c in reviewing),
    }


def campaign_page(session: Session, campaign_id: int, user: User) -> dict[str, Any]:
    """A campaign's own page (the breadcrumbs' target): its card, with the rubric's levels
    and its runs; NotFoundError for a user who may not see it."""
    campaign = visible_campaign(session, campaign_id, user)
    card = campaign_card(session, campaign, user)
    items = session.scalar(
        sa.select(sa.func.count())
        .select_from(CampaignItem)
        .where(CampaignItem.campaign_id == campaign.id)
    )
    runs = [
        {"run_id": cr.run.id, "run_name": cr.run.name, "dataset_id": cr.run.dataset_id}
        for cr in sorted(campaign.runs, key=lambda cr: (cr.run.dataset_id, cr.run.name))
    ]
    levels = [
        {"key": str(lv["key"]), "name": lv["name"], "description": lv.get("description", "")}
        for lv in campaign.levels
    ]
    return {
        "campaign": {**card, "items": int(items or 0), "grades_per_item": campaign.grades_per_item},
        "levels": levels,
        "runs": runs,
        "user": {"email": user.email, "role": user.role.value},
    }
