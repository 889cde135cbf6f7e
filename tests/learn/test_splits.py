"""Splits by job: never one job on two sides, stratified by lab, deterministic by seed."""

from __future__ import annotations

import random

import pytest

from cryocurate.errors import InputError
from cryocurate.learn.splits import SPLITS, parse_fractions, split_counts, split_jobs


def _layout(rng: random.Random) -> dict[int, str | None]:
    """A random catalog: 1–6 labs (one maybe without a name) of 0–12 jobs, scattered ids."""
    jobs: dict[int, str | None] = {}
    ids = rng.sample(range(1, 10_000), 80)
    for lab_no in range(rng.randint(1, 6)):
        lab = None if lab_no == 5 else f"Lab {lab_no}"
        for _ in range(rng.randint(0, 12)):
            jobs[ids.pop()] = lab
    return jobs


@pytest.mark.parametrize("case", range(200))
def test_no_job_on_two_sides_and_every_lab_stratified(case):
    rng = random.Random(case)
    jobs = _layout(rng)
    fractions = rng.choice([(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.5, 0.5, 0.0), (1.0, 0.0, 0.0)])
    splits = split_jobs(jobs, fractions, seed=rng.randint(0, 2**31))
    # Every job in exactly one split; the splits' job lists are disjoint and cover all.
    assert set(splits.assignment) == set(jobs)
    listed = [job for split in SPLITS for job in splits.jobs(split)]
    assert sorted(listed) == sorted(jobs) and len(listed) == len(set(listed))
    for lab in {lab for lab in jobs.values()}:
        mine = [job for job, where in jobs.items() if where == lab]
        sides = [splits.assignment[job] for job in mine]
        if mine:
            assert "train" in sides
        wanted = [s for s, f in zip(SPLITS, fractions, strict=True) if f > 0]
        if len(mine) >= len(wanted):
            assert set(wanted) <= set(sides)
        for split, fraction in zip(SPLITS, fractions, strict=True):
            if fraction == 0:
                assert split not in sides
        # Counts follow the fractions to within the minimums' adjustments.
        for split, fraction in zip(SPLITS, fractions, strict=True):
            assert abs(sides.count(split) - len(mine) * fraction) < 1 + len(wanted)


def test_deterministic_by_seed_and_independent_of_order():
    jobs = {i: f"Lab {i % 3}" for i in range(1, 40)}
    a = split_jobs(jobs, seed=5)
    b = split_jobs(dict(reversed(list(jobs.items()))), seed=5)
    assert a.assignment == b.assignment
    others = {split_jobs(jobs, seed=s).assignment == a.assignment for s in range(6, 16)}
    assert False in others  # another seed gives another split


def test_a_new_lab_does_not_reshuffle_the_others():
    jobs = {i: "Lab A" for i in range(1, 21)}
    before = split_jobs(jobs, seed=3).assignment
    after = split_jobs({**jobs, **{100 + i: "Lab B" for i in range(9)}}, seed=3).assignment
    assert {job: after[job] for job in jobs} == before


def test_small_labs():
    assert split_counts(1, (0.8, 0.1, 0.1)) == [1, 0, 0]
    assert split_counts(2, (0.8, 0.1, 0.1)) == [2, 0, 0]
    assert split_counts(3, (0.8, 0.1, 0.1)) == [1, 1, 1]
    assert split_counts(10, (0.8, 0.1, 0.1)) == [8, 1, 1]
    assert split_counts(4, (0.5, 0.5, 0.0)) == [2, 2, 0]
    per_lab = split_jobs({1: "A", 2: "A", 3: "A", 4: "B"}, seed=0).per_lab()
    assert per_lab == {
        "A": {"train": 1, "validation": 1, "test": 1},
        "B": {"train": 1, "validation": 0, "test": 0},
    }


@pytest.mark.parametrize(
    "text", ["0.8,0.1", "0.8,0.1,0.2", "a,b,c", "0,0.5,0.5", "-0.1,0.6,0.5", "1.2,-0.1,-0.1"]
)
def test_bad_fractions_are_refused(text):
    with pytest.raises(InputError):
        parse_fractions(text)


def test_fractions_parse_and_seed_checked():
    assert parse_fractions("0.7, 0.15, 0.15") == (0.7, 0.15, 0.15)
    with pytest.raises(InputError):
        split_jobs({1: "A"}, seed=-1)
