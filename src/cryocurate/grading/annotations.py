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
    Grade,
    GradeAnnotation,
    ItemKind,
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
    who = "consensus" if user is None else f"grades by {user.display_name or user.email}"
    annotation = Annotation(
        run_id=run_id,
        annotation_method=f"{who}, campaign {campaign.name!r} ({campaign.scale.value} scale)",
        annotation_software="cryocurate",
        method_type=AnnotationMethodType.manual if user else AnnotationMethodType.hybrid,
        ground_truth_status=user is None,
        object_id=object_id,
        object_name=object_name,
        object_count=0,
        deposition_date=dt.date.today(),
        last_modified_date=dt.date.today(),
    )
    if user is not None:
        annotation.authors.append(
            AnnotationAuthor(
                name=user.display_name or user.email,
                email=user.email,
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
        )
    )
    return {
        aid: {
            "campaign_id": cid,
            "campaign_name": name,
            "user_id": uid,
            "labeller": email,
            "grades": n,
        }
        for aid, cid, name, uid, email, n in session.execute(counts)
    }


def grades_ndjson(session: Session, annotation_id: int) -> Iterator[str]:
    """The annotation's current grades, one JSON object per line, in class order.

    Shaped like the portal's point ndjson (one ``type`` per line) so the same readers cope:
    ``{"type": "grade", "class_index": 7, "class_average_id": …, "grade": "B", "value": 2,
    "scale": "letters", "labeller": …, "given_at": …}`` (tilt series: ``tiltseries_id``).
    """
    link = session.get(GradeAnnotation, annotation_id)
    if link is None:
        raise NotFoundError(f"annotation {annotation_id} holds no grades")
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
    if link.user_id is not None:
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
