"""Train/validation/test splits by job, seeded and stratified by lab.

Why by job: the class averages of one 2D classification job share its particles, its
microscope session and its processing, and many are near-copies of each other (the same view
split into two classes). With one job on both sides of a split, a model is tested on images
it has in effect seen, and the test score says nothing about a new job. So the unit of the
split is the job (one run of the catalog), never the class average.

Why by lab: labs differ in samples, microscopes and habits, and a split that puts every job of
one lab into training would never test on it. Each lab's jobs are split on their own, so every
lab is in training and, when it has enough jobs, in validation and test as well.

**The rule**, for each lab (datasets without a lab form one group of their own):

1. The lab's job ids are sorted and shuffled with a generator seeded by ``(seed, a hash of the
   lab's name)``: the same seed gives the same split, and adding a lab or a job of another lab
   does not reshuffle this one.
2. The number of jobs per split is ``n · fraction`` rounded by largest remainders (Hamilton's
   method; ties go to the earlier split, train before validation before test), so the counts
   sum to ``n`` and are as close to the fractions as whole jobs allow.
3. Minimums: a lab with at least one job has one in train; a lab with at least as many jobs
   as there are splits with a positive fraction has at least one job in each of them. A
   missing job is taken from the split with the largest surplus over its exact share that
   can spare one (ties: the earlier split).
4. The shuffled jobs are dealt out in order: the first ones to train, then validation, then
   test.

The fractions count jobs, not class averages: jobs have different numbers of classes, and
holding every job whole matters more than matching the item shares exactly (the export's
``splits.json`` reports both).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryocurate.errors import InputError

SPLITS: tuple[str, str, str] = ("train", "validation", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
NO_LAB = ""
"""The group of jobs whose dataset names no lab (shown as "(no lab)")."""


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` (or three numbers) → checked fractions for train, validation, test.

    Each must be between 0 and 1, train above 0, and together they must sum to 1.
    """
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise InputError(
                f"fractions {text!r} are not numbers", hint="e.g. 0.8,0.1,0.1"
            ) from None
    else:
        numbers = [float(x) for x in text]
    if len(numbers) != 3:
        raise InputError(
            f"{len(numbers)} fractions given, need 3 (train, validation, test)",
            hint="e.g. 0.8,0.1,0.1",
        )
    if not all(math.isfinite(x) and 0 <= x <= 1 for x in numbers) or numbers[0] <= 0:
        raise InputError(
            f"fractions {numbers} must lie between 0 and 1, with train above 0",
            hint="e.g. 0.8,0.1,0.1",
        )
    if abs(sum(numbers) - 1) > 1e-6:
        raise InputError(f"fractions {numbers} sum to {sum(numbers):g}, not 1")
    return numbers[0], numbers[1], numbers[2]


def _lab_key(lab: str) -> int:
    """A stable 64-bit number for a lab's name (Python's ``hash`` changes between runs)."""
    return int.from_bytes(hashlib.sha256(lab.encode("utf-8")).digest()[:8], "big")


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """How many of ``n`` jobs go to each split (steps 2 and 3 of the module's rule)."""
    exact = [n * f for f in fractions]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda k: (-(exact[k] - counts[k]), k))
    for k in order[: n - sum(counts)]:
        counts[k] += 1
    wanted = [k for k, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        needy = wanted
    elif n >= 1:
        needy = [0]
    else:
        needy = []
    for k in needy:
        if counts[k] > 0:
            continue
        donors = [j for j in range(len(counts)) if counts[j] > (1 if j in needy else 0)]
        donor = max(donors, key=lambda j: (counts[j] - exact[j], -j))
        counts[donor] -= 1
        counts[k] += 1
    return counts


@dataclass(frozen=True)
class JobSplits:
    """Which split each job is in. ``assignment`` maps a job (run id) to ``train``,
    ``validation`` or ``test``; ``labs`` maps it to its lab (``None``: no lab)."""

    seed: int
    fractions: tuple[float, float, float]
    assignment: dict[int, str]
    labs: dict[int, str | None]

    def jobs(self, split: str) -> list[int]:
        """The jobs of one split, ascending."""
        return sorted(job for job, where in self.assignment.items() if where == split)

    def per_lab(self) -> dict[str, dict[str, int]]:
        """Jobs per split for each lab (``"(no lab)"`` for jobs without one), labs sorted."""
        table: dict[str, dict[str, int]] = {}
        for job, where in sorted(self.assignment.items()):
            lab = self.labs.get(job) or "(no lab)"
            table.setdefault(lab, dict.fromkeys(SPLITS, 0))[where] += 1
        return dict(sorted(table.items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: seed, fractions, the jobs of each split and the per-lab job counts."""
        return {
            "unit": "job (run)",
            "seed": self.seed,
            "fractions": dict(zip(SPLITS, self.fractions, strict=True)),
            "jobs": {split: self.jobs(split) for split in SPLITS},
            "jobs_per_lab": self.per_lab(),
        }


def split_jobs(
    jobs: Mapping[int, str | None],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> JobSplits:
    """Split ``jobs`` (job id → lab, ``None`` for none) by the module's rule.

    Deterministic: the result depends only on the jobs, their labs, the fractions and the
    seed, never on the order of ``jobs``.
    """
    checked = parse_fractions(fractions)
    if seed < 0:
        raise InputError(f"the seed must be a non-negative integer, got {seed}")
    groups: dict[str, list[int]] = {}
    for job, lab in jobs.items():
        groups.setdefault(lab or NO_LAB, []).append(int(job))
    assignment: dict[int, str] = {}
    for lab in sorted(groups):
        members = sorted(groups[lab])
        rng = np.random.default_rng([seed, _lab_key(lab)])
        shuffled = [members[i] for i in rng.permutation(len(members))]
        start = 0
        for split, count in zip(SPLITS, split_counts(len(members), checked), strict=True):
            for job in shuffled[start : start + count]:
                assignment[job] = split
            start += count
    return JobSplits(
        seed=seed,
        fractions=checked,
        assignment=dict(sorted(assignment.items())),
        labs={int(job): lab for job, lab in sorted(jobs.items())},
    )
