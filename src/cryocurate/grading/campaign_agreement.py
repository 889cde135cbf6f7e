"""Agreement figures of a grading campaign, from the catalog: for the whole campaign, one run
or one lab, each with every labeller's own figures.

Why a layer between :mod:`.agreement` (pure numpy, knows nothing of campaigns) and the web
page and CLI: both must show the *same* numbers for the same scope, labelled with the
campaign's own grade keys (A–F or 1–5) and with the sign of a bias spelled out, because
"positive" means harsher on the letter scale (F = 5) and more lenient on the tilt-series
scale (5 = excellent). Who may see the figures (reviewers and admins: they reveal everyone's
grades) is decided by the callers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate.catalog.models import Campaign, GradeScale, Run
from cryocurate.errors import NotFoundError
from cryocurate.grading.agreement import AgreementReport, agreement_report, write_report_csv
from cryocurate.grading.ratings import Ratings, load_ratings

__all__ = [
    "BIAS_MEANING",
    "CampaignAgreement",
    "agreement_csv",
    "campaign_agreement",
    "level_keys",
    "scope_summaries",
]

BIAS_MEANING: dict[GradeScale, str] = {
    GradeScale.letters: (
        "bias = mean offset from the others, in grades; positive = harsher "
        "(later letters than the others), negative = more lenient"
    ),
    GradeScale.tilt_series: (
        "bias = mean offset from the others, in grades; positive = more lenient "
        "(higher quality numbers than the others), negative = harsher"
    ),
}

# Fewer resamples for the per-run and per-lab overview than for the report on screen: the
# overview only ranks scopes, and a campaign of many runs would otherwise pay for each.
OVERVIEW_RESAMPLES = 200


def level_keys(campaign: Campaign) -> list[str]:
    """The campaign's grade keys in ascending order of value (the order of every per-level
    list in a report): A…F on the letter scale, 1…5 on the tilt-series scale."""
    return [str(level["key"]) for level in sorted(campaign.levels, key=lambda lv: lv["value"])]


@dataclass(frozen=True)
class CampaignAgreement:
    """One scope's report with what is needed to read it (campaign, scope, grade keys)."""

    campaign_id: int
    campaign_name: str
    scale: GradeScale
    scope: dict[str, Any]  # {"kind": "campaign"|"run"|"lab", "run_id", "run_name", "lab"}
    report: AgreementReport

    @property
    def bias_meaning(self) -> str:
        return BIAS_MEANING[self.scale]

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "campaign_name": self.campaign_name,
            "scale": self.scale.value,
            "scope": self.scope,
            "bias_meaning": self.bias_meaning,
            **self.report.to_dict(),
        }


def _report(ratings: Ratings, campaign: Campaign, n_resamples: int, seed: int) -> AgreementReport:
    return agreement_report(
        ratings.values,
        ratings.levels,
        ratings.labellers,
        repeats=ratings.repeats,
        level_labels=level_keys(campaign),
        n_resamples=n_resamples,
        seed=seed,
    )


def _scope(
    session: Session, campaign: Campaign, ratings: Ratings, run_id: int | None, lab: str | None
) -> tuple[Ratings, dict[str, Any]]:
    if run_id is not None and lab is not None:
        raise NotFoundError("choose a run or a lab, not both")
    if run_id is not None:
        if run_id not in set(ratings.run_ids):
            raise NotFoundError(f"campaign {campaign.id} has no run {run_id}")
        name = session.scalar(sa.select(Run.name).where(Run.id == run_id))
        mask = np.array([r == run_id for r in ratings.run_ids], dtype=bool)
        return ratings.subset(mask), {"kind": "run", "run_id": run_id, "run_name": name}
    if lab is not None:
        if lab not in set(ratings.labs):
            raise NotFoundError(f"campaign {campaign.id} has no items from lab {lab!r}")
        mask = np.array([x == lab for x in ratings.labs], dtype=bool)
        return ratings.subset(mask), {"kind": "lab", "lab": lab}
    return ratings, {"kind": "campaign"}


def campaign_agreement(
    session: Session,
    campaign: Campaign,
    *,
    run_id: int | None = None,
    lab: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    ratings: Ratings | None = None,
) -> CampaignAgreement:
    """The agreement report of the campaign, or of one of its runs or labs (NotFoundError for a
    run or lab the campaign does not have). Repeats stay per labeller in every scope:
    consistency is a property of the person, not of a run."""
    ratings = ratings if ratings is not None else load_ratings(session, campaign)
    chosen, scope = _scope(session, campaign, ratings, run_id, lab)
    return CampaignAgreement(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        scale=campaign.scale,
        scope=scope,
        report=_report(chosen, campaign, n_resamples, seed),
    )


def scope_summaries(
    session: Session,
    campaign: Campaign,
    *,
    n_resamples: int = OVERVIEW_RESAMPLES,
    seed: int = 0,
    ratings: Ratings | None = None,
) -> list[dict[str, Any]]:
    """α with its interval for every run and every lab of the campaign: which part of the
    data the labellers agree on least. ``[{"kind", "run_id"?, "run_name"?, "lab"?, "n_items",
    "n_grades", "alpha"}]``, runs in id order then labs by name."""
    ratings = ratings if ratings is not None else load_ratings(session, campaign)
    names = dict(
        session.execute(sa.select(Run.id, Run.name).where(Run.id.in_(set(ratings.run_ids)))).all()
    )
    scopes: list[tuple[dict[str, Any], np.ndarray]] = [
        (
            {"kind": "run", "run_id": run_id, "run_name": names.get(run_id)},
            np.array([r == run_id for r in ratings.run_ids], dtype=bool),
        )
        for run_id in sorted(set(ratings.run_ids))
    ]
    scopes += [
        ({"kind": "lab", "lab": lab}, np.array([x == lab for x in ratings.labs], dtype=bool))
        for lab in sorted({x for x in ratings.labs if x is not None})
    ]
    out = []
    for scope, mask in scopes:
        report = _report(ratings.subset(mask), campaign, n_resamples, seed)
        out.append(
            {
                **scope,
                "n_items": report.n_items,
                "n_grades": report.n_grades,
                "alpha": report.to_dict()["alpha"],
            }
        )
    return out


def agreement_csv(agreement: CampaignAgreement) -> str:
    """Every figure of the report as long-format CSV (:data:`.agreement.CSV_FIELDS`)."""
    buffer = io.StringIO()
    write_report_csv(agreement.report, buffer)
    return buffer.getvalue()
