"""One grade per item from several labellers' grades: the simple summaries and a model.

Why two kinds of consensus: the per-item median, mean and spread (:func:`item_statistics`)
are transparent and what a reviewer checks first, and a spread of two levels or more
(:data:`DISAGREEMENT_SPREAD`) sends an item to adjudication. But the median treats every
labeller alike, so a labeller who is consistently one grade harsher drags it whenever the
others split. The model-based consensus (:func:`dawid_skene`) learns each labeller's habits
from all the items together and corrects for them, which is the better final label for a
training set.

**Input** as in :mod:`cryocurate.grading.agreement`: ``ratings`` of shape
``(n_labellers, n_items)`` with values from ``levels`` and NaN where not graded; levels in any
order, the scale's order being their numeric order. Spreads, biases and confusion indices are
in levels (steps of the scale).

**The model** is the latent-class model of Dawid & Skene: each item has an unknown true level
``z`` with prior ``p``; labeller ``j`` grading an item of true level ``k`` gives level ``l``
with probability ``π_j[k, l]`` (a full confusion matrix per labeller, so a systematic offset,
harshness at one end of the scale only, or a habit of avoiding the extremes are all
representable), grades being independent given ``z``. Fitted by EM (Dempster, Laird & Rubin),
as Dawid & Skene do, but as a *maximum a posteriori* fit with Dirichlet priors on the rows of
each ``π_j``, as in Passonneau & Carpenter's Bayesian treatment of the same model, so that a
labeller with few grades or a level nobody used cannot produce zero probabilities. The prior
is our choice for an ordinal scale: row ``k`` is Dirichlet(1 + β[k, ·]), whose MAP estimate
adds the pseudo-counts β[k, l] = ``prior_strength`` · w[k, l] to the observed counts, with
w[k, l] ∝ exp(−(k − l)² / (2 · ``prior_width``²)) normalised over l: a priori a labeller is
most likely right and, when wrong, more likely off by one level than by three. The class
prior ``p`` is Dirichlet(2, …, 2) (one pseudo-count per level).

EM starts from each item's vote shares (Dawid & Skene's own initialisation, and the reason
the levels keep their meaning: the model is anchored on the labellers' majority), uses no
random numbers, and stops when the log posterior changes by less than ``tol`` (relative) or
after ``max_iter`` iterations. Items nobody graded take the prior ``p`` as their posterior and
have no model grade.

References
----------
* Dawid, A. P. & Skene, A. M. (1979). Maximum likelihood estimation of observer error-rates
  using the EM algorithm. *Journal of the Royal Statistical Society, Series C (Applied
  Statistics)*, 28(1), 20–28.
* Dempster, A. P., Laird, N. M. & Rubin, D. B. (1977). Maximum likelihood from incomplete data
  via the EM algorithm. *Journal of the Royal Statistical Society, Series B (Methodological)*,
  39(1), 1–38.
* Passonneau, R. J. & Carpenter, B. (2014). The benefits of a model of annotation.
  *Transactions of the Association for Computational Linguistics*, 2, 311–326.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from cryocurate.errors import InputError
from cryocurate.grading.agreement import (
    json_number,
    level_indices,
    median_ignoring_nan,
    rounded_median,
    sorted_levels,
)

__all__ = [
    "DISAGREEMENT_SPREAD",
    "ConsensusReport",
    "DawidSkeneFit",
    "ItemConsensus",
    "ItemStatistics",
    "LabellerModel",
    "ModelSummary",
    "consensus_report",
    "consensus_rows",
    "dawid_skene",
    "item_statistics",
    "ordinal_prior",
    "write_consensus_csv",
]

DISAGREEMENT_SPREAD = 2
"""An item whose grades span this many levels or more (e.g. B and D) is flagged: two
labellers who disagree that much saw different things, and a reviewer should look."""


def _indices_matrix(
    ratings: npt.ArrayLike, levels: Sequence[float] | npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """(level indices of shape (n_labellers, n_items), ascending level values)."""
    index = level_indices(ratings, levels)
    if index.ndim != 2:
        raise InputError(
            f"ratings must be a (labellers × items) matrix, got shape {index.shape}",
            hint="one row per labeller, one column per item, NaN where not graded",
        )
    return index, sorted_levels(levels)


# ----------------------------------------------------------------------------------------------
# Per-item summaries


@dataclass(frozen=True, eq=False)
class ItemStatistics:
    """Per-item arrays of length n_items.

    ``n_grades`` (int); ``median`` and ``mean`` of the grade values (NaN if ungraded; the
    median may fall between two levels); ``median_grade``, the median as a level value by the
    rule of :func:`~cryocurate.grading.agreement.rounded_median`; ``spread`` = highest − lowest
    level index (NaN if ungraded); ``disagreement`` = ``spread ≥ min_spread``.
    """

    n_grades: np.ndarray
    median: np.ndarray
    median_grade: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    disagreement: np.ndarray


def item_statistics(
    ratings: npt.ArrayLike,
    levels: Sequence[float] | npt.ArrayLike,
    *,
    min_spread: int = DISAGREEMENT_SPREAD,
) -> ItemStatistics:
    """Median, mean, spread, grade count and the disagreement flag of every item."""
    index, values = _indices_matrix(ratings, levels)
    grades = np.asarray(ratings, dtype=float)
    graded = ~np.isnan(index)
    n_grades = graded.sum(axis=0)
    some = n_grades > 0
    total = np.where(graded, grades, 0).sum(axis=0)
    mean = np.divide(total, n_grades, out=np.full(n_grades.shape, np.nan), where=some)
    high = np.where(graded, index, -np.inf).max(axis=0, initial=-np.inf)
    low = np.where(graded, index, np.inf).min(axis=0, initial=np.inf)
    spread = np.where(some, high - low, np.nan)
    consensus = rounded_median(index, len(values), axis=0)
    median_grade = np.full(consensus.shape, np.nan)
    median_grade[some] = values[consensus[some].astype(int)]
    return ItemStatistics(
        n_grades=n_grades,
        median=median_ignoring_nan(grades, axis=0),
        median_grade=median_grade,
        mean=mean,
        spread=spread,
        disagreement=some & (spread >= min_spread),
    )


# ----------------------------------------------------------------------------------------------
# The model


def ordinal_prior(n_levels: int, strength: float, width: float) -> np.ndarray:
    """V×V Dirichlet pseudo-counts for the rows of a confusion matrix (row = true level).

    Each row sums to ``strength`` and falls off as a Gaussian of the distance in levels with
    standard deviation ``width``: the "ordinal structure" the fit is regularised toward.
    """
    if strength <= 0 or width <= 0:
        raise InputError("the prior's strength and width must be positive")
    steps = np.arange(n_levels)
    shape = np.exp(-((steps[:, None] - steps[None, :]) ** 2) / (2 * width**2))
    return strength * shape / shape.sum(axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class DawidSkeneFit:
    """The fitted model (V levels ascending, L labellers, n items).

    ``posterior`` (n, V): P(true level | grades); ``grade`` (n,): the most probable level's
    value (NaN for ungraded items; ties go to the lower level); ``class_prior`` (V,);
    ``confusion`` (L, V, V): ``confusion[j, k, l]`` = P(labeller j gives level l | true level
    k), rows summing to 1; ``bias`` (L,): expected (given − true) level under the model, averaged
    over the class prior; ``accuracy`` (L,): P(labeller gives the true level), likewise;
    ``n_iter``, ``converged``, ``log_posterior`` (the maximised objective).
    """

    posterior: np.ndarray
    grade: np.ndarray
    class_prior: np.ndarray
    confusion: np.ndarray
    bias: np.ndarray
    accuracy: np.ndarray
    n_iter: int
    converged: bool
    log_posterior: float


def _log_normalise(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row-normalised probabilities, row log-sum-exp), stable for very negative logits."""
    top = logits.max(axis=1, keepdims=True)
    shifted = np.exp(logits - top)
    total = shifted.sum(axis=1, keepdims=True)
    return shifted / total, (top + np.log(total))[:, 0]


