"""The campaign's consensus, stored: one final grade per item, and the reviews that settle the
items the labellers disagree on.

Why stored rather than computed on every request: the consensus is the campaign's product (a
ground-truth annotation per run that can be downloaded and trained on), a reviewer works
through a fixed list of flagged items, and the model takes a moment on a large campaign.

The rules:

* :func:`compute_consensus` recomputes every item from the current grades
  (:func:`~cryocurate.grading.consensus.consensus_report`: median, mean, spread and the ordinal
  Dawid–Skene grade that corrects for each labeller's bias) and replaces the stored rows.
* An item whose grades span two levels or more is *flagged* for a reviewer.
* A reviewer's decision (:func:`settle`) lives in its own table and so survives every
  recomputation; the **final grade** is the reviewer's decision if there is one, else the
  model's grade.
* Each run's final grades are a portal annotation (method type hybrid), made by
  :func:`~cryocurate.grading.annotations.ensure_grade_annotation` with no user; its
  ``object_count`` is the number of items of the run that have a final grade. It is marked
  **ground truth** only when every item of the run has reached the campaign's grades per item
  (:func:`~cryocurate.grading.progress.target_per_item`): a consensus of a handful of grades
  is not a truth to score models against. The mark is set again on every recomputation and
  settlement, so an annotation stored under the older rule (ground truth from the first grade)
  is corrected the next time its campaign's consensus is recomputed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    ClassAverage,
    ConsensusGrade,
    Dataset,
    Grade,
    ReviewDecision,
    Run,
    TiltSeries,
    User,
    utcnow,
)
from cryocurate.errors import ForbiddenError, NotFoundError
from cryocurate.grading.access import sees_all
from cryocurate.grading.annotations import ensure_grade_annotation
from cryocurate.grading.consensus import consensus_report
from cryocurate.grading.items import item_image_url, key_photo
from cryocurate.grading.progress import target_per_item
from cryocurate.grading.ratings import load_ratings
from cryocurate.grading.scales import grade_label, key_of, value_of

__all__ = [
    "ConsensusSummary",
    "compute_consensus",
    "consensus_items",
    "flagged_items",
    "settle",
]


@dataclass(frozen=True)
class ConsensusSummary:
    """What a recomputation found: counts, and the model's fit."""

    campaign_id: int
    n_items: int
    n_graded: int  # items with at least one grade
    n_final: int  # items with a final grade (model or reviewer)
    n_flagged: int
    n_settled: int  # reviewer decisions, flagged or not
    n_open: int  # flagged and not yet settled
    runs: list[dict[str, Any]]  # [{"run_id", "annotation_id", "object_count", "ground_truth"}]
    model: dict[str, Any]
    computed_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(campaign: Campaign, value: int | None) -> str | None:
    return None if value is None else key_of(campaign.levels, value)


def _final_counts(session: Session, campaign: Campaign) -> dict[int, int]:
    """Run id → number of its items that have a final grade."""
    decided = sa.select(ReviewDecision.item_id).where(ReviewDecision.campaign_id == campaign.id)
    query = (
        sa.select(CampaignItem.run_id, sa.func.count(CampaignItem.id))
        .outerjoin(
            ConsensusGrade,
            sa.and_(
                ConsensusGrade.campaign_id == campaign.id, ConsensusGrade.item_id == CampaignItem.id
            ),
        )
        .where(
            CampaignItem.campaign_id == campaign.id,
            sa.or_(ConsensusGrade.model_value.is_not(None), CampaignItem.id.in_(decided)),
        )
        .group_by(CampaignItem.run_id)
    )
    return {run_id: int(n) for run_id, n in session.execute(query)}


def complete_runs(session: Session, campaign: Campaign) -> set[int]:
    """The campaign's runs whose every item has at least the campaign's grades per item
    (first looks; repeats do not count): the runs whose consensus is ground truth."""
    target = target_per_item(session, campaign)
    if target <= 0:
        return set()
    per_item = (
        sa.select(CampaignItem.run_id, sa.func.count(Grade.id).label("n"))
        .outerjoin(Grade, sa.and_(Grade.item_id == CampaignItem.id, Grade.repeat.is_(False)))
        .where(CampaignItem.campaign_id == campaign.id)
        .group_by(CampaignItem.run_id, CampaignItem.id)
        .subquery()
    )
    return set(
        session.scalars(
            sa.select(per_item.c.run_id)
            .group_by(per_item.c.run_id)
            .having(sa.func.min(per_item.c.n) >= target)
        )
    )


