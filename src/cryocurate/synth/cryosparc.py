"""A cryoSPARC 2D Classification job folder, file for file as cryoSPARC writes one.

Layout of ``J12/`` (v4+ names; ``legacy_names`` gives the pre-v4 ``cryosparc_P1_J12_…``)::

    J12_000_class_averages.mrc   J12_000_class_averages.cs   J12_000_particles.cs
    …
    J12_020_class_averages.mrc   J12_020_class_averages.cs   J12_020_particles.cs
    J12_passthrough_particles.cs
    job.json
    truth.csv                    (ours: the intended grade of each class)

Traps kept on purpose, because real jobs have them and readers must not fall in:

* the rows of ``class_averages.cs`` are sorted by particle count, so row *i* is **not**
  class *i*: the class id is ``blob/idx`` (= ``alignments2D/class`` of the particles);
* empty classes exist (no particles, an all-zero image, ``blob/res_A`` = inf), and there is
  no count column: counts come from ``bincount(alignments2D/class)``;
* the passthrough file has particles but no ``alignments2D/class``;
* earlier iterations hold fewer particle rows (online-EM batches).

``.cs`` files are written with :func:`cryocurate.formats.cs.write_cs_numpy` (streamed, constant
memory) or, with ``cs_format="csdat"``, through cryosparc-tools' ``Dataset.save`` (which needs
the whole table in memory).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from cryocurate.atomic import atomic_path, write_json
from cryocurate.errors import InputError
from cryocurate.formats.cs import write_cs_numpy
from cryocurate.formats.mrc import write_stack
from cryocurate.synth import particles as P
from cryocurate.synth.density import Density, density_from_map, random_density
from cryocurate.synth.images import Renderer, cryosparc_mask
from cryocurate.synth.plan import (
    JobPlan,
    Progress,
    check_options,
    iteration_numbers,
    make_plan,
    rng_for,
    write_truth,
)

CS_FORMATS = ("numpy", "csdat")
FINAL_ITERATION = 20

_F4 = "<f4"
_CTF_FIELDS: list[tuple] = [
    ("ctf/type", "S9"),
    ("ctf/exp_group_id", "<u4"),
    ("ctf/accel_kv", _F4),
    ("ctf/cs_mm", _F4),
    ("ctf/amp_contrast", _F4),
    ("ctf/df1_A", _F4),
    ("ctf/df2_A", _F4),
    ("ctf/df_angle_rad", _F4),
    ("ctf/phase_shift_rad", _F4),
    ("ctf/scale", _F4),
    ("ctf/scale_const", _F4),
    ("ctf/shift_A", _F4, (2,)),
    ("ctf/tilt_A", _F4, (2,)),
    ("ctf/trefoil_A", _F4, (2,)),
    ("ctf/tetra_A", _F4, (4,)),
    ("ctf/anisomag", _F4, (4,)),
    ("ctf/bfactor", _F4),
]
_ALIGN_SCALARS = [
    "error",
    "error_min",
    "resid_pow",
    "slice_pow",
    "image_pow",
    "cross_cor",
    "alpha",
    "alpha_min",
    "weight",
    "pose_ess",
    "shift_ess",
    "class_posterior",
]


def _particle_dtype(path_width: int) -> np.dtype:
    """The fields of a 2D job's ``particles.cs`` (as in a real v4 file), in cryoSPARC's order."""
    fields: list[tuple] = [
        ("uid", "<u8"),
        ("blob/path", f"S{path_width}"),
        ("blob/idx", "<u4"),
        ("blob/shape", "<u4", (2,)),
        ("blob/psize_A", _F4),
        ("blob/sign", _F4),
        *_CTF_FIELDS,
        ("alignments2D/split", "<u4"),
        ("alignments2D/shift", _F4, (2,)),
        ("alignments2D/pose", _F4),
        ("alignments2D/psize_A", _F4),
        *[(f"alignments2D/{name}", _F4) for name in _ALIGN_SCALARS],
        ("alignments2D/class", "<u4"),
        ("alignments2D/class_ess", _F4),
    ]
    return np.dtype(fields)


def _passthrough_dtype(path_width: int) -> np.dtype:
    """The inherited fields: picking location, pick statistics and CTF; no alignments."""
    return np.dtype(
        [
            ("uid", "<u8"),
            ("location/micrograph_uid", "<u8"),
            ("location/exp_group_id", "<u4"),
            ("location/micrograph_path", f"S{path_width}"),
            ("location/micrograph_shape", "<u4", (2,)),
            ("location/micrograph_psize_A", _F4),
            ("location/center_x_frac", _F4),
            ("location/center_y_frac", _F4),
            ("pick_stats/ncc_score", _F4),
            ("pick_stats/power", _F4),
            ("pick_stats/template_idx", "<u4"),
            ("pick_stats/angle_rad", _F4),
            *_CTF_FIELDS,
        ]
    )


def class_averages_dtype(path_width: int) -> np.dtype:
    """The fields of ``class_averages.cs``: where each average is, its pixel size and resolution."""
    return np.dtype(
        [
            ("uid", "<u8"),
            ("blob/path", f"S{path_width}"),
            ("blob/idx", "<u4"),
            ("blob/shape", "<u4", (2,)),
            ("blob/psize_A", _F4),
            ("blob/sign", _F4),
            ("blob/res_A", _F4),
        ]
    )


# ------------------------------------------------------------------------------- helpers


def _names(project_uid: str, job_uid: str, legacy: bool) -> str:
    return f"cryosparc_{project_uid}_{job_uid}_" if legacy else f"{job_uid}_"


def job_file_names(
    *, job_uid: str = "J12", project_uid: str = "P1", iteration: int, legacy_names: bool = False
) -> dict[str, str]:
    """The names of one iteration's files (and the passthrough file) in a job folder."""
    prefix = _names(project_uid, job_uid, legacy_names)
    return {
        "class_averages_mrc": f"{prefix}{iteration:03d}_class_averages.mrc",
        "class_averages_cs": f"{prefix}{iteration:03d}_class_averages.cs",
        "particles_cs": f"{prefix}{iteration:03d}_particles.cs",
        "passthrough_cs": f"{prefix}passthrough_particles.cs",
    }


