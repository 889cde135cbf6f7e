"""Class plans: grades, resolutions, counts, iterations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryocurate.errors import InputError
from cryocurate.synth.plan import (
    GRADES,
    RESOLUTION_RANGES,
    check_options,
    iteration_numbers,
    make_plan,
)
from cryocurate.synth.relion import iterations_for, quantise


@pytest.mark.parametrize("seed", range(5))
def test_plan_is_consistent(seed):
    plan = make_plan(n_classes=50, n_particles=20_000, pixel_size=1.5, seed=seed)
    assert plan.n_particles == 20_000
    assert {c.grade for c in plan.classes} == set(GRADES)
    empty = [c for c in plan.classes if c.empty]
    assert empty and all(c.grade == "F" and c.kind == "empty" for c in empty)
    assert all(math.isinf(c.resolution_a) for c in empty)
    for c in plan.classes:
        if not c.empty:
            lo, hi = RESOLUTION_RANGES[c.grade]
            assert lo <= c.resolution_a <= hi
    mean = {
        g: np.mean([c.count for c in plan.classes if c.grade == g and not c.empty])
        for g in ("A", "D")
    }
    assert mean["A"] > mean["D"]


def test_few_particles_make_more_empty_classes():
    plan = make_plan(n_classes=20, n_particles=5, pixel_size=1.0, seed=1)
    assert plan.n_particles == 5
    assert sum(c.count > 0 for c in plan.classes) == 5
    assert make_plan(n_classes=4, n_particles=0, pixel_size=1.0, seed=1).n_particles == 0


def test_small_jobs_may_have_no_empty_class():
    plan = make_plan(n_classes=5, n_particles=1000, pixel_size=1.0, seed=1)
    assert all(c.count > 0 for c in plan.classes)


def test_nyquist_clamps_resolution():
    plan = make_plan(n_classes=30, n_particles=3000, pixel_size=4.0, seed=2)
    assert min(c.resolution_a for c in plan.classes) >= 8.2


def test_earlier_iterations():
    plan = make_plan(n_classes=20, n_particles=4000, pixel_size=1.5, seed=3)
    early = plan.at(0.0, 1600, 0)
    assert early.n_particles == 1600
    for a, b in zip(plan.classes, early.classes, strict=True):
        if a.empty:
            assert b.empty
        elif not b.empty:
            assert b.resolution_a > a.resolution_a and b.noise > a.noise
    assert plan.at(1.0, 4000, 20) is plan


def test_iteration_numbers():
    assert iteration_numbers(1, 20) == [20]
    assert iteration_numbers(2, 20) == [0, 20]
    assert iteration_numbers(3, 25) == [0, 12, 25]
    assert iteration_numbers(30, 20)[-1] == 29
    assert iterations_for(3, "5.0") == [0, 100, 200]
    assert iterations_for(2, "3.1", continued=True) == [0, 15, 25]


def test_quantise_to_shells():
    plan = quantise(make_plan(n_classes=12, n_particles=999, pixel_size=1.5, seed=4), 64, 1.5)
    for c in plan.classes:
        if not c.empty:
            shell = 64 * 1.5 / c.resolution_a
            assert shell == pytest.approx(round(shell), abs=0.01)


@pytest.mark.parametrize(
    "kw",
    [
        {"n_classes": 0},
        {"box": 8},
        {"pixel_size": -1.0},
        {"pixel_size": float("nan")},
        {"n_particles": -10},
        {"iterations": 0},
    ],
)
def test_check_options(kw):
    good = {"n_classes": 5, "box": 32, "pixel_size": 1.0, "n_particles": 10, "iterations": 1}
    check_options(**good)
    with pytest.raises(InputError):
        check_options(**{**good, **kw})
