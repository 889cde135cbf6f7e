"""Reading a cryoSPARC 2D classification job (v4+ names and the older ``cryosparc_P…`` ones).

Class identity comes from ``blob/idx`` (the image's index in the MRC, which is also the value
``alignments2D/class`` takes), never from row order: cryoSPARC can write the rows of
``class_averages.cs`` sorted by class size. Counts, mean posterior and mean ESS come from the
particles, as cryoSPARC's own Select 2D computes them; empty classes keep a count of 0.
"""

from __future__ import annotations

import numpy as np

from cryocurate.errors import FormatError, InconsistentJobError
from cryocurate.formats.cs import read_cs
from cryocurate.formats.mrc import read_stack
from cryocurate.ingest.discover import JobFiles
from cryocurate.ingest.records import ClassTable, JobRecord, mean_by_class

CLASS = "alignments2D/class"
POSTERIOR = "alignments2D/class_posterior"
ESS = "alignments2D/class_ess"


def _class_indices(files: JobFiles, idx: np.ndarray, n_images: int) -> np.ndarray:
    if len(idx) != n_images:
        raise InconsistentJobError(
            f"{files.classes.name} describes {len(idx)} classes but "
            f"{files.averages.name} holds {n_images} images",
            where=files.job_dir,
            hint="the files come from different jobs or iterations",
        )
    idx = idx.astype(np.int64)
    bad = (idx < 0) | (idx >= n_images)
    if bad.any():
        raise InconsistentJobError(
            f"class index {int(idx[bad][0])} (blob/idx) is out of range for "
            f"{n_images} class averages",
            where=files.classes,
        )
    if len(np.unique(idx)) != len(idx):
        raise InconsistentJobError("blob/idx repeats a class index", where=files.classes)
    return idx


def _pixel_size(files: JobFiles, psize: np.ndarray) -> float:
    values = np.unique(psize.astype(np.float64))
    if len(values) == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise FormatError("blob/psize_A is not a positive pixel size", where=files.classes)
    if values.max() - values.min() > 1e-4 * values.max():
        raise InconsistentJobError(
            f"classes disagree on the pixel size ({values.min():g}–{values.max():g} Å)",
            where=files.classes,
        )
    return float(values[0])


def read_cryosparc_job(files: JobFiles) -> JobRecord:
    """Read the final iteration named by ``files`` (see :func:`~.discover.find_job`)."""
    stack = read_stack(files.averages)
    n_classes, box = stack.data.shape[0], stack.data.shape[1]

    meta = read_cs(
        files.classes, ["blob/idx", "blob/psize_A"], optional=["blob/res_A", "blob/shape"]
    )
    idx = _class_indices(files, meta["blob/idx"], n_classes)
    pixel_size = _pixel_size(files, meta["blob/psize_A"])
    if "blob/shape" in meta:
        shapes = np.unique(meta["blob/shape"].reshape(len(idx), -1), axis=0)
        if len(shapes) != 1 or tuple(int(v) for v in shapes[0]) != stack.data.shape[1:]:
            raise InconsistentJobError(
                f"blob/shape {shapes[0].tolist()} disagrees with the {box}×{box} px images",
                where=files.classes,
            )
    resolution = np.full(n_classes, np.nan)
    if "blob/res_A" in meta:
        resolution[idx] = meta["blob/res_A"].astype(np.float64)

    particles = read_cs(files.particles, [CLASS], optional=[POSTERIOR, ESS])
    assigned = particles[CLASS].astype(np.int64)
    if len(assigned):
        bad = (assigned < 0) | (assigned >= n_classes)
        if bad.any():
            raise InconsistentJobError(
                f"{int(bad.sum()):,} particle(s) are assigned to class {int(assigned[bad][0])}, "
                f"but the job has {n_classes} classes",
                where=files.particles,
                hint="the particles file belongs to another job or iteration",
            )
    counts = np.bincount(assigned, minlength=n_classes)
    nan = np.full(n_classes, np.nan)
    posterior = (
        mean_by_class(assigned, particles[POSTERIOR], counts) if POSTERIOR in particles else nan
    )
    ess = mean_by_class(assigned, particles[ESS], counts) if ESS in particles else nan
    return JobRecord(
        files=files,
        software="cryosparc",
        iteration=files.iteration,
        pixel_size_a=pixel_size,
        box_size=box,
        n_particles=len(assigned),
        classes=ClassTable(
            resolution_a=resolution,
            particle_count=counts,
            mean_posterior=posterior,
            mean_ess=ess,
            accuracy_rotations=nan,
            accuracy_translations_a=nan,
            relion_class_distribution=nan,
        ),
        images=stack.data,
    )
