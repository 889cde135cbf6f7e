"""Recognising 2D classification jobs by what their folders hold.

A folder is a job because of its files, not its name or a ``job.json``:

* cryoSPARC v4+: ``J<n>_<iii>_class_averages.mrc`` + ``.cs`` + ``J<n>_<iii>_particles.cs``;
* cryoSPARC before v4: the same names prefixed ``cryosparc_P<p>_``;
* RELION Class2D: ``<root>_it<NNN>_classes.mrcs`` + ``_model.star`` + ``_data.star``, where
  ``<root>`` is ``run`` or ``run_ct<N>`` for continued jobs.

The highest iteration wins: the highest that has any of the three files, so an iteration
whose class averages were deleted is refused by name rather than replaced by an earlier one;
``--iteration N`` (``find_job(..., iteration=N)``) picks another on purpose. Companion files
are derived from the iteration's name, never globbed, so ``J<n>_passthrough_particles.cs``
(which has no class field) is never taken for the particles. ``job.json`` adds the project
and job uids when present and is never required.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from cryocurate.errors import (
    FormatError,
    InconsistentJobError,
    InputError,
    MissingFileError,
    NotAJobError,
)
from cryocurate.store.names import safe_segment

Software = Literal["cryosparc", "relion", "magellon"]

_CS_AVERAGES = re.compile(r"^(?:cryosparc_(P\d+)_)?(J\d+)_(\d+)_class_averages\.mrc$")
_CS_ANY_AVERAGES = re.compile(r"class_averages\.(mrc|cs)$")
_RELION_CLASSES = re.compile(r"^(.+?)_it(\d+)_classes\.mrcs$")
_CS_FILE = re.compile(
    r"^(?:cryosparc_(P\d+)_)?(J\d+)_(\d+)_(class_averages\.mrc|class_averages\.cs|particles\.cs)$"
)
_RELION_FILE = re.compile(r"^(.+?)_it(\d+)_(classes\.mrcs|model\.star|data\.star)$")
_RELION_ANY_CLASSES = re.compile(r"_classes\.mrcs$")
_RELION_3D = re.compile(r"_it\d+_class\d+\.mrc$")
_RELION_CT = re.compile(r"_ct(\d+)$")
_JOB_DIR = re.compile(r"^J(\d+)$")
_RELION_JOB_DIR = re.compile(r"^job(\d+)$")
CLASS2D_JOB_TYPES = {"class_2D", "class_2D_new", "class_2D_streaming"}


@dataclass(frozen=True)
class JobFiles:
    """The files of one job's final iteration, and what its names and job.json say."""

    software: Software
    job_dir: Path
    iteration: int
    averages: Path  # the class-average stack
    classes: Path  # class_averages.cs or model.star
    particles: Path  # particles.cs or data.star
    job_json: Path | None = None
    project_uid: str | None = None
    job_uid: str | None = None

    @property
    def inputs(self) -> list[Path]:
        """Every file extraction reads (and fingerprints)."""
        files = [self.averages, self.classes, self.particles]
        if self.job_json is not None:
            files.append(self.job_json)
        return files

    @property
    def wanted_run_name(self) -> str:
        """``<project_uid>_<job_uid>`` when known, otherwise the folder's name, as given."""
        if self.project_uid and self.job_uid:
            return f"{self.project_uid}_{self.job_uid}"
        return self.job_dir.name

    @property
    def run_name(self) -> str:
        """:attr:`wanted_run_name` as one safe path segment: job.json's fields are input, and
        ``"../../victim"`` must not become a folder outside the dataset (same name every run)."""
        return safe_segment(self.wanted_run_name, what="run name")


