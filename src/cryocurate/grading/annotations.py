"""Grades as portal annotations: one manual annotation per labeller per run per campaign.

So grades are found, listed and downloaded like every other annotation of a run (picks,
segmentations), and precision/recall against a ground truth can later mean the same thing for
grades as for picks. The annotation row is created with the labeller's first grade of that run;
its file is written on request from the current grades (:func:`grades_ndjson`), because grades
change while a campaign runs and a file rewritten on every keypress would be slower and no
truer. Who may read the values is decided by the web layer (a labeller: only their own).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.catalog.models import (
    Annotation,
    AnnotationAuthor,
    AnnotationMethodType,
    Campaign,
    CampaignItem,
    ClassAverage,
    ConsensusGrade,
    Grade,
    GradeAnnotation,
    ItemKind,
    ReviewDecision,
    User,
)
from cryocurate.errors import NotFoundError

OBJECTS = {
    ItemKind.class_average: ("cryocurate:class-average-quality", "2D class average quality"),
    ItemKind.tiltseries: ("cryocurate:tilt-series-quality", "tilt series quality"),
}


def ensure_grade_annotation(
    session: Session, campaign: Campaign, run_id: int, user: User | None
) -> Annotation:
    """The annotation holding ``user``'s grades of one run in ``campaign`` (``user`` None: the
    campaign's consensus), created on first use."""
    query = sa.select(GradeAnnotation).where(
        GradeAnnotation.campaign_id == campaign.id,
        GradeAnnotation.run_id == run_id,
        GradeAnnotation.user_id.is_(None) if user is None else GradeAnnotation.user_id == user.id,
    )
    link = session.scalar(query)
    if link is not None:
        return link.annotation
    object_id, object_name = OBJECTS[campaign.item_kind]
    who = "consensus" if user is None else f"grades by {public_name(user.display_name, user.email)}"
    annotation = Annotation(
        run_id=run_id,
        annotation_method=f"{who}, campaign {campaign.name!r} ({campaign.scale.value} scale)",
        annotation_software="cryocurate",
        method_type=AnnotationMethodType.manual if user else AnnotationMethodType.hybrid,
        # A consensus becomes ground truth once complete (consensus_store decides, on every
        # recompute); a labeller's grades never are.
        ground_truth_status=False,
        object_id=object_id,
        object_name=object_name,
        object_count=0,
        deposition_date=dt.date.today(),
        last_modified_date=dt.date.today(),
    )
    if user is not None:
        annotation.authors.append(
            AnnotationAuthor(
                # Run pages and the public API show authors: a name, never the address.
                name=public_name(user.display_name, user.email),
                affiliation_name=user.lab,
                primary_author_status=True,
            )
        )
    session.add(annotation)
    session.flush()
    session.add(
        GradeAnnotation(
            annotation_id=annotation.id,
            campaign_id=campaign.id,
            run_id=run_id,
            user_id=user.id if user else None,
        )
    )
    session.flush()
    return annotation


def public_name(display_name: str | None, email: str | None) -> str:
    """How a labeller is named where anyone may read it: their display name, else the part
    of their address before the @ (the address itself is not published)."""
    if display_name:
        return display_name
    return (email or "").split("@", 1)[0] or "labeller"


def grade_annotation(session: Session, annotation_id: int) -> GradeAnnotation | None:
    """The grading link of an annotation, or None for an annotation that holds no grades."""
    return session.get(GradeAnnotation, annotation_id)


def grade_annotations_of_run(session: Session, run_id: int) -> dict[int, dict[str, Any]]:
    """For a run's page: annotation id → campaign, labeller and number of current grades."""
    counts = (
        sa.select(
            GradeAnnotation.annotation_id,
            GradeAnnotation.campaign_id,
            Campaign.name,
            GradeAnnotation.user_id,
            User.email,
            User.display_name,
            sa.func.count(Grade.id),
        )
        .join(Campaign, Campaign.id == GradeAnnotation.campaign_id)
        .outerjoin(User, User.id == GradeAnnotation.user_id)
        .outerjoin(
            CampaignItem,
            sa.and_(
                CampaignItem.campaign_id == GradeAnnotation.campaign_id,
                CampaignItem.run_id == GradeAnnotation.run_id,
            ),
        )
        .outerjoin(
            Grade,
            sa.and_(
                Grade.item_id == CampaignItem.id,
                Grade.user_id == GradeAnnotation.user_id,
                Grade.repeat.is_(False),
            ),
        )
        .where(GradeAnnotation.run_id == run_id)
        .group_by(
            GradeAnnotation.annotation_id,
            GradeAnnotation.campaign_id,
            Campaign.name,
            GradeAnnotation.user_id,
            User.email,
            User.display_name,
        )
    )
    listed = {
        aid: {
            "campaign_id": cid,
            "campaign_name": name,
            "user_id": uid,
            "labeller": email,
            "labeller_name": public_name(display, email) if uid is not None else None,
            "grades": n,
        }
        for aid, cid, name, uid, email, display, n in session.execute(counts)
    }
    # A consensus holds no labeller's grades: its count is the items it gives a final grade.
    consensus = [aid for aid, row in listed.items() if row["user_id"] is None]
    if consensus:
        for aid, n in session.execute(
            sa.select(Annotation.id, Annotation.object_count).where(Annotation.id.in_(consensus))
        ):
            listed[aid]["grades"] = n or 0
    return listed