def dawid_skene(
    ratings: npt.ArrayLike,
    levels: Sequence[float] | npt.ArrayLike,
    *,
    prior_strength: float = 2.0,
    prior_width: float = 1.0,
    max_iter: int = 500,
    tol: float = 1e-9,
) -> DawidSkeneFit:
    """Fit the ordinal-regularised Dawid–Skene model by EM (see the module docstring).

    ``prior_strength`` is the number of pseudo-grades per row of each confusion matrix (small
    next to a labeller's real grades once they have graded a few dozen items);
    ``prior_width`` how far, in levels, the prior lets a grade wander from the truth.
    Deterministic: no random numbers, fixed order of operations.
    """
    if max_iter < 1:
        raise InputError(f"max_iter must be at least 1, got {max_iter}")
    index, values = _indices_matrix(ratings, levels)
    n_labellers, n_items = index.shape
    n_levels = len(values)
    prior = ordinal_prior(n_levels, prior_strength, prior_width)
    onehot = (index[..., None] == np.arange(n_levels)).astype(float)  # (L, n, V); NaN → 0
    graded = onehot.any(axis=(0, 2))
    y = onehot[:, graded]
    votes = y.sum(axis=0)  # (n_graded, V)
    posterior = votes / votes.sum(axis=1, keepdims=True)

    objective = -math.inf
    converged = False
    n_iter = 0
    class_prior = np.full(n_levels, 1 / n_levels)
    confusion = np.broadcast_to(prior / prior_strength, (n_labellers, n_levels, n_levels))
    while n_iter < max_iter:
        n_iter += 1
        # M step: MAP estimates given the current posteriors.
        class_prior = (posterior.sum(axis=0) + 1) / (posterior.shape[0] + n_levels)
        counts = posterior.T @ y + prior  # (L, V, V): Σ_i P(z_i = k) · [y_ji = l]
        confusion = counts / counts.sum(axis=2, keepdims=True)
        # E step: posteriors given the parameters; the objective is the log posterior.
        log_confusion = np.log(confusion)
        logits = np.log(class_prior) + (y @ log_confusion.transpose(0, 2, 1)).sum(axis=0)
        posterior, evidence = _log_normalise(logits)
        previous = objective
        objective = float(
            evidence.sum() + np.log(class_prior).sum() + (prior * log_confusion).sum()
        )
        if abs(objective - previous) <= tol * max(1.0, abs(objective)):
            converged = True
            break

    full = np.tile(class_prior, (n_items, 1))
    full[graded] = posterior
    grade = np.full(n_items, np.nan)
    grade[graded] = values[np.argmax(posterior, axis=1)]
    steps = np.arange(n_levels)
    offset = steps[None, :] - steps[:, None]  # given − true
    return DawidSkeneFit(
        posterior=full,
        grade=grade,
        class_prior=class_prior,
        confusion=np.array(confusion),
        bias=np.einsum("k,jkl,kl->j", class_prior, confusion, offset),
        accuracy=np.einsum("k,jkk->j", class_prior, confusion),
        n_iter=n_iter,
        converged=converged,
        log_posterior=objective,
    )


