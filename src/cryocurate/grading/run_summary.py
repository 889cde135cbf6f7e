"""A run's grading at a glance, for the dataset and run pages of 2D runs: per campaign, how
many of the run's class averages have a final grade, how the final grades are distributed (the
bars of a small chart), the labellers' α on this run, and the campaign pages the viewer may
open.

Why here and not in the catalog: α is the agreement layer's (:mod:`.campaign_agreement`, the
same figure the agreement page shows for the run), and which links a viewer gets is the
access rule's (:mod:`.access`). The grades themselves come from the catalog's one query of
grades per class average (:func:`cryocurate.catalog.run_pages.class_grades`), limited to the
grade annotations the viewer sees (:func:`visible_grade_links`), so the summary and the
gallery can never disagree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.catalog.models import Campaign, CampaignItem, User
from cryocurate.catalog.run_pages import KEPT_VALUES, class_grades
from cryocurate.errors import NotFoundError
from cryocurate.grading import access
from cryocurate.grading.access import sees_all, visible_campaign
from cryocurate.grading.annotations import grade_annotations_of_run
from cryocurate.grading.campaign_agreement import OVERVIEW_RESAMPLES, campaign_agreement
from cryocurate.grading.ratings import Ratings, load_ratings

__all__ = ["BAR_HEIGHT", "grading_summaries", "visible_grade_links"]

#: Height in px of the tallest bar of a distribution chart.
BAR_HEIGHT = 40


def visible_grade_links(
    session: Session, run_id: int, user: User | None
) -> dict[int, dict[str, Any]]:
    """The run's grade annotations ``user`` sees (annotation id → campaign, labeller, count):
    what the run page lists and what its gallery and grading summary draw on. One place, so
    a rule about who sees which campaign's grades applies to all three (the rule itself is
    :func:`cryocurate.grading.access.visible_grade_links`)."""
    shown, _hidden = access.visible_grade_links(
        session, grade_annotations_of_run(session, run_id), user
    )
    return shown


def _links(session: Session, campaign_id: int, user: User | None) -> list[dict[str, str]]:
    """The campaign pages ``user`` may open: reviewers and admins the agreement and review
    pages, a labeller of the campaign its overview; a visitor none."""
    if user is None:
        return []
    base = f"/campaigns/{campaign_id}"
    if sees_all(user):
        return [
            {"label": "agreement", "url": f"{base}/agreement"},
            {"label": "review", "url": f"{base}/review"},
            {"label": "overview", "url": f"{base}/overview"},
        ]
    try:
        visible_campaign(session, campaign_id, user)
    except NotFoundError:
        return []
    return [{"label": "overview", "url": f"{base}/overview"}]


def _alpha(
    session: Session, campaign: Campaign, run_id: int, ratings: Ratings
) -> dict[str, Any] | None:
    try:
        report = campaign_agreement(
            session, campaign, run_id=run_id, n_resamples=OVERVIEW_RESAMPLES, ratings=ratings
        )
    except NotFoundError:
        return None
    alpha = report.report.to_dict()["alpha"]
    return {"value": alpha["estimate"], "low": alpha["ci_low"], "high": alpha["ci_high"]}


def _bars(campaign: Campaign, counts: Counter[int]) -> list[dict[str, Any]]:
    """One bar per level, best first (the scale's own order), with its height in px."""
    top = max(counts.values(), default=0)
    kept = KEPT_VALUES[campaign.scale]
    return [
        {
            "key": str(level["key"]),
            "name": str(level["name"]),
            "count": counts.get(int(level["value"]), 0),
            "kept": int(level["value"]) in kept,
            "height": round(BAR_HEIGHT * counts.get(int(level["value"]), 0) / top) if top else 0,
        }
        for level in campaign.levels
    ]


def grading_summaries(
    session: Session,
    run_ids: Collection[int],
    user: User | None,
    links: Mapping[int, Mapping[int, dict[str, Any]]] | None = None,
    *,
    with_alpha: bool = True,
) -> dict[int, list[dict[str, Any]]]:
    """Run id → one summary per campaign whose consensus of the run ``user`` sees:
    ``{"campaign_id", "campaign_name", "scale", "annotation_id", "ground_truth", "n_items",
    "n_final", "n_kept", "n_dropped", "bars": [{"key", "name", "count", "kept", "height"}],
    "alpha": {"value", "low", "high"} | None, "links": [{"label", "url"}]}``.

    ``links`` (run id → :func:`visible_grade_links`) may be passed when the caller has them;
    ``with_alpha`` False skips the α (a bootstrap per run and campaign)."""
    run_ids = list(run_ids)
    if not run_ids:
        return {}
    links = links or {r: visible_grade_links(session, r, user) for r in run_ids}
    consensus = {
        aid
        for per_run in links.values()
        for aid, link in per_run.items()
        if link.get("user_id") is None
    }
    rows = class_grades(session, run_ids, consensus)
    by_scope: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in rows:
        by_scope.setdefault((row["run_id"], row["campaign_id"]), []).append(row)
    # The run's consensus annotations with no final grade yet still get a line.
    for run_id, per_run in links.items():
        for link in per_run.values():
            if link.get("user_id") is None:
                by_scope.setdefault((run_id, int(link["campaign_id"])), [])
    campaign_ids = {cid for _, cid in by_scope}
    campaigns = {
        c.id: c for c in session.scalars(sa.select(Campaign).where(Campaign.id.in_(campaign_ids)))
    }
    n_items = {
        (run_id, cid): int(n)
        for run_id, cid, n in session.execute(
            sa.select(CampaignItem.run_id, CampaignItem.campaign_id, sa.func.count())
            .where(
                CampaignItem.run_id.in_(run_ids),
                CampaignItem.campaign_id.in_(campaign_ids),
                CampaignItem.class_average_id.is_not(None),
            )
            .group_by(CampaignItem.run_id, CampaignItem.campaign_id)
        )
    }
    annotation_of = {
        (run_id, int(link["campaign_id"])): aid
        for run_id, per_run in links.items()
        for aid, link in per_run.items()
        if link.get("user_id") is None
    }
    ratings: dict[int, Ratings] = {}
    out: dict[int, list[dict[str, Any]]] = {r: [] for r in run_ids}
    for (run_id, cid), grades in sorted(by_scope.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        campaign = campaigns[cid]
        counts = Counter(g["value"] for g in grades if g["kind"] == "consensus")
        bars = _bars(campaign, counts)
        alpha = None
        if with_alpha:
            if cid not in ratings:
                ratings[cid] = load_ratings(session, campaign)
            alpha = _alpha(session, campaign, run_id, ratings[cid])
        out[run_id].append(
            {
                "campaign_id": cid,
                "campaign_name": campaign.name,
                "scale": campaign.scale.value,
                "annotation_id": annotation_of.get((run_id, cid)),
                "ground_truth": any(g["ground_truth"] for g in grades),
                "n_items": n_items.get((run_id, cid), 0),
                "n_final": sum(counts.values()),
                "n_kept": sum(b["count"] for b in bars if b["kept"]),
                "n_dropped": sum(b["count"] for b in bars if not b["kept"]),
                "bars": bars,
                "alpha": alpha,
                "links": _links(session, cid, user),
            }
        )
    return out
