"""Grading: campaigns, each labeller's queue, grades that are never lost, and what they say.

Why a package of its own: the web app, the CLI and the benchmarks need the same rules (which
items a labeller sees in which order, when a grade counts, how progress is counted), and none
of them depends on HTTP. Every function takes an SQLAlchemy ``Session`` from
``Portal.transaction()`` and raises :mod:`cryocurate.errors` errors.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# What the package re-exports, by the module that defines it. Imported on first use
# (PEP 562), so ``from cryocurate import grading`` costs nothing until a service is called:
# the CLI imports it at start-up and must stay fast (see cryocurate.cli.main).
_EXPORTS = {
    "campaigns": (
        "CampaignSpec",
        "add_labellers",
        "add_runs",
        "campaign_runs",
        "create_campaign",
        "get_campaign",
        "is_labeller",
        "list_campaigns",
        "load_campaign",
        "remove_labeller",
        "set_closed",
        "set_descriptions",
        "set_rubric_examples",
    ),
    "grades": ("Ack", "GradeRequest", "grade_rows", "history", "record", "record_many"),
    "progress": ("campaign_progress", "campaign_summary", "my_progress"),
    "queue": ("Resume", "resume", "window"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
            return importlib.import_module(f"{__name__}.{name}")  # a submodule, as before
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


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
    "set_closed",
    "set_descriptions",
    "set_rubric_examples",
    "window",
]
