"""Synthetic 2D-classification jobs in the exact on-disk formats of cryoSPARC and RELION.

These folders are the project's test data: the extractor is tested on them, the demo shows
them, the benchmarks time them. Each job is a set of class averages that are projections of
*one* protein-like density (or a user's map) at different orientations, with the junk real
jobs have (ice, carbon edges, aggregates, clipped particles, noise, empty classes), and
metadata that agrees with the images: resolutions by intended grade, exact particle counts,
posteriors. ``truth.csv`` in every job folder records each class's intended grade A–F.

    >>> from cryocurate.synth import synth_cryosparc, synth_relion
    >>> synth_cryosparc("P1/J12", n_classes=20, n_particles=5_000, seed=1)   # doctest: +SKIP
    >>> synth_relion("Class2D/job006", relion_version="3.0")                   # doctest: +SKIP

Modules, one concept each: :mod:`.density` (the 3D object), :mod:`.images` (projection,
filtering, junk), :mod:`.plan` (grade/kind/resolution/count per class), :mod:`.particles`
(per-particle values in chunks), :mod:`.star` (RELION's STAR layout), :mod:`.cryosparc`,
:mod:`.relion` and :mod:`.project` (the folders).
"""

from cryocurate.synth.cryosparc import synth_cryosparc
from cryocurate.synth.project import synth_cryosparc_project
from cryocurate.synth.relion import synth_relion

__all__ = ["synth_cryosparc", "synth_cryosparc_project", "synth_relion"]
