"""Campaigns: what is graded, on which scale, by whom, and in which order for each labeller.

Each labeller's order is stored (:class:`~cryocurate.catalog.models.QueueEntry`) rather than
computed per request: it is shuffled once with a seed of their own, so every labeller meets the
items in a different order (no shared order effects) across all labs' data, resuming is a
query over committed grades, nothing is reserved or locked, and adding runs later appends to
everyone's queue without reshuffling what they have seen. A share of each labeller's items
comes back later, unannounced (``repeat``), to measure their consistency.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from cryocurate import accounts
from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    CampaignLabeller,
    CampaignRun,
    ClassAverage,
    GradeScale,
    ItemKind,
    QueueEntry,
    RubricExample,
    Run,
    RunKind,
    TiltSeries,
    User,
)
from cryocurate.errors import ConflictError, InputError, NotFoundError
from cryocurate.grading.defaults import DEFAULT_REPEAT_SHARE, MAX_REPEAT_SHARE
from cryocurate.grading.scales import default_levels, value_of, with_descriptions

# A repeat comes back at least this many items after the first look (fewer in tiny
# campaigns), so the labeller is not simply remembering the image they just graded.
REPEAT_GAP = 20


@dataclass
class CampaignSpec:
    """What an admin chooses when creating a campaign (the CLI and the admin page fill it)."""

    name: str
    run_ids: Sequence[int]
    scale: GradeScale = GradeScale.letters
    labellers: Sequence[str] = ()  # emails
    grades_per_item: int | None = None  # None: every labeller grades every item
    repeat_share: float = DEFAULT_REPEAT_SHARE
    descriptions: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    seed: int | None = None


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"no campaign with id {campaign_id}")
    return campaign


def list_campaigns(session: Session, user: User | None = None) -> list[Campaign]:
    """All campaigns, or those ``user`` grades in (for a labeller's home page)."""
    query = sa.select(Campaign).order_by(Campaign.id)
    if user is not None:
        query = query.join(CampaignLabeller).where(CampaignLabeller.user_id == user.id)
    return list(session.scalars(query))


def is_labeller(session: Session, campaign: Campaign, user: User) -> bool:
    return session.get(CampaignLabeller, (campaign.id, user.id)) is not None


def labeller_users(session: Session, campaign: Campaign) -> list[User]:
    query = (
        sa.select(User)
        .join(CampaignLabeller, CampaignLabeller.user_id == User.id)
        .where(CampaignLabeller.campaign_id == campaign.id)
        .order_by(User.email)
    )
    return list(session.scalars(query))


def create_campaign(
    session: Session, spec: CampaignSpec, created_by: User | None = None
) -> Campaign:
    """A new campaign with its items and every labeller's queue, in the caller's transaction."""
    name = spec.name.strip()
    if not name:
        raise InputError("a campaign needs a name")
    if session.scalar(sa.select(Campaign.id).where(Campaign.name == name)) is not None:
        raise ConflictError(f"a campaign named {name!r} already exists", hint="choose another name")
    _check_share(spec.repeat_share)
    if spec.grades_per_item is not None and spec.grades_per_item < 1:
        raise InputError("grades per item must be at least 1 (or left unset: every labeller)")
    if not spec.run_ids:
        raise InputError("a campaign needs at least one run", hint="pass run ids")
    scale = GradeScale(spec.scale)
    campaign = Campaign(
        name=name,
        description=spec.description,
        scale=scale,
        item_kind=ItemKind.class_average if scale is GradeScale.letters else ItemKind.tiltseries,
        levels=with_descriptions(default_levels(scale), spec.descriptions),
        grades_per_item=spec.grades_per_item,
        repeat_share=spec.repeat_share,
        seed=spec.seed if spec.seed is not None else secrets.randbits(48),
        created_by_id=created_by.id if created_by else None,
    )
    session.add(campaign)
    session.flush()
    add_runs(session, campaign, spec.run_ids)
    add_labellers(session, campaign, spec.labellers)
    return campaign


def _check_share(share: float) -> None:
    if not 0 <= share <= MAX_REPEAT_SHARE:
        raise InputError(
            f"repeat share {share} is out of range",
            hint=f"give a fraction between 0 and {MAX_REPEAT_SHARE} (0.05 = 5 %)",
        )


def add_runs(session: Session, campaign: Campaign, run_ids: Iterable[int]) -> int:
    """Add runs' items to the campaign and to the end of every labeller's queue; returns the
    number of new items. A run already in the campaign is left as it is."""
    present = set(
        session.scalars(sa.select(CampaignRun.run_id).where(CampaignRun.campaign_id == campaign.id))
    )
    new_items: list[int] = []
    for run_id in dict.fromkeys(int(r) for r in run_ids):
        if run_id in present:
            continue
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"no run with id {run_id}")
        session.add(CampaignRun(campaign_id=campaign.id, run_id=run_id))
        new_items.extend(_add_items(session, campaign, run))
    session.flush()
    if new_items:
        for user_id in _labeller_ids(session, campaign):
            _append_queue(session, campaign, user_id, new_items)
    return len(new_items)