def _mark_annotations(
    session: Session, campaign: Campaign, run_ids: set[int] | None = None
) -> list[dict[str, Any]]:
    """Create or update the consensus annotation of every run that has final grades (or of
    ``run_ids`` only); an annotation once made stays, its count following the grades and its
    ground-truth mark following :func:`complete_runs`."""
    counts = _final_counts(session, campaign)
    complete = complete_runs(session, campaign)
    wanted = set(counts) if run_ids is None else run_ids
    runs = []
    for run_id in sorted(wanted):
        n = counts.get(run_id, 0)
        annotation = ensure_grade_annotation(session, campaign, run_id, None)
        annotation.object_count = n
        annotation.ground_truth_status = run_id in complete
        annotation.last_modified_date = dt.date.today()
        runs.append(
            {
                "run_id": run_id,
                "annotation_id": annotation.id,
                "object_count": n,
                "ground_truth": annotation.ground_truth_status,
            }
        )
    session.flush()
    return runs


def compute_consensus(session: Session, campaign: Campaign) -> ConsensusSummary:
    """Recompute and store every item's consensus from the current grades (see the module's
    rules), in the caller's transaction. Reviewers' decisions are kept."""
    ratings = load_ratings(session, campaign)
    report = consensus_report(ratings.values, ratings.levels, ratings.labellers, ratings.item_ids)
    now = utcnow()
    session.execute(sa.delete(ConsensusGrade).where(ConsensusGrade.campaign_id == campaign.id))
    session.add_all(
        ConsensusGrade(
            campaign_id=campaign.id,
            item_id=int(item.item),
            n_grades=item.n_grades,
            median=item.median,
            mean=item.mean,
            spread=item.spread,
            model_value=None if item.model_grade is None else int(item.model_grade),
            model_probability=item.model_probability,
            flagged=item.disagreement,
            computed_at=now,
        )
        for item in report.items
    )
    session.flush()
    decided = set(
        session.scalars(
            sa.select(ReviewDecision.item_id).where(ReviewDecision.campaign_id == campaign.id)
        )
    )
    flagged = {int(item.item) for item in report.items if item.disagreement}
    runs = _mark_annotations(session, campaign)
    model = asdict(report.model)
    model["per_labeller"] = [
        {"name": m.name, "n_graded": m.n_graded, "bias": m.bias, "accuracy": m.accuracy}
        for m in report.per_labeller
    ]
    return ConsensusSummary(
        campaign_id=campaign.id,
        n_items=len(report.items),
        n_graded=sum(1 for item in report.items if item.n_grades > 0),
        n_final=sum(r["object_count"] for r in runs),
        n_flagged=len(flagged),
        n_settled=len(decided),
        n_open=len(flagged - decided),
        runs=runs,
        model=model,
        computed_at=now.isoformat(),
    )