# ----------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class ItemConsensus:
    """One item: the summaries of :class:`ItemStatistics` and the model's verdict.

    ``model_grade`` is the most probable level's value and ``model_probability`` its posterior
    probability (how sure the model is); ``posterior`` lists P(level) for every level,
    ascending. Floats are ``None`` where undefined (an item nobody graded).
    """

    item: int | str
    n_grades: int
    median: float | None
    median_grade: float | int | None
    mean: float | None
    spread: int | None
    disagreement: bool
    model_grade: float | int | None
    model_probability: float | None
    posterior: list[float]


@dataclass(frozen=True)
class LabellerModel:
    """What the model learned about one labeller: ``confusion[k][l]`` = P(gives level l | true
    level k), levels ascending; ``bias`` = expected (given − true) in levels (positive: higher
    values than the truth); ``accuracy`` = P(gives the true level); ``n_graded`` items."""

    name: str
    n_graded: int
    confusion: list[list[float]]
    bias: float | None
    accuracy: float | None


@dataclass(frozen=True)
class ModelSummary:
    """How the model was fitted: its settings, the class prior (share of items per true level,
    ascending), whether EM converged and in how many iterations."""

    method: str
    prior_strength: float
    prior_width: float
    class_prior: list[float]
    n_iter: int
    converged: bool
    log_posterior: float | None


