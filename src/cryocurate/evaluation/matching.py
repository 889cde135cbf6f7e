"""Reproducible precision and recall: point picks against ground truth, masks against masks.

The portal stores ``confidence_precision`` / ``confidence_recall`` as author-supplied
percentages and documents no rule. Ours is stated in full and recorded with every score
(:data:`MATCH_RULE`, ``max_distance``, its unit) so anyone can recompute it:

**Points** (:func:`match_points`). A prediction and a ground-truth point may be paired when
their Euclidean distance is ``≤ max_distance``. Pairs are one-to-one, and the pairing is the
optimum, not a greedy guess: first the *number* of pairs is maximised, then, among pairings
with that many, the *total distance* is minimised. Candidate pairs come from a k-d tree
(``cKDTree.sparse_distance_matrix``), so only nearby points are ever compared; the candidate
graph is cut into connected components and each is solved exactly, by the Hungarian
algorithm (``scipy.optimize.linear_sum_assignment``) when small and by the sparse
``min_weight_full_bipartite_matching`` (LAPJVsp) when large. 10⁵ points per side take well
under a second. Greedy nearest-first matching can find fewer pairs than exist (the test
suite has a case); this cannot.

Then ``precision = matched / predictions``, ``recall = matched / truths``, ``F1`` their
harmonic mean and :meth:`PointScore.fbeta` the recall-weighted F-β (the CZII challenge
used β = 4). **Empty sets** are vacuous successes, so scores are always finite numbers in
[0, 1]: no predictions → precision 1.0 (none is wrong); no truth → recall 1.0 (none is
missed); F-scores follow from those (0 when exactly one side is empty, 1 when both are).

**Units.** Coordinates and ``max_distance`` share one unit. Pass voxel coordinates (as
annotation files hold them) with ``voxel_spacing_a`` to have both scaled to Å and
``max_distance`` read in Å (the unit the score then records); without it, any unit both sides
share is used as is. The rule the portal's users ask for, "within half the object's radius",
is :func:`default_max_distance`.

**Masks** (:func:`score_masks`, :func:`score_mask_slabs`, :class:`MaskAccumulator`). Nonzero
voxels (or those equal to ``label``) are foreground; counts are accumulated slab by slab, so
memory-mapped or chunked volumes of any size, or a generator of ``(pred, truth)`` slabs, are
scored without loading them whole.

Scores are fractions in [0, 1]; the catalog stores percentages (×100, :meth:`~PointScore.
percentages`), as the portal's ``confidence_precision`` / ``confidence_recall`` do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryocurate.errors import InputError

MATCH_RULE = (
    "one-to-one, Hungarian (scipy linear_sum_assignment) on pairs within max_distance, "
    "Euclidean distance in the given units; maximum number of pairs, then minimum total distance"
)

#: Components of the candidate graph with more (predictions × truths) than this are solved
#: with the sparse solver instead of a dense Hungarian cost matrix.
DENSE_LIMIT = 1_000_000


def default_max_distance(radius_a: float) -> float:
    """The default matching distance: half the object's radius (Å in, Å out)."""
    radius = float(radius_a)
    if not math.isfinite(radius) or radius <= 0:
        raise InputError(f"object radius must be a positive number of Å, got {radius_a}")
    return 0.5 * radius


def fbeta(precision: float, recall: float, beta: float = 1.0) -> float:
    """F-β: ``(1 + β²)·P·R / (β²·P + R)``; β > 1 weighs recall more. 0 when P = R = 0."""
    if not beta > 0:
        raise InputError(f"beta must be positive, got {beta}")
    b2 = beta * beta
    denominator = b2 * precision + recall
    return 0.0 if denominator == 0 else (1 + b2) * precision * recall / denominator


def _ratio(part: int, whole: int) -> float:
    return 1.0 if whole == 0 else part / whole


