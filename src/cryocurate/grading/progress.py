"""How far a campaign is: overall, per run, per lab, per labeller, and for one labeller.

The campaign's target is ``items × grades per item`` (every labeller, by default). An item
counts toward it with at most that many first-look grades, so a few extra grades of a popular
item do not hide the items nobody has graded. Labs are the datasets' ``lab`` (the lab whose
data it is); unnamed labs are grouped as "—".
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    CampaignLabeller,
    Dataset,
    Grade,
    QueueEntry,
    Run,
    User,
)

NO_LAB = "—"


def target_per_item(session: Session, campaign: Campaign) -> int:
    if campaign.grades_per_item is not None:
        return campaign.grades_per_item
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(CampaignLabeller)
            .where(CampaignLabeller.campaign_id == campaign.id)
        )
        or 0
    )


def campaign_summary(session: Session, campaign: Campaign) -> dict[str, Any]:
    """One line of a campaign list: ``{"id", "name", "scale", "items", "labellers", "done",
    "target", "closed"}``."""
    progress = campaign_progress(session, campaign)
    return {
        "id": campaign.id,
        "name": campaign.name,
        "scale": campaign.scale.value,
        "items": progress["items"],
        "labellers": len(progress["per_labeller"]),
        "done": progress["done"],
        "target": progress["target"],
        "closed": campaign.closed,
    }


def campaign_progress(session: Session, campaign: Campaign) -> dict[str, Any]:
    """``{"done", "target", "per_run": [...], "per_lab": [...], "per_labeller": [...]}``."""
    per_item = target_per_item(session, campaign)
    counts = dict(
        session.execute(
            sa.select(Grade.item_id, sa.func.count(Grade.id))
            .where(Grade.campaign_id == campaign.id, Grade.repeat.is_(False))
            .group_by(Grade.item_id)
        ).all()
    )
    runs: dict[int, dict[str, Any]] = {}
    for item_id, run_id, run_name, dataset_id, lab in session.execute(
        sa.select(CampaignItem.id, Run.id, Run.name, Run.dataset_id, Dataset.lab)
        .join(Run, Run.id == CampaignItem.run_id)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(CampaignItem.campaign_id == campaign.id)
    ):
        run = runs.setdefault(
            run_id,
            {
                "run_id": run_id,
                "run_name": run_name,
                "dataset_id": dataset_id,
                "lab": lab or NO_LAB,
                "items": 0,
                "done": 0,
                "target": 0,
            },
        )
        run["items"] += 1
        run["target"] += per_item
        run["done"] += min(counts.get(item_id, 0), per_item)
    labs: dict[str, dict[str, Any]] = defaultdict(lambda: {"items": 0, "done": 0, "target": 0})
    for run in runs.values():
        lab = labs[run["lab"]]
        for key in ("items", "done", "target"):
            lab[key] += run[key]
    return {
        "done": sum(r["done"] for r in runs.values()),
        "target": sum(r["target"] for r in runs.values()),
        "items": sum(r["items"] for r in runs.values()),
        "grades_per_item": per_item,
        "per_run": sorted(runs.values(), key=lambda r: (r["lab"], r["dataset_id"], r["run_name"])),
        "per_lab": [{"lab": name, **values} for name, values in sorted(labs.items())],
        "per_labeller": labeller_progress(session, campaign),
    }


def labeller_progress(session: Session, campaign: Campaign) -> list[dict[str, Any]]:
    """Per labeller: first looks graded, repeats graded, skipped, and the queue's sizes."""
    graded = {
        (user_id, repeat): n
        for user_id, repeat, n in session.execute(
            sa.select(Grade.user_id, Grade.repeat, sa.func.count(Grade.id))
            .where(Grade.campaign_id == campaign.id)
            .group_by(Grade.user_id, Grade.repeat)
        )
    }
    sizes = {
        (user_id, repeat): (n, skipped)
        for user_id, repeat, n, skipped in session.execute(
            sa.select(
                QueueEntry.user_id,
                QueueEntry.repeat,
                sa.func.count(),
                sa.func.count(QueueEntry.skipped_at),
            )
            .where(QueueEntry.campaign_id == campaign.id)
            .group_by(QueueEntry.user_id, QueueEntry.repeat)
        )
    }
    rows = []
    for user in session.scalars(
        sa.select(User)
        .join(CampaignLabeller, CampaignLabeller.user_id == User.id)
        .where(CampaignLabeller.campaign_id == campaign.id)
        .order_by(User.email)
    ):
        items, skipped = sizes.get((user.id, False), (0, 0))
        repeats, _ = sizes.get((user.id, True), (0, 0))
        rows.append(
            {
                "user_id": user.id,
                "labeller": user.email,
                "name": user.display_name or user.email,
                "lab": user.lab or NO_LAB,
                "graded": graded.get((user.id, False), 0),
                "items": items,
                "repeats_graded": graded.get((user.id, True), 0),
                "repeats": repeats,
                "skipped": skipped,
            }
        )
    return rows


def my_progress(session: Session, campaign: Campaign, user: User) -> dict[str, Any]:
    """One labeller's counts, for the grading screen ("3,214 of 10,000"), overall and per
    run (first looks only; repeats are unannounced)."""
    per_run: dict[int, dict[str, Any]] = {}
    for run_id, run_name, total, done in session.execute(
        sa.select(
            CampaignItem.run_id,
            Run.name,
            sa.func.count(QueueEntry.position),
            sa.func.count(Grade.id),
        )
        .join(CampaignItem, CampaignItem.id == QueueEntry.item_id)
        .join(Run, Run.id == CampaignItem.run_id)
        .outerjoin(
            Grade,
            sa.and_(
                Grade.item_id == QueueEntry.item_id,
                Grade.user_id == QueueEntry.user_id,
                Grade.repeat == QueueEntry.repeat,
            ),
        )
        .where(
            QueueEntry.campaign_id == campaign.id,
            QueueEntry.user_id == user.id,
            QueueEntry.repeat.is_(False),
        )
        .group_by(CampaignItem.run_id, Run.name)
        .order_by(Run.name)
    ):
        per_run[run_id] = {"run_id": run_id, "run_name": run_name, "done": done, "total": total}
    return {
        "done": sum(r["done"] for r in per_run.values()),
        "total": sum(r["total"] for r in per_run.values()),
        "per_run": list(per_run.values()),
    }