def _add_items(session: Session, campaign: Campaign, run: Run) -> list[int]:
    rows: list[dict[str, Any]]
    if campaign.item_kind is ItemKind.class_average:
        if run.kind is not RunKind.class2d:
            raise InputError(
                f"run {run.id} ({run.name}) holds no class averages",
                hint="grade tilt series with --scale tilt-series",
            )
        fingerprint = run.class2d_job.fingerprint if run.class2d_job else None
        ids = session.scalars(
            sa.select(ClassAverage.id)
            .where(ClassAverage.run_id == run.id)
            .order_by(ClassAverage.class_index)
        ).all()
        rows = [{"class_average_id": i, "fingerprint": fingerprint} for i in ids]
    else:
        ids = session.scalars(
            sa.select(TiltSeries.id).where(TiltSeries.run_id == run.id).order_by(TiltSeries.id)
        ).all()
        rows = [{"tiltseries_id": i} for i in ids]
    if not rows:
        what = "class averages" if campaign.item_kind is ItemKind.class_average else "tilt series"
        raise InputError(f"run {run.id} ({run.name}) has no {what} to grade")
    for row in rows:
        row.update(campaign_id=campaign.id, run_id=run.id)
    result = session.scalars(sa.insert(CampaignItem).returning(CampaignItem.id), rows)
    return list(result)


def _labeller_ids(session: Session, campaign: Campaign) -> list[int]:
    return list(
        session.scalars(
            sa.select(CampaignLabeller.user_id)
            .where(CampaignLabeller.campaign_id == campaign.id)
            .order_by(CampaignLabeller.user_id)
        )
    )


def _item_ids(session: Session, campaign: Campaign) -> list[int]:
    return list(
        session.scalars(
            sa.select(CampaignItem.id)
            .where(CampaignItem.campaign_id == campaign.id)
            .order_by(CampaignItem.id)
        )
    )


def add_labellers(session: Session, campaign: Campaign, emails: Iterable[str]) -> list[User]:
    """Add people (by email) as labellers, each with a queue of their own. Anyone with an
    account may grade; their role decides what else they may see."""
    added: list[User] = []
    current = set(_labeller_ids(session, campaign))
    items = None
    for email in emails:
        user = accounts.get_user(session, email)
        if user.disabled:
            raise InputError(f"{user.email} is disabled", hint="enable the account first")
        if user.id in current:
            continue
        session.add(CampaignLabeller(campaign_id=campaign.id, user_id=user.id))
        current.add(user.id)
        if items is None:
            items = _item_ids(session, campaign)
        session.flush()
        _append_queue(session, campaign, user.id, items)
        added.append(user)
    return added


def remove_labeller(session: Session, campaign: Campaign, email: str) -> None:
    """Stop showing the campaign to someone. Their grades stay (they were given)."""
    user = accounts.get_user(session, email)
    link = session.get(CampaignLabeller, (campaign.id, user.id))
    if link is None:
        raise NotFoundError(f"{user.email} is not a labeller of campaign {campaign.id}")
    session.delete(link)


