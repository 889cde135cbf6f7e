"""How far several labellers agree when they grade the same items on an ordinal scale.

Why this module: grades are only worth training on if the people giving them agree, and a
grading campaign needs to show *how much* they agree, *who* drifts from the others and *in
which direction*. Every figure here is plain numpy over one matrix, so the web page, the CLI
table and the CSV/JSON download all compute the same numbers from the same rules.

**Input.** ``ratings`` is a float array of shape ``(n_labellers, n_items)`` holding grade
values from ``levels`` (e.g. ``[1, 2, 3, 4, 5]``: A = 1 … F = 5, or tilt-series quality 1–5),
with NaN where a labeller did not grade an item. ``levels`` may be given in any order (the
tilt-series scale is stored best first); the scale's order is the numeric order of the values.
Internally grades become *level indices* 0 … V−1 in that order, and every distance below is
counted in **levels** (steps of the scale), which equals the difference of grade values on the
usual 1–5 scales. A positive bias means "gives higher values than the others": harsher on the
letter scale (F = 5), more lenient on the tilt-series scale (5 = excellent).

**The figures** (the ordinal ones first; the scale is ordinal, and nominal figures of the same
data are much lower because they count a B-versus-C disagreement like B-versus-F):

* :func:`alpha_with_ci`: Krippendorff's α, ordinal metric, over all labellers with missing
  grades allowed; the point estimate is the ``krippendorff`` package's, the confidence interval
  a percentile bootstrap over items (:func:`bootstrap_alpha`, our own coincidence-matrix code,
  checked against the package in the tests).
* :func:`quadratic_kappa` and :func:`pairwise_kappa`: Cohen's κ with quadratic weights for
  each pair of labellers, on the items both graded.
* :func:`fleiss_kappa`: Fleiss' κ (nominal), a secondary figure, on the items every labeller
  graded.
* :func:`consensus_agreement`: each labeller against the leave-one-out consensus of the others
  (confusion matrix, exact and within-one agreement, κ).
* :func:`labeller_bias`: each labeller's mean offset from the mean of the others.
* :func:`repeat_consistency`: test–retest agreement on items shown to a labeller twice.
* :func:`grade_distribution`: counts per level, per labeller and overall.

:func:`agreement_report` computes all of them into an :class:`AgreementReport` whose
``to_dict()`` is JSON-ready (floats, ints, lists, ``None`` for undefined); :func:`report_rows`
and :func:`write_report_csv` flatten it into long-format rows (:data:`CSV_FIELDS`).

**Consensus rule** (:func:`rounded_median`, used by the leave-one-out consensus here and the
per-item median in :mod:`cryocurate.grading.consensus`): the median of the grades' level
indices; a median halfway between two levels (an even number of grades) is rounded toward the
middle of the scale, and, when it *is* the middle (possible only with an even number of
levels), toward the lower level. Rounding toward the middle rather than always up or down
keeps the rule from making the consensus systematically harsher or more lenient.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import krippendorff
import numpy as np
import numpy.typing as npt

from cryocurate.errors import InputError

__all__ = [
    "CSV_FIELDS",
    "AgreementReport",
    "AlphaEstimate",
    "Bias",
    "ConsensusAgreement",
    "FleissKappa",
    "LabellerStats",
    "PairwiseKappa",
    "RepeatConsistency",
    "agreement_report",
    "alpha_with_ci",
    "bootstrap_alpha",
    "coincidence_matrix",
    "consensus_agreement",
    "fleiss_kappa",
    "grade_distribution",
    "json_number",
    "kappa_from_table",
    "krippendorff_alpha",
    "labeller_bias",
    "leave_one_out_consensus",
    "level_indices",
    "median_ignoring_nan",
    "ordinal_alpha",
    "pairwise_kappa",
    "quadratic_kappa",
    "repeat_consistency",
    "report_rows",
    "rounded_median",
    "sorted_levels",
    "write_report_csv",
]


# ----------------------------------------------------------------------------------------------
# The scale: grade values ↔ level indices, medians, JSON numbers


def sorted_levels(levels: Sequence[float] | npt.ArrayLike) -> np.ndarray:
    """The scale's values in ascending order, refusing scales that cannot be ordinal.

    Why: every function works on level indices, and they must mean the same thing everywhere;
    duplicate or non-finite values would make an index ambiguous.
    """
    values = np.asarray(levels, dtype=float).ravel()
    if values.size < 2:
        raise InputError("a grading scale needs at least two levels", where=str(list(values)))
    if not np.all(np.isfinite(values)):
        raise InputError("grade levels must be finite numbers", where=str(values.tolist()))
    values = np.sort(values)
    if np.any(np.diff(values) == 0):
        raise InputError("grade levels must be distinct", where=str(values.tolist()))
    return values


def level_indices(ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike) -> np.ndarray:
    """``ratings`` (any shape, NaN = not graded) as float level indices 0 … V−1, NaN kept.

    Why: ordinal statistics depend on the order of the grades, not their values, and a value
    that is not on the scale is a bug upstream that must not be silently binned.
    """
    values = sorted_levels(levels)
    grades = np.asarray(ratings, dtype=float)
    given = ~np.isnan(grades)
    index = np.searchsorted(values, np.where(given, grades, values[0]))
    index = np.minimum(index, len(values) - 1)
    off_scale = given & (values[index] != grades)
    if np.any(off_scale):
        bad = sorted(set(grades[off_scale].tolist()))[:5]
        raise InputError(
            f"grades {bad} are not on the scale",
            hint=f"the levels are {[_plain(v) for v in values]}; use NaN for 'not graded'",
        )
    return np.where(given, index, np.nan)


def median_ignoring_nan(x: npt.ArrayLike, axis: int = 0) -> np.ndarray:
    """The median along ``axis`` of the non-NaN entries; NaN where there are none.

    Why not ``np.nanmedian``: it warns on every all-NaN column (an item nobody graded is a
    normal state here, not an error), and this sort-based version is vectorised just as well.
    """
    arr = np.moveaxis(np.asarray(x, dtype=float), axis, 0)
    if arr.shape[0] == 0:
        return np.full(arr.shape[1:], np.nan)
    ordered = np.sort(arr, axis=0)  # NaN sort last
    count = np.sum(~np.isnan(arr), axis=0)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, arr.shape[0] - 1)
    low = np.take_along_axis(ordered, lo[None], axis=0)[0]
    high = np.take_along_axis(ordered, hi[None], axis=0)[0]
    return np.where(count > 0, (low + high) / 2, np.nan)


def rounded_median(indices: npt.ArrayLike, n_levels: int, axis: int = 0) -> np.ndarray:
    """The consensus level index along ``axis``: the median, halves rounded toward the middle.

    See the module docstring for why halves go toward the middle of the scale (index
    ``(n_levels − 1) / 2``) and, exactly at the middle, down. NaN where nothing was graded.
    """
    median = median_ignoring_nan(indices, axis=axis)
    lo, hi = np.floor(median), np.ceil(median)
    middle = (n_levels - 1) / 2
    return np.where(np.abs(lo - middle) <= np.abs(hi - middle), lo, hi)


def json_number(x: float | np.floating | np.integer | None) -> float | int | None:
    """A plain Python number for JSON, ``None`` for NaN/∞/None (JSON has no NaN)."""
    if x is None:
        return None
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return int(x)
    value = float(x)
    return value if math.isfinite(value) else None


def _plain(value: float) -> float | int:
    """A level value as an int when it is one, so ``[1, 2, 3]`` does not become ``[1.0, …]``."""
    return int(value) if float(value).is_integer() else float(value)


def _ratings_matrix(
    ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> tuple[np.ndarray, int]:
    """(level indices of shape (n_labellers, n_items), V), refusing anything but a matrix."""
    index = level_indices(ratings, levels)
    if index.ndim != 2:
        raise InputError(
            f"ratings must be a (labellers × items) matrix, got shape {index.shape}",
            hint="one row per labeller, one column per item, NaN where not graded",
        )
    return index, len(sorted_levels(levels))


def _value_counts(index: np.ndarray, n_levels: int) -> np.ndarray:
    """(n_items, V) counts: how many labellers put each item at each level."""
    return np.stack([np.sum(index == level, axis=0) for level in range(n_levels)], axis=1)


# ----------------------------------------------------------------------------------------------
# Krippendorff's alpha (ordinal) and its bootstrap


@dataclass(frozen=True)
class AlphaEstimate:
    """Krippendorff's ordinal α with a percentile-bootstrap confidence interval.

    ``estimate`` is ``None`` when α is undefined (fewer than two pairable grades, or every grade
    the same level, so there is no variation to agree on); ``ci_low``/``ci_high`` are ``None``
    then, or when ``n_resamples`` is 0. ``n_items`` counts the items graded at least twice (the
    only ones α uses), ``n_values`` their grades.
    """

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    n_resamples: int
    seed: int
    n_items: int
    n_values: int


def krippendorff_alpha(ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike) -> float:
    """Krippendorff's α, ordinal metric, from the ``krippendorff`` package; NaN if undefined.

    Why the package for the headline figure: it is the reference implementation. The call
    spells out ``level_of_measurement="ordinal"`` (the package's default is *interval*) and the
    full ``value_domain``. An unused level changes no ordinal distance (those count the grades
    between two levels, and it has none), so the domain does not change α; it is passed so the
    call states the scale it is about.
    """
    index, n_levels = _ratings_matrix(ratings, levels)
    counts = _value_counts(index, n_levels)
    if counts.shape[0] == 0 or not np.any(counts.sum(axis=1) >= 2):
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(
            krippendorff.alpha(
                value_counts=counts,
                value_domain=np.arange(n_levels),
                level_of_measurement="ordinal",
            )
        )


def coincidence_matrix(
    ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> np.ndarray:
    """Krippendorff's V×V coincidence matrix ``o[c, k]`` (pairable values only).

    Each item graded by ``m ≥ 2`` labellers contributes every ordered pair of its grades from
    different labellers, weighted ``1 / (m − 1)``; items graded once contribute nothing.
    Exposed so the bootstrap's arithmetic can be checked against the package.
    """
    index, n_levels = _ratings_matrix(ratings, levels)
    counts = _value_counts(index, n_levels).astype(float)
    return _item_coincidences(counts).sum(axis=0)


def _item_coincidences(counts: np.ndarray) -> np.ndarray:
    """(n, V, V) coincidences of each item's count vector (zero for items graded < 2 times)."""
    m = counts.sum(axis=1)
    pairs = counts[:, :, None] * counts[:, None, :]
    pairs -= counts[:, :, None] * np.eye(counts.shape[1])[None]
    scale = np.divide(1.0, m - 1, out=np.zeros_like(m), where=m >= 2)
    return pairs * scale[:, None, None]


def _ordinal_distances(n_v: np.ndarray) -> np.ndarray:
    """Krippendorff's ordinal δ²[c, k] for level totals ``n_v`` of shape (..., V).

    δ²(c, k) = (Σ_{g=c..k} n_g − (n_c + n_k)/2)², which for c ≤ k equals
    (cum_k − cum_c + (n_c − n_k)/2)²; the same expression is its own mirror for c > k.
    """
    cum = np.cumsum(n_v, axis=-1)
    return (
        cum[..., None, :] - cum[..., :, None] + (n_v[..., :, None] - n_v[..., None, :]) / 2
    ) ** 2


def ordinal_alpha(coincidences: npt.ArrayLike) -> np.ndarray:
    """Ordinal α from coincidence matrices of shape (..., V, V); NaN where undefined.

    α = 1 − (n − 1) Σ o·δ² / Σ n_c n_k δ², with n_c the row totals and n their sum. Vectorised
    over leading axes so a thousand bootstrap resamples are one call.
    """
    o = np.asarray(coincidences, dtype=float)
    n_v = o.sum(axis=-1)
    n = n_v.sum(axis=-1)
    delta = _ordinal_distances(n_v)
    observed = (o * delta).sum(axis=(-2, -1))
    expected = (n_v[..., :, None] * n_v[..., None, :] * delta).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1 - (n - 1) * observed / expected
    return np.where(expected > 0, alpha, np.nan)


def bootstrap_alpha(
    ratings: npt.ArrayLike,
    levels: Sequence[float] | npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Ordinal α of ``n_resamples`` resamples of the items, drawn with replacement.

    Only items graded at least twice are resampled (the others carry no information about
    agreement, and drawing them would only add noise to the effective sample size). Items with
    the same grade counts have the same coincidences, so the items are grouped into their
    distinct count vectors (at most a few hundred on a 5-level scale) and a resample is the
    multinomial number of draws of each group, which has exactly the distribution of drawing
    items one by one. 1000 resamples of 10⁴ items cost milliseconds. Deterministic for a
    ``seed``. Returns NaN for resamples where α is undefined.
    """
    index, n_levels = _ratings_matrix(ratings, levels)
    counts = _value_counts(index, n_levels)
    counts = counts[counts.sum(axis=1) >= 2]
    if n_resamples <= 0 or counts.shape[0] == 0:
        return np.full(max(n_resamples, 0), np.nan)
    patterns, frequency = np.unique(counts, axis=0, return_counts=True)
    per_pattern = _item_coincidences(patterns.astype(float)).reshape(len(patterns), -1)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(counts.shape[0], frequency / counts.shape[0], size=n_resamples)
    resampled = (draws @ per_pattern).reshape(n_resamples, n_levels, n_levels)
    return ordinal_alpha(resampled)


def alpha_with_ci(
    ratings: npt.ArrayLike,
    levels: Sequence[float] | npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AlphaEstimate:
    """Ordinal Krippendorff's α with a percentile bootstrap CI over items.

    The point estimate comes from the ``krippendorff`` package; the interval is the
    ``(1 − confidence)/2`` and ``(1 + confidence)/2`` percentiles of :func:`bootstrap_alpha`
    (resamples where α is undefined are left out).
    """
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, got {confidence}")
    index, n_levels = _ratings_matrix(ratings, levels)
    counts = _value_counts(index, n_levels)
    pairable = counts.sum(axis=1) >= 2
    estimate = krippendorff_alpha(ratings, levels)
    low = high = math.nan
    if math.isfinite(estimate) and n_resamples > 0:
        alphas = bootstrap_alpha(ratings, levels, n_resamples=n_resamples, seed=seed)
        alphas = alphas[np.isfinite(alphas)]
        if alphas.size:
            tail = (1 - confidence) / 2 * 100
            low, high = np.percentile(alphas, [tail, 100 - tail]).tolist()
    return AlphaEstimate(
        estimate=json_number(estimate),
        ci_low=json_number(low),
        ci_high=json_number(high),
        confidence=float(confidence),
        n_resamples=int(n_resamples),
        seed=int(seed),
        n_items=int(pairable.sum()),
        n_values=int(counts[pairable].sum()),
    )


# ----------------------------------------------------------------------------------------------
# Cohen's kappa (quadratic) and Fleiss' kappa


def kappa_from_table(table: npt.ArrayLike) -> float:
    """Cohen's κ with quadratic weights from a V×V contingency table; NaN if undefined.

    κ_w = 1 − Σ w·p_obs / Σ w·p_exp with w[i, j] = (i − j)² and p_exp the product of the
    margins (the normalisation of w cancels). Undefined with no items, or when chance
    disagreement is zero (both raters used one and the same level throughout).
    """
    t = np.asarray(table, dtype=float)
    n = t.sum()
    if n == 0:
        return math.nan
    observed = t / n
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    steps = np.arange(t.shape[0])
    weights = (steps[:, None] - steps[None, :]) ** 2
    chance = float((weights * expected).sum())
    if chance <= 0:
        return math.nan
    return 1 - float((weights * observed).sum()) / chance


def _table(first: np.ndarray, second: np.ndarray, n_levels: int) -> np.ndarray:
    """V×V counts of (first, second) level-index pairs where both are graded."""
    both = ~np.isnan(first) & ~np.isnan(second)
    flat = first[both].astype(int) * n_levels + second[both].astype(int)
    return np.bincount(flat, minlength=n_levels * n_levels).reshape(n_levels, n_levels)


def quadratic_kappa(
    first: npt.ArrayLike, second: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> float:
    """Quadratic-weighted Cohen's κ of two graders on the items both graded (NaN = missing).

    NaN when they share fewer than two items or κ is undefined (see :func:`kappa_from_table`).
    Quadratic weights suit an ordinal scale: a B-versus-D disagreement costs four times a
    B-versus-C one.
    """
    a = level_indices(first, levels).ravel()
    b = level_indices(second, levels).ravel()
    if a.shape != b.shape:
        raise InputError(f"the two graders' arrays differ in length ({a.size} and {b.size})")
    table = _table(a, b, len(sorted_levels(levels)))
    return kappa_from_table(table) if table.sum() >= 2 else math.nan


@dataclass(frozen=True)
class PairwiseKappa:
    """Quadratic κ of every pair of labellers: ``kappa[i][j]`` (symmetric, ``None`` where they
    share fewer than two items or κ is undefined; the diagonal is each labeller with themself)
    and ``n_shared[i][j]`` (items both graded; the diagonal is each labeller's count)."""

    labellers: list[str]
    kappa: list[list[float | None]]
    n_shared: list[list[int]]


def pairwise_kappa(
    ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """(κ matrix with NaN where undefined, shared-item counts), both (n_labellers, n_labellers)."""
    index, n_levels = _ratings_matrix(ratings, levels)
    n_labellers = index.shape[0]
    kappa = np.full((n_labellers, n_labellers), np.nan)
    graded = ~np.isnan(index)
    shared = (graded[:, None, :] & graded[None, :, :]).sum(axis=2)
    for i in range(n_labellers):
        for j in range(i, n_labellers):
            if shared[i, j] >= 2:
                kappa[i, j] = kappa[j, i] = kappa_from_table(_table(index[i], index[j], n_levels))
    return kappa, shared


@dataclass(frozen=True)
class FleissKappa:
    """Fleiss' κ (nominal) on the ``n_items`` items every labeller graded; ``None`` if
    undefined. Secondary: it ignores the order of the grades."""

    estimate: float | None
    n_items: int


def fleiss_kappa(ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike) -> FleissKappa:
    """Fleiss' κ (Fleiss 1971) over the items graded by every labeller.

    Why only complete items: Fleiss' formula assumes the same number of raters per item;
    Krippendorff's α is the figure that uses incomplete items.
    """
    index, n_levels = _ratings_matrix(ratings, levels)
    complete = ~np.any(np.isnan(index), axis=0)
    n_raters = index.shape[0]
    table = _value_counts(index[:, complete], n_levels).astype(float)
    n_items = table.shape[0]
    if n_items == 0 or n_raters < 2:
        return FleissKappa(estimate=None, n_items=int(n_items))
    p_level = table.sum(axis=0) / (n_items * n_raters)
    p_item = ((table**2).sum(axis=1) - n_raters) / (n_raters * (n_raters - 1))
    chance = float((p_level**2).sum())
    if chance >= 1:
        return FleissKappa(estimate=None, n_items=int(n_items))
    estimate = (float(p_item.mean()) - chance) / (1 - chance)
    return FleissKappa(estimate=json_number(estimate), n_items=int(n_items))


# ----------------------------------------------------------------------------------------------
# Each labeller against the others


def leave_one_out_consensus(
    ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> np.ndarray:
    """(n_labellers, n_items) level index of the *others'* consensus for each labeller.

    Row ``j`` is the :func:`rounded_median` of every labeller's grade but ``j``'s; NaN where no
    one else graded the item. Leaving the labeller out matters: with few labellers, their own
    grade would pull the consensus toward them and hide their bias.
    """
    index, n_levels = _ratings_matrix(ratings, levels)
    consensus = np.full(index.shape, np.nan)
    for j in range(index.shape[0]):
        consensus[j] = rounded_median(np.delete(index, j, axis=0), n_levels, axis=0)
    return consensus


@dataclass(frozen=True)
class ConsensusAgreement:
    """One labeller against the leave-one-out consensus of the others.

    ``confusion[r][c]``: items where the others' consensus is level ``r`` and this labeller gave
    level ``c`` (levels in ascending order, as :attr:`AgreementReport.levels`), over the ``n``
    items they graded and at least one other did. ``exact`` / ``within_one``: shares of those
    items where they match the consensus, or are at most one level off; ``kappa``: quadratic κ
    of labeller versus consensus. ``None`` where undefined (no such items).
    """

    confusion: list[list[int]]
    n: int
    exact: float | None
    within_one: float | None
    kappa: float | None


def consensus_agreement(
    ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> list[ConsensusAgreement]:
    """Each labeller's :class:`ConsensusAgreement`, in row order."""
    index, n_levels = _ratings_matrix(ratings, levels)
    others = leave_one_out_consensus(ratings, levels)
    result = []
    for own, consensus in zip(index, others, strict=True):
        table = _table(consensus, own, n_levels)
        n = int(table.sum())
        steps = np.abs(np.subtract.outer(np.arange(n_levels), np.arange(n_levels)))
        result.append(
            ConsensusAgreement(
                confusion=table.tolist(),
                n=n,
                exact=json_number(np.trace(table) / n) if n else None,
                within_one=json_number(table[steps <= 1].sum() / n) if n else None,
                kappa=json_number(kappa_from_table(table)) if n >= 2 else None,
            )
        )
    return result


@dataclass(frozen=True)
class Bias:
    """Mean of (this labeller's grade − mean of the others' grades), in levels, over the ``n``
    items they graded and at least one other did; ``None`` when ``n`` is 0. Positive = higher
    values than the others (harsher on A = 1 … F = 5)."""

    mean: float | None
    n: int


def labeller_bias(ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike) -> list[Bias]:
    """Each labeller's :class:`Bias`, in row order.

    Against the others' *mean* (not the median consensus), so that a labeller who is half a
    level harsher shows +0.5 rather than being rounded away.
    """
    index, _ = _ratings_matrix(ratings, levels)
    graded = ~np.isnan(index)
    totals = np.where(graded, index, 0).sum(axis=0)
    counts = graded.sum(axis=0)
    result = []
    for j in range(index.shape[0]):
        n_others = counts - graded[j]
        shared = graded[j] & (n_others > 0)
        if not shared.any():
            result.append(Bias(mean=None, n=0))
            continue
        others_mean = (totals[shared] - index[j, shared]) / n_others[shared]
        offset = float(np.mean(index[j, shared] - others_mean))
        result.append(Bias(mean=json_number(offset), n=int(shared.sum())))
    return result


@dataclass(frozen=True)
class RepeatConsistency:
    """Test–retest agreement of one labeller on the ``n`` items they graded twice.

    ``exact`` / ``within_one``: shares of repeats with the same grade, or at most one level
    apart; ``kappa``: quadratic κ of first versus repeat grade (``None`` below two repeats or
    when undefined); ``mean_abs_diff``: mean absolute difference in levels.
    """

    n: int
    exact: float | None
    within_one: float | None
    kappa: float | None
    mean_abs_diff: float | None


def repeat_consistency(
    first: npt.ArrayLike, repeat: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> RepeatConsistency:
    """:class:`RepeatConsistency` of one labeller from aligned first and repeat grades.

    ``first[i]`` and ``repeat[i]`` are the same labeller's two grades of one item; pairs with
    a NaN on either side are ignored.
    """
    a = level_indices(first, levels).ravel()
    b = level_indices(repeat, levels).ravel()
    if a.shape != b.shape:
        raise InputError(f"first and repeat grades must pair up, got {a.size} and {b.size} grades")
    both = ~np.isnan(a) & ~np.isnan(b)
    n = int(both.sum())
    if n == 0:
        return RepeatConsistency(n=0, exact=None, within_one=None, kappa=None, mean_abs_diff=None)
    diff = np.abs(a[both] - b[both])
    return RepeatConsistency(
        n=n,
        exact=json_number(np.mean(diff == 0)),
        within_one=json_number(np.mean(diff <= 1)),
        kappa=json_number(quadratic_kappa(first, repeat, levels)),
        mean_abs_diff=json_number(np.mean(diff)),
    )


def grade_distribution(
    ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """(per-labeller counts of shape (n_labellers, V), overall counts of shape (V,)), levels
    ascending. Why: a labeller who never uses A, or gives half their grades F, is visible here
    before any agreement figure is read (and explains a κ paradox when one grade dominates)."""
    index, n_levels = _ratings_matrix(ratings, levels)
    per = np.stack([np.sum(index == level, axis=1) for level in range(n_levels)], axis=1)
    return per, per.sum(axis=0)


# ----------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class LabellerStats:
    """Everything about one labeller: ``n_graded`` items, ``distribution`` (counts per level,
    ascending), ``bias``, agreement with the others' ``consensus``, and ``repeats`` (``None``
    when no repeat grades were given for them)."""

    name: str
    n_graded: int
    distribution: list[int]
    bias: Bias
    consensus: ConsensusAgreement
    repeats: RepeatConsistency | None


@dataclass(frozen=True)
class AgreementReport:
    """All agreement figures of one ratings matrix; ``to_dict()`` is JSON-ready.

    Shape of ``to_dict()`` (V levels, L labellers; every float may be ``None`` = undefined)::

        {
          "levels": [1, 2, 3, 4, 5],            # ascending; every per-level list follows it
          "level_labels": ["A", …] | None,      # display names, same order, if given
          "labellers": ["ann", "bob", …],       # row order of the ratings; L names
          "n_items": int, "n_grades": int,
          "alpha": {"estimate", "ci_low", "ci_high", "confidence", "n_resamples", "seed",
                    "n_items", "n_values"},     # ordinal Krippendorff's α
          "fleiss_kappa": {"estimate", "n_items"},
          "pairwise_kappa": {"labellers": [L], "kappa": [[L×L]], "n_shared": [[L×L]]},
          "distribution": [V],                  # all grades, counts per level
          "per_labeller": [                     # L entries, row order
            {"name", "n_graded", "distribution": [V],
             "bias": {"mean", "n"},
             "consensus": {"confusion": [[V×V]] (row = others' consensus, column = own grade),
                           "n", "exact", "within_one", "kappa"},
             "repeats": {"n", "exact", "within_one", "kappa", "mean_abs_diff"} | None},
          ],
        }

    Bias and differences are in levels (see the module docstring for the sign).
    """

    levels: list[float | int]
    level_labels: list[str] | None
    labellers: list[str]
    n_items: int
    n_grades: int
    alpha: AlphaEstimate
    fleiss_kappa: FleissKappa
    pairwise_kappa: PairwiseKappa
    distribution: list[int]
    per_labeller: list[LabellerStats]

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dicts and lists (``json.dumps`` works with ``allow_nan=False``)."""
        return asdict(self)


def agreement_report(
    ratings: npt.ArrayLike,
    levels: Sequence[float] | npt.ArrayLike,
    labeller_names: Sequence[str] | None = None,
    *,
    repeats: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]] | None = None,
    level_labels: Sequence[str] | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AgreementReport:
    """Every agreement figure of ``ratings`` (labellers × items, NaN = not graded).

    ``labeller_names`` default to ``"0"``, ``"1"``, …; ``repeats`` maps a labeller's name to
    their (first grades, repeat grades) of the items they were shown twice, aligned;
    ``level_labels`` (e.g. ``["A", "B", "C", "D", "F"]``) name the levels in ascending order of
    value and are only carried along for display. Deterministic for a given ``seed``.
    """
    index, n_levels = _ratings_matrix(ratings, levels)
    values = sorted_levels(levels)
    n_labellers = index.shape[0]
    names = [str(j) for j in range(n_labellers)] if labeller_names is None else list(labeller_names)
    if len(names) != n_labellers:
        raise InputError(f"{len(names)} labeller names for {n_labellers} rows of ratings")
    if len(set(names)) != len(names):
        raise InputError("labeller names must be unique", where=str(names))
    if level_labels is not None and len(level_labels) != n_levels:
        raise InputError(f"{len(level_labels)} level labels for {n_levels} levels")
    unknown = sorted(set(repeats or {}) - set(names))
    if unknown:
        raise InputError(f"repeat grades for unknown labellers {unknown}", hint=f"known: {names}")

    kappa, shared = pairwise_kappa(ratings, levels)
    per_labeller_counts, overall = grade_distribution(ratings, levels)
    biases = labeller_bias(ratings, levels)
    against = consensus_agreement(ratings, levels)
    per_labeller = [
        LabellerStats(
            name=name,
            n_graded=int(per_labeller_counts[j].sum()),
            distribution=per_labeller_counts[j].tolist(),
            bias=biases[j],
            consensus=against[j],
            repeats=(
                repeat_consistency(*repeats[name], levels)
                if repeats is not None and name in repeats
                else None
            ),
        )
        for j, name in enumerate(names)
    ]
    return AgreementReport(
        levels=[_plain(v) for v in values],
        level_labels=None if level_labels is None else [str(s) for s in level_labels],
        labellers=names,
        n_items=int(index.shape[1]),
        n_grades=int(overall.sum()),
        alpha=alpha_with_ci(
            ratings, levels, n_resamples=n_resamples, confidence=confidence, seed=seed
        ),
        fleiss_kappa=fleiss_kappa(ratings, levels),
        pairwise_kappa=PairwiseKappa(
            labellers=names,
            kappa=[[json_number(x) for x in row] for row in kappa.tolist()],
            n_shared=shared.astype(int).tolist(),
        ),
        distribution=overall.tolist(),
        per_labeller=per_labeller,
    )


CSV_FIELDS: tuple[str, ...] = (
    "figure",
    "statistic",
    "labeller",
    "other",
    "level",
    "other_level",
    "value",
)
"""Columns of :func:`report_rows`, one number per row (long format).

``figure`` is one of ``alpha``, ``fleiss_kappa``, ``pairwise_kappa``, ``distribution``,
``bias``, ``consensus``, ``consensus_confusion``, ``repeats``; ``statistic`` names the number
(``estimate``, ``ci_low``, ``kappa``, ``n_shared``, ``count``, ``mean``, ``n``, ``exact``…);
``labeller`` / ``other`` are labeller names and ``level`` / ``other_level`` level values, empty
when not relevant (``distribution`` rows with an empty ``labeller`` are the overall counts;
``consensus_confusion`` rows have the others' consensus in ``level`` and the labeller's own grade
in ``other_level``). ``value`` is empty when the figure is undefined."""


def report_rows(report: AgreementReport) -> Iterator[dict[str, Any]]:
    """The report as long-format rows with the keys :data:`CSV_FIELDS`.

    Why long format: every figure, whatever its shape (scalar, per labeller, per pair, per
    level pair), becomes rows of one table that a spreadsheet can pivot.
    """

    def row(figure: str, statistic: str, value: Any, **where: Any) -> dict[str, Any]:
        out = dict.fromkeys(CSV_FIELDS, "")
        out.update(figure=figure, statistic=statistic, **where)
        out["value"] = "" if value is None else value
        return out

    for figure, data in (("alpha", report.alpha), ("fleiss_kappa", report.fleiss_kappa)):
        for statistic, value in asdict(data).items():
            yield row(figure, statistic, value)
    pairs = report.pairwise_kappa
    for i, a in enumerate(pairs.labellers):
        for j, b in enumerate(pairs.labellers):
            yield row("pairwise_kappa", "kappa", pairs.kappa[i][j], labeller=a, other=b)
            yield row("pairwise_kappa", "n_shared", pairs.n_shared[i][j], labeller=a, other=b)
    for level, count in zip(report.levels, report.distribution, strict=True):
        yield row("distribution", "count", count, level=level)
    for stats in report.per_labeller:
        name = stats.name
        yield row("distribution", "n_graded", stats.n_graded, labeller=name)
        for level, count in zip(report.levels, stats.distribution, strict=True):
            yield row("distribution", "count", count, labeller=name, level=level)
        for statistic, value in asdict(stats.bias).items():
            yield row("bias", statistic, value, labeller=name)
        for statistic, value in asdict(stats.consensus).items():
            if statistic != "confusion":
                yield row("consensus", statistic, value, labeller=name)
        for r, consensus_level in enumerate(report.levels):
            for c, own_level in enumerate(report.levels):
                yield row(
                    "consensus_confusion",
                    "count",
                    stats.consensus.confusion[r][c],
                    labeller=name,
                    level=consensus_level,
                    other_level=own_level,
                )
        if stats.repeats is not None:
            for statistic, value in asdict(stats.repeats).items():
                yield row("repeats", statistic, value, labeller=name)


def write_report_csv(report: AgreementReport, out: TextIO | str | os.PathLike[str]) -> None:
    """Write :func:`report_rows` as CSV with a header, to an open text stream or a path."""
    if isinstance(out, (str, os.PathLike)):
        with open(out, "w", newline="", encoding="utf-8") as stream:
            write_report_csv(report, stream)
        return
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(report_rows(report))