@dataclass(frozen=True)
class PointScore:
    """Precision and recall of predicted points against ground truth, with the rule used.

    ``pairs`` is ``(n_matched, 2)`` of (prediction index, truth index) and ``distances``
    their distances, in the score's unit; both are excluded from equality and repr.
    """

    precision: float
    recall: float
    f1: float
    n_pred: int
    n_truth: int
    n_matched: int
    max_distance: float
    unit: str
    total_distance: float
    pairs: np.ndarray = field(repr=False, compare=False)
    distances: np.ndarray = field(repr=False, compare=False)
    rule: str = MATCH_RULE

    def fbeta(self, beta: float) -> float:
        """F-β of this score (β = 4 is the CZII challenge's recall-weighted choice)."""
        return fbeta(self.precision, self.recall, beta)

    def percentages(self) -> tuple[float, float]:
        """(precision, recall) × 100, as the catalog and the portal store them."""
        return 100.0 * self.precision, 100.0 * self.recall

    def to_dict(self) -> dict[str, Any]:
        """Everything but the pairs, JSON-ready, for recording next to a stored score."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "n_pred": self.n_pred,
            "n_truth": self.n_truth,
            "n_matched": self.n_matched,
            "max_distance": self.max_distance,
            "unit": self.unit,
            "total_distance": self.total_distance,
            "rule": self.rule,
        }


def _as_xyz(points: Any, name: str) -> np.ndarray:
    xyz = getattr(points, "xyz", points)  # formats.annotations.Points, or an array
    arr = np.asarray(xyz, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 3)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"{name} must be an (n, 3) array of x, y, z; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        i = int(np.argmax(~np.isfinite(arr).all(axis=1)))
        raise InputError(f"{name} point {i} (counting from 0) is not finite: {arr[i].tolist()}")
    return arr


def match_points(
    pred: Any,
    truth: Any,
    max_distance: float,
    *,
    voxel_spacing_a: float | None = None,
) -> PointScore:
    """Score predicted points against ground truth by optimal one-to-one matching.

    ``pred`` and ``truth`` are ``(n, 3)`` arrays (or :class:`~cryocurate.formats.annotations.
    Points`). With ``voxel_spacing_a`` they are voxel coordinates, converted to Å, and
    ``max_distance`` is in Å; without it all three share whatever unit they are given in.
    See the module docstring for the rule and the empty-set convention.
    """
    p = _as_xyz(pred, "predictions")
    t = _as_xyz(truth, "ground truth")
    r = float(max_distance)
    if not math.isfinite(r) or r < 0:
        raise InputError(f"max_distance must be a finite distance ≥ 0, got {max_distance}")
    unit = "input units"
    if voxel_spacing_a is not None:
        spacing = float(voxel_spacing_a)
        if not math.isfinite(spacing) or spacing <= 0:
            raise InputError(f"voxel_spacing_a must be a positive number, got {voxel_spacing_a}")
        p, t, unit = p * spacing, t * spacing, "Å"
    pi, ti, d = _candidate_pairs(p, t, r)
    pairs, dist = _assign(len(p), len(t), pi, ti, d, r)
    m = len(pairs)
    precision, recall = _ratio(m, len(p)), _ratio(m, len(t))
    return PointScore(
        precision=precision,
        recall=recall,
        f1=fbeta(precision, recall, 1.0),
        n_pred=len(p),
        n_truth=len(t),
        n_matched=m,
        max_distance=r,
        unit=unit,
        total_distance=float(dist.sum()),
        pairs=pairs,
        distances=dist,
    )


def _candidate_pairs(
    p: np.ndarray, t: np.ndarray, r: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction index, truth index, distance) of every pair within ``r`` (inclusive)."""
    empty = np.zeros(0, dtype=np.int64)
    if len(p) == 0 or len(t) == 0:
        return empty, empty, np.zeros(0)
    from scipy.spatial import cKDTree

    # output_type="ndarray" keeps pairs at distance 0 (a sparse matrix would drop them).
    found = cKDTree(p).sparse_distance_matrix(cKDTree(t), r, output_type="ndarray")
    return found["i"].astype(np.int64), found["j"].astype(np.int64), found["v"].astype(float)


