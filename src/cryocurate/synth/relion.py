"""A RELION ``Class2D/jobNNN`` folder, file for file as ``relion_refine`` writes one.

Per kept iteration NNN (final ``025`` for the EM algorithm of RELION 3.x/4; ``200`` for
RELION 5's default VDAM algorithm, which writes every 10th iteration)::

    run_itNNN_classes.mrcs      K averages, one MRC stack
    run_itNNN_model.star        model_general, model_classes, model_class_1..K, groups
    run_itNNN_data.star         optics + particles (3.1+), or one ``data_`` block (3.0)
    run_itNNN_optimiser.star    run_itNNN_sampling.star

plus ``job.star`` (3.1+; RELION 3.0 has ``run.job`` instead), ``note.txt``,
``RELION_JOB_EXIT_SUCCESS`` and our ``truth.csv``. A continued job writes the iterations
after the restart as ``run_ct<N>_itNNN_*``.

Where a reader finds things: the class of a particle is ``rlnClassNumber`` (1-based) in
``data_particles``; the class order of ``model_classes`` is 1..K and ``rlnReferenceImage``
says ``000007@Class2D/job006/run_it025_classes.mrcs``; empty classes have
``rlnClassDistribution`` 0 and ``rlnEstimatedResolution`` 999; pixel sizes live in
``model_general/rlnPixelSize`` and ``data_optics/rlnImagePixelSize``. Resolutions are
quantised to Fourier shells (box × pixel size / shell), as RELION's are.

The particles loop is streamed in chunks (constant memory); small STAR files are built in
memory. Everything is written atomically.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from cryocurate.atomic import atomic_path, write_bytes, write_text
from cryocurate.errors import InputError
from cryocurate.formats.mrc import write_stack
from cryocurate.synth import particles as P
from cryocurate.synth import star
from cryocurate.synth.cryosparc import base_time, resolve_density
from cryocurate.synth.density import Density
from cryocurate.synth.images import Renderer, relion_mask
from cryocurate.synth.plan import (
    JobPlan,
    Progress,
    check_options,
    iteration_numbers,
    make_plan,
    rng_for,
    write_truth,
)

RELION_VERSIONS = ("3.0", "3.1", "4.0", "5.0")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
EMPTY_RESOLUTION = 999.0
_RELEASE = {"3.0": "3.0.8", "3.1": "3.1.4", "4.0": "4.0.1", "5.0": "5.0.0"}
_COMMIT = {"3.0": "", "3.1": "-commit-1e738e", "4.0": "-commit-5f4e2a", "5.0": "-commit-90d239"}


def _vdam(version: str) -> bool:
    return version == "5.0"


def final_iteration_for(version: str) -> int:
    """RELION's default last iteration: 25 (EM algorithm), 200 (VDAM, RELION 5's default)."""
    return 200 if _vdam(version) else 25


def iterations_for(
    iterations: int, version: str, final_iteration: int | None = None, continued: bool = False
) -> list[int]:
    """The iteration numbers kept (VDAM writes every 10th); a continued job also keeps the
    iteration it was restarted from (60 % of the way)."""
    final = final_iteration if final_iteration is not None else final_iteration_for(version)
    step = 10 if _vdam(version) else 1
    numbers = iteration_numbers(iterations, final, step=step)
    if continued and numbers[-1] >= 2 * step:
        restart = max(step, round(0.6 * numbers[-1] / step) * step)
        numbers = sorted(set(numbers) | {min(restart, numbers[-1] - step)})
    return numbers


def total_rows(
    n_particles: int,
    iterations: int = 2,
    relion_version: str = "3.1",
    final_iteration: int | None = None,
    continued: bool = False,
) -> int:
    """All particle rows a job writes: every kept iteration's data.star lists every particle."""
    return n_particles * len(iterations_for(iterations, relion_version, final_iteration, continued))


def root_name(iteration: int, numbers: list[int], continued: bool) -> str:
    """``run`` or, for iterations after a restart, ``run_ct<N>`` (N = restart iteration)."""
    if not continued:
        return "run"
    restart = numbers[-2] if len(numbers) > 1 else max(numbers[-1] - 1, 0)
    return f"run_ct{restart}" if iteration > restart else "run"


