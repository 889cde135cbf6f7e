"""A portal to grade in: two labs' 2D classification jobs (real cryoSPARC files, extracted
through the real pipeline) and one user per role, plus a second labeller."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryocurate import accounts
from cryocurate.ingest.datasets import DatasetChoice, DatasetFields
from cryocurate.ingest.extract import Extraction
from cryocurate.portal import Portal
from cryocurate.synth import synth_cryosparc

PASSWORD = "a long password"
ADMIN, REVIEWER = "ada@lab-a.org", "rev@lab-a.org"
LABELLERS = ("lena@lab-a.org", "lars@lab-b.org")


@dataclass
class GradingPortal:
    root: Path
    run_ids: list[int]
    labs: dict[int, str]  # run id → lab


def build_grading_portal(
    base: Path,
    database_url: str | None = None,
    *,
    n_classes: int = 8,
    jobs_per_lab: int = 1,
    box: int = 32,
) -> GradingPortal:
    kwargs = {"database_url": database_url} if database_url else {}
    root = base / "portal"
    run_ids: list[int] = []
    labs: dict[int, str] = {}
    with Portal.create(root, **kwargs) as portal:
        with portal.transaction() as s:
            for email, role, lab in (
                (ADMIN, "admin", "Lab A"),
                (REVIEWER, "reviewer", "Lab A"),
                (LABELLERS[0], "labeller", "Lab A"),
                (LABELLERS[1], "labeller", "Lab B"),
            ):
                user = accounts.add_user(s, email, role, lab=lab)
                accounts.accept_invite(s, accounts.create_invite(s, user), PASSWORD)
        for n, lab in enumerate(("Lab A", "Lab B")):
            jobs = [
                synth_cryosparc(
                    base / "jobs" / lab / f"J{10 + j}",
                    n_classes=n_classes,
                    box=box,
                    n_particles=400,
                    seed=10 * n + j,
                    project_uid=f"P{n + 1}",
                    job_uid=f"J{10 + j}",
                )
                for j in range(jobs_per_lab)
            ]
            choice = DatasetChoice(f"Complex of {lab}", DatasetFields(lab=lab))
            for outcome in Extraction(portal, choice, workers=1).run(jobs):
                assert outcome.run_id is not None, outcome.message
                run_ids.append(outcome.run_id)
                labs[outcome.run_id] = lab
    return GradingPortal(root, sorted(run_ids), labs)