def _listdir(job_dir: Path) -> list[str]:
    if not job_dir.exists():
        raise MissingFileError("folder not found", where=job_dir)
    if not job_dir.is_dir():
        raise NotAJobError("is a file, not a job folder", where=job_dir)
    try:
        return sorted(os.listdir(job_dir))
    except OSError as err:
        raise MissingFileError(f"cannot list folder: {err.strerror}", where=job_dir) from err


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MissingFileError(
            f"missing {what} {path.name}",
            where=path.parent,
            hint="a job needs its class averages, their metadata and its particles",
        )
    if not os.access(path, os.R_OK):
        raise MissingFileError("cannot be read (permission denied)", where=path)
    return path


def read_job_json(path: Path) -> dict[str, object]:
    """A cryoSPARC ``job.json`` as a dict (optional file, but if present it must be JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(
            f"not valid JSON: {err}", where=path, hint="fix or remove it; job.json is optional"
        ) from err
    if not isinstance(data, dict):
        raise FormatError("not a JSON object", where=path, hint="job.json is optional")
    return data


def _iteration_files(
    job_dir: Path, found: dict[int, dict[str, str]], wanted: int | None, needs: dict[str, str]
) -> tuple[int, dict[str, Path]]:
    """The iteration to extract and its files, all of which must be there.

    The final iteration is the highest one that has *any* of the job's files: if its class
    averages were deleted while its metadata stayed, extraction must not fall back to an
    earlier iteration unasked. ``found`` maps iteration → file kind → name; ``needs`` maps
    each kind to how it is named in messages.
    """
    listed = ", ".join(f"{it:03d}" for it in sorted(found))
    if wanted is None:
        iteration = max(found)
    elif wanted in found:
        iteration = wanted
    else:
        raise MissingFileError(
            f"has no iteration {wanted:03d}; its iterations are {listed}",
            where=job_dir,
            hint="give one of those with --iteration, or leave it out for the final one",
        )
    names = found[iteration]
    missing = [kind for kind in needs if kind not in names]
    if missing:
        complete = [it for it, kinds in found.items() if it != iteration and len(kinds) == 3]
        what = "the final iteration" if wanted is None else "iteration"
        if complete and wanted is None:
            hint = (
                f"copy the file back, or extract an earlier, complete iteration with "
                f"--iteration {max(complete)}"
            )
        else:
            hint = "copy the file back from the job's folder"
        kind = missing[0]
        some_kind, some_name = next(iter(names.items()))
        expected = some_name.removesuffix(some_kind) + kind  # e.g. J12_020_ + particles.cs
        raise MissingFileError(
            f"{what} {iteration:03d} is incomplete: missing {needs[kind]} {expected}",
            where=job_dir,
            hint=hint,
        )
    paths = {kind: _require(job_dir / names[kind], needs[kind]) for kind in needs}
    return iteration, paths


_CS_NEEDS = {
    "class_averages.mrc": "class averages",
    "class_averages.cs": "class metadata",
    "particles.cs": "particles file",
}


def _find_cryosparc(job_dir: Path, names: list[str], wanted: int | None = None) -> JobFiles | None:
    jobs = {m.group(2) for m in map(_CS_AVERAGES.match, names) if m}
    if len(jobs) > 1:
        raise InconsistentJobError(
            f"holds the class averages of several jobs ({', '.join(sorted(jobs))})",
            where=job_dir,
            hint="give each job its own folder",
        )
    # iteration → stem (with the legacy prefix, if any) → file kind → name
    stems: dict[int, dict[str, dict[str, str]]] = {}
    for name in names:
        m = _CS_FILE.match(name)
        if m and (not jobs or m.group(2) in jobs):
            stem = name.removesuffix(m.group(4))
            stems.setdefault(int(m.group(3)), {}).setdefault(stem, {})[m.group(4)] = name
    if not stems:
        return None
    # Of two spellings of one iteration (legacy and v4 names), the one with the most files,
    # then the larger name.
    found = {
        it: max(by_stem.items(), key=lambda item: (len(item[1]), item[0]))[1]
        for it, by_stem in stems.items()
    }
    iteration, paths = _iteration_files(job_dir, found, wanted, _CS_NEEDS)
    averages = paths["class_averages.mrc"]
    m = _CS_AVERAGES.match(averages.name)
    assert m is not None
    legacy_project, job_uid = m.group(1), m.group(2)
    files = JobFiles(
        software="cryosparc",
        job_dir=job_dir,
        iteration=iteration,
        averages=averages,
        classes=paths["class_averages.cs"],
        particles=paths["particles.cs"],
        project_uid=legacy_project,
        job_uid=job_uid,
    )
    job_json = job_dir / "job.json"
    if job_json.is_file():
        meta = read_job_json(job_json)
        project_uid = meta.get("project_uid")
        uid = meta.get("uid")
        files = replace(
            files,
            job_json=job_json,
            project_uid=project_uid if isinstance(project_uid, str) else legacy_project,
            job_uid=uid if isinstance(uid, str) else job_uid,
        )
    elif files.project_uid is None:
        project_uid = _project_uid_from_parent(job_dir)
        if project_uid:
            files = replace(files, project_uid=project_uid)
    return files


def _project_uid_from_parent(job_dir: Path) -> str | None:
    """A v4 job folder inside its project: the project's uid is in ``../project.json``."""
    project_json = job_dir.parent / "project.json"
    if not project_json.is_file():
        return None
    try:
        uid = json.loads(project_json.read_text(encoding="utf-8")).get("uid")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return uid if isinstance(uid, str) and re.fullmatch(r"P\d+", uid) else None