def grades_ndjson(session: Session, annotation_id: int) -> Iterator[str]:
    """The annotation's current grades, one JSON object per line, in class order.

    Shaped like the portal's point ndjson (one ``type`` per line) so the same readers cope:
    ``{"type": "grade", "class_index": 7, "class_average_id": …, "grade": "B", "value": 2,
    "scale": "letters", "labeller": …, "given_at": …}`` (tilt series: ``tiltseries_id``). A
    consensus annotation (no labeller) yields the stored consensus instead
    (:func:`consensus_ndjson`).
    """
    link = session.get(GradeAnnotation, annotation_id)
    if link is None:
        raise NotFoundError(f"annotation {annotation_id} holds no grades")
    if link.user_id is None:
        yield from consensus_ndjson(session, link)
        return
    campaign = link.campaign
    keys = {int(level["value"]): str(level["key"]) for level in campaign.levels}
    query = (
        sa.select(Grade, CampaignItem, ClassAverage.class_index, User.email)
        .join(CampaignItem, CampaignItem.id == Grade.item_id)
        .join(User, User.id == Grade.user_id)
        .outerjoin(ClassAverage, ClassAverage.id == CampaignItem.class_average_id)
        .where(
            CampaignItem.campaign_id == link.campaign_id,
            CampaignItem.run_id == link.run_id,
            Grade.repeat.is_(False),
        )
        .order_by(ClassAverage.class_index, CampaignItem.tiltseries_id)
    )
    query = query.where(Grade.user_id == link.user_id)
    for grade, item, class_index, email in session.execute(query):
        row: dict[str, Any] = {"type": "grade"}
        if item.class_average_id is not None:
            row.update(class_index=class_index, class_average_id=item.class_average_id)
        else:
            row["tiltseries_id"] = item.tiltseries_id
        row.update(
            grade=keys[grade.value],
            value=grade.value,
            scale=campaign.scale.value,
            labeller=email,
            given_at=grade.given_at.isoformat(),
        )
        yield json.dumps(row) + "\n"


def consensus_ndjson(session: Session, link: GradeAnnotation) -> Iterator[str]:
    """A consensus annotation's lines: each item of the run with a final grade (a reviewer's
    decision, else the model's), in class order, as last computed by
    :func:`cryocurate.grading.consensus_store.compute_consensus`::

        {"type": "grade", "class_index": 7, "class_average_id": …, "grade": "B", "value": 2,
         "scale": "letters", "median": 2.0, "mean": 2.33, "spread": 1, "n_grades": 3,
         "model_grade": "B", "model_probability": 0.91, "settled_by": "rev@…" | null}
    """
    campaign = link.campaign
    keys = {int(level["value"]): str(level["key"]) for level in campaign.levels}
    query = (
        sa.select(
            CampaignItem, ClassAverage.class_index, ConsensusGrade, ReviewDecision, User.email
        )
        .outerjoin(ClassAverage, ClassAverage.id == CampaignItem.class_average_id)
        .outerjoin(
            ConsensusGrade,
            sa.and_(
                ConsensusGrade.campaign_id == CampaignItem.campaign_id,
                ConsensusGrade.item_id == CampaignItem.id,
            ),
        )
        .outerjoin(
            ReviewDecision,
            sa.and_(
                ReviewDecision.campaign_id == CampaignItem.campaign_id,
                ReviewDecision.item_id == CampaignItem.id,
            ),
        )
        .outerjoin(User, User.id == ReviewDecision.reviewer_id)
        .where(CampaignItem.campaign_id == link.campaign_id, CampaignItem.run_id == link.run_id)
        .order_by(ClassAverage.class_index, CampaignItem.tiltseries_id)
    )
    for item, class_index, stored, decision, reviewer in session.execute(query):
        model = stored.model_value if stored is not None else None
        final = decision.value if decision is not None else model
        if final is None:
            continue
        row: dict[str, Any] = {"type": "grade"}
        if item.class_average_id is not None:
            row.update(class_index=class_index, class_average_id=item.class_average_id)
        else:
            row["tiltseries_id"] = item.tiltseries_id
        row.update(
            grade=keys[final],
            value=final,
            scale=campaign.scale.value,
            median=stored.median if stored else None,
            mean=stored.mean if stored else None,
            spread=stored.spread if stored else None,
            n_grades=stored.n_grades if stored else 0,
            model_grade=keys[model] if model is not None else None,
            model_probability=stored.model_probability if stored else None,
            settled_by=reviewer if decision is not None else None,
        )
        yield json.dumps(row) + "\n"
