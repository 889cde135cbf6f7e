"""Agreement figures on cases whose answers are known by hand, and against reference libraries.

Every metric is checked twice: on small matrices worked out in comments, and on seeded random
data against an independent implementation (``krippendorff`` for α, scikit-learn and
statsmodels for κ). The bootstrap is checked for what a confidence interval must do.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats import inter_rater

from cryocurate.errors import InputError
from cryocurate.grading.agreement import (
    CSV_FIELDS,
    agreement_report,
    alpha_with_ci,
    bootstrap_alpha,
    coincidence_matrix,
    consensus_agreement,
    fleiss_kappa,
    grade_distribution,
    json_number,
    kappa_from_table,
    krippendorff_alpha,
    labeller_bias,
    leave_one_out_consensus,
    level_indices,
    ordinal_alpha,
    pairwise_kappa,
    quadratic_kappa,
    repeat_consistency,
    report_rows,
    rounded_median,
    write_report_csv,
)

LEVELS = [1, 2, 3, 4, 5]
nan = math.nan


def simulate(
    n_items: int,
    n_labellers: int = 4,
    *,
    seed: int = 0,
    noise: float = 0.4,
    missing: float = 0.15,
) -> np.ndarray:
    """Grades = true level ± 1 with probability ``noise``, clipped, some missing."""
    rng = np.random.default_rng(seed)
    true = rng.integers(1, 6, n_items)
    step = rng.choice([-1, 0, 1], (n_labellers, n_items), p=[noise / 2, 1 - noise, noise / 2])
    ratings = np.clip(true + step, 1, 5).astype(float)
    ratings[rng.random(ratings.shape) < missing] = np.nan
    return ratings


# ----------------------------------------------------------------------------------------------
# The scale and the consensus rule


def test_level_indices_maps_values_and_keeps_nan() -> None:
    got = level_indices([[5, 1, nan], [3, 3, 2]], [5, 4, 3, 2, 1])  # given best first
    np.testing.assert_array_equal(got, [[4, 0, nan], [2, 2, 1]])


@pytest.mark.parametrize("bad", [[[0, 1]], [[1.5, 2]], [[6, 1]]])
def test_off_scale_grades_are_refused(bad: list[list[float]]) -> None:
    with pytest.raises(InputError, match="not on the scale"):
        level_indices(bad, LEVELS)


def test_scales_that_cannot_be_ordinal_are_refused() -> None:
    with pytest.raises(InputError):
        level_indices([[1]], [1])
    with pytest.raises(InputError):
        level_indices([[1]], [1, 1, 2])


def test_ratings_must_be_a_matrix() -> None:
    with pytest.raises(InputError, match="matrix"):
        krippendorff_alpha([1, 2, 3], LEVELS)


def test_rounded_median_rounds_halves_toward_the_middle() -> None:
    # Five levels (indices 0..4, middle 2): 0.5 → 1, 1.5 → 2, 2.5 → 2, 3.5 → 3.
    pairs = np.array([[0, 1, 2, 3, 4, nan, 1], [1, 2, 3, 4, 4, nan, nan]])
    np.testing.assert_array_equal(rounded_median(pairs, 5), [1, 2, 2, 3, 4, nan, 1])
    # Four levels (middle 1.5): 1.5 *is* the middle and goes down; 0.5 → 1; 2.5 → 2.
    np.testing.assert_array_equal(rounded_median([[1, 0, 2], [2, 1, 3]], 4), [1, 1, 2])
    # Odd counts take the middle value.
    assert rounded_median([[0], [4], [3]], 5).tolist() == [3]


def test_json_number() -> None:
    assert json_number(nan) is None
    assert json_number(None) is None
    assert json_number(np.float64(0.5)) == 0.5
    assert json_number(np.int64(3)) == 3 and isinstance(json_number(np.int64(3)), int)
    assert json_number(math.inf) is None


# ----------------------------------------------------------------------------------------------
# Hand-computed cases


def test_perfect_agreement_gives_alpha_and_kappa_one() -> None:
    grades = np.array([1, 2, 3, 4, 5, 2, 3], dtype=float)
    ratings = np.stack([grades, grades, grades])
    assert krippendorff_alpha(ratings, LEVELS) == pytest.approx(1.0)
    assert ordinal_alpha(coincidence_matrix(ratings, LEVELS)) == pytest.approx(1.0)
    assert quadratic_kappa(grades, grades, LEVELS) == pytest.approx(1.0)
    kappa, shared = pairwise_kappa(ratings, LEVELS)
    np.testing.assert_allclose(kappa, 1.0)
    np.testing.assert_array_equal(shared, 7)
    estimate = alpha_with_ci(ratings, LEVELS, n_resamples=200)
    assert estimate.estimate == pytest.approx(1.0)
    assert estimate.ci_low == pytest.approx(1.0) and estimate.ci_high == pytest.approx(1.0)
    assert all(b.mean == 0 and b.n == 7 for b in labeller_bias(ratings, LEVELS))
    assert all(
        c.exact == 1 and c.kappa == pytest.approx(1) for c in consensus_agreement(ratings, LEVELS)
    )


def test_quadratic_kappa_by_hand() -> None:
    # a = 1 1 2 2 3 3, b = 1 2 2 2 3 2 on levels 1..3 (indices 0..2, weights (i − j)²).
    # Observed: two disagreements, each one level apart → Σ w·p_obs = 2/6 = 1/3.
    # Margins: a = (1/3, 1/3, 1/3), b = (1/6, 4/6, 1/6). Expected Σ w·p_exp:
    #   i=0: 1/3 · (0·1/6 + 1·4/6 + 4·1/6) = 8/18
    #   i=1: 1/3 · (1·1/6 + 0·4/6 + 1·1/6) = 2/18
    #   i=2: 1/3 · (4·1/6 + 1·4/6 + 0·1/6) = 8/18      → total 1
    # κ = 1 − (1/3) / 1 = 2/3. Unused levels 4 and 5 change nothing (they add no mass).
    a = [1, 1, 2, 2, 3, 3]
    b = [1, 2, 2, 2, 3, 2]
    assert quadratic_kappa(a, b, [1, 2, 3]) == pytest.approx(2 / 3)
    assert quadratic_kappa(a, b, LEVELS) == pytest.approx(2 / 3)
    # Items one of them skipped are left out.
    assert quadratic_kappa([*a, nan, 5], [*b, 4, nan], LEVELS) == pytest.approx(2 / 3)
    assert cohen_kappa_score(a, b, weights="quadratic", labels=LEVELS) == pytest.approx(2 / 3)


def test_kappa_is_undefined_with_fewer_than_two_shared_items() -> None:
    assert math.isnan(quadratic_kappa([1, nan, 3], [2, 2, nan], LEVELS))
    assert math.isnan(kappa_from_table(np.zeros((5, 5))))
    # Both graders put everything at one level: no chance disagreement to compare with.
    assert math.isnan(quadratic_kappa([2, 2, 2], [2, 2, 2], LEVELS))
    ratings = np.array([[1, 2, 3, nan, nan], [1, 2, 3, nan, nan], [nan, nan, 3, 4, 5]])
    kappa, shared = pairwise_kappa(ratings, LEVELS)
    assert shared[0, 2] == 1 and math.isnan(kappa[0, 2]) and math.isnan(kappa[2, 0])
    assert kappa[0, 1] == pytest.approx(1.0)


def _one_harsher() -> np.ndarray:
    """ann and bob agree; cat is always exactly one level higher."""
    ann = [1, 2, 3, 4]
    return np.array([ann, ann, [2, 3, 4, 5]], dtype=float)


def test_a_labeller_always_one_higher_has_bias_plus_one() -> None:
    bias = labeller_bias(_one_harsher(), LEVELS)
    # cat − mean(ann, bob) = +1 on every item; ann − mean(bob, cat) = x − (x + 0.5) = −0.5.
    assert (bias[2].mean, bias[2].n) == (1.0, 4)
    assert (bias[0].mean, bias[0].n) == (-0.5, 4)
    assert bias[1].mean == -0.5


def test_leave_one_out_confusion_matrices_by_hand() -> None:
    ratings = _one_harsher()
    loo = leave_one_out_consensus(ratings, LEVELS)
    # For cat, the others agree: consensus = ann's indices 0 1 2 3.
    np.testing.assert_array_equal(loo[2], [0, 1, 2, 3])
    # For ann, the others are x and x+1: medians 0.5 1.5 2.5 3.5, rounded toward index 2.
    np.testing.assert_array_equal(loo[0], [1, 2, 2, 3])
    against = consensus_agreement(ratings, LEVELS)
    # Rows: others' consensus; columns: the labeller's own grade.
    assert against[2].confusion == [
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    assert (against[2].n, against[2].exact, against[2].within_one) == (4, 0.0, 1.0)
    assert against[0].confusion == [
        [0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
    ]
    assert (against[0].exact, against[0].within_one) == (0.5, 1.0)


def test_items_nobody_else_graded_are_left_out_of_labeller_figures() -> None:
    ratings = np.array([[1, 2, 3, 4], [1, 2, nan, nan], [nan, nan, nan, nan]])
    bias = labeller_bias(ratings, LEVELS)
    assert (bias[0].mean, bias[0].n) == (0.0, 2)
    assert (bias[2].mean, bias[2].n) == (None, 0)
    against = consensus_agreement(ratings, LEVELS)
    assert against[0].n == 2
    assert (against[2].n, against[2].exact, against[2].kappa) == (0, None, None)


def test_repeat_consistency_by_hand() -> None:
    # Differences 0 0 1 0 2 (the NaN pair is ignored): exact 3/5, within one 4/5, MAD 3/5.
    first = [1, 2, 3, 4, 5, nan]
    repeat = [1, 2, 4, 4, 3, 2]
    got = repeat_consistency(first, repeat, LEVELS)
    assert got.n == 5
    assert got.exact == pytest.approx(0.6)
    assert got.within_one == pytest.approx(0.8)
    assert got.mean_abs_diff == pytest.approx(0.6)
    want = cohen_kappa_score(first[:5], repeat[:5], weights="quadratic", labels=LEVELS)
    assert got.kappa == pytest.approx(want)
    empty = repeat_consistency([nan], [1], LEVELS)
    assert (empty.n, empty.exact, empty.kappa, empty.mean_abs_diff) == (0, None, None, None)
    with pytest.raises(InputError, match="pair up"):
        repeat_consistency([1, 2], [1], LEVELS)


def test_grade_distribution() -> None:
    per, overall = grade_distribution([[1, 1, 5, nan], [2, nan, nan, nan]], LEVELS)
    assert per.tolist() == [[2, 0, 0, 0, 1], [0, 1, 0, 0, 0]]
    assert overall.tolist() == [2, 1, 0, 0, 1]


def test_alpha_is_undefined_without_variation_or_pairs() -> None:
    assert math.isnan(krippendorff_alpha([[3, 3, 3], [3, 3, 3]], LEVELS))
    assert math.isnan(krippendorff_alpha([[1, nan], [nan, 2]], LEVELS))
    assert alpha_with_ci([[3, 3], [3, 3]], LEVELS).estimate is None
    assert alpha_with_ci([[3, 3], [3, 3]], LEVELS).ci_low is None


def test_levels_given_best_first_give_the_same_figures() -> None:
    ratings = simulate(200, seed=11)
    up = agreement_report(ratings, LEVELS, n_resamples=50).to_dict()
    down = agreement_report(ratings, LEVELS[::-1], n_resamples=50).to_dict()
    assert up == down
    assert up["levels"] == LEVELS


# ----------------------------------------------------------------------------------------------
# Cross-checks against reference implementations (seeded random data)


@pytest.mark.parametrize("seed", range(5))
def test_alpha_matches_the_krippendorff_package_with_missing_data(seed: int) -> None:
    ratings = simulate(300, n_labellers=3 + seed % 3, seed=seed, missing=0.3)
    want = krippendorff.alpha(ratings, level_of_measurement="ordinal", value_domain=LEVELS)
    assert krippendorff_alpha(ratings, LEVELS) == pytest.approx(want, abs=1e-12)
    assert ordinal_alpha(coincidence_matrix(ratings, LEVELS)) == pytest.approx(want, abs=1e-12)


def test_alpha_with_an_unused_level() -> None:
    # Nobody uses level 3. Ordinal distances count the grades between two levels, so an empty
    # level adds nothing: α is the same with or without it in the package's value_domain.
    rng = np.random.default_rng(5)
    ratings = rng.choice([1.0, 2.0, 4.0, 5.0], (3, 100))
    ratings[0, :10] = nan
    want = krippendorff.alpha(ratings, level_of_measurement="ordinal", value_domain=LEVELS)
    assert want == pytest.approx(krippendorff.alpha(ratings, level_of_measurement="ordinal"))
    assert krippendorff_alpha(ratings, LEVELS) == pytest.approx(want)
    assert ordinal_alpha(coincidence_matrix(ratings, LEVELS)) == pytest.approx(want)


# statsmodels' own standard error can take the square root of a tiny negative variance.
@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")
@pytest.mark.parametrize("seed", range(5))
def test_pairwise_kappa_matches_sklearn_and_statsmodels(seed: int) -> None:
    ratings = simulate(250, n_labellers=4, seed=100 + seed, missing=0.25)
    kappa, shared = pairwise_kappa(ratings, LEVELS)
    for i in range(4):
        for j in range(4):
            both = ~np.isnan(ratings[i]) & ~np.isnan(ratings[j])
            assert shared[i, j] == both.sum()
            a, b = ratings[i, both].astype(int), ratings[j, both].astype(int)
            want = cohen_kappa_score(a, b, weights="quadratic", labels=LEVELS)
            assert kappa[i, j] == pytest.approx(want, abs=1e-12)
            table = np.zeros((5, 5))
            np.add.at(table, (a - 1, b - 1), 1)
            sm = inter_rater.cohens_kappa(table, wt="quadratic")
            assert kappa_from_table(table) == pytest.approx(sm.kappa, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_fleiss_kappa_matches_statsmodels_on_complete_items(seed: int) -> None:
    ratings = simulate(300, n_labellers=4, seed=200 + seed, missing=0.05)
    complete = ~np.isnan(ratings).any(axis=0)
    table, _ = inter_rater.aggregate_raters(ratings[:, complete].T.astype(int), n_cat=None)
    got = fleiss_kappa(ratings, LEVELS)
    assert got.n_items == complete.sum()
    assert got.estimate == pytest.approx(inter_rater.fleiss_kappa(table, method="fleiss"))


def test_fleiss_kappa_without_complete_items_is_undefined() -> None:
    got = fleiss_kappa([[1, nan], [nan, 2]], LEVELS)
    assert (got.estimate, got.n_items) == (None, 0)


# ----------------------------------------------------------------------------------------------
# The bootstrap


def test_bootstrap_ci_contains_the_estimate_and_is_reproducible() -> None:
    ratings = simulate(400, seed=21)
    first = alpha_with_ci(ratings, LEVELS, n_resamples=1000, seed=7)
    again = alpha_with_ci(ratings, LEVELS, n_resamples=1000, seed=7)
    other = alpha_with_ci(ratings, LEVELS, n_resamples=1000, seed=8)
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low < first.estimate < first.ci_high
    assert first.n_items == (np.sum(~np.isnan(ratings), axis=0) >= 2).sum()
    np.testing.assert_array_equal(
        bootstrap_alpha(ratings, LEVELS, n_resamples=20, seed=3),
        bootstrap_alpha(ratings, LEVELS, n_resamples=20, seed=3),
    )


def test_bootstrap_ci_narrows_with_more_items() -> None:
    small = alpha_with_ci(simulate(200, seed=31), LEVELS, n_resamples=500)
    large = alpha_with_ci(simulate(5000, seed=31), LEVELS, n_resamples=500)
    assert large.ci_high - large.ci_low < 0.5 * (small.ci_high - small.ci_low)
    assert small.ci_low < small.estimate < small.ci_high
    assert large.ci_low < large.estimate < large.ci_high


def test_bootstrap_resamples_are_alphas_of_resampled_items() -> None:
    # The grouped multinomial resampling must agree in distribution with drawing items: its
    # resamples' mean and spread match a slow item-by-item bootstrap's.
    ratings = simulate(150, seed=41)
    fast = bootstrap_alpha(ratings, LEVELS, n_resamples=2000, seed=1)
    rng = np.random.default_rng(2)
    pairable = ratings[:, (~np.isnan(ratings)).sum(axis=0) >= 2]
    slow = np.array(
        [
            krippendorff_alpha(
                pairable[:, rng.integers(0, pairable.shape[1], pairable.shape[1])], LEVELS
            )
            for _ in range(400)
        ]
    )
    assert fast.mean() == pytest.approx(slow.mean(), abs=0.01)
    assert fast.std() == pytest.approx(slow.std(), rel=0.2)


def test_bootstrap_of_ten_thousand_items_is_fast() -> None:
    ratings = simulate(10_000, n_labellers=5, seed=51)
    start = time.perf_counter()
    estimate = alpha_with_ci(ratings, LEVELS, n_resamples=1000)
    assert time.perf_counter() - start < 2.0
    assert estimate.ci_low < estimate.estimate < estimate.ci_high


# ----------------------------------------------------------------------------------------------
# The report


def test_report_is_json_ready_and_documents_its_shape() -> None:
    ratings = simulate(120, n_labellers=3, seed=61)
    ratings[2] = nan  # a labeller with no grades at all
    ratings[2, 0] = 4
    report = agreement_report(
        ratings,
        LEVELS,
        ["ann", "bob", "cat"],
        repeats={"ann": ([1, 2, 3], [1, 3, 3])},
        level_labels=["A", "B", "C", "D", "F"],
        n_resamples=100,
    )
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(data) == {
        "levels",
        "level_labels",
        "labellers",
        "n_items",
        "n_grades",
        "alpha",
        "fleiss_kappa",
        "pairwise_kappa",
        "distribution",
        "per_labeller",
    }
    assert data["levels"] == LEVELS and data["level_labels"] == ["A", "B", "C", "D", "F"]
    assert data["n_items"] == 120 and data["n_grades"] == int((~np.isnan(ratings)).sum())
    assert set(data["alpha"]) == {
        "estimate",
        "ci_low",
        "ci_high",
        "confidence",
        "n_resamples",
        "seed",
        "n_items",
        "n_values",
    }
    assert data["pairwise_kappa"]["kappa"][0][2] is None  # one shared item
    assert data["pairwise_kappa"]["n_shared"][0][2] == int(not math.isnan(ratings[0, 0]))
    ann, bob, cat = data["per_labeller"]
    assert set(ann) == {"name", "n_graded", "distribution", "bias", "consensus", "repeats"}
    assert set(ann["consensus"]) == {"confusion", "n", "exact", "within_one", "kappa"}
    assert ann["repeats"] == {
        "n": 3,
        "exact": pytest.approx(2 / 3),
        "within_one": 1.0,
        "kappa": pytest.approx(
            cohen_kappa_score([1, 2, 3], [1, 3, 3], weights="quadratic", labels=LEVELS)
        ),
        "mean_abs_diff": pytest.approx(1 / 3),
    }
    assert bob["repeats"] is None
    assert sum(ann["distribution"]) == ann["n_graded"]
    assert cat["n_graded"] == 1
    assert data["fleiss_kappa"]["n_items"] <= 1


def test_report_refuses_inconsistent_arguments() -> None:
    ratings = simulate(10, n_labellers=2, seed=1)
    with pytest.raises(InputError, match="names"):
        agreement_report(ratings, LEVELS, ["only one"])
    with pytest.raises(InputError, match="unique"):
        agreement_report(ratings, LEVELS, ["x", "x"])
    with pytest.raises(InputError, match="unknown"):
        agreement_report(ratings, LEVELS, ["x", "y"], repeats={"z": ([1], [1])})
    with pytest.raises(InputError, match="level labels"):
        agreement_report(ratings, LEVELS, level_labels=["A"])


def test_report_csv_holds_every_figure_in_long_format() -> None:
    report = agreement_report(
        simulate(80, n_labellers=3, seed=71),
        LEVELS,
        ["ann", "bob", "cat"],
        repeats={"bob": ([1, 2], [1, 2])},
        n_resamples=50,
    )
    out = io.StringIO()
    write_report_csv(report, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_FIELDS
    assert len(rows) == len(list(report_rows(report)))

    def pick(**where: str) -> list[dict[str, str]]:
        return [r for r in rows if all(r[k] == v for k, v in where.items())]

    (alpha,) = pick(figure="alpha", statistic="estimate")
    assert float(alpha["value"]) == pytest.approx(report.alpha.estimate)
    assert len(pick(figure="pairwise_kappa", statistic="kappa")) == 9
    (cell,) = pick(figure="pairwise_kappa", statistic="kappa", labeller="ann", other="cat")
    assert float(cell["value"]) == pytest.approx(report.pairwise_kappa.kappa[0][2])
    overall = pick(figure="distribution", statistic="count", labeller="")
    assert [int(r["value"]) for r in overall] == report.distribution
    confusion = pick(figure="consensus_confusion", labeller="cat")
    assert len(confusion) == 25
    (c24,) = [r for r in confusion if (r["level"], r["other_level"]) == ("2", "4")]
    assert int(c24["value"]) == report.per_labeller[2].consensus.confusion[1][3]
    assert len(pick(figure="repeats", labeller="bob")) == 5
    assert pick(figure="repeats", labeller="ann") == []
    assert pick(figure="bias", statistic="mean", labeller="ann")


def test_report_csv_to_a_path(tmp_path) -> None:
    report = agreement_report(simulate(30, n_labellers=2, seed=81), LEVELS, n_resamples=10)
    path = tmp_path / "agreement.csv"
    write_report_csv(report, path)
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(CSV_FIELDS)