def _relion_rank(root: str, iteration: int) -> tuple[int, int]:
    ct = _RELION_CT.search(root)
    return iteration, int(ct.group(1)) if ct else -1


_RELION_NEEDS = {
    "classes.mrcs": "class averages",
    "model.star": "model file",
    "data.star": "particle data file",
}


def _find_relion(job_dir: Path, names: list[str], wanted: int | None = None) -> JobFiles | None:
    # iteration → (ct rank, root) → file kind → name; of an iteration written by several
    # continuations, the latest continuation is the one extracted.
    roots: dict[int, dict[tuple[int, str], dict[str, str]]] = {}
    for name in names:
        m = _RELION_FILE.match(name)
        if m:
            root, iteration = m.group(1), int(m.group(2))
            rank = _relion_rank(root, iteration)[1]
            roots.setdefault(iteration, {}).setdefault((rank, root), {})[m.group(3)] = name
    if not roots or not any(_RELION_CLASSES.match(n) for n in names):
        return None
    found = {it: by_root[max(by_root)] for it, by_root in roots.items()}
    iteration, paths = _iteration_files(job_dir, found, wanted, _RELION_NEEDS)
    job_uid = job_dir.name if _RELION_JOB_DIR.match(job_dir.name) else None
    return JobFiles(
        software="relion",
        job_dir=job_dir,
        iteration=iteration,
        averages=paths["classes.mrcs"],
        classes=paths["model.star"],
        particles=paths["data.star"],
        job_uid=job_uid,
    )


def find_job(job_dir: str | os.PathLike[str], iteration: int | None = None) -> JobFiles:
    """Recognise the job in ``job_dir`` and name the files of its final iteration (or of
    ``iteration``, when one is asked for).

    Raises:
        MissingFileError: the folder, or a file the iteration needs, is missing (the final
            iteration is the highest with any of the job's files: an incomplete one is
            refused, never silently replaced by an earlier one), or there is no such
            iteration.
        FormatError: class averages are there but carry no iteration number.
        NotAJobError: nothing in the folder is a 2D classification result.
    """
    job_dir = Path(job_dir).absolute()
    names = _listdir(job_dir)
    found = _find_cryosparc(job_dir, names, iteration) or _find_relion(job_dir, names, iteration)
    if found is not None:
        return found
    loose = [n for n in names if _CS_ANY_AVERAGES.search(n) or _RELION_ANY_CLASSES.search(n)]
    if loose:
        raise FormatError(
            f"no iteration found in {loose[0]}",
            where=job_dir,
            hint="expected names like J12_020_class_averages.mrc or run_it025_classes.mrcs",
        )
    if any(_RELION_3D.search(n) for n in names):
        raise NotAJobError(
            "is a RELION 3D classification or refinement job, not a 2D classification",
            where=job_dir,
        )
    raise NotAJobError(
        "is not a 2D classification job: no J<n>_<iii>_class_averages.mrc (cryoSPARC) "
        "or run_itNNN_classes.mrcs (RELION) in it",
        where=job_dir,
    )


