"""What extraction learns from a job, independent of the software that wrote it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cryocurate.ingest.discover import JobFiles, Software


@dataclass(frozen=True)
class ClassTable:
    """Per-class values as arrays in class-index order (index k ⇒ class k, image k).

    Missing values are NaN here and become ``null`` in JSON and ``NULL`` in the catalog.
    """

    resolution_a: np.ndarray
    particle_count: np.ndarray
    mean_posterior: np.ndarray
    mean_ess: np.ndarray
    accuracy_rotations: np.ndarray
    accuracy_translations_a: np.ndarray
    relion_class_distribution: np.ndarray

    def __len__(self) -> int:
        return len(self.particle_count)


@dataclass(frozen=True)
class JobRecord:
    """One job's final iteration: job-level facts, per-class values and the images."""

    files: JobFiles
    software: Software
    iteration: int
    pixel_size_a: float
    box_size: int
    n_particles: int
    classes: ClassTable
    images: np.ndarray  # (K, box, box) float32, in class-index order

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def finite_or_none(value: Any) -> float | None:
    """A float for JSON and SQL: NaN and ±inf have no place in either."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def mean_by_class(classes: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-class mean of ``values`` (NaN for empty classes), without a Python loop."""
    sums = np.bincount(classes, weights=values.astype(np.float64), minlength=len(counts))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
