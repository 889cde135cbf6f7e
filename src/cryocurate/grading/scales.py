"""The two grading scales, as labellers see them and as grades are stored.

Grades are stored as the level's ``value`` (an int 1–5) and shown by its ``key``. The letter
scale numbers A = 1 … F = 5, as Magellon's tkteach databases did (and CryoSift trains on), but
here the number comes from the letter, never from a database id; the tilt-series scale is the
seed's 1–5 with 5 the best. Names and keys are fixed (they are the scale); descriptions are
the campaign's rubric and admins may edit them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from cryocurate.catalog.models import TILT_SERIES_QUALITY, GradeScale
from cryocurate.errors import InputError

LETTER_LEVELS: tuple[dict[str, Any], ...] = (
    {
        "value": 1,
        "key": "A",
        "name": "Best",
        "description": "Clear secondary structure or fine detail; a class you would keep first.",
    },
    {
        "value": 2,
        "key": "B",
        "name": "Decent",
        "description": "A well-resolved particle view with clear features; keep.",
    },
    {
        "value": 3,
        "key": "C",
        "name": "Acceptable",
        "description": "A recognisable particle view, blurrier or partly resolved; keep if needed.",
    },
    {
        "value": 4,
        "key": "D",
        "name": "Bad",
        "description": "Blurry, partial, clipped or off-centre; usually discard.",
    },
    {
        "value": 5,
        "key": "F",
        "name": "Unusable",
        "description": "Junk, noise, ice, edges or empty; discard.",
    },
)

#: The seed's own rubric for tilt-series quality (the CryoET Data Portal's table, verbatim):
#: graders read the descriptions a dataset's authors were given. Names match
#: ``TILT_SERIES_QUALITY``, the catalog's short form of the same scale.
TILT_SERIES_RUBRIC = {
    5: "Full Tilt Series/Reconstructions could be used in publication ready figures.",
    4: "Full Tilt Series/Reconstructions are useful for analysis (subtomogram averaging, "
    "segmentation).",
    3: "Minor parts of the tilt series (projection images) need to be or have been discarded "
    "prior to reconstruction and analysis.",
    2: "Major parts of the tilt series (projection images) need to be or have been discarded "
    "prior to reconstruction and analysis. Useful for analysis only after heavy manual "
    "intervention.",
    1: "Not useful for analysis with current tools (not alignable), useful as a test case for "
    "problematic data only.",
}

TILT_SERIES_LEVELS: tuple[dict[str, Any], ...] = tuple(
    {"value": v, "key": str(v), "name": text.split(":")[0], "description": TILT_SERIES_RUBRIC[v]}
    for v, text in sorted(TILT_SERIES_QUALITY.items(), reverse=True)
)


def default_levels(scale: GradeScale) -> list[dict[str, Any]]:
    """A fresh copy of a scale's levels, best first."""
    source = LETTER_LEVELS if scale is GradeScale.letters else TILT_SERIES_LEVELS
    return [dict(level) for level in source]


def with_descriptions(
    levels: Sequence[Mapping[str, Any]], descriptions: Mapping[str, str]
) -> list[dict[str, Any]]:
    """``levels`` with some descriptions replaced, by key (``{"A": "…"}``); unknown keys are
    refused so a typo is not silently ignored."""
    by_key = {str(level["key"]).upper(): dict(level) for level in levels}
    for key, text in descriptions.items():
        level = by_key.get(key.strip().upper())
        if level is None:
            known = ", ".join(by_key)
            raise InputError(f"no grade {key!r} on this scale", hint=f"the grades are {known}")
        level["description"] = text.strip()
    return list(by_key.values())


def value_of(levels: Sequence[Mapping[str, Any]], grade: str | int) -> int:
    """The stored value for a grade given as its key (``"b"``, ``"3"``) or its value."""
    text = str(grade).strip().upper()
    for level in levels:
        if str(level["key"]).upper() == text:
            return int(level["value"])
    if isinstance(grade, int) and any(int(level["value"]) == grade for level in levels):
        return grade
    keys = ", ".join(str(level["key"]) for level in levels)
    raise InputError(f"{grade!r} is not a grade on this scale", hint=f"use one of {keys}")


def key_of(levels: Sequence[Mapping[str, Any]], value: int) -> str:
    for level in levels:
        if int(level["value"]) == value:
            return str(level["key"])
    raise InputError(f"{value!r} is not a grade value on this scale")


def grade_label(levels: Sequence[Mapping[str, Any]], value: float | None) -> str:
    """A summary of grades (a median, say) as the scale shows grades: the key on the letter
    scale (``2.0`` → ``"B"``, half-way ``2.5`` → ``"B–C"``), the number on the 1–5 scale
    (``3.5`` → ``"3.5"``); ``"—"`` for None. A reviewer reads letters, not their numbering."""
    if value is None:
        return "—"
    keys = {int(level["value"]): str(level["key"]) for level in levels}
    if all(key.isdigit() for key in keys.values()):
        return f"{value:g}"
    low, high = math.floor(value), math.ceil(value)
    if low not in keys or high not in keys:
        return f"{value:g}"
    return keys[low] if low == high else f"{keys[low]}–{keys[high]}"
