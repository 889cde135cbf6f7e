"""What each class of a synthetic job is meant to be: grade, kind, resolution, particle count.

The plan is decided before any file is written, so that every output (the images, the
per-class metadata, the per-particle class labels, ``truth.csv``) tells the same story:

* a **grade** A–F as the Magellon labelling guide uses it (A: clear high-resolution
  features; B: features at ~7–10 Å; C: ~10–14 Å, blurrier; D: 14–22 Å, blurry or partial;
  F: junk, 20–40 Å, or an empty class);
* a **kind** the renderer draws (``particle``, ``mixed``, ``clipped``, ``aggregate``,
  ``ice``, ``carbon_edge``, ``noise``, ``empty``);
* a **resolution** inside the grade's range (``inf`` for empty classes; RELION writes 999);
* a **particle count**: good classes draw more particles, empty classes none, and the
  counts sum exactly to the job's particle total;
* per-particle statistics by grade: class posterior (Beta), class ESS, alignment accuracy.

Earlier iterations are the same classes seen earlier: lower resolution, more noise, and
particle counts drifting from even towards the final ones (:meth:`JobPlan.at`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from cryocurate.atomic import write_text
from cryocurate.errors import InputError
from cryocurate.synth.density import random_rotation

#: A progress callback: called with the number of particle rows written so far.
Progress = Callable[[int], None]

GRADES = ("A", "B", "C", "D", "F")

#: Intended resolution range per grade, in Å.
RESOLUTION_RANGES: dict[str, tuple[float, float]] = {
    "A": (4.0, 7.0),
    "B": (7.0, 10.0),
    "C": (10.0, 14.0),
    "D": (14.0, 22.0),
    "F": (20.0, 40.0),
}

_KINDS_BY_GRADE: dict[str, tuple[tuple[str, float], ...]] = {
    "A": (("particle", 1.0),),
    "B": (("particle", 0.9), ("mixed", 0.1)),
    "C": (("particle", 0.7), ("mixed", 0.3)),
    "D": (("particle", 0.45), ("mixed", 0.3), ("clipped", 0.25)),
    "F": (
        ("ice", 0.22),
        ("carbon_edge", 0.18),
        ("aggregate", 0.2),
        ("noise", 0.25),
        ("clipped", 0.15),
    ),
}

# residual noise (relative to a typical view's signal), by grade or by junk kind
_NOISE: dict[str, tuple[float, float]] = {
    "A": (0.08, 0.16),
    "B": (0.15, 0.3),
    "C": (0.3, 0.5),
    "D": (0.45, 0.8),
    "ice": (0.2, 0.5),
    "carbon_edge": (0.2, 0.5),
    "aggregate": (0.5, 0.9),
    "noise": (1.0, 1.6),
    "clipped": (0.6, 1.0),
}

# how many particles a class draws, relative (junk "noise" classes are often big)
_COUNT_WEIGHT = {"A": 3.0, "B": 2.2, "C": 1.5, "D": 1.0, "F": 0.6}
_POSTERIOR_BETA = {
    "A": (18.0, 1.2),
    "B": (10.0, 1.5),
    "C": (6.0, 2.0),
    "D": (4.0, 2.5),
    "F": (2.5, 2.5),
}
_ESS_SCALE = {"A": 0.05, "B": 0.15, "C": 0.4, "D": 0.8, "F": 1.5}
_ACCURACY_ROT = {
    "A": (0.8, 2.0),
    "B": (2.0, 4.0),
    "C": (4.0, 8.0),
    "D": (8.0, 15.0),
    "F": (15.0, 40.0),
}
_ACCURACY_TRANS = {
    "A": (0.4, 1.0),
    "B": (1.0, 1.8),
    "C": (1.8, 3.0),
    "D": (3.0, 5.0),
    "F": (5.0, 9.0),
}

MIN_BOX = 16


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for one purpose (``keys``) of one seed."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, *keys])


@dataclass(frozen=True)
class ClassPlan:
    """One class: what it is meant to look like, and the statistics of its particles."""

    index: int
    grade: str
    kind: str
    resolution_a: float
    count: int
    noise: float
    rotation: np.ndarray
    geometry_seed: int
    posterior_beta: tuple[float, float]
    ess_scale: float
    accuracy_rotation_deg: float
    accuracy_translation_a: float

    @property
    def empty(self) -> bool:
        return self.count == 0


@dataclass(frozen=True)
class JobPlan:
    """All classes of one job at one iteration (index order = position in the MRC stack)."""

    classes: tuple[ClassPlan, ...]
    seed: int

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def counts(self) -> np.ndarray:
        return np.array([c.count for c in self.classes], dtype=np.int64)

    @property
    def n_particles(self) -> int:
        return int(self.counts.sum())

    def column(self, name: str) -> np.ndarray:
        """A per-class attribute as an array, for per-particle lookups by class index."""
        return np.array([getattr(c, name) for c in self.classes])

    def at(self, t: float, n_rows: int, iteration: int) -> JobPlan:
        """The same classes earlier in the run: ``t`` = iteration / final iteration.

        Resolution and noise worsen as ``t`` falls; counts drift from even (over the
        classes that end non-empty) to the final counts. Classes empty at the end stay
        empty; a class that draws no particle at an earlier iteration is empty there too.
        """
        if t >= 1.0 and n_rows == self.n_particles:
            return self
        final = self.counts.astype(np.float64)
        alive = final > 0
        p_final = final / final.sum() if final.sum() > 0 else alive / max(alive.sum(), 1)
        p_even = alive / max(alive.sum(), 1)
        p = (1 - t) * p_even + t * p_final
        rng = rng_for(self.seed, 7, iteration)
        counts = rng.multinomial(n_rows, p / p.sum()) if n_rows > 0 else np.zeros(len(p), int)
        late = 1.0 - t
        classes = []
        for c, n in zip(self.classes, counts, strict=True):
            if n == 0:
                classes.append(replace(c, count=0, resolution_a=math.inf))
                continue
            res = round(min(c.resolution_a + late * (18.0 + 0.8 * c.resolution_a), 60.0), 2)
            classes.append(
                replace(c, count=int(n), resolution_a=res, noise=c.noise * (1 + 1.5 * late))
            )
        return JobPlan(classes=tuple(classes), seed=self.seed)


def check_options(
    *, n_classes: int, box: int, pixel_size: float, n_particles: int, iterations: int
) -> None:
    """Refuse options no job could have, with one line that says which and why."""
    if n_classes < 1:
        raise InputError(f"--classes must be at least 1, not {n_classes}")
    if box < MIN_BOX:
        raise InputError(f"--box must be at least {MIN_BOX} pixels, not {box}")
    if not (pixel_size > 0 and math.isfinite(pixel_size)):
        raise InputError(f"--pixel-size must be a positive number of Å, not {pixel_size}")
    if n_particles < 0:
        raise InputError(f"--particles must not be negative, not {n_particles}")
    if iterations < 1:
        raise InputError(f"--iterations must be at least 1, not {iterations}")


def iteration_numbers(iterations: int, final: int, *, step: int = 1) -> list[int]:
    """``iterations`` numbers from 0 to ``final`` (inclusive, evenly spread, multiples of
    ``step``); the last is always ``final``, which grows if more iterations are asked for."""
    final = max(final, (iterations - 1) * step)
    if iterations == 1:
        return [final]
    raw = np.linspace(0, final, iterations)
    numbers = sorted({round(float(x) / step) * step for x in raw} | {final})
    return [n for n in numbers if n <= final]


def _pick(rng: np.random.Generator, options: Sequence[tuple[str, float]]) -> str:
    names = [o[0] for o in options]
    weights = np.array([o[1] for o in options])
    return str(names[int(rng.choice(len(names), p=weights / weights.sum()))])


def _grade_weights(quality: float) -> np.ndarray:
    q = min(max(quality, 0.0), 1.0)
    return np.array([0.05 + 0.15 * q, 0.15 + 0.1 * q, 0.2, 0.25 - 0.1 * q, 0.35 - 0.15 * q])


def make_plan(
    *,
    n_classes: int,
    n_particles: int,
    pixel_size: float,
    seed: int,
    quality: float = 0.5,
) -> JobPlan:
    """Decide every class of a job.

    ``quality`` (0–1) shifts the grade mix: low for a project's first, rough 2D job, high
    for its last. With 10 or more classes every grade occurs and at least one class is
    empty. Resolutions below 2.05 × pixel size (beyond Nyquist) are raised to it.
    """
    rng = rng_for(seed, 1)
    k = n_classes
    n_empty = 0 if k < 10 else max(1, round(k * float(rng.uniform(0.04, 0.1))))
    grades = list(
        rng.choice(GRADES, size=k, p=_grade_weights(quality) / _grade_weights(quality).sum())
    )
    order = rng.permutation(k)
    if k >= 10:
        for g, pos in zip(GRADES, order[: len(GRADES)], strict=True):
            grades[pos] = g
    empty = set(order[len(GRADES) : len(GRADES) + n_empty].tolist()) if k >= 10 else set()
    for e in empty:
        grades[e] = "F"

    nyquist = 2.05 * pixel_size
    drafts = []
    for i in range(k):
        grade = str(grades[i])
        kind = "empty" if i in empty else _pick(rng, _KINDS_BY_GRADE[grade])
        lo, hi = RESOLUTION_RANGES[grade]
        lo = max(lo, nyquist)
        hi = max(hi, lo * 1.2)
        noise_range = (
            _NOISE[grade] if grade != "F" else _NOISE[kind if kind != "empty" else "noise"]
        )
        weight = 0.0 if kind == "empty" else _COUNT_WEIGHT[grade] * rng.lognormal(0.0, 0.35)
        if kind == "noise":
            weight *= 1.6
        drafts.append(
            {
                "grade": grade,
                "kind": kind,
                "resolution_a": round(float(rng.uniform(lo, hi)), 2),
                "noise": float(rng.uniform(*noise_range)),
                "rotation": random_rotation(rng),
                "geometry_seed": int(rng.integers(0, 2**62)),
                "weight": weight,
                "accuracy_rotation_deg": float(rng.uniform(*_ACCURACY_ROT[grade])),
                "accuracy_translation_a": float(rng.uniform(*_ACCURACY_TRANS[grade])),
            }
        )
    counts = _counts(rng, np.array([d["weight"] for d in drafts]), n_particles)
    classes = []
    for i, (d, n) in enumerate(zip(drafts, counts, strict=True)):
        if n == 0:  # no particle drawn (or planned empty): an empty class, whatever was planned
            d.update(grade="F", kind="empty", resolution_a=math.inf, noise=0.0)
        classes.append(
            ClassPlan(
                index=i,
                grade=d["grade"],
                kind=d["kind"],
                resolution_a=d["resolution_a"],
                count=int(n),
                noise=d["noise"],
                rotation=d["rotation"],
                geometry_seed=d["geometry_seed"],
                posterior_beta=_POSTERIOR_BETA[d["grade"]],
                ess_scale=_ESS_SCALE[d["grade"]],
                accuracy_rotation_deg=d["accuracy_rotation_deg"],
                accuracy_translation_a=d["accuracy_translation_a"],
            )
        )
    return JobPlan(classes=tuple(classes), seed=seed)


def _counts(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """Particle counts ∝ weights, summing to ``n``, at least 1 for every weighted class
    when there are particles enough (otherwise the lightest classes get none)."""
    alive = np.flatnonzero(weights > 0)
    counts = np.zeros(len(weights), dtype=np.int64)
    if n == 0 or len(alive) == 0:
        return counts
    if n < len(alive):
        chosen = alive[np.argsort(-weights[alive], kind="stable")[:n]]
        counts[chosen] = 1
        return counts
    p = weights[alive] / weights[alive].sum()
    counts[alive] = 1 + rng.multinomial(n - len(alive), p)
    return counts


def write_truth(path: str | os.PathLike[str], plan: JobPlan, *, empty_resolution: float) -> None:
    """``truth.csv``: each class's intended grade and kind, its resolution and count.

    ``class_index`` is 0-based: the image's position in the class-average stack (cryoSPARC
    ``blob/idx`` and ``alignments2D/class``; RELION ``rlnClassNumber`` − 1).
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class_index", "grade", "kind", "resolution_A", "particle_count"])
    for c in plan.classes:
        res = empty_resolution if c.empty else c.resolution_a
        w.writerow([c.index, c.grade, c.kind, "inf" if math.isinf(res) else f"{res:.2f}", c.count])
    write_text(path, buf.getvalue())
