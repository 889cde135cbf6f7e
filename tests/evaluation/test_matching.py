"""Precision and recall of points and masks on cases whose answers are known by construction.

Includes the case that motivates optimal matching: greedy nearest-first pairing finds one
pair where two exist. Optimality is also checked against an independent brute-force solver
on small random clouds, and the dense and sparse solvers against each other.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from cryocurate.errors import InputError
from cryocurate.evaluation import (
    MATCH_RULE,
    MaskAccumulator,
    default_max_distance,
    fbeta,
    match_points,
    score_mask_slabs,
    score_masks,
)
from cryocurate.evaluation.matching import _assign, _candidate_pairs
from cryocurate.formats.annotations import Points, read_ndjson, write_ndjson


def greedy_nearest_first(pred: np.ndarray, truth: np.ndarray, r: float) -> int:
    """The common shortcut: take candidate pairs shortest first, skipping used points."""
    d = np.linalg.norm(pred[:, None] - truth[None], axis=2)
    used_p, used_t, n = set(), set(), 0
    for flat in np.argsort(d, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, d.shape)
        if d[i, j] <= r and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            n += 1
    return n


def brute_force(pred: np.ndarray, truth: np.ndarray, r: float) -> tuple[int, float]:
    """(most pairs, least total distance for that many) by trying every assignment."""
    d = np.linalg.norm(pred[:, None] - truth[None], axis=2)
    best = (0, 0.0)
    small, large = (pred, truth) if len(pred) <= len(truth) else (truth, pred)
    dm = d if len(pred) <= len(truth) else d.T
    for perm in itertools.permutations(range(len(large)), len(small)):
        ok = [(i, j) for i, j in enumerate(perm) if dm[i, j] <= r]
        score = (len(ok), -sum(dm[i, j] for i, j in ok))
        if score > (best[0], -best[1]):
            best = (len(ok), -score[1])
    return best


# --------------------------------------------------------------------------------------------
# Points
# --------------------------------------------------------------------------------------------


def test_identical_sets_score_one():
    xyz = np.random.default_rng(0).uniform(0, 100, (200, 3))
    s = match_points(xyz, xyz, 1.0)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert s.n_matched == 200 and s.total_distance == 0.0
    np.testing.assert_array_equal(s.pairs, np.stack([np.arange(200)] * 2, axis=1))
    assert s.rule == MATCH_RULE and "Hungarian" in s.rule


def test_half_shifted_beyond_threshold_scores_half():
    truth = np.random.default_rng(1).uniform(0, 1000, (100, 3)) * [1, 1, 0]  # a plane z = 0
    pred = truth.copy()
    pred[::2, 2] += 5.0  # half lifted 5 units off the plane
    s = match_points(pred, truth, 4.0)
    assert (s.precision, s.recall) == (0.5, 0.5) and s.n_matched == 50
    s = match_points(pred, truth, 5.0)  # the bound is inclusive
    assert (s.precision, s.recall) == (1.0, 1.0)


def test_more_predictions_than_truth():
    truth = np.array([[0, 0, 0], [10, 0, 0], [20, 0, 0], [30, 0, 0]], dtype=float)
    extra = np.array([[0, 0, 1.5], [100, 100, 100], [50, 0, 0], [0, 60, 0]], dtype=float)
    pred = np.concatenate([truth + np.array([0.5, 0, 0]), extra])
    s = match_points(pred, truth, 2.0)
    assert s.n_matched == 4 and s.n_pred == 8 and s.n_truth == 4
    assert s.precision == 0.5 and s.recall == 1.0
    assert s.f1 == pytest.approx(2 * 0.5 / 1.5)
    assert s.fbeta(4) == pytest.approx(17 * 0.5 / (16 * 0.5 + 1))
    assert s.percentages() == (50.0, 100.0)
    # the pred at distance 0.5 wins over the one at 1.5 for truth 0
    assert s.pairs[0].tolist() == [0, 0] and s.total_distance == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("n_pred", "n_truth", "precision", "recall", "f1"),
    [(0, 0, 1.0, 1.0, 1.0), (0, 5, 1.0, 0.0, 0.0), (5, 0, 0.0, 1.0, 0.0)],
)
def test_empty_sets_are_vacuous_successes(n_pred, n_truth, precision, recall, f1):
    rng = np.random.default_rng(2)
    s = match_points(rng.uniform(size=(n_pred, 3)), rng.uniform(size=(n_truth, 3)), 1.0)
    assert (s.precision, s.recall, s.f1) == (precision, recall, f1)
    assert s.n_matched == 0 and s.pairs.shape == (0, 2)
    assert match_points([], [], 1.0).n_pred == 0  # plain empty lists work too


def test_greedy_trap_optimal_finds_both_pairs():
    #   P1     T0    P0        T1        (x axis; r = 1.5)
    #  -1.2    0     0.9       2.4
    # Greedy takes P0–T0 (0.9) first; then P1 can only reach T0 and P0's other option T1 is
    # left unmatched: 1 pair. The optimum pairs P0–T1 (1.5) and P1–T0 (1.2): 2 pairs.
    pred = np.array([[0.9, 0, 0], [-1.2, 0, 0]])
    truth = np.array([[0.0, 0, 0], [2.4, 0, 0]])
    assert greedy_nearest_first(pred, truth, 1.5) == 1
    s = match_points(pred, truth, 1.5)
    assert s.n_matched == 2 and (s.precision, s.recall) == (1.0, 1.0)
    assert sorted(s.pairs.tolist()) == [[0, 1], [1, 0]]
    assert s.total_distance == pytest.approx(2.7)


def test_among_maximal_matchings_total_distance_is_least():
    pred = np.array([[0.1, 0, 0], [0.9, 0, 0]])
    truth = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    s = match_points(pred, truth, 2.0)  # every pair is a candidate
    assert s.pairs.tolist() == [[0, 0], [1, 1]]
    assert s.total_distance == pytest.approx(0.2)
    np.testing.assert_allclose(s.distances, [0.1, 0.1])


@pytest.mark.parametrize("seed", range(25))
def test_optimal_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0, 4, (rng.integers(1, 7), 3))
    truth = rng.uniform(0, 4, (rng.integers(1, 7), 3))
    s = match_points(pred, truth, 1.8)
    n, total = brute_force(pred, truth, 1.8)
    assert s.n_matched == n
    assert s.total_distance == pytest.approx(total, abs=1e-9)
    assert len(set(s.pairs[:, 0])) == len(set(s.pairs[:, 1])) == n  # one-to-one
    assert (s.distances <= 1.8).all()


@pytest.mark.parametrize("seed", range(5))
def test_sparse_solver_agrees_with_dense(seed):
    rng = np.random.default_rng(seed)
    pred, truth = rng.uniform(0, 10, (80, 3)), rng.uniform(0, 10, (70, 3))
    pi, ti, d = _candidate_pairs(pred, truth, 2.5)
    dense_pairs, dense_d = _assign(80, 70, pi, ti, d, 2.5)
    sparse_pairs, sparse_d = _assign(80, 70, pi, ti, d, 2.5, dense_limit=0)
    assert len(dense_pairs) == len(sparse_pairs)
    assert dense_d.sum() == pytest.approx(sparse_d.sum(), abs=1e-9)
    assert len(set(sparse_pairs[:, 0])) == len(set(sparse_pairs[:, 1])) == len(sparse_pairs)


def test_voxel_coordinates_with_a_spacing_are_scored_in_angstrom(tmp_path):
    truth = Points([[100, 100, 50], [200, 100, 50]])
    pred = Points([[101, 100, 50], [205, 100, 50]])  # 1 and 5 voxels off
    write_ndjson(tmp_path / "t.ndjson", truth)
    write_ndjson(tmp_path / "p.ndjson", pred)
    radius_a = 60.0  # apo-ferritin
    r = default_max_distance(radius_a)
    assert r == 30.0
    s = match_points(read_ndjson(tmp_path / "p.ndjson"), read_ndjson(tmp_path / "t.ndjson"), r,
                     voxel_spacing_a=10.0)  # fmt: skip
    assert s.unit == "Å" and s.max_distance == 30.0
    assert s.n_matched == 1 and s.pairs.tolist() == [[0, 0]]
    np.testing.assert_allclose(s.distances, [10.0])
    record = s.to_dict()
    assert record["unit"] == "Å" and record["rule"] == MATCH_RULE and "pairs" not in record


def test_fbeta_helper():
    assert fbeta(1.0, 1.0, 4) == 1.0
    assert fbeta(0.0, 0.0) == 0.0
    assert fbeta(0.5, 1.0, 1) == pytest.approx(2 / 3)
    with pytest.raises(InputError):
        fbeta(1, 1, 0)


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((np.zeros((2, 2)), np.zeros((2, 3)), 1.0), {}, "predictions must be an"),
        ((np.zeros((2, 3)), [[np.nan, 0, 0]], 1.0), {}, "ground truth point 0"),
        ((np.zeros((2, 3)), np.zeros((2, 3)), -1.0), {}, "max_distance"),
        ((np.zeros((2, 3)), np.zeros((2, 3)), 1.0), {"voxel_spacing_a": 0}, "voxel_spacing_a"),
    ],
)
def test_bad_arguments(args, kwargs, words):
    with pytest.raises(InputError, match=words):
        match_points(*args, **kwargs)
    with pytest.raises(InputError, match="radius"):
        default_max_distance(-3)


def test_hundred_thousand_points_per_side_under_two_seconds():
    rng = np.random.default_rng(7)
    truth = rng.uniform(0, 1000, (100_000, 3))
    pred = truth + rng.normal(0, 1.0, truth.shape)
    pred[:10_000] = rng.uniform(0, 1000, (10_000, 3))  # 10 % false positives
    start = time.perf_counter()
    s = match_points(pred, truth, 5.0)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    assert s.n_pred == s.n_truth == 100_000
    assert 0.89 < s.precision < 0.92 and s.precision == s.recall


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def test_mask_scores_by_hand():
    pred = np.zeros((2, 3, 3), dtype=np.int8)
    truth = np.zeros((2, 3, 3), dtype=np.int8)
    pred[0, 0, :] = 1  # 3 voxels
    pred[1, 1, 1] = 1  # 1 voxel → 4 predicted
    truth[0, 0, :2] = 1  # 2 voxels, both predicted
    truth[1, 2, 2] = 1  # 1 voxel, missed → 3 true
    s = score_masks(pred, truth)
    assert (s.n_pred, s.n_truth, s.n_overlap) == (4, 3, 2)
    assert s.precision == 0.5 and s.recall == pytest.approx(2 / 3)
    assert s.dice == pytest.approx(4 / 7) and s.iou == pytest.approx(2 / 5)
    assert s.percentages() == (50.0, pytest.approx(200 / 3))
    assert score_masks(pred, truth, slab=1) == s  # slab size changes nothing


def test_mask_labels_and_nonzero_foreground():
    pred = np.array([[0, 1, 2, 2]], dtype=np.uint8)
    truth = np.array([[0, 2, 2, 1]], dtype=np.uint8)
    assert score_masks(pred, truth).n_overlap == 3  # any nonzero counts
    s = score_masks(pred, truth, label=2)
    assert (s.n_pred, s.n_truth, s.n_overlap) == (2, 2, 1)


def test_empty_masks():
    z = np.zeros((4, 4, 4), dtype=bool)
    one = z.copy()
    one[1, 1, 1] = True
    assert score_masks(z, z).dice == 1.0 and score_masks(z, z).iou == 1.0
    s = score_masks(z, one)
    assert (s.precision, s.recall, s.dice) == (1.0, 0.0, 0.0)
    s = score_masks(one, z)
    assert (s.precision, s.recall, s.dice) == (0.0, 1.0, 0.0)


def test_streaming_over_slabs_and_memmaps(tmp_path):
    rng = np.random.default_rng(3)
    shape = (64, 48, 40)
    pred_mm = np.lib.format.open_memmap(tmp_path / "p.npy", "w+", np.uint8, shape)
    truth_mm = np.lib.format.open_memmap(tmp_path / "t.npy", "w+", np.uint8, shape)
    pred_mm[:] = rng.random(shape) < 0.3
    truth_mm[:] = rng.random(shape) < 0.2
    pred_mm.flush()
    truth_mm.flush()
    whole_p, whole_t = np.asarray(pred_mm).astype(bool), np.asarray(truth_mm).astype(bool)
    expected = (whole_p.sum(), whole_t.sum(), (whole_p & whole_t).sum())
    p = np.load(tmp_path / "p.npy", mmap_mode="r")
    t = np.load(tmp_path / "t.npy", mmap_mode="r")
    s = score_masks(p, t, slab=5)
    assert (s.n_pred, s.n_truth, s.n_overlap) == expected
    slabs = ((p[z : z + 7], t[z : z + 7]) for z in range(0, shape[0], 7))  # a generator
    assert score_mask_slabs(slabs) == s
    assert score_masks((p[z], t[z]) for z in range(shape[0])) == s  # one iterable argument
    acc = MaskAccumulator()
    for z in range(shape[0]):
        acc.add(p[z], t[z])
    assert acc.result() == s


def test_mask_shape_mismatch():
    with pytest.raises(InputError, match="predicted mask is 2×3×3 but the true one is 3×3×2"):
        score_masks(np.zeros((2, 3, 3)), np.zeros((3, 3, 2)))
    with pytest.raises(InputError, match="predicted slab"):
        score_mask_slabs([(np.zeros((1, 3)), np.zeros((1, 4)))])
