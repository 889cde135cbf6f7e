"""Per-item consensus summaries by hand, and the Dawid–Skene model on simulated labellers.

The model's reason to exist is tested directly: when one labeller is systematically one grade
harsher, it recovers the true grades better than the plain median and finds the offset.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import time

import numpy as np
import pytest

from cryocurate.errors import InputError
from cryocurate.grading.consensus import (
    DISAGREEMENT_SPREAD,
    consensus_report,
    consensus_rows,
    dawid_skene,
    item_statistics,
    ordinal_prior,
    write_consensus_csv,
)

LEVELS = [1, 2, 3, 4, 5]
nan = math.nan


def one_harsh_labeller(
    n_items: int = 1500, n_labellers: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(ratings, true grades): honest labellers are off by one level 30 % of the time; labeller
    0 grades one level higher (harsher on A = 1 … F = 5) 80 % of the time, otherwise 0 or +2
    (clipped to the scale); 10 % of grades missing."""
    rng = np.random.default_rng(seed)
    true = rng.choice(np.arange(1, 6), n_items, p=[0.15, 0.2, 0.25, 0.2, 0.2])
    noise = rng.choice([-1, 0, 1], (n_labellers, n_items), p=[0.15, 0.7, 0.15])
    noise[0] += 1
    ratings = np.clip(true + noise, 1, 5).astype(float)
    ratings[rng.random(ratings.shape) < 0.1] = nan
    return ratings, true


# ----------------------------------------------------------------------------------------------
# Per-item summaries


def test_item_statistics_by_hand() -> None:
    ratings = np.array(
        [
            [1, 2, 1, nan, 3],
            [1, 3, 4, nan, nan],
            [1, 3, nan, nan, nan],
            [2, 4, nan, nan, nan],
        ]
    )
    got = item_statistics(ratings, LEVELS)
    np.testing.assert_array_equal(got.n_grades, [4, 4, 2, 0, 1])
    # Item 1: 2 3 3 4 → median 3; item 2: 1 and 4 → median 2.5, rounded toward 3 (the middle).
    np.testing.assert_array_equal(got.median, [1, 3, 2.5, nan, 3])
    np.testing.assert_array_equal(got.median_grade, [1, 3, 3, nan, 3])
    np.testing.assert_allclose(got.mean, [1.25, 3, 2.5, nan, 3])
    np.testing.assert_array_equal(got.spread, [1, 2, 3, nan, 0])
    # Spread ≥ 2 levels (two labellers as far apart as B and D) is flagged.
    np.testing.assert_array_equal(got.disagreement, [False, True, True, False, False])
    assert DISAGREEMENT_SPREAD == 2
    stricter = item_statistics(ratings, LEVELS, min_spread=3)
    np.testing.assert_array_equal(stricter.disagreement, [False, False, True, False, False])


def test_item_statistics_with_a_scale_given_best_first() -> None:
    ratings = np.array([[5, 1], [4, 1], [4, 3]], dtype=float)
    got = item_statistics(ratings, [5, 4, 3, 2, 1])
    np.testing.assert_array_equal(got.median_grade, [4, 1])
    np.testing.assert_array_equal(got.spread, [1, 2])


# ----------------------------------------------------------------------------------------------
# The model


def test_ordinal_prior_prefers_the_diagonal_then_its_neighbours() -> None:
    prior = ordinal_prior(5, strength=2.0, width=1.0)
    np.testing.assert_allclose(prior.sum(axis=1), 2.0)
    for k in range(5):
        row = prior[k]
        assert row.argmax() == k
        distance = np.abs(np.arange(5) - k)
        assert all(row[a] > row[b] for a in range(5) for b in range(5) if distance[a] < distance[b])
    with pytest.raises(InputError):
        ordinal_prior(5, strength=0, width=1)


def test_model_on_perfect_agreement_returns_the_grades() -> None:
    grades = np.tile([1.0, 2, 3, 4, 5, 3, 2, 1], 10)
    fit = dawid_skene(np.stack([grades] * 3), LEVELS)
    np.testing.assert_array_equal(fit.grade, grades)
    assert fit.converged
    assert np.all(fit.posterior.max(axis=1) > 0.99)
    # With only a handful of items the prior (two pseudo-grades per level) still shows.
    few = dawid_skene(np.stack([grades[:8]] * 3), LEVELS)
    np.testing.assert_array_equal(few.grade, grades[:8])
    assert np.all(few.posterior.max(axis=1) > 0.9)
    np.testing.assert_allclose(fit.bias, 0, atol=0.05)


def test_model_corrects_a_labeller_who_is_one_grade_harsher() -> None:
    ratings, true = one_harsh_labeller()
    median = item_statistics(ratings, LEVELS).median_grade
    fit = dawid_skene(ratings, LEVELS)
    median_accuracy = np.mean(median == true)
    model_accuracy = np.mean(fit.grade == true)
    assert model_accuracy > median_accuracy + 0.05, (model_accuracy, median_accuracy)
    # The harsh labeller's offset is found (below +1 only because F cannot go higher), the
    # others' is near zero, and the harsh one's confusion matrix is shifted one level right.
    assert 0.6 < fit.bias[0] < 1.1
    np.testing.assert_allclose(fit.bias[1:], 0, atol=0.15)
    for k in range(4):
        assert fit.confusion[0, k].argmax() == k + 1
        assert fit.confusion[1, k].argmax() == k
    assert fit.converged


def test_model_corrects_bias_on_several_seeds_and_fewer_labellers() -> None:
    for seed in range(3):
        ratings, true = one_harsh_labeller(n_items=600, n_labellers=3, seed=10 + seed)
        median = item_statistics(ratings, LEVELS).median_grade
        fit = dawid_skene(ratings, LEVELS)
        assert np.mean(fit.grade == true) > np.mean(median == true)


