"""Reading a RELION Class2D job (RELION 3.0 to 5).

Class identity comes from ``rlnReferenceImage`` (``000007@…_classes.mrcs`` is class 7, image
7) in ``model.star`` and from ``rlnClassNumber`` in ``data.star``, both 1-based; we store
0-based indices. Particle counts are exact counts of ``rlnClassNumber``, streamed from the
data file; RELION's own ``rlnClassDistribution`` is a soft fraction and is kept beside them.
RELION writes 999 as the resolution and the accuracies of classes it could not estimate
(often empty ones): we store those as unknown, like cryoSPARC's ``inf``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from cryocurate.errors import FormatError, InconsistentJobError
from cryocurate.formats.mrc import read_stack
from cryocurate.formats.star import read_blocks, read_loop_columns
from cryocurate.ingest.discover import JobFiles
from cryocurate.ingest.records import ClassTable, JobRecord

if TYPE_CHECKING:
    import pandas as pd

RELION_NO_RESOLUTION = 999.0
_REFERENCE = re.compile(r"^\s*(\d+)@")


def _general(files: JobFiles, blocks: dict) -> dict:
    general = blocks.get("model_general")
    if not isinstance(general, dict):
        raise FormatError(
            "has no data_model_general block",
            where=files.classes,
            hint="is this a RELION model.star?",
        )
    return general


def _pixel_size(files: JobFiles, general: dict) -> float:
    try:
        value = float(general["rlnPixelSize"])
    except (KeyError, TypeError, ValueError) as err:
        raise FormatError(
            "data_model_general lacks a valid _rlnPixelSize", where=files.classes
        ) from err
    if not np.isfinite(value) or value <= 0:
        raise FormatError(
            f"_rlnPixelSize {value} is not a positive pixel size", where=files.classes
        )
    return value


def _class_indices(files: JobFiles, classes: pd.DataFrame, n_images: int) -> np.ndarray:
    if "rlnReferenceImage" not in classes:
        return np.arange(len(classes))
    idx = []
    for ref in classes["rlnReferenceImage"].astype(str):
        m = _REFERENCE.match(ref)
        if not m:
            raise FormatError(
                f"_rlnReferenceImage {ref!r} is not of the form N@file", where=files.classes
            )
        idx.append(int(m.group(1)) - 1)
    out = np.array(idx, dtype=np.int64)
    bad = (out < 0) | (out >= n_images)
    if bad.any():
        raise InconsistentJobError(
            f"_rlnReferenceImage points at image {int(out[bad][0]) + 1}, but "
            f"{files.averages.name} holds {n_images}",
            where=files.classes,
        )
    if len(np.unique(out)) != len(out):
        raise InconsistentJobError("_rlnReferenceImage repeats an image", where=files.classes)
    return out


def _column(classes: pd.DataFrame, idx: np.ndarray, name: str, n: int) -> np.ndarray:
    import pandas as pd

    out = np.full(n, np.nan)
    if name in classes:
        out[idx] = pd.to_numeric(classes[name], errors="coerce").to_numpy(dtype=np.float64)
    return out


def _unless_sentinel(values: np.ndarray) -> np.ndarray:
    """RELION's 999 ("not estimated") as NaN, so it becomes null rather than a number."""
    values[values >= RELION_NO_RESOLUTION] = np.nan
    return values


def read_relion_job(files: JobFiles) -> JobRecord:
    """Read the final iteration named by ``files`` (see :func:`~.discover.find_job`)."""
    stack = read_stack(files.averages)
    n_images, box = stack.data.shape[0], stack.data.shape[1]

    blocks = read_blocks(files.classes, n_blocks=2, strings=["rlnReferenceImage"])
    general = _general(files, blocks)
    pixel_size = _pixel_size(files, general)
    classes = blocks.get("model_classes")
    if not hasattr(classes, "columns"):  # a loop comes back as a DataFrame
        raise FormatError("has no data_model_classes loop", where=files.classes)
    n_declared = general.get("rlnNrClasses")
    if n_declared is not None and int(n_declared) != len(classes):
        raise InconsistentJobError(
            f"_rlnNrClasses says {int(n_declared)} but data_model_classes has {len(classes)} rows",
            where=files.classes,
        )
    if len(classes) != n_images:
        raise InconsistentJobError(
            f"{files.classes.name} describes {len(classes)} classes but "
            f"{files.averages.name} holds {n_images} images",
            where=files.job_dir,
            hint="the files come from different jobs or iterations",
        )
    idx = _class_indices(files, classes, n_images)

    numbers = read_loop_columns(files.particles, ["particles", "images", ""], ["rlnClassNumber"])
    raw = numbers["rlnClassNumber"]
    assigned = raw.astype(np.int64) - 1
    if len(raw):
        bad = (raw != np.rint(raw)) | (assigned < 0) | (assigned >= n_images)
        if bad.any():
            raise InconsistentJobError(
                f"{int(bad.sum()):,} particle(s) have _rlnClassNumber {raw[bad][0]:g}, "
                f"outside 1–{n_images}",
                where=files.particles,
                hint="the data file belongs to another job or iteration",
            )
    counts = np.bincount(assigned, minlength=n_images)

    resolution = _unless_sentinel(_column(classes, idx, "rlnEstimatedResolution", n_images))
    rotations = _unless_sentinel(_column(classes, idx, "rlnAccuracyRotations", n_images))
    if "rlnAccuracyTranslationsAngst" in classes:
        translations = _unless_sentinel(
            _column(classes, idx, "rlnAccuracyTranslationsAngst", n_images)
        )
    else:  # RELION 3.0 and earlier: pixels
        translations = (
            _unless_sentinel(_column(classes, idx, "rlnAccuracyTranslations", n_images))
            * pixel_size
        )
    nan = np.full(n_images, np.nan)
    return JobRecord(
        files=files,
        software="relion",
        iteration=files.iteration,
        pixel_size_a=pixel_size,
        box_size=box,
        n_particles=len(assigned),
        classes=ClassTable(
            resolution_a=resolution,
            particle_count=counts,
            mean_posterior=nan,
            mean_ess=nan,
            accuracy_rotations=rotations,
            accuracy_translations_a=translations,
            relion_class_distribution=_column(classes, idx, "rlnClassDistribution", n_images),
        ),
        images=stack.data,
    )
