"""A campaign's grades as the arrays agreement and consensus work on.

``values[l, i]`` is labeller ``l``'s current first-look grade of item ``i`` (NaN: not
graded), for the campaign, one run or one lab; ``repeats`` pairs each labeller's first and
second look at the items they saw twice. Kept apart from the statistics
(:mod:`.agreement`, :mod:`.consensus`), which know nothing of the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    CampaignLabeller,
    Dataset,
    Grade,
    Run,
    User,
)


@dataclass
class Ratings:
    levels: list[int]
    labellers: list[str]  # emails, in row order
    item_ids: list[int]  # in column order
    run_ids: list[int]  # per item
    labs: list[str | None]  # per item: the dataset's lab
    values: np.ndarray  # (labellers, items) float64, NaN = not graded
    repeats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def subset(self, mask: np.ndarray) -> Ratings:
        """The same ratings restricted to the items where ``mask`` is true (a run, a lab).
        Repeats stay per labeller: consistency is a property of the person."""
        index = np.flatnonzero(mask)
        return Ratings(
            levels=self.levels,
            labellers=self.labellers,
            item_ids=[self.item_ids[i] for i in index],
            run_ids=[self.run_ids[i] for i in index],
            labs=[self.labs[i] for i in index],
            values=self.values[:, index],
            repeats=self.repeats,
        )


def load_ratings(session: Session, campaign: Campaign) -> Ratings:
    """Every labeller's current grades of every item of the campaign."""
    levels = sorted(int(level["value"]) for level in campaign.levels)
    labellers = list(
        session.scalars(
            sa.select(User.email)
            .join(CampaignLabeller, CampaignLabeller.user_id == User.id)
            .where(CampaignLabeller.campaign_id == campaign.id)
            .order_by(User.email)
        )
    )
    items = session.execute(
        sa.select(CampaignItem.id, CampaignItem.run_id, Dataset.lab)
        .join(Run, Run.id == CampaignItem.run_id)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .where(CampaignItem.campaign_id == campaign.id)
        .order_by(CampaignItem.id)
    ).all()
    row = {email: n for n, email in enumerate(labellers)}
    column = {item_id: n for n, (item_id, _, _) in enumerate(items)}
    values = np.full((len(labellers), len(items)), np.nan)
    firsts: dict[tuple[str, int], int] = {}
    seconds: dict[tuple[str, int], int] = {}
    for email, item_id, repeat, value in session.execute(
        sa.select(User.email, Grade.item_id, Grade.repeat, Grade.value)
        .join(User, User.id == Grade.user_id)
        .where(Grade.campaign_id == campaign.id)
    ):
        if email not in row:
            continue  # a labeller removed from the campaign: their grades stay, unused here
        if repeat:
            seconds[(email, item_id)] = value
        else:
            firsts[(email, item_id)] = value
            values[row[email], column[item_id]] = value
    repeats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for email in labellers:
        pairs = [
            (firsts[(email, item)], second)
            for (who, item), second in sorted(seconds.items())
            if who == email and (email, item) in firsts
        ]
        if pairs:
            a, b = zip(*pairs, strict=True)
            repeats[email] = (np.array(a, dtype=float), np.array(b, dtype=float))
    return Ratings(
        levels=levels,
        labellers=labellers,
        item_ids=[i for i, _, _ in items],
        run_ids=[r for _, r, _ in items],
        labs=[lab for _, _, lab in items],
        values=values,
        repeats=repeats,
    )
