"""Grading: campaigns, each labeller's queue, grades that are never lost, and what they say.

Why a package of its own: the web app, the CLI and the benchmarks need the same rules (which
items a labeller sees in which order, when a grade counts, how progress is counted), and none
of them depends on HTTP. Every function takes an SQLAlchemy ``Session`` from
``Portal.transaction()`` and raises :mod:`cryocurate.errors` errors.
"""

from __future__ import annotations

from cryocurate.grading.campaigns import (
    CampaignSpec,
    add_labellers,
    add_runs,
    campaign_runs,
    create_campaign,
    get_campaign,
    is_labeller,
    list_campaigns,
    load_campaign,
    remove_labeller,
    set_descriptions,
    set_rubric_examples,
)
from cryocurate.grading.grades import Ack, GradeRequest, grade_rows, history, record, record_many
from cryocurate.grading.progress import campaign_progress, campaign_summary, my_progress
from cryocurate.grading.queue import Resume, resume, window

__all__ = [
    "Ack",
    "CampaignSpec",
    "GradeRequest",
    "Resume",
    "add_labellers",
    "add_runs",
    "campaign_progress",
    "campaign_runs",
    "campaign_summary",
    "create_campaign",
    "get_campaign",
    "grade_rows",
    "history",
    "is_labeller",
    "list_campaigns",
    "load_campaign",
    "my_progress",
    "record",
    "record_many",
    "remove_labeller",
    "resume",
    "set_descriptions",
    "set_rubric_examples",
    "window",
]