@dataclass(frozen=True)
class ConsensusReport:
    """Consensus of one ratings matrix; ``to_dict()`` is JSON-ready.

    Shape of ``to_dict()`` (V levels, L labellers, n items)::

        {
          "levels": [1, 2, 3, 4, 5],          # ascending; every per-level list follows it
          "labellers": [L names],
          "n_flagged": int,                   # items with disagreement true
          "items": [{"item", "n_grades", "median", "median_grade", "mean", "spread",
                     "disagreement", "model_grade", "model_probability",
                     "posterior": [V]}, …],   # n entries, column order of the ratings
          "model": {"method", "prior_strength", "prior_width", "class_prior": [V],
                    "n_iter", "converged", "log_posterior"},
          "per_labeller": [{"name", "n_graded", "confusion": [[V×V]], "bias", "accuracy"}, …],
        }
    """

    levels: list[float | int]
    labellers: list[str]
    n_flagged: int
    items: list[ItemConsensus]
    model: ModelSummary
    per_labeller: list[LabellerModel]

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dicts and lists (``json.dumps`` works with ``allow_nan=False``)."""
        return asdict(self)


def _level_value(value: float) -> float | int | None:
    """A level value for JSON: int when integral, ``None`` for NaN."""
    if not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else float(value)


def consensus_report(
    ratings: npt.ArrayLike,
    levels: Sequence[float] | npt.ArrayLike,
    labeller_names: Sequence[str] | None = None,
    item_ids: Sequence[int | str] | None = None,
    *,
    min_spread: int = DISAGREEMENT_SPREAD,
    prior_strength: float = 2.0,
    prior_width: float = 1.0,
    max_iter: int = 500,
) -> ConsensusReport:
    """Per-item summaries and the Dawid–Skene consensus of ``ratings``, ready for JSON/CSV.

    ``labeller_names`` default to ``"0"``, ``"1"``, …, ``item_ids`` to the column numbers.
    """
    index, values = _indices_matrix(ratings, levels)
    n_labellers, n_items = index.shape
    names = [str(j) for j in range(n_labellers)] if labeller_names is None else list(labeller_names)
    if len(names) != n_labellers:
        raise InputError(f"{len(names)} labeller names for {n_labellers} rows of ratings")
    ids: list[int | str] = list(range(n_items)) if item_ids is None else list(item_ids)
    if len(ids) != n_items:
        raise InputError(f"{len(ids)} item ids for {n_items} columns of ratings")
    stats = item_statistics(ratings, levels, min_spread=min_spread)
    fit = dawid_skene(
        ratings, levels, prior_strength=prior_strength, prior_width=prior_width, max_iter=max_iter
    )
    graded = stats.n_grades > 0
    items = [
        ItemConsensus(
            item=item if isinstance(item, str) else int(item),
            n_grades=int(stats.n_grades[i]),
            median=json_number(stats.median[i]),
            median_grade=_level_value(stats.median_grade[i]),
            mean=json_number(stats.mean[i]),
            spread=int(stats.spread[i]) if graded[i] else None,
            disagreement=bool(stats.disagreement[i]),
            model_grade=_level_value(fit.grade[i]),
            model_probability=json_number(fit.posterior[i].max()) if graded[i] else None,
            posterior=fit.posterior[i].tolist(),
        )
        for i, item in enumerate(ids)
    ]
    per_labeller = [
        LabellerModel(
            name=name,
            n_graded=int((~np.isnan(index[j])).sum()),
            confusion=fit.confusion[j].tolist(),
            bias=json_number(fit.bias[j]),
            accuracy=json_number(fit.accuracy[j]),
        )
        for j, name in enumerate(names)
    ]
    return ConsensusReport(
        levels=[int(v) if v.is_integer() else v for v in values.tolist()],
        labellers=names,
        n_flagged=int(stats.disagreement.sum()),
        items=items,
        model=ModelSummary(
            method="dawid-skene (MAP EM, ordinal Dirichlet prior)",
            prior_strength=float(prior_strength),
            prior_width=float(prior_width),
            class_prior=fit.class_prior.tolist(),
            n_iter=fit.n_iter,
            converged=fit.converged,
            log_posterior=json_number(fit.log_posterior),
        ),
        per_labeller=per_labeller,
    )


def consensus_rows(report: ConsensusReport) -> Iterator[dict[str, Any]]:
    """One wide row per item: the :class:`ItemConsensus` fields, the posterior spread into
    ``p_<level>`` columns; ``None`` becomes an empty cell."""
    for item in report.items:
        row = {k: ("" if v is None else v) for k, v in asdict(item).items() if k != "posterior"}
        for level, p in zip(report.levels, item.posterior, strict=True):
            row[f"p_{level}"] = p
        yield row


def write_consensus_csv(report: ConsensusReport, out: TextIO | str | os.PathLike[str]) -> None:
    """Write :func:`consensus_rows` as CSV with a header, to an open text stream or a path."""
    if isinstance(out, (str, os.PathLike)):
        with open(out, "w", newline="", encoding="utf-8") as stream:
            write_consensus_csv(report, stream)
        return
    fields = [f for f in ItemConsensus.__dataclass_fields__ if f != "posterior"]
    fields += [f"p_{level}" for level in report.levels]
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(consensus_rows(report))