def consensus_items(
    session: Session,
    campaign: Campaign,
    *,
    flagged_only: bool = False,
    open_only: bool = False,
    item_id: int | None = None,
) -> list[dict[str, Any]]:
    """Stored consensus rows with every labeller's grade and the review, in item order.

    ``flagged_only``: items flagged for review; ``open_only``: of those, the ones not yet
    settled. Each row: ``item_id``, ``run_id``, ``run_name``, ``label``, ``image_url``,
    ``class_index`` or ``tiltseries_id``, ``n_grades``, ``median``, ``median_grade`` (the
    median as the scale shows grades: ``"B"``, ``"B–C"``; ``"3.5"``), ``mean``, ``spread``,
    ``model_grade`` (key), ``model_probability``, ``flagged``, ``grades`` (``[{"labeller",
    "grade"}]``, by email), ``decision`` (``{"grade", "reviewer", "decided_at", "note"}`` or
    None) and ``final_grade`` (key or None). The grades reveal every labeller's: for
    reviewers and admins only (checked by the callers).
    """
    photo = key_photo()
    query = (
        sa.select(
            ConsensusGrade,
            CampaignItem,
            Run.name,
            Run.dataset_id,
            ClassAverage,
            TiltSeries.id,
            photo,
            ReviewDecision,
            User.email,
        )
        .join(CampaignItem, CampaignItem.id == ConsensusGrade.item_id)
        .join(Run, Run.id == CampaignItem.run_id)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .outerjoin(ClassAverage, ClassAverage.id == CampaignItem.class_average_id)
        .outerjoin(TiltSeries, TiltSeries.id == CampaignItem.tiltseries_id)
        .outerjoin(
            ReviewDecision,
            sa.and_(
                ReviewDecision.campaign_id == campaign.id,
                ReviewDecision.item_id == ConsensusGrade.item_id,
            ),
        )
        .outerjoin(User, User.id == ReviewDecision.reviewer_id)
        .where(ConsensusGrade.campaign_id == campaign.id)
        .order_by(ConsensusGrade.item_id)
    )
    if flagged_only or open_only:
        query = query.where(ConsensusGrade.flagged.is_(True))
    if open_only:
        query = query.where(ReviewDecision.item_id.is_(None))
    if item_id is not None:
        query = query.where(ConsensusGrade.item_id == item_id)
    rows = session.execute(query).all()
    grades: dict[int, list[dict[str, Any]]] = {}
    if rows:
        wanted = [row[0].item_id for row in rows]
        for it, email, value in session.execute(
            sa.select(Grade.item_id, User.email, Grade.value)
            .join(User, User.id == Grade.user_id)
            .where(
                Grade.campaign_id == campaign.id,
                Grade.repeat.is_(False),
                Grade.item_id.in_(wanted),
            )
            .order_by(User.email)
        ):
            grades.setdefault(it, []).append(
                {"labeller": email, "grade": _key(campaign, value), "value": value}
            )
    out = []
    for cg, item, run_name, dataset_id, ca, ts_id, photo_url, decision, reviewer in rows:
        row: dict[str, Any] = {
            "item_id": cg.item_id,
            "run_id": item.run_id,
            "run_name": run_name,
            "image_url": item_image_url(dataset_id, run_name, ca, photo_url, ts_id),
        }
        if ca is not None:
            row["class_index"] = ca.class_index
            row["label"] = f"{run_name} · class {ca.class_index}"
        else:
            row["tiltseries_id"] = ts_id
            row["label"] = f"{run_name} · tilt series {ts_id}"
        final = decision.value if decision is not None else cg.model_value
        row.update(
            n_grades=cg.n_grades,
            median=cg.median,
            median_grade=grade_label(campaign.levels, cg.median),
            mean=cg.mean,
            spread=cg.spread,
            model_grade=_key(campaign, cg.model_value),
            model_probability=cg.model_probability,
            flagged=cg.flagged,
            grades=grades.get(cg.item_id, []),
            decision=(
                None
                if decision is None
                else {
                    "grade": _key(campaign, decision.value),
                    "reviewer": reviewer,
                    "decided_at": decision.decided_at.isoformat(),
                    "note": decision.note,
                }
            ),
            final_grade=_key(campaign, final),
        )
        out.append(row)
    return out


def flagged_items(
    session: Session, campaign: Campaign, *, open_only: bool = False
) -> list[dict[str, Any]]:
    """The items flagged for review as last computed (``open_only``: not yet settled); rows as
    in :func:`consensus_items`."""
    return consensus_items(session, campaign, flagged_only=True, open_only=open_only)


def settle(
    session: Session,
    campaign: Campaign,
    item_id: int,
    reviewer: User,
    grade: str | int,
    note: str | None = None,
) -> dict[str, Any]:
    """Record a reviewer's final grade for an item (flagged or not), replacing an earlier
    decision; reviewers and admins only. Updates the run's consensus annotation and returns
    the item's row (as in :func:`consensus_items`) when a consensus is stored for it, else
    ``{"item_id", "final_grade"}``."""
    if not sees_all(reviewer):
        raise ForbiddenError("only reviewers and admins settle grades")
    item = session.get(CampaignItem, item_id)
    if item is None or item.campaign_id != campaign.id:
        raise NotFoundError(f"campaign {campaign.id} has no item {item_id}")
    value = value_of(campaign.levels, grade)
    text = note.strip() if note and note.strip() else None
    decision = session.get(ReviewDecision, (campaign.id, item_id))
    if decision is None:
        decision = ReviewDecision(campaign_id=campaign.id, item_id=item_id, value=value)
        session.add(decision)
    decision.value = value
    decision.reviewer_id = reviewer.id
    decision.decided_at = utcnow()
    decision.note = text
    session.flush()
    _mark_annotations(session, campaign, {item.run_id})
    rows = consensus_items(session, campaign, item_id=item_id)
    if rows:
        return rows[0]
    return {"item_id": item_id, "final_grade": key_of(campaign.levels, value)}


def settled_grades(session: Session, campaign: Campaign) -> dict[int, int]:
    """Item id → the value a reviewer settled on: what exports train on over the model."""
    return dict(
        session.execute(
            sa.select(ReviewDecision.item_id, ReviewDecision.value).where(
                ReviewDecision.campaign_id == campaign.id
            )
        ).all()
    )