def read_jobs_file(path: str | os.PathLike[str]) -> list[Path]:
    """Job folders listed one per line; blank lines and ``#`` comments are ignored.

    Relative paths are taken relative to the list file's folder, so a list travels with
    the project it describes.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise MissingFileError("jobs file not found", where=path) from err
    except (OSError, UnicodeDecodeError) as err:
        raise MissingFileError(f"cannot read jobs file: {err}", where=path) from err
    jobs = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            p = Path(line).expanduser()
            jobs.append(p if p.is_absolute() else path.parent / p)
    return jobs


def _job_number(name: str, pattern: re.Pattern[str]) -> int | None:
    m = pattern.match(name)
    return int(m.group(1)) if m else None


def _is_cryosparc_class2d(job_dir: Path) -> bool:
    job_json = job_dir / "job.json"
    if job_json.is_file():
        try:
            job_type = read_job_json(job_json).get("job_type")
        except FormatError:
            job_type = None
        if isinstance(job_type, str):
            return job_type in CLASS2D_JOB_TYPES
    try:
        return any(_CS_AVERAGES.match(n) for n in os.listdir(job_dir))
    except OSError:
        return False


def find_project_jobs(project_dir: str | os.PathLike[str]) -> list[Path]:
    """The 2D classification jobs of a cryoSPARC (or RELION) project, in job-number order.

    cryoSPARC: the ``J<n>`` folders whose ``job.json`` says ``class_2D…`` (or, without one,
    that hold class averages). RELION: the ``Class2D/job<NNN>`` folders.
    """
    project_dir = Path(project_dir).absolute()
    if not project_dir.is_dir():
        raise MissingFileError("project folder not found", where=project_dir)
    jobs: list[tuple[int, Path]] = []
    for child in project_dir.iterdir():
        n = _job_number(child.name, _JOB_DIR)
        if n is not None and child.is_dir() and _is_cryosparc_class2d(child):
            jobs.append((n, child))
    relion = project_dir / "Class2D"
    if relion.is_dir():
        for child in relion.iterdir():
            n = _job_number(child.name, _RELION_JOB_DIR)
            if n is not None and child.is_dir():
                jobs.append((n, child))
    if not jobs:
        raise NotAJobError(
            "holds no 2D classification jobs (no J<n> folder with class averages, "
            "no Class2D/job<NNN>)",
            where=project_dir,
        )
    return [path for _, path in sorted(jobs)]


PICKS = ("first", "middle", "last")


def pick_jobs(jobs: Sequence[Path], pick: str) -> list[Path]:
    """Choose from jobs in order: ``all``, or any of ``first``, ``middle``, ``last``.

    The seed asks labs for the first, middle and last 2D jobs of each project, to span the
    range from early, rough classes to final, clean ones.
    """
    words = [w.strip().lower() for w in pick.split(",") if w.strip()]
    if words == ["all"]:
        return list(jobs)
    unknown = [w for w in words if w not in PICKS]
    if unknown or not words:
        raise InputError(
            f"--pick {pick!r} is not understood",
            hint="use 'all' or a comma-separated subset of first,middle,last",
        )
    n = len(jobs)
    index = {"first": 0, "middle": (n - 1) // 2, "last": n - 1}
    chosen = sorted({index[w] for w in words})
    return [jobs[i] for i in chosen]


def unique_paths(paths: Iterable[Path]) -> list[Path]:
    """Drop repeats (the same folder given twice, or by two spellings), keeping order."""
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = Path(os.path.realpath(p))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out