def test_model_is_deterministic() -> None:
    ratings, _ = one_harsh_labeller(n_items=400, seed=3)
    first = dawid_skene(ratings, LEVELS)
    second = dawid_skene(ratings.copy(), LEVELS)
    np.testing.assert_array_equal(first.posterior, second.posterior)
    np.testing.assert_array_equal(first.confusion, second.confusion)
    assert first.n_iter == second.n_iter


def test_model_probabilities_are_normalised() -> None:
    ratings, _ = one_harsh_labeller(n_items=300, seed=4)
    fit = dawid_skene(ratings, LEVELS)
    np.testing.assert_allclose(fit.posterior.sum(axis=1), 1)
    np.testing.assert_allclose(fit.confusion.sum(axis=2), 1)
    np.testing.assert_allclose(fit.class_prior.sum(), 1)
    assert np.all(fit.confusion > 0)
    assert np.all((fit.accuracy > 0) & (fit.accuracy < 1))


def test_each_em_step_raises_the_log_posterior() -> None:
    # EM (also in its MAP form) never decreases its objective; a bug in either step would.
    ratings, _ = one_harsh_labeller(n_items=300, seed=5)
    values = [dawid_skene(ratings, LEVELS, max_iter=k).log_posterior for k in range(1, 15)]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(values))


def test_iterations_are_capped() -> None:
    ratings, _ = one_harsh_labeller(n_items=300, seed=6)
    fit = dawid_skene(ratings, LEVELS, max_iter=2)
    assert (fit.n_iter, fit.converged) == (2, False)
    assert dawid_skene(ratings, LEVELS).n_iter < 500
    with pytest.raises(InputError):
        dawid_skene(ratings, LEVELS, max_iter=0)


def test_model_handles_missing_grades_and_ungraded_items() -> None:
    ratings, _ = one_harsh_labeller(n_items=200, seed=7)
    ratings[:, 5] = nan  # nobody graded item 5
    ratings[1:, 6] = nan  # only the harsh labeller graded item 6
    ratings[0, 6] = 3
    ratings[:, 7] = [nan, 2, nan, nan]
    fit = dawid_skene(ratings, LEVELS)
    assert math.isnan(fit.grade[5])
    np.testing.assert_allclose(fit.posterior[5], fit.class_prior)
    # The harsh labeller's lone 3 most likely means a true 2.
    assert fit.grade[6] == 2
    assert fit.grade[7] == 2
    assert np.all(np.isfinite(fit.grade[np.arange(200) != 5]))


def test_model_with_no_grades_at_all() -> None:
    fit = dawid_skene(np.full((2, 3), nan), LEVELS)
    assert np.all(np.isnan(fit.grade))
    np.testing.assert_allclose(fit.posterior, 0.2)


# ----------------------------------------------------------------------------------------------
# The report


def test_report_is_json_ready() -> None:
    ratings, _ = one_harsh_labeller(n_items=50, seed=8)
    ratings[:, 0] = nan
    report = consensus_report(ratings, LEVELS, ["h", "a", "b", "c"], [f"ca-{i}" for i in range(50)])
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(data) == {"levels", "labellers", "n_flagged", "items", "model", "per_labeller"}
    assert data["levels"] == LEVELS
    assert len(data["items"]) == 50
    assert set(data["items"][0]) == {
        "item",
        "n_grades",
        "median",
        "median_grade",
        "mean",
        "spread",
        "disagreement",
        "model_grade",
        "model_probability",
        "posterior",
    }
    empty = data["items"][0]
    assert empty["item"] == "ca-0" and empty["n_grades"] == 0
    assert empty["median"] is None and empty["model_grade"] is None and empty["spread"] is None
    assert data["n_flagged"] == sum(item["disagreement"] for item in data["items"])
    assert set(data["model"]) == {
        "method",
        "prior_strength",
        "prior_width",
        "class_prior",
        "n_iter",
        "converged",
        "log_posterior",
    }
    harsh = data["per_labeller"][0]
    assert set(harsh) == {"name", "n_graded", "confusion", "bias", "accuracy"}
    assert harsh["name"] == "h" and len(harsh["confusion"]) == 5


def test_report_refuses_mismatched_names() -> None:
    ratings, _ = one_harsh_labeller(n_items=10, seed=9)
    with pytest.raises(InputError, match="labeller names"):
        consensus_report(ratings, LEVELS, ["x"])
    with pytest.raises(InputError, match="item ids"):
        consensus_report(ratings, LEVELS, item_ids=[1, 2])


def test_consensus_csv_has_one_row_per_item() -> None:
    ratings, _ = one_harsh_labeller(n_items=20, seed=10)
    ratings[:, 3] = nan
    report = consensus_report(ratings, LEVELS)
    out = io.StringIO()
    write_consensus_csv(report, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 20 == len(list(consensus_rows(report)))
    assert list(rows[0])[-5:] == ["p_1", "p_2", "p_3", "p_4", "p_5"]
    assert rows[3]["model_grade"] == "" and rows[3]["n_grades"] == "0"
    assert float(rows[1]["p_2"]) == pytest.approx(report.items[1].posterior[1])


def test_model_on_ten_thousand_items_is_fast() -> None:
    ratings, true = one_harsh_labeller(n_items=10_000, n_labellers=5, seed=11)
    start = time.perf_counter()
    fit = dawid_skene(ratings, LEVELS)
    assert time.perf_counter() - start < 3.0
    assert fit.converged and np.mean(fit.grade == true) > 0.85