def _assign(
    n_pred: int,
    n_truth: int,
    pi: np.ndarray,
    ti: np.ndarray,
    d: np.ndarray,
    r: float,
    *,
    dense_limit: int = DENSE_LIMIT,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one pairs among candidate edges: most pairs, then least total distance.

    The candidate graph splits into connected components that are solved independently.
    Components with one prediction or one truth (a star: most of them in real data) can
    hold one pair only, the shortest edge, and are settled without a solver.

    Returns ``(pairs (m, 2), distances (m,))`` sorted by prediction index.
    """
    if len(pi) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    graph = sp.coo_matrix(
        (np.ones(len(pi)), (pi, ti + n_pred)), shape=(n_pred + n_truth, n_pred + n_truth)
    )
    _, labels = connected_components(graph, directed=False)
    component = labels[pi].astype(np.int64)
    # Sort edges by (component, distance): a star's shortest edge is then its first.
    order = np.lexsort((d, component))
    pi, ti, d, component = pi[order], ti[order], d[order], component[order]
    starts = np.flatnonzero(np.r_[True, component[1:] != component[:-1]])
    ends = np.r_[starts[1:], len(pi)]
    li = _local_index(component, pi, n_pred)
    lj = _local_index(component, ti, n_truth)
    n_rows = np.maximum.reduceat(li, starts) + 1
    n_cols = np.maximum.reduceat(lj, starts) + 1
    star = (n_rows == 1) | (n_cols == 1)
    chosen = [starts[star]]
    for s, e, nr, nc in zip(
        starts[~star].tolist(),
        ends[~star].tolist(),
        n_rows[~star].tolist(),
        n_cols[~star].tolist(),
        strict=True,
    ):
        chosen.append(s + _solve_component(li[s:e], lj[s:e], d[s:e], nr, nc, r, dense_limit))
    keep = np.concatenate(chosen)
    pairs = np.stack([pi[keep], ti[keep]], axis=1)
    by_pred = np.argsort(pairs[:, 0], kind="stable")
    return pairs[by_pred], d[keep][by_pred]


def _local_index(component: np.ndarray, node: np.ndarray, n: int) -> np.ndarray:
    """Each edge's node numbered 0, 1, … within its component (``component`` is sorted)."""
    keys, inverse = np.unique(component * n + node, return_inverse=True)
    first = np.searchsorted(keys // n, component)
    return inverse.reshape(-1) - first


def _solve_component(
    li: np.ndarray,
    lj: np.ndarray,
    d: np.ndarray,
    n_rows: int,
    n_cols: int,
    r: float,
    dense_limit: int,
) -> np.ndarray:
    """Indices (into this component's edges) of its optimal matching."""
    # Leaving a node unmatched must cost more than any saving in distance a matching can
    # make (at most min(n_rows, n_cols) · r), so the number of pairs is maximised first.
    big = (min(n_rows, n_cols) + 1) * (r + 1.0)
    if n_rows * n_cols > dense_limit:
        return _solve_sparse(li, lj, d, n_rows, n_cols, big)
    from scipy.optimize import linear_sum_assignment

    cost = np.full((n_rows, n_cols), big)
    cost[li, lj] = d
    edge = np.full((n_rows, n_cols), -1, dtype=np.int64)
    edge[li, lj] = np.arange(len(d))
    a, b = linear_sum_assignment(cost)
    found = edge[a, b]
    return np.sort(found[found >= 0])


def _solve_sparse(
    li: np.ndarray, lj: np.ndarray, d: np.ndarray, n_rows: int, n_cols: int, big: float
) -> np.ndarray:
    """The same optimum on a sparse graph, for components too big for a dense matrix.

    Square it up with dummies so a full matching always exists: rows = predictions + one
    dummy per truth, columns = truths + one dummy per prediction. A prediction left alone
    takes its own dummy column (cost ``big``), a truth its own dummy row (``big``), and the
    dummies of matched pairs meet through mirror edges (cost 0). Every weight gets +1 (a
    full matching has a fixed number of edges, so the optimum is unchanged) because the
    solver drops explicit zeros.
    """
    import scipy.sparse as sp
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    k = np.arange(len(d))
    rows = np.concatenate([li, np.arange(n_rows), n_rows + np.arange(n_cols), n_rows + lj])
    cols = np.concatenate([lj, n_cols + np.arange(n_rows), np.arange(n_cols), n_cols + li])
    weights = np.concatenate(
        [d + 1.0, np.full(n_rows, big + 1.0), np.full(n_cols, big + 1.0), np.ones(len(d))]
    )
    size = n_rows + n_cols
    matrix = sp.csr_matrix((weights, (rows, cols)), shape=(size, size))
    row_of, col_of = min_weight_full_bipartite_matching(matrix)
    match = np.empty(size, dtype=np.int64)
    match[row_of] = col_of
    match = match[:n_rows]  # the column each prediction went to
    real = match < n_cols
    lookup = {(a, b): e for a, b, e in zip(li.tolist(), lj.tolist(), k.tolist(), strict=True)}
    found = [
        lookup[(a, b)]
        for a, b in zip(np.flatnonzero(real).tolist(), match[real].tolist(), strict=True)
    ]
    return np.sort(np.array(found, dtype=np.int64))


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskScore:
    """Voxel-wise precision, recall and Dice of a predicted mask against a true one.

    ``n_pred`` / ``n_truth`` are foreground voxel counts, ``n_overlap`` voxels in both.
    Empty masks follow the point convention: no predicted voxels → precision 1.0, no true
    voxels → recall 1.0, both empty → Dice 1.0.
    """

    precision: float
    recall: float
    dice: float
    n_pred: int
    n_truth: int
    n_overlap: int

    @property
    def iou(self) -> float:
        """Intersection over union (Jaccard); 1.0 when both masks are empty."""
        union = self.n_pred + self.n_truth - self.n_overlap
        return _ratio(self.n_overlap, union)

    def percentages(self) -> tuple[float, float]:
        """(precision, recall) × 100, as the catalog stores them."""
        return 100.0 * self.precision, 100.0 * self.recall


class MaskAccumulator:
    """Counts foreground voxels slab by slab; :meth:`result` gives the :class:`MaskScore`.

    ``label``: count voxels equal to it (one class of a multi-label mask); default nonzero.
    """

    def __init__(self, *, label: int | None = None) -> None:
        self.label = label
        self.n_pred = 0
        self.n_truth = 0
        self.n_overlap = 0

    def _foreground(self, a: Any) -> np.ndarray:
        arr = np.asarray(a)
        return arr != 0 if self.label is None else arr == self.label

    def add(self, pred: Any, truth: Any) -> None:
        """Count one pair of co-located slabs (any shape, the same for both)."""
        p, t = self._foreground(pred), self._foreground(truth)
        if p.shape != t.shape:
            raise InputError(
                f"predicted slab is {'×'.join(map(str, p.shape))} but the true one is "
                f"{'×'.join(map(str, t.shape))}",
                hint="score masks of the same tomogram, cut into the same slabs",
            )
        self.n_pred += int(np.count_nonzero(p))
        self.n_truth += int(np.count_nonzero(t))
        self.n_overlap += int(np.count_nonzero(p & t))

    def result(self) -> MaskScore:
        both = self.n_pred + self.n_truth
        return MaskScore(
            precision=_ratio(self.n_overlap, self.n_pred),
            recall=_ratio(self.n_overlap, self.n_truth),
            dice=_ratio(2 * self.n_overlap, both),
            n_pred=self.n_pred,
            n_truth=self.n_truth,
            n_overlap=self.n_overlap,
        )


def score_masks(
    pred: Any, truth: Any = None, *, label: int | None = None, slab: int = 32
) -> MaskScore:
    """Score a predicted mask against a true one, without holding either in memory whole.

    ``score_masks(pred, truth)``: two volumes of the same shape (numpy, ``np.memmap``,
    mrcfile mmap, Zarr…), read ``slab`` planes along the first axis at a time.
    ``score_masks(pairs)``: an iterable of ``(pred_slab, truth_slab)`` pairs (e.g. a generator
    over z), consumed one pair at a time (the same as :func:`score_mask_slabs`).
    """
    if truth is None:
        return score_mask_slabs(pred, label=label)
    shape_p, shape_t = tuple(np.shape(pred)), tuple(np.shape(truth))
    if shape_p != shape_t:
        raise InputError(
            f"predicted mask is {'×'.join(map(str, shape_p))} but the true one is "
            f"{'×'.join(map(str, shape_t))}",
            hint="both masks must be at the tomogram's size for the same voxel spacing",
        )
    acc = MaskAccumulator(label=label)
    if len(shape_p) == 0:
        acc.add(pred, truth)
        return acc.result()
    step = max(1, int(slab))
    for start in range(0, shape_p[0], step):
        acc.add(pred[start : start + step], truth[start : start + step])
    return acc.result()


def score_mask_slabs(pairs: Iterable[tuple[Any, Any]], *, label: int | None = None) -> MaskScore:
    """Score masks given as an iterable of ``(pred_slab, truth_slab)`` pairs, one at a time."""
    acc = MaskAccumulator(label=label)
    for pred, truth in pairs:
        acc.add(pred, truth)
    return acc.result()
