"""A portal whose first run has a consensus the tests know tile by tile (computed through the
real grading code), and a second run graded completely.

First run (8 class averages), grades by the two labellers and what the consensus is:

==========  =========  ===========================================
class       grades     final grade
==========  =========  ===========================================
0           A, A       A (kept)
1, 2, 3     B, B       B (kept)
4           D, D       D (dropped)
5           F, F       F (dropped)
6           A, D       flagged (spread 3); a reviewer settles on C
7           —          not graded
==========  =========  ===========================================

So the first run's consensus distribution is A 1, B 3, C 1, D 1, F 1 (7 of 8 graded).

The second run: every class graded B by both labellers, so its consensus reached the
campaign's grades per item (2: both labellers) and is ground truth; the first run's is not.

A third run, ``P1_J2``, ungraded and in no campaign, joins the first run's dataset (whose run is
``P1_J10``): as text ``P1_J10`` sorts first, as people count jobs ``P1_J2`` does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import CampaignItem, ClassAverage, Run
from cryocurate.grading.consensus_store import compute_consensus, settle
from cryocurate.ingest.datasets import DatasetChoice
from cryocurate.ingest.extract import Extraction
from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc
from tests.grading.portal import LABELLERS, REVIEWER, build_grading_portal

FIRST_RUN_GRADES: dict[int, tuple[str, str] | None] = {
    0: ("A", "A"),
    1: ("B", "B"),
    2: ("B", "B"),
    3: ("B", "B"),
    4: ("D", "D"),
    5: ("F", "F"),
    6: ("A", "D"),
    7: None,
}
FINAL = {0: "A", 1: "B", 2: "B", 3: "B", 4: "D", 5: "F", 6: "C"}
KEPT = {0, 1, 2, 3, 6}
DROPPED = {4, 5}
UNGRADED = {7}
FLAGGED_CLASS = SETTLED_CLASS = 6
N_CLASSES = 8


@dataclass
class Graded:
    root: Path
    run_ids: list[int]
    campaign_id: int
    j2_run_id: int
    dataset_id: int


def items_by_class(session, campaign_id: int, run_id: int) -> dict[int, int]:
    return dict(
        session.execute(
            sa.select(ClassAverage.class_index, CampaignItem.id)
            .join(ClassAverage, ClassAverage.id == CampaignItem.class_average_id)
            .where(CampaignItem.campaign_id == campaign_id, CampaignItem.run_id == run_id)
        ).all()
    )


def give(session, campaign, email: str, item_id: int, grade: str) -> None:
    user = accounts.get_user(session, email)
    grading.record(session, campaign, user, grading.GradeRequest(uuid.uuid4().hex, item_id, grade))


def build_graded_portal(
    base: Path, database_url: str | None = None, *, closed: bool = True
) -> Graded:
    """The portal above. ``closed``: the campaign is closed after the reviewer settled, as a
    finished campaign is, so its consensus is public (what anonymous visitors of the gallery
    see); with ``closed=False`` only its labellers, reviewers and admins see grades."""
    built = build_grading_portal(base, database_url, n_classes=N_CLASSES)
    first, second = built.run_ids
    with Portal.open(built.root) as portal, portal.transaction() as s:
        spec = grading.CampaignSpec(
            name="Spring 2D", run_ids=[first, second], labellers=LABELLERS, seed=5,
            repeat_share=0.0,
        )  # fmt: skip
        campaign = grading.create_campaign(s, spec)
        cid = campaign.id
        for index, item_id in items_by_class(s, cid, first).items():
            pair = FIRST_RUN_GRADES[index]
            if pair is None:
                continue
            for email, grade in zip(LABELLERS, pair, strict=True):
                give(s, campaign, email, item_id, grade)
        for item_id in items_by_class(s, cid, second).values():
            for email in LABELLERS:
                give(s, campaign, email, item_id, "B")
        compute_consensus(s, campaign)
        item = items_by_class(s, cid, first)[SETTLED_CLASS]
        settle(s, campaign, item, accounts.get_user(s, REVIEWER), "C", "between A and D")
        grading.set_closed(s, campaign, closed)
        dataset_id = s.get(Run, first).dataset_id
    job = synth_cryosparc(
        base / "jobs" / "J2", n_classes=4, box=32, n_particles=200, seed=99, project_uid="P1",
        job_uid="J2",
    )  # fmt: skip
    with Portal.open(built.root) as portal:
        (outcome,) = Extraction(portal, DatasetChoice(str(dataset_id)), workers=1).run([job])
    assert outcome.run_id is not None, outcome.message
    return Graded(built.root, [first, second], cid, outcome.run_id, dataset_id)
