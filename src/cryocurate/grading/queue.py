"""What a labeller sees next: their stored order, read from a position onwards.

The grading page asks for a window of the queue (the item on screen and the next few, whose
images it preloads) and keeps its own place; the server only says where to *resume*: the first
item the labeller has neither graded nor skipped, then the skipped ones, then the done screen.
When a campaign needs fewer grades per item than it has labellers, an item that already has
enough grades from others is *retired* and no longer offered (Zooniverse's rule), without any
reservation or lock: two labellers may occasionally both grade the last needed grade, which
costs one extra grade and loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    ClassAverage,
    Dataset,
    Grade,
    QueueEntry,
    Run,
    TiltSeries,
    User,
)
from cryocurate.grading.items import item_image_url, key_photo, tilt_series_view
from cryocurate.grading.scales import key_of

MAX_WINDOW = 200


@dataclass(frozen=True)
class Resume:
    """Where a labeller continues: ``position`` None means everything is graded."""

    position: int | None
    skipped_only: bool  # every remaining item was skipped once: they come back now


def _others_graded(user: User) -> Any:
    """How many others already gave this item its (first-look) grade: for retirement."""
    other = aliased(Grade)
    return (
        sa.select(sa.func.count(other.id))
        .where(
            other.item_id == QueueEntry.item_id,
            other.user_id != user.id,
            other.repeat.is_(False),
        )
        .scalar_subquery()
    )


def _own_grade() -> Any:
    return sa.and_(
        Grade.item_id == QueueEntry.item_id,
        Grade.user_id == QueueEntry.user_id,
        Grade.repeat == QueueEntry.repeat,
    )


def _mine(campaign: Campaign, user: User) -> Any:
    return sa.and_(QueueEntry.campaign_id == campaign.id, QueueEntry.user_id == user.id)


def _open(campaign: Campaign, user: User) -> Any:
    """Queue entries still to do: no grade of theirs, and not retired."""
    condition = Grade.id.is_(None)
    if campaign.grades_per_item is not None:
        condition = sa.and_(
            condition,
            sa.or_(
                QueueEntry.repeat.is_(True),
                _others_graded(user) < campaign.grades_per_item,
            ),
        )
    return condition


def resume(session: Session, campaign: Campaign, user: User) -> Resume:
    base = (
        sa.select(sa.func.min(QueueEntry.position))
        .outerjoin(Grade, _own_grade())
        .where(_mine(campaign, user), _open(campaign, user))
    )
    fresh = session.scalar(base.where(QueueEntry.skipped_at.is_(None)))
    if fresh is not None:
        return Resume(fresh, False)
    skipped = session.scalar(base)
    return Resume(skipped, skipped is not None)


def window(
    session: Session, campaign: Campaign, user: User, start: int, limit: int = 20
) -> list[dict[str, Any]]:
    """Queue entries from ``start`` on (at most ``limit``), with what the page shows: the
    image, the metadata (hidden by default on the page), and the labeller's current grade of
    that look. Retired items are left out."""
    limit = max(1, min(limit, MAX_WINDOW))
    query = _entries(campaign, user).where(QueueEntry.position >= start)
    return _rows(session, campaign, query.order_by(QueueEntry.position).limit(limit))


def run_items(
    session: Session, campaign: Campaign, user: User, run_id: int
) -> list[dict[str, Any]]:
    """A labeller's first looks at one run's items, in class order: the grid mode's page,
    where a labeller sees a whole job at once as in cryoSPARC's Select 2D."""
    query = _entries(campaign, user).where(
        CampaignItem.run_id == run_id, QueueEntry.repeat.is_(False)
    )
    return _rows(
        session, campaign, query.order_by(ClassAverage.class_index, CampaignItem.tiltseries_id)
    )


def _entries(campaign: Campaign, user: User) -> Any:
    photo = key_photo()
    query = (
        sa.select(
            QueueEntry.position,
            QueueEntry.item_id,
            QueueEntry.repeat,
            QueueEntry.skipped_at,
            CampaignItem.run_id,
            Run.name,
            Run.dataset_id,
            Dataset.lab,
            ClassAverage,
            TiltSeries,
            Grade.value,
            photo,
        )
        .join(CampaignItem, CampaignItem.id == QueueEntry.item_id)
        .join(Run, Run.id == CampaignItem.run_id)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .outerjoin(ClassAverage, ClassAverage.id == CampaignItem.class_average_id)
        .outerjoin(TiltSeries, TiltSeries.id == CampaignItem.tiltseries_id)
        .outerjoin(Grade, _own_grade())
        .where(_mine(campaign, user))
    )
    if campaign.grades_per_item is not None:
        query = query.where(
            sa.or_(
                Grade.id.is_not(None),
                QueueEntry.repeat.is_(True),
                _others_graded(user) < campaign.grades_per_item,
            )
        )
    return query


def _rows(session: Session, campaign: Campaign, query: Any) -> list[dict[str, Any]]:
    rows = []
    for (
        position,
        item_id,
        repeat,
        skipped,
        run_id,
        run_name,
        dataset_id,
        lab,
        ca,
        ts,
        value,
        photo,
    ) in session.execute(query):
        row: dict[str, Any] = {
            "position": position,
            "item_id": item_id,
            "repeat": repeat,
            "skipped": skipped is not None,
            "grade": key_of(campaign.levels, value) if value is not None else None,
            "run_id": run_id,
            "run_name": run_name,
            "dataset_id": dataset_id,
            "lab": lab,
        }
        if ca is not None:
            row["image_url"] = item_image_url(dataset_id, run_name, ca, None)
            row["label"] = f"{run_name} · class {ca.class_index}"
            row["metadata"] = {
                "class_index": ca.class_index,
                "resolution_a": ca.resolution_a,
                "particle_count": ca.particle_count,
                "class_fraction": ca.class_fraction,
                "pixel_size_a": ca.pixel_size_a,
            }
        elif ts is not None:
            has_file = bool(ts.mrc_file)
            row["image_url"] = item_image_url(
                dataset_id, run_name, None, photo, ts.id if has_file else None
            )
            row["tilts"] = tilt_series_view(ts.id, ts.size_z) if has_file else None
            row["label"] = f"{run_name} · tilt series {ts.id}"
            row["metadata"] = {
                "tilt_min": ts.tilt_min,
                "tilt_max": ts.tilt_max,
                "tilt_step": ts.tilt_step,
                "total_flux": ts.total_flux,
                "microscope_model": ts.microscope_model,
                "camera_model": ts.camera_model,
            }
        rows.append(row)
    return rows


def positions(session: Session, campaign: Campaign, user: User) -> int:
    """The length of a labeller's queue (first looks and repeats)."""
    return int(
        session.scalar(
            sa.select(sa.func.count()).select_from(QueueEntry).where(_mine(campaign, user))
        )
        or 0
    )