def job_dir_name(out_dir: Path) -> str:
    """``Class2D/jobNNN`` as the project sees this folder (job006 unless it is named jobNNN)."""
    m = re.fullmatch(r"job(\d+)", out_dir.name)
    return f"Class2D/job{int(m.group(1)):03d}" if m else "Class2D/job006"


def quantise(plan: JobPlan, box: int, pixel_size: float) -> JobPlan:
    """Resolutions snapped to Fourier shells, as RELION estimates them per shell."""
    extent = box * pixel_size
    classes = []
    for c in plan.classes:
        if c.empty:
            classes.append(c)
            continue
        shell = min(max(round(extent / c.resolution_a), 1), box // 2)
        classes.append(replace(c, resolution_a=round(extent / shell, 2)))
    return JobPlan(classes=tuple(classes), seed=plan.seed)


# ----------------------------------------------------------------------------- columns

_PARTICLE_COLUMNS_31 = [
    ("rlnCoordinateX", "%12.6f"),
    ("rlnCoordinateY", "%12.6f"),
    ("rlnAutopickFigureOfMerit", "%12.6f"),
    ("rlnClassNumber", "%12d"),
    ("rlnAnglePsi", "%12.6f"),
    ("rlnImageName", "%06d@%s"),
    ("rlnMicrographName", "%s"),
    ("rlnOpticsGroup", "%12d"),
    ("rlnCtfMaxResolution", "%12.6f"),
    ("rlnCtfFigureOfMerit", "%12.6f"),
    ("rlnDefocusU", "%12.6f"),
    ("rlnDefocusV", "%12.6f"),
    ("rlnDefocusAngle", "%12.6f"),
    ("rlnCtfBfactor", "%12.6f"),
    ("rlnCtfScalefactor", "%12.6f"),
    ("rlnPhaseShift", "%12.6f"),
    ("rlnGroupNumber", "%12d"),
    ("rlnOriginXAngst", "%12.6f"),
    ("rlnOriginYAngst", "%12.6f"),
    ("rlnNormCorrection", "%12.6f"),
    ("rlnLogLikeliContribution", "%12.6e"),
    ("rlnMaxValueProbDistribution", "%12.6f"),
    ("rlnNrOfSignificantSamples", "%12d"),
]

_PARTICLE_COLUMNS_30 = [
    ("rlnCoordinateX", "%12.6f"),
    ("rlnCoordinateY", "%12.6f"),
    ("rlnAutopickFigureOfMerit", "%12.6f"),
    ("rlnClassNumber", "%12d"),
    ("rlnAnglePsi", "%12.6f"),
    ("rlnImageName", "%06d@%s"),
    ("rlnMicrographName", "%s"),
    ("rlnVoltage", "%12.6f"),
    ("rlnDefocusU", "%12.6f"),
    ("rlnDefocusV", "%12.6f"),
    ("rlnDefocusAngle", "%12.6f"),
    ("rlnSphericalAberration", "%12.6f"),
    ("rlnCtfBfactor", "%12.6f"),
    ("rlnCtfScalefactor", "%12.6f"),
    ("rlnPhaseShift", "%12.6f"),
    ("rlnAmplitudeContrast", "%12.6f"),
    ("rlnMagnification", "%12.6f"),
    ("rlnDetectorPixelSize", "%12.6f"),
    ("rlnCtfMaxResolution", "%12.6f"),
    ("rlnCtfFigureOfMerit", "%12.6f"),
    ("rlnGroupNumber", "%12d"),
    ("rlnOriginX", "%12.6f"),
    ("rlnOriginY", "%12.6f"),
    ("rlnNormCorrection", "%12.6f"),
    ("rlnLogLikeliContribution", "%12.6e"),
    ("rlnMaxValueProbDistribution", "%12.6f"),
    ("rlnNrOfSignificantSamples", "%12d"),
]


class _Job:
    """Shared state of one RELION job while its files are written."""

    def __init__(
        self,
        *,
        version: str,
        box: int,
        pixel_size: float,
        seed: int,
        n_particles: int,
        job_dir: str,
        particle_diameter: float,
    ) -> None:
        self.version = version
        self.box = box
        self.pixel_size = pixel_size
        self.seed = seed
        self.job_dir = job_dir
        self.particle_diameter = particle_diameter
        self.mics = P.micrographs(n_particles, seed)
        self.n_groups = min(self.mics.n, 12)
        self.stack_paths = [f"Extract/job005/Movies/{s}.mrcs" for s in self.mics.stems]
        self.mic_paths = [f"MotionCorr/job002/Movies/{s}.mrc" for s in self.mics.stems]

    # -- data.star ----------------------------------------------------------------------

    def _optics(self) -> str:
        cols = [
            ("rlnOpticsGroupName", "opticsGroup1"),
            ("rlnOpticsGroup", 1),
            ("rlnMicrographOriginalPixelSize", self.pixel_size / 2),
            ("rlnVoltage", 300.0),
            ("rlnSphericalAberration", 2.7),
            ("rlnAmplitudeContrast", 0.1),
            ("rlnImagePixelSize", self.pixel_size),
            ("rlnImageSize", self.box),
            ("rlnImageDimensionality", 2),
        ]
        if self.version == "5.0":
            cols.append(("rlnCtfDataAreCtfPremultiplied", 0))
        return star.loop_block("optics", [c for c, _ in cols], [[v for _, v in cols]], self.version)

    def _rows(self, plan: JobPlan, stream: int) -> Iterator[tuple[str, int]]:
        old = self.version == "3.0"
        spec = _PARTICLE_COLUMNS_30 if old else _PARTICLE_COLUMNS_31
        row_fmt = " ".join(f for _, f in spec) + " \n"
        ps = self.pixel_size
        for c in P.chunks(plan, self.mics, seed=self.seed, stream=stream):
            m = len(c.index)
            mic = c.micrograph
            u = P.hashed_uniform(c.index, self.seed, 9)
            fom = (20.0 + 40.0 * u).tolist()
            x = (c.coord_frac[:, 0] * 5760.0).round().tolist()
            y = (c.coord_frac[:, 1] * 4092.0).round().tolist()
            label = (c.label.astype(np.int64) + 1).tolist()
            psi = (np.rad2deg(c.psi_rad) - 180.0).tolist()
            img_idx = (c.in_micrograph + 1).tolist()
            stacks = [self.stack_paths[i] for i in mic.tolist()]
            mics = [self.mic_paths[i] for i in mic.tolist()]
            du = c.defocus_u.tolist()
            dv = c.defocus_v.tolist()
            dang = np.rad2deg(self.mics.angle_rad[mic]).tolist()
            zeros = [0.0] * m
            ones = [1.0] * m
            group = (mic % self.n_groups + 1).tolist()
            shift = c.shift_px * (1.0 if old else ps)
            ox, oy = shift[:, 0].tolist(), shift[:, 1].tolist()
            norm = (0.8 + 0.4 * P.hashed_uniform(c.index, self.seed, 10)).tolist()
            ll = (2.5e5 + 1.0e4 * c.posterior).tolist()
            pmax = c.posterior.tolist()
            nsig = np.maximum(1, np.round(c.class_ess * 3)).astype(np.int64).tolist()
            maxres = self.mics.ctf_max_res[mic].tolist()
            cfom = self.mics.ctf_fom[mic].tolist()
            if old:
                cols = [
                    x,
                    y,
                    fom,
                    label,
                    psi,
                    img_idx,
                    stacks,
                    mics,
                    [300.0] * m,
                    du,
                    dv,
                    dang,
                    [2.7] * m,
                    zeros,
                    ones,
                    zeros,
                    [0.1] * m,
                    [10000.0] * m,
                    [ps] * m,
                    maxres,
                    cfom,
                    group,
                    ox,
                    oy,
                    norm,
                    ll,
                    pmax,
                    nsig,
                ]
            else:
                cols = [
                    x,
                    y,
                    fom,
                    label,
                    psi,
                    img_idx,
                    stacks,
                    mics,
                    [1] * m,
                    maxres,
                    cfom,
                    du,
                    dv,
                    dang,
                    zeros,
                    ones,
                    zeros,
                    group,
                    ox,
                    oy,
                    norm,
                    ll,
                    pmax,
                    nsig,
                ]
            yield "".join(map(row_fmt.__mod__, zip(*cols, strict=True))), m

    def write_data(self, path: Path, plan: JobPlan, stream: int, progress, done: list[int]) -> None:
        old = self.version == "3.0"
        spec = _PARTICLE_COLUMNS_30 if old else _PARTICLE_COLUMNS_31
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            if not old:
                fh.write(self._optics())
            fh.write(
                star.loop_header("" if old else "particles", [c for c, _ in spec], self.version)
            )
            for text, m in self._rows(plan, stream):
                fh.write(text)
                done[0] += m
                if progress is not None:
                    progress(done[0])
            fh.write(" \n")

    # -- model.star ---------------------------------------------------------------------

    def model(self, plan: JobPlan, root: str, iteration: int, posterior_mean: float) -> str:
        v = self.version
        old = v == "3.0"
        ps, box = self.pixel_size, self.box
        extent = box * ps
        alive = [c for c in plan.classes if not c.empty]
        best = min((c.resolution_a for c in alive), default=EMPTY_RESOLUTION)
        current_size = min(box, 2 * math.ceil(extent / best * 1.2 / 2) + 2) if alive else box
        general: list[tuple[str, object]] = [
            ("rlnReferenceDimensionality", 2),
            ("rlnDataDimensionality", 2),
            ("rlnOriginalImageSize", box),
            ("rlnCurrentResolution", float(best)),
            ("rlnCurrentImageSize", current_size),
            ("rlnPaddingFactor", 2.0),
            ("rlnIsHelix", 0),
            ("rlnFourierSpaceInterpolator", 1),
            ("rlnMinRadiusNnInterpolation", 10),
            ("rlnPixelSize", float(ps)),
            ("rlnNrClasses", plan.n_classes),
            ("rlnNrBodies", 1),
            ("rlnNrGroups", self.n_groups),
        ]
        if not old:
            general.append(("rlnNrOpticsGroups", 1))
        general += [
            ("rlnTau2FudgeFactor", 2.0),
            ("rlnNormCorrectionAverage", 0.812345),
            ("rlnSigmaOffsets" if old else "rlnSigmaOffsetsAngst", 2.3 if old else 2.3 * ps),
            ("rlnOrientationalPriorMode", 0),
            ("rlnSigmaPriorRotAngle", 0.0),
            ("rlnSigmaPriorTiltAngle", 0.0),
            ("rlnSigmaPriorPsiAngle", 0.0),
            ("rlnLogLikelihood", 1.234567e8 + 1000.0 * iteration),
            ("rlnAveragePmax", float(posterior_mean)),
        ]
        text = star.pairs_block("model_general", general, v)

        n = max(plan.n_particles, 1)
        classes_file = f"{self.job_dir}/{root}_it{iteration:03d}_classes.mrcs"
        cols = [
            "rlnReferenceImage",
            "rlnClassDistribution",
            "rlnAccuracyRotations",
            "rlnAccuracyTranslations" if old else "rlnAccuracyTranslationsAngst",
            "rlnEstimatedResolution",
            "rlnOverallFourierCompleteness",
            "rlnClassPriorOffsetX",
            "rlnClassPriorOffsetY",
        ]
        rng = rng_for(self.seed, 71, iteration)
        rows = []
        for c in plan.classes:
            prior = rng.normal(0.0, 0.4, 2) * (1.0 if old else ps)
            trans = c.accuracy_translation_a / (ps if old else 1.0)
            rows.append(
                [
                    f"{c.index + 1:06d}@{classes_file}",
                    c.count / n,
                    EMPTY_RESOLUTION if c.empty else c.accuracy_rotation_deg,
                    EMPTY_RESOLUTION if c.empty else trans,
                    EMPTY_RESOLUTION if c.empty else c.resolution_a,
                    0.0 if c.empty else 1.0,
                    0.0 if c.empty else float(prior[0]),
                    0.0 if c.empty else float(prior[1]),
                ]
            )
        text += star.loop_block("model_classes", cols, rows, v)

        shells = np.arange(box // 2 + 1)
        freq = shells / extent
        ang = np.where(shells > 0, extent / np.maximum(shells, 1), 999.0)
        spectra_cols = [
            "rlnSpectralIndex",
            "rlnResolution",
            "rlnAngstromResolution",
            "rlnSsnrMap",
            "rlnGoldStandardFsc",
            "rlnFourierCompleteness",
            "rlnReferenceSigma2",
            "rlnReferenceTau2",
            "rlnSpectralOrientabilityContribution",
        ]
        for c in plan.classes:
            if c.empty:
                ssnr = np.zeros(len(shells))
            else:
                crossing = extent / c.resolution_a  # SSNR falls through 1 at the class resolution
                ssnr = 10.0 ** (2.0 * (1.0 - shells / crossing))
            tau2 = 1e-3 * np.exp(-shells / (box / 8)) * (0 if c.empty else 1)
            sigma2 = np.where(ssnr > 0, tau2 / np.maximum(ssnr, 1e-12), 0.0)
            complete = (shells <= current_size // 2).astype(np.float64)
            rows = [
                [int(s), float(f), float(a), float(q), 0.0, float(k), float(g), float(t), 0.0]
                for s, f, a, q, k, g, t in zip(
                    shells, freq, ang, ssnr, complete, sigma2, tau2, strict=True
                )
            ]
            text += star.loop_block(f"model_class_{c.index + 1}", spectra_cols, rows, v)

        counts = np.zeros(self.n_groups, dtype=np.int64)
        mic_of = np.arange(self.mics.n)
        per_mic = np.full(self.mics.n, self.mics.per)
        per_mic[-1] = (
            plan.n_particles - self.mics.per * (self.mics.n - 1) if plan.n_particles else 0
        )
        np.add.at(counts, mic_of % self.n_groups, np.maximum(per_mic, 0))
        group_rows = [
            [g + 1, f"group_{g + 1}", int(counts[g]), 1.0 + 0.01 * (g % 7 - 3)]
            for g in range(self.n_groups)
        ]
        text += star.loop_block(
            "model_groups",
            ["rlnGroupNumber", "rlnGroupName", "rlnGroupNrParticles", "rlnGroupScaleCorrection"],
            group_rows,
            v,
        )
        noise = 5e-4 * np.exp(-shells / (box / 4))
        noise_rows = [
            [int(s), float(f), float(q)] for s, f, q in zip(shells, freq, noise, strict=True)
        ]
        noise_cols = ["rlnSpectralIndex", "rlnResolution", "rlnSigma2Noise"]
        if old:
            for g in range(self.n_groups):
                text += star.loop_block(f"model_group_{g + 1}", noise_cols, noise_rows, v)
        else:
            text += star.loop_block("model_optics_group_1", noise_cols, noise_rows, v)
        return text

    # -- optimiser, sampling ---------------------------------------------------------------

    def optimiser(self, root: str, iteration: int, final: int, k: int) -> str:
        v = self.version
        args = self.command(root, final, k)
        head = f"# RELION optimiser; version {_RELEASE[v]}{_COMMIT[v]}\n# {args}\n"
        pairs: list[tuple[str, object]] = [
            ("rlnOutputRootName", f"{self.job_dir}/{root}"),
            ("rlnModelStarFile", f"{self.job_dir}/{root}_it{iteration:03d}_model.star"),
            ("rlnExperimentalDataStarFile", f"{self.job_dir}/{root}_it{iteration:03d}_data.star"),
            ("rlnOrientSamplingStarFile", f"{self.job_dir}/{root}_it{iteration:03d}_sampling.star"),
            ("rlnCurrentIteration", iteration),
            ("rlnNumberOfIterations", final),
            ("rlnDoSplitRandomHalves", 0),
            ("rlnJoinHalvesUntilThisResolution", -1.0),
            ("rlnAdaptiveOversampleOrder", 1),
            ("rlnAdaptiveOversampleFraction", 0.999),
            ("rlnRandomSeed", int(rng_for(self.seed, 73).integers(10**9, 2 * 10**9))),
            ("rlnParticleDiameter", float(self.particle_diameter)),
            ("rlnWidthMaskEdge", 5),
            ("rlnDoZeroMask", 1),
            ("rlnDoSolventFlattening", 1),
            ("rlnSolventMaskName", "None"),
            ("rlnMaximumCoarseImageSize", -1),
            ("rlnIncrementImageSize", 10),
            ("rlnDoMapEstimation", 1),
            ("rlnDoFastSubsetOptimisation", 0 if _vdam(v) else 1),
            ("rlnDoStochasticGradientDescent", 0),
            ("rlnDoAutoRefine", 0),
            ("rlnDoSkipAlign", 0),
            ("rlnDoSkipRotate", 0),
            ("rlnOverallAccuracyRotations", 1.61),
            (
                "rlnOverallAccuracyTranslationsAngst"
                if v != "3.0"
                else "rlnOverallAccuracyTranslations",
                1.593,
            ),
            ("rlnDoHelicalRefine", 0),
            ("rlnHasConverged", 0),
            ("rlnDoCorrectNorm", 1),
            ("rlnDoCorrectScale", 1),
            ("rlnDoCorrectCtf", 1),
            ("rlnDoIgnoreCtfUntilFirstPeak", 0),
            ("rlnCtfDataArePhaseFlipped", 0),
            ("rlnRefsAreCtfCorrected", 1),
            ("rlnMaxNumberOfPooledParticles", 30),
        ]
        if _vdam(v):
            pairs.insert(20, ("rlnDoGradientRefine", 1))
        return head + star.pairs_block("optimiser_general", pairs, v)

    def sampling(self) -> str:
        ps = self.pixel_size
        pairs: list[tuple[str, object]] = [
            ("rlnIs3DSampling", 0),
            ("rlnIs3DTranslationalSampling", 0),
            ("rlnPsiStep", 6.0),
            ("rlnOffsetRange", 5.0 * ps if self.version != "3.0" else 5.0),
            ("rlnOffsetStep", 1.0 * ps if self.version != "3.0" else 1.0),
            ("rlnHelicalOffsetStep", -1.0),
            ("rlnSamplingPerturbInstance", float(rng_for(self.seed, 75).uniform(-0.5, 0.5))),
            ("rlnSamplingPerturbFactor", 0.5),
            ("rlnHealpixOrderOriginal", 2),
            ("rlnPsiStepOriginal", 6.0),
            ("rlnOffsetRangeOriginal", 5.0),
            ("rlnOffsetStepOriginal", 1.0),
        ]
        return star.pairs_block("sampling_general", pairs, self.version)

    def command(self, root: str, final: int, k: int) -> str:
        algo = (
            f"--grad --class_inactivity_threshold 0.1 --grad_write_iter 10 --iter {final}"
            if _vdam(self.version)
            else f"--iter {final} --dont_combine_weights_via_disc --pool 30 --fast_subsets"
        )
        cont = (
            f" --continue {self.job_dir}/run_it{_restart_of(root):03d}_optimiser.star"
            if root != "run"
            else (" --i Extract/job005/particles.star")
        )
        return (
            f"--o {self.job_dir}/{root}{cont} {algo} --pad 2 --ctf --tau2_fudge 2 "
            f"--particle_diameter {self.particle_diameter:.0f} --K {k} --flatten_solvent "
            f"--zero_mask --center_classes --oversampling 1 --psi_step 12 --offset_range 5 "
            f'--offset_step 2 --norm --scale --j 4 --gpu "" --pipeline_control {self.job_dir}/'
        )


def _restart_of(root: str) -> int:
    return int(root.removeprefix("run_ct")) if root.startswith("run_ct") else 0


def _job_star(
    version: str, *, k: int, final: int, diameter: float, continued: bool, restart: int
) -> str:
    options = [
        ("allow_coarser", "No"),
        ("ctf_intact_first_peak", "No"),
        ("do_bimodal_psi", "Yes"),
        ("do_center", "Yes"),
        ("do_combine_thru_disc", "No"),
        ("do_ctf_correction", "Yes"),
        ("do_fast_subsets", "No" if _vdam(version) else "Yes"),
        ("do_grad", "Yes" if _vdam(version) else "No"),
        ("do_helix", "No"),
        ("do_parallel_discio", "Yes"),
        ("do_preread_images", "No"),
        ("do_queue", "No"),
        ("do_zero_mask", "Yes"),
        ("dont_skip_align", "Yes"),
        ("fn_cont", f"run_it{restart:03d}_optimiser.star" if continued else ""),
        ("fn_img", "Extract/job005/particles.star"),
        ("gpu_ids", ""),
        ("highres_limit", "-1"),
        ("min_dedicated", "1"),
        ("nr_classes", str(k)),
        ("nr_iter", "25"),
        ("nr_iter_grad", str(final) if _vdam(version) else "200"),
        ("nr_mpi", "1"),
        ("nr_pool", "30"),
        ("nr_threads", "4"),
        ("offset_range", "5"),
        ("offset_step", "1"),
        ("other_args", ""),
        ("particle_diameter", f"{diameter:.0f}"),
        ("psi_sampling", "6"),
        ("qsub", "qsub"),
        ("qsubscript", "/public/EM/RELION/relion/bin/relion_qsub.csh"),
        ("queuename", "openmpi"),
        ("scratch_dir", ""),
        ("tau_fudge", "2"),
        ("use_gpu", "Yes"),
    ]
    if version == "3.1":
        job = [("rlnJobType", 8), ("rlnJobIsContinue", int(continued))]
    else:
        job = [
            ("rlnJobTypeLabel", "relion.class2d"),
            ("rlnJobIsContinue", int(continued)),
            ("rlnJobIsTomo", 0),
        ]
    return star.pairs_block("job", job, version) + star.loop_block(
        "joboptions_values",
        ["rlnJobOptionVariable", "rlnJobOptionValue"],
        [[name, f'"{value}"' if value == "" else value] for name, value in options],
        version,
    )


def _run_job(*, k: int, diameter: float) -> str:
    """RELION 3.0's job file (``run.job``), the predecessor of job.star."""
    return (
        "job_type == 8\nis_continue == false\n"
        "Input images STAR file: == Extract/job005/particles.star\n"
        f"Number of classes: == {k}\nNumber of iterations: == 25\n"
        f"Mask diameter (A): == {diameter:.0f}\nDo CTF-correction? == Yes\n"
        "Regularisation parameter T: == 2\nMask individual particles with zeros? == Yes\n"
        "In-plane angular sampling: == 6\nOffset search range (pix): == 5\n"
        "Offset search step (pix): == 1\nUse GPU acceleration? == Yes\n"
    )


# ---------------------------------------------------------------------------- the job


def synth_relion(
    out_dir: str | os.PathLike[str],
    *,
    n_classes: int = 50,
    box: int = 128,
    pixel_size: float = 1.5,
    n_particles: int = 20_000,
    seed: int = 0,
    density: str | os.PathLike[str] | Density | None = None,
    iterations: int = 2,
    relion_version: str = "3.1",
    continued: bool = False,
    progress: Progress | None = None,
    quality: float = 0.5,
    final_iteration: int | None = None,
) -> Path:
    """Write a RELION Class2D job folder at ``out_dir`` and return its path.

    Same arguments ⇒ byte-identical files. ``relion_version`` picks the layout: ``"3.0"``
    (one ``data_`` block, origins in pixels, ``rlnAccuracyTranslations`` in pixels,
    ``run.job``), ``"3.1"``/``"4.0"`` (``# version 30001``, optics block, Å units, job.star),
    ``"5.0"`` (``# version 50001``, VDAM: final iteration 200). ``continued`` names the
    iterations after a restart ``run_ct<N>_itNNN_*``. ``progress`` receives the number of
    particle rows written so far (the total is :func:`total_rows`).

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
    if relion_version not in RELION_VERSIONS:
        raise InputError(
            f"--relion-version must be one of {', '.join(RELION_VERSIONS)}, not {relion_version!r}"
        )
    out = Path(out_dir)
    the_density = resolve_density(density, box=box, pixel_size=pixel_size, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    diameter = min(round(2.4 * the_density.radius_a / 10.0) * 10.0, (box - 10) * pixel_size)
    job = _Job(
        version=relion_version,
        box=box,
        pixel_size=pixel_size,
        seed=seed,
        n_particles=n_particles,
        job_dir=job_dir_name(out),
        particle_diameter=diameter,
    )
    plan = quantise(
        make_plan(
            n_classes=n_classes,
            n_particles=n_particles,
            pixel_size=pixel_size,
            seed=seed,
            quality=quality,
        ),
        box,
        pixel_size,
    )
    renderer = Renderer(
        the_density, box=box, pixel_size=pixel_size, mask=relion_mask(box, diameter, pixel_size)
    )
    numbers = iterations_for(iterations, relion_version, final_iteration, continued)
    final = numbers[-1]
    done = [0]
    for it in numbers:
        t = it / final if final else 1.0
        at = quantise(plan.at(t, n_particles, it), box, pixel_size)
        root = root_name(it, numbers, continued)
        stem = f"{root}_it{it:03d}"
        images = np.stack(
            [
                renderer.render(
                    "empty" if c.empty else c.kind,
                    resolution_a=c.resolution_a,
                    noise=c.noise,
                    rotation=c.rotation,
                    geometry_seed=c.geometry_seed,
                    noise_seed=int(rng_for(seed, 51, it, c.index).integers(0, 2**62)),
                )
                for c in at.classes
            ]
        )
        stamp = base_time(seed) + dt.timedelta(minutes=3 * it)
        label = f"Relion    {stamp.day:02d}-{_MONTHS[stamp.month - 1]}-{stamp:%y  %H:%M:%S}"
        write_stack(out / f"{stem}_classes.mrcs", images, pixel_size, label=label)
        posterior_mean = float(
            sum(c.count * c.posterior_beta[0] / sum(c.posterior_beta) for c in at.classes)
            / max(at.n_particles, 1)
        )
        write_text(out / f"{stem}_model.star", job.model(at, root, it, posterior_mean))
        job.write_data(out / f"{stem}_data.star", at, stream=it, progress=progress, done=done)
        write_text(out / f"{stem}_optimiser.star", job.optimiser(root, it, final, n_classes))
        write_text(out / f"{stem}_sampling.star", job.sampling())
    write_truth(out / "truth.csv", plan, empty_resolution=EMPTY_RESOLUTION)
    if relion_version == "3.0":
        write_text(out / "run.job", _run_job(k=n_classes, diameter=diameter))
    else:
        restart = _restart_of(root_name(final, numbers, continued))
        write_text(
            out / "job.star",
            _job_star(
                relion_version,
                k=n_classes,
                final=final,
                diameter=diameter,
                continued=continued,
                restart=restart,
            ),
        )
    t0 = base_time(seed)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[t0.weekday()]
    when = f"{day} {_MONTHS[t0.month - 1]} {t0.day:2d} {t0:%H:%M:%S %Y}"  # locale-free
    roots = sorted({root_name(it, numbers, continued) for it in numbers}, key=len)
    note = "".join(
        f" ++++ Executing new job on {when}\n ++++ with the following command(s): \n"
        f"`which relion_refine_mpi` {job.command(r, final, n_classes)}\n ++++ \n"
        for r in roots
    )
    write_text(out / "note.txt", note)
    write_bytes(out / "RELION_JOB_EXIT_SUCCESS", b"")
    return out