def rows_at(n_particles: int, t: float) -> int:
    """Particle rows in an iteration's ``particles.cs``: all at the end, fewer before."""
    return n_particles if t >= 1.0 else round(n_particles * (0.4 + 0.6 * t))


def total_rows(
    n_particles: int, iterations: int = 2, final_iteration: int = FINAL_ITERATION
) -> int:
    """All particle rows a job writes (every ``particles.cs`` plus the passthrough file)."""
    numbers = iteration_numbers(iterations, final_iteration)
    final = numbers[-1]
    return n_particles + sum(rows_at(n_particles, i / final if final else 1.0) for i in numbers)


def hex_id(seed: int, *keys: object) -> str:
    """A 24-hex-digit id (a MongoDB ObjectId's shape) fixed by the seed."""
    text = "/".join(str(k) for k in (seed, *keys))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def mongo_date(when: dt.datetime) -> dict[str, str]:
    """A date as cryoSPARC's JSON dumps write it: ``{"$date": "2024-03-05T14:22:31.123Z"}``."""
    return {"$date": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"}


def base_time(seed: int) -> dt.datetime:
    """A creation time between 2022 and 2025, fixed by the seed."""
    rng = rng_for(seed, 61)
    start = dt.datetime(2022, 1, 3, 8, 0, 0, tzinfo=dt.UTC)
    return start + dt.timedelta(
        seconds=int(rng.integers(0, 3 * 365 * 86400)), milliseconds=int(rng.integers(0, 1000))
    )


def resolve_density(
    density: str | os.PathLike[str] | Density | None, *, box: int, pixel_size: float, seed: int
) -> Density:
    """The job's density: a given :class:`Density`, a map file turned into one, or a random one."""
    if isinstance(density, Density):
        return density
    if density is None:
        return random_density(rng_for(seed, 2), box=box, pixel_size=pixel_size)
    return density_from_map(density, box=box, pixel_size=pixel_size, seed=seed)


def _write_cs(
    path: Path, dtype: np.dtype, chunks: Iterable[np.ndarray], length: int, cs_format: str
) -> None:
    if cs_format == "numpy":
        write_cs_numpy(path, dtype, chunks, length)
        return
    from cryosparc.dataset import CSDAT_FORMAT, Dataset

    parts = list(chunks)
    table = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    with atomic_path(path) as tmp:
        Dataset(table).save(tmp, format=CSDAT_FORMAT)


# ------------------------------------------------------------------------------ tables


class _Tables:
    """Builds the particle rows of one job; holds the per-micrograph values and paths."""

    def __init__(
        self,
        *,
        seed: int,
        n_particles: int,
        box: int,
        pixel_size: float,
        blob_dir: str,
        micrograph_dir: str,
    ) -> None:
        self.seed = seed
        self.box = box
        self.pixel_size = pixel_size
        self.mics = P.micrographs(n_particles, seed)
        mic_uids = [f"{int(u):021d}" for u in self.mics.uids]
        mic_paths = [
            f"{micrograph_dir}/{u}_{s}_patch_aligned_doseweighted.mrc"
            for u, s in zip(mic_uids, self.mics.stems, strict=True)
        ]
        blob_paths = [
            f"{blob_dir}/{u}_{s}_patch_aligned_doseweighted_particles.mrc"
            for u, s in zip(mic_uids, self.mics.stems, strict=True)
        ]
        self.mic_paths = np.array(mic_paths, dtype=f"S{max(map(len, mic_paths))}")
        self.blob_paths = np.array(blob_paths, dtype=f"S{max(map(len, blob_paths))}")
        self.particle_dtype = _particle_dtype(self.blob_paths.dtype.itemsize)
        self.passthrough_dtype = _passthrough_dtype(self.mic_paths.dtype.itemsize)

    def _ctf(self, out: np.ndarray, c: P.Chunk) -> None:
        out["ctf/type"] = b"spline"
        out["ctf/accel_kv"] = 300.0
        out["ctf/cs_mm"] = 2.7
        out["ctf/amp_contrast"] = 0.1
        out["ctf/df1_A"] = c.defocus_u
        out["ctf/df2_A"] = c.defocus_v
        out["ctf/df_angle_rad"] = self.mics.angle_rad[c.micrograph]
        out["ctf/scale"] = 1.0
        out["ctf/anisomag"] = (1.0, 0.0, 0.0, 1.0)

    def particles(self, plan: JobPlan, stream: int) -> Iterator[np.ndarray]:
        for c in P.chunks(plan, self.mics, seed=self.seed, stream=stream):
            m = len(c.index)
            out = np.zeros(m, dtype=self.particle_dtype)
            out["uid"] = P.particle_uids(c.index, self.seed)
            out["blob/path"] = self.blob_paths[c.micrograph]
            out["blob/idx"] = c.in_micrograph
            out["blob/shape"] = (self.box, self.box)
            out["blob/psize_A"] = self.pixel_size
            out["blob/sign"] = -1.0
            self._ctf(out, c)
            out["alignments2D/split"] = 0
            out["alignments2D/shift"] = c.shift_px
            out["alignments2D/pose"] = c.psi_rad
            out["alignments2D/psize_A"] = self.pixel_size
            image_pow = 7000.0 + 400.0 * c.posterior
            cross = 40.0 + 90.0 * c.posterior
            out["alignments2D/image_pow"] = image_pow
            out["alignments2D/slice_pow"] = 0.4 * cross
            out["alignments2D/cross_cor"] = cross
            out["alignments2D/error"] = image_pow - cross + 0.4 * cross
            out["alignments2D/alpha"] = 1.0
            out["alignments2D/alpha_min"] = 0.9 + 0.3 * P.hashed_uniform(c.index, self.seed, 5)
            out["alignments2D/class_posterior"] = c.posterior
            out["alignments2D/class"] = c.label
            out["alignments2D/class_ess"] = c.class_ess
            if m:
                yield out

    def passthrough(self, plan: JobPlan, stream: int) -> Iterator[np.ndarray]:
        for c in P.chunks(plan, self.mics, seed=self.seed, stream=stream):
            out = np.zeros(len(c.index), dtype=self.passthrough_dtype)
            out["uid"] = P.particle_uids(c.index, self.seed)
            out["location/micrograph_uid"] = self.mics.uids[c.micrograph]
            out["location/micrograph_path"] = self.mic_paths[c.micrograph]
            out["location/micrograph_shape"] = (4092, 5760)
            out["location/micrograph_psize_A"] = self.pixel_size / 2
            out["location/center_x_frac"] = 0.03 + 0.94 * c.coord_frac[:, 0]
            out["location/center_y_frac"] = 0.03 + 0.94 * c.coord_frac[:, 1]
            out["pick_stats/ncc_score"] = 0.2 + 0.6 * P.hashed_uniform(c.index, self.seed, 6)
            out["pick_stats/power"] = 600.0 + 900.0 * P.hashed_uniform(c.index, self.seed, 7)
            out["pick_stats/angle_rad"] = 2 * np.pi * P.hashed_uniform(c.index, self.seed, 8)
            self._ctf(out, c)
            if len(out):
                yield out


def _counted(
    chunks: Iterable[np.ndarray], progress: Progress | None, done: list[int]
) -> Iterator[np.ndarray]:
    for chunk in chunks:
        yield chunk
        done[0] += len(chunk)
        if progress is not None:
            progress(done[0])


def _ordered_rows(plan: JobPlan, rng: np.random.Generator) -> np.ndarray:
    """Class indices in the row order cryoSPARC writes when sorting by size: biggest first."""
    k = plan.n_classes
    tie = rng.permutation(k)
    order = np.lexsort((tie, -plan.counts))
    if k > 1 and np.array_equal(order, np.arange(k)):
        order = order[::-1].copy()
    return order


def job_document(
    *,
    seed: int,
    project_uid: str,
    job_uid: str,
    job_type: str,
    version: str,
    title: str,
    created: dt.datetime,
    parents: list[str],
    run_seconds: int = 600,
) -> dict:
    """A ``job.json`` as cryoSPARC v4 dumps it (the fields readers use, dates as ``$date``)."""
    user = hex_id(seed, "user")
    t = created
    run = dt.timedelta(seconds=run_seconds)
    return {
        "_id": hex_id(seed, project_uid, job_uid),
        "project_uid": project_uid,
        "uid": job_uid,
        "job_type": job_type,
        "title": title,
        "description": "Enter a description.",
        "status": "completed",
        "created_by_user_id": user,
        "created_by_job_uid": None,
        "cloned_from": None,
        "queued_by_user_id": user,
        "version": version,
        "job_dir": job_uid,
        "workspace_uids": ["W1"],
        "parents": parents,
        "children": [],
        "params_spec": {},
        "output_result_groups": [],
        "created_at": mongo_date(t),
        "queued_at": mongo_date(t + dt.timedelta(seconds=31)),
        "launched_at": mongo_date(t + dt.timedelta(seconds=33)),
        "started_at": mongo_date(t + dt.timedelta(seconds=41)),
        "running_at": mongo_date(t + dt.timedelta(seconds=52)),
        "completed_at": mongo_date(t + run),
        "heartbeat_at": mongo_date(t + run - dt.timedelta(seconds=3)),
        "deleted": False,
        "priority": 0,
        "run_as_user": None,
        "job_dir_size": 0,
    }


def _with_class2d_fields(doc: dict, *, n_classes: int, n_particles: int) -> dict:
    """Add what a 2D Classification job's document has: K, and its two outputs."""
    doc["params_spec"] = {
        "class2D_K": {"value": n_classes},
        "compute_use_ssd": {"value": False},
    }
    doc["output_result_groups"] = [
        {
            "type": "particle",
            "name": "particles",
            "title": "Particles accepted",
            "num_items": n_particles,
        },
        {
            "type": "template",
            "name": "class_averages",
            "title": "2D class averages",
            "num_items": n_classes,
        },
    ]
    return doc


# ---------------------------------------------------------------------------- the job


def synth_cryosparc(
    out_dir: str | os.PathLike[str],
    *,
    n_classes: int = 50,
    box: int = 128,
    pixel_size: float = 1.5,
    n_particles: int = 20_000,
    seed: int = 0,
    density: str | os.PathLike[str] | Density | None = None,
    iterations: int = 2,
    project_uid: str = "P1",
    job_uid: str = "J12",
    cs_format: str = "numpy",
    legacy_names: bool = False,
    progress: Progress | None = None,
    quality: float = 0.5,
    final_iteration: int = FINAL_ITERATION,
    job_type: str | None = None,
    version: str | None = None,
    source_job_uid: str | None = None,
    created_at: dt.datetime | None = None,
) -> Path:
    """Write a cryoSPARC 2D Classification job folder at ``out_dir`` and return its path.

    Same arguments ⇒ byte-identical files (timestamps and uids come from ``seed``).

    Args:
        n_classes: K, the number of class averages.
        box, pixel_size: image edge in pixels, and Å per pixel.
        n_particles: rows of the final ``particles.cs`` and of the passthrough file.
        density: an MRC map to project (or a :class:`Density`); ``None`` draws a random
            protein-like one from the seed.
        iterations: how many iterations' files to keep; the last is ``final_iteration``
            (cryoSPARC's default 20 online-EM iterations + 1 full pass ⇒ ``020``).
        cs_format: ``"numpy"`` (what cryoSPARC writes on disk) or ``"csdat"``
            (cryosparc-tools' compressed stream format).
        legacy_names: pre-v4 names (``cryosparc_P1_J12_020_class_averages.mrc`` …) and the
            old job type ``class_2D``.
        progress: called with the number of particle rows written so far; the total is
            :func:`total_rows`.
        quality: 0–1, the share of good classes (a project's first jobs are rougher).
        job_type, version: override ``job.json``'s (``class_2D_new`` / ``v4.6.2``).
        source_job_uid: the job the particles come from (``blob/path`` names its
            ``extract/`` folder, or ``imported/`` for an import job given as ``J1``).
        created_at: the job's creation time (by default fixed by the seed).

    Raises:
        InputError: an impossible option, or an unreadable density map.
    """
    check_options(
        n_classes=n_classes,
        box=box,
        pixel_size=pixel_size,
        n_particles=n_particles,
        iterations=iterations,
    )
    if cs_format not in CS_FORMATS:
        raise InputError(f"--cs-format must be one of {', '.join(CS_FORMATS)}, not {cs_format!r}")
    if not job_uid.startswith("J") or not job_uid[1:].isdigit():
        raise InputError(f"job uid must look like J12, not {job_uid!r}")
    if not project_uid.startswith("P") or not project_uid[1:].isdigit():
        raise InputError(f"project uid must look like P1, not {project_uid!r}")
    out = Path(out_dir)
    the_density = resolve_density(density, box=box, pixel_size=pixel_size, seed=seed)
    out.mkdir(parents=True, exist_ok=True)

    job_number = int(job_uid[1:])
    source = source_job_uid or f"J{max(1, job_number - 2)}"
    imported = source == "J1"
    blob_dir = f"{source}/imported" if imported else f"{source}/extract"
    micrograph_dir = f"{source}/imported" if imported else "J3/motioncorrected"
    plan = make_plan(
        n_classes=n_classes,
        n_particles=n_particles,
        pixel_size=pixel_size,
        seed=seed,
        quality=quality,
    )
    renderer = Renderer(the_density, box=box, pixel_size=pixel_size, mask=cryosparc_mask(box))
    tables = _Tables(
        seed=seed,
        n_particles=n_particles,
        box=box,
        pixel_size=pixel_size,
        blob_dir=blob_dir,
        micrograph_dir=micrograph_dir,
    )
    numbers = iteration_numbers(iterations, final_iteration)
    final = numbers[-1]
    done = [0]
    for it in numbers:
        t = it / final if final else 1.0
        at = plan.at(t, rows_at(n_particles, t), it)
        names = job_file_names(
            job_uid=job_uid, project_uid=project_uid, iteration=it, legacy_names=legacy_names
        )
        _write_averages(
            out,
            names,
            at,
            renderer,
            job_uid=job_uid,
            seed=seed,
            iteration=it,
            box=box,
            pixel_size=pixel_size,
            cs_format=cs_format,
        )
        _write_cs(
            out / names["particles_cs"],
            tables.particle_dtype,
            _counted(tables.particles(at, stream=it), progress, done),
            at.n_particles,
            cs_format,
        )
    names = job_file_names(
        job_uid=job_uid, project_uid=project_uid, iteration=final, legacy_names=legacy_names
    )
    _write_cs(
        out / names["passthrough_cs"],
        tables.passthrough_dtype,
        _counted(tables.passthrough(plan, stream=10_000), progress, done),
        n_particles,
        cs_format,
    )
    write_truth(out / "truth.csv", plan, empty_resolution=math.inf)
    write_json(
        out / "job.json",
        _with_class2d_fields(
            job_document(
                seed=seed,
                project_uid=project_uid,
                job_uid=job_uid,
                job_type=job_type or ("class_2D" if legacy_names else "class_2D_new"),
                version=version or ("v3.3.2" if legacy_names else "v4.6.2"),
                title="2D Classification",
                created=created_at or base_time(seed),
                parents=[source],
                run_seconds=120 + n_particles // 200 + 8 * n_classes,
            ),
            n_classes=n_classes,
            n_particles=n_particles,
        ),
    )
    return out


def _write_averages(
    out: Path,
    names: dict[str, str],
    plan: JobPlan,
    renderer: Renderer,
    *,
    job_uid: str,
    seed: int,
    iteration: int,
    box: int,
    pixel_size: float,
    cs_format: str,
) -> None:
    images = np.stack(
        [
            renderer.render(
                "empty" if c.empty else c.kind,
                resolution_a=c.resolution_a,
                noise=c.noise,
                rotation=c.rotation,
                geometry_seed=c.geometry_seed,
                noise_seed=int(rng_for(seed, 51, iteration, c.index).integers(0, 2**62)),
            )
            for c in plan.classes
        ]
    )
    write_stack(out / names["class_averages_mrc"], images, pixel_size)
    blob_path = f"{job_uid}/{names['class_averages_mrc']}"
    rows = _ordered_rows(plan, rng_for(seed, 53, iteration))
    table = np.zeros(plan.n_classes, dtype=class_averages_dtype(len(blob_path)))
    table["uid"] = rng_for(seed, 55, iteration).integers(0, 2**63, plan.n_classes, dtype=np.uint64)
    table["blob/path"] = blob_path.encode()
    table["blob/idx"] = rows
    table["blob/shape"] = (box, box)
    table["blob/psize_A"] = pixel_size
    table["blob/sign"] = 1.0
    table["blob/res_A"] = [plan.classes[i].resolution_a for i in rows]
    _write_cs(out / names["class_averages_cs"], table.dtype, [table], len(table), cs_format)