def shuffled_queue(
    seed: int, user_id: int, start: int, item_ids: Sequence[int], repeat_share: float
) -> list[tuple[int, int, bool]]:
    """``(position, item_id, repeat)`` for one labeller: their own shuffle of ``item_ids``,
    with ``round(repeat_share × n)`` of them shown again at least :data:`REPEAT_GAP` items
    later (or at the end). Deterministic in (seed, user, items)."""
    rng = np.random.default_rng([seed & 0xFFFFFFFFFFFF, user_id, start])
    order = [item_ids[i] for i in rng.permutation(len(item_ids))]
    n = len(order)
    keys: list[tuple[float, int, bool]] = [(float(i), item, False) for i, item in enumerate(order)]
    n_repeat = round(repeat_share * n) if n >= 2 else 0
    if n_repeat:
        # Repeats are drawn from items seen early enough that their second look can come
        # at least ``gap`` items later.
        gap = min(REPEAT_GAP, max(1, n // 4))
        candidates = n - gap
        n_repeat = min(n_repeat, candidates)
        for i in sorted(rng.choice(candidates, size=n_repeat, replace=False).tolist()):
            keys.append((float(rng.uniform(i + gap, n)) + 0.5, order[i], True))
    keys.sort()
    return [(start + p, item, repeat) for p, (_, item, repeat) in enumerate(keys)]


def _append_queue(session: Session, campaign: Campaign, user_id: int, items: Sequence[int]) -> None:
    if not items:
        return
    last = session.scalar(
        sa.select(sa.func.max(QueueEntry.position)).where(
            QueueEntry.campaign_id == campaign.id, QueueEntry.user_id == user_id
        )
    )
    start = 0 if last is None else last + 1
    rows = [
        {
            "campaign_id": campaign.id,
            "user_id": user_id,
            "position": position,
            "item_id": item,
            "repeat": repeat,
        }
        for position, item, repeat in shuffled_queue(
            campaign.seed, user_id, start, items, campaign.repeat_share
        )
    ]
    session.execute(sa.insert(QueueEntry), rows)


def set_closed(session: Session, campaign: Campaign, closed: bool) -> bool:
    """Close a campaign (no more grades are accepted, and its consensus annotations become
    public: :func:`cryocurate.grading.access.sees_grade_annotation`) or reopen it. Returns
    whether anything changed, so a repeated close is harmless and says so."""
    if campaign.closed == closed:
        return False
    campaign.closed = closed
    session.flush()
    return True


def set_descriptions(session: Session, campaign: Campaign, descriptions: Mapping[str, str]) -> None:
    """Edit the rubric's words for some grades (``{"B": "…"}``)."""
    campaign.levels = with_descriptions(campaign.levels, descriptions)


def set_rubric_examples(
    session: Session,
    campaign: Campaign,
    grade: str | int,
    item_ids: Sequence[int],
    captions: Sequence[str | None] = (),
) -> list[RubricExample]:
    """Replace the example images of one grade with these class averages (or tilt series, for
    a tilt-series campaign), by their catalog ids."""
    value = value_of(campaign.levels, grade)
    for example in [e for e in campaign.rubric_examples if e.value == value]:
        campaign.rubric_examples.remove(example)
    model = ClassAverage if campaign.item_kind is ItemKind.class_average else TiltSeries
    examples = []
    for n, item_id in enumerate(item_ids):
        if session.get(model, item_id) is None:
            raise NotFoundError(
                f"no {campaign.item_kind.value.replace('_', ' ')} with id {item_id}"
            )
        caption = captions[n] if n < len(captions) else None
        example = RubricExample(value=value, caption=caption)
        if model is ClassAverage:
            example.class_average_id = item_id
        else:
            example.tiltseries_id = item_id
        campaign.rubric_examples.append(example)
        examples.append(example)
    session.flush()
    return examples


def campaign_runs(campaign: Campaign) -> list[dict[str, Any]]:
    """A loaded campaign's runs by id: ``{"run_id", "run_name", "dataset_id", "lab"}`` each."""
    return [
        {
            "run_id": link.run.id,
            "run_name": link.run.name,
            "dataset_id": link.run.dataset_id,
            "lab": link.run.dataset.lab,
        }
        for link in sorted(campaign.runs, key=lambda r: r.run_id)
    ]


def load_campaign(session: Session, campaign_id: int) -> Campaign:
    """The campaign with its runs, labellers and rubric loaded (for pages and the CLI)."""
    campaign = session.scalar(
        sa.select(Campaign)
        .where(Campaign.id == campaign_id)
        .options(
            selectinload(Campaign.runs).selectinload(CampaignRun.run).selectinload(Run.dataset),
            selectinload(Campaign.labellers).selectinload(CampaignLabeller.user),
            selectinload(Campaign.rubric_examples),
        )
    )
    if campaign is None:
        raise NotFoundError(f"no campaign with id {campaign_id}")
    return campaign
