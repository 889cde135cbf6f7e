"""``cryocurate export``: one grading campaign as a self-describing training set.

Why this shape: whoever trains on the grades should need neither the portal nor its database,
should be able to check that nothing was lost or changed on the way, and should not be able
to leak a job across the split by accident. So an export is a plain folder::

    OUT/
      images/<run-key>.mrcs      the run's float32 class averages, bit for bit as extracted
      class_averages.parquet     one row per class average: ids, metadata, consensus, split
      class_averages.csv         the same table as CSV
      grades.parquet             one row per grade: item, labeller, grade, time (long format)
      grades.csv                 the same table as CSV
      splits.json                which jobs are in which split, the seed, the fractions
      README.md                  the datasheet: sources, counts, labellers, agreement, rules
      manifest.json              size and sha256 of every other file

It is built in a temporary folder next to ``OUT`` and renamed into place when complete, so
``OUT`` is either the whole export or absent; a non-empty ``OUT`` is refused unless
``force``. The consensus is computed here from the current grades
(:func:`cryocurate.grading.consensus.consensus_report`); a reviewer's settled grades, when
given (``settled``), override the final label and are recorded as such.

The export is deterministic: the same catalog, seed and fractions give the same bytes (no
clock time is written; the agreement bootstrap is seeded).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.orm import Session

from cryocurate import __version__, atomic
from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    Class2DJob,
    ClassAverage,
    Dataset,
    ItemKind,
    Run,
)
from cryocurate.errors import ConflictError, InputError, MissingFileError
from cryocurate.formats.mrc import read_header
from cryocurate.grading.agreement import AgreementReport, agreement_report
from cryocurate.grading.campaigns import get_campaign, load_campaign
from cryocurate.grading.consensus import ConsensusReport, consensus_report
from cryocurate.grading.consensus_store import settled_grades
from cryocurate.grading.grades import grade_rows
from cryocurate.grading.ratings import Ratings, load_ratings
from cryocurate.learn.splits import DEFAULT_FRACTIONS, SPLITS, JobSplits, split_jobs
from cryocurate.portal import Portal
from cryocurate.store import layout, names

__all__ = [
    "CLASS_AVERAGE_COLUMNS",
    "EXPORT_FORMAT",
    "GRADE_COLUMNS",
    "ExportSummary",
    "export_campaign",
]

EXPORT_FORMAT = "cryocurate-export/1"
IMAGES = "images"
CLASS_AVERAGES = "class_averages"
GRADES = "grades"
SPLITS_FILE = "splits.json"
README = "README.md"
MANIFEST = "manifest.json"

# ----------------------------------------------------------------------------------------------
# The tables' columns: name → (Arrow type, what it means). The README's column dictionary is
# written from these, so the documentation cannot drift from the files.

_IDS: dict[str, tuple[pa.DataType, str]] = {
    "class_average_id": (pa.int64(), "The class average's id in the portal's catalog."),
    "item_id": (pa.int64(), "The campaign item's id (what grades refer to)."),
    "run_id": (pa.int64(), "The run's id: one 2D classification job, the unit of the split."),
    "run_name": (pa.string(), "The run's name in its dataset."),
    "dataset_id": (pa.int64(), "The dataset's id."),
    "dataset_title": (pa.string(), "The dataset's title."),
    "lab": (pa.string(), "The lab the dataset comes from (empty: not recorded)."),
    "software": (pa.string(), "cryosparc or relion."),
    "project_uid": (pa.string(), "The processing project's id (cryoSPARC P…), if any."),
    "job_uid": (pa.string(), "The job's id in its project (cryoSPARC J…, RELION job…), if any."),
    "iteration": (pa.int64(), "The classification iteration the averages come from."),
    "class_index": (pa.int64(), "The class's index in its job (0-based)."),
    "image_file": (pa.string(), "The stack holding the image, relative to the export."),
    "image_index": (pa.int64(), "The image's index in that stack (0-based; = class_index)."),
}
_METADATA: dict[str, tuple[pa.DataType, str]] = {
    "resolution_a": (pa.float64(), "The class's estimated resolution, Å."),
    "particle_count": (pa.int64(), "Particles assigned to the class."),
    "class_fraction": (pa.float64(), "particle_count / the job's particles."),
    "mean_posterior": (pa.float64(), "Mean posterior probability of the class's particles."),
    "mean_ess": (pa.float64(), "Mean effective sample size of the class's particles."),
    "accuracy_rotations": (pa.float64(), "Rotational accuracy, degrees (RELION)."),
    "accuracy_translations_a": (pa.float64(), "Translational accuracy, Å (RELION)."),
    "pixel_size_a": (pa.float64(), "Pixel size of the image, Å."),
    "box_size": (pa.int64(), "Image size in pixels (square)."),
    "mass_estimate": (pa.float64(), "Mass estimated from the image (Magellon's massest)."),
    "dmean_mass": (pa.float64(), "|mass − mean of the job's masses|."),
    "dmedian_mass": (pa.float64(), "|mass − median of the job's masses|."),
    "dmode_mass": (pa.float64(), "|mass − mode of the job's masses|."),
    "n_classes": (pa.int64(), "Classes in the job."),
    "n_particles": (pa.int64(), "Particles in the job."),
    "job_fingerprint": (pa.string(), "sha256 of the job's input files as extracted."),
}
_CONSENSUS: dict[str, tuple[pa.DataType, str]] = {
    "n_grades": (pa.int64(), "Labellers who graded the item (first looks)."),
    "median": (pa.float64(), "Median grade value (may fall between two levels)."),
    "median_grade": (pa.int64(), "The median as a level value (rounded toward the middle)."),
    "mean": (pa.float64(), "Mean grade value."),
    "spread": (pa.int64(), "Highest − lowest grade, in levels."),
    "disagreement": (pa.bool_(), "spread ≥ 2: the labellers saw different things."),
    "model_grade": (pa.int64(), "The Dawid–Skene consensus: the most probable true level."),
    "model_probability": (pa.float64(), "The model's posterior probability of model_grade."),
}
_FINAL: dict[str, tuple[pa.DataType, str]] = {
    "settled": (pa.int64(), "A reviewer's settled grade value, when there is one."),
    "final_value": (pa.int64(), "The label to train on: settled, else model_grade."),
    "final_grade": (pa.string(), "final_value as the scale's key (A…F, or 1…5)."),
    "final_source": (pa.string(), "settled, model, or empty (no grade: no label)."),
    "split": (pa.string(), "train, validation or test (by job; see splits.json)."),
}


def class_average_columns(levels: Sequence[int]) -> dict[str, tuple[pa.DataType, str]]:
    """Every column of ``class_averages``, in order; ``p_<level>`` per level, ascending."""
    posterior = {
        f"p_{level}": (pa.float64(), f"The model's posterior probability of level {level}.")
        for level in levels
    }
    return {**_IDS, **_METADATA, **_CONSENSUS, **posterior, **_FINAL}


CLASS_AVERAGE_COLUMNS: tuple[str, ...] = tuple(class_average_columns([1, 2, 3, 4, 5]))
"""The columns of ``class_averages`` on a 1–5 scale (both of the portal's scales are)."""

GRADE_SCHEMA: dict[str, tuple[pa.DataType, str]] = {
    "item_id": (pa.int64(), "The campaign item graded."),
    "class_average_id": (pa.int64(), "Its class average's id."),
    "run_id": (pa.int64(), "Its run (job)."),
    "labeller": (pa.string(), "Who graded (the account's email)."),
    "grade": (pa.string(), "The grade's key on the scale (A…F, or 1…5)."),
    "value": (pa.int64(), "The grade's value (1–5)."),
    "repeat": (pa.bool_(), "True for the labeller's second look at an item (consistency)."),
    "given_at": (pa.timestamp("us", tz="UTC"), "When the key was pressed (UTC)."),
    "seconds_on_item": (pa.float64(), "Seconds the item was on screen before the grade."),
    "stale": (pa.bool_(), "The job was re-extracted with other content after this grade."),
}
GRADE_COLUMNS: tuple[str, ...] = tuple(GRADE_SCHEMA)


# ----------------------------------------------------------------------------------------------
# What is read from the catalog


@dataclass
class _Run:
    run_id: int
    name: str
    dataset_id: int
    dataset_title: str
    lab: str | None
    job: Class2DJob
    key: str
    stack: Path


@dataclass
class _Gathered:
    campaign_id: int
    campaign_name: str
    campaign_description: str | None
    scale: str
    levels: list[dict[str, Any]]  # ascending by value
    rows: list[dict[str, Any]]  # one per item, catalog facts only
    runs: dict[int, _Run]
    ratings: Ratings
    grades: list[dict[str, Any]]


@dataclass(frozen=True)
class ExportSummary:
    """What an export holds (the CLI prints it; ``--json`` prints ``to_dict()``)."""

    out: Path
    campaign_id: int
    n_runs: int
    n_items: int
    n_labelled: int
    n_grades: int
    n_labellers: int
    alpha: float | None
    items_per_split: dict[str, int]
    jobs_per_split: dict[str, int]
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "campaign_id": self.campaign_id,
            "n_runs": self.n_runs,
            "n_items": self.n_items,
            "n_labelled": self.n_labelled,
            "n_grades": self.n_grades,
            "n_labellers": self.n_labellers,
            "alpha": self.alpha,
            "items_per_split": self.items_per_split,
            "jobs_per_split": self.jobs_per_split,
            "files": self.files,
        }


def run_key(run_id: int, name: str) -> str:
    """``000012_P1_J10``: the run's id (unique, sorts numerically) and its name made safe for
    a file name."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "run"
    return f"{run_id:06d}_{safe}"


def _gather(session: Session, portal: Portal, campaign_id: int) -> _Gathered:
    campaign: Campaign = load_campaign(session, campaign_id)
    if campaign.item_kind is not ItemKind.class_average:
        raise InputError(
            f"campaign {campaign_id} grades {campaign.item_kind.value.replace('_', ' ')}s",
            hint="only campaigns of class averages can be exported as training data",
        )
    query = (
        sa.select(CampaignItem.id, ClassAverage, Run, Dataset, Class2DJob)
        .join(ClassAverage, ClassAverage.id == CampaignItem.class_average_id)
        .join(Run, Run.id == CampaignItem.run_id)
        .join(Dataset, Dataset.id == Run.dataset_id)
        .join(Class2DJob, Class2DJob.run_id == Run.id)
        .where(CampaignItem.campaign_id == campaign.id)
        .order_by(CampaignItem.id)
    )
    runs: dict[int, _Run] = {}
    rows: list[dict[str, Any]] = []
    for item_id, ca, run, dataset, job in session.execute(query):
        if run.id not in runs:
            key = run_key(run.id, run.name)
            runs[run.id] = _Run(
                run_id=run.id,
                name=run.name,
                dataset_id=dataset.id,
                dataset_title=dataset.title,
                lab=dataset.lab,
                job=job,
                key=key,
                stack=layout.run_dir(portal.data_dir, dataset.id, run.name)
                / layout.CLASS_AVERAGES
                / layout.CLASS_AVERAGES_STACK,
            )
        r = runs[run.id]
        rows.append(
            {
                "class_average_id": ca.id,
                "item_id": item_id,
                "run_id": run.id,
                "run_name": run.name,
                "dataset_id": dataset.id,
                "dataset_title": dataset.title,
                "lab": dataset.lab,
                "software": job.software,
                "project_uid": job.project_uid,
                "job_uid": job.job_uid,
                "iteration": job.iteration,
                "class_index": ca.class_index,
                "image_file": f"{IMAGES}/{r.key}.mrcs",
                "image_index": ca.class_index,
                "resolution_a": ca.resolution_a,
                "particle_count": ca.particle_count,
                "class_fraction": ca.class_fraction,
                "mean_posterior": ca.mean_posterior,
                "mean_ess": ca.mean_ess,
                "accuracy_rotations": ca.accuracy_rotations,
                "accuracy_translations_a": ca.accuracy_translations_a,
                "pixel_size_a": ca.pixel_size_a,
                "box_size": job.box_size,
                "mass_estimate": ca.mass_estimate,
                "dmean_mass": ca.dmean_mass,
                "dmedian_mass": ca.dmedian_mass,
                "dmode_mass": ca.dmode_mass,
                "n_classes": job.n_classes,
                "n_particles": job.n_particles,
                "job_fingerprint": job.fingerprint,
            }
        )
    ratings = load_ratings(session, campaign)
    if [r["item_id"] for r in rows] != ratings.item_ids:
        raise ConflictError(
            f"campaign {campaign_id} has items that are not class averages of extracted jobs",
            hint="re-extract the campaign's jobs",
        )
    levels = sorted((dict(level) for level in campaign.levels), key=lambda lv: int(lv["value"]))
    grades = grade_rows(session, campaign)
    # Keep only what the export writes, in its order (the rows also name tilt series etc.).
    grades = [{column: g[column] for column in GRADE_COLUMNS} for g in grades]
    return _Gathered(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        campaign_description=campaign.description,
        scale=campaign.scale.value,
        levels=levels,
        rows=rows,
        runs=runs,
        ratings=ratings,
        grades=grades,
    )


# ----------------------------------------------------------------------------------------------
# Consensus and final labels


def _attach_consensus(
    gathered: _Gathered,
    report: ConsensusReport,
    settled: Mapping[int, int] | None,
    splits: JobSplits,
) -> None:
    """Add the consensus, the final label and the split to each row (in place)."""
    keys = {int(level["value"]): str(level["key"]) for level in gathered.levels}
    settled = dict(settled or {})
    known = {row["item_id"] for row in gathered.rows}
    unknown = sorted(set(settled) - known)
    if unknown:
        raise InputError(f"settled grades for items {unknown[:5]} not in the campaign")
    bad = sorted({v for v in settled.values() if int(v) not in keys})
    if bad:
        raise InputError(f"settled grade values {bad} are not on the campaign's scale")
    for row, item in zip(gathered.rows, report.items, strict=True):
        assert item.item == row["item_id"]
        row.update(
            n_grades=item.n_grades,
            median=item.median,
            median_grade=None if item.median_grade is None else int(item.median_grade),
            mean=item.mean,
            spread=item.spread,
            disagreement=item.disagreement,
            model_grade=None if item.model_grade is None else int(item.model_grade),
            model_probability=item.model_probability,
        )
        for level, p in zip(report.levels, item.posterior, strict=True):
            row[f"p_{level}"] = p if item.n_grades else None
        decided = settled.get(row["item_id"])
        if decided is not None:
            final, source = int(decided), "settled"
        elif row["model_grade"] is not None:
            final, source = row["model_grade"], "model"
        else:
            final, source = None, None
        row.update(
            settled=None if decided is None else int(decided),
            final_value=final,
            final_grade=None if final is None else keys[final],
            final_source=source,
            split=splits.assignment[row["run_id"]],
        )


# ----------------------------------------------------------------------------------------------
# Writing


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; the catalog stores UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _write_table(
    folder: Path, stem: str, rows: list[dict[str, Any]], schema: dict[str, tuple[pa.DataType, str]]
) -> None:
    """``<stem>.parquet`` and ``<stem>.csv`` with exactly ``schema``'s columns, in order.

    CSV cells: empty for missing values, ``true``/``false``, ISO 8601 times, floats as
    Python's shortest round-tripping repr (so the CSV loses nothing the Parquet holds).
    """
    arrow_schema = pa.schema(
        [
            pa.field(name, kind, metadata={"description": text})
            for name, (kind, text) in schema.items()
        ]
    )
    columns = {name: [row.get(name) for row in rows] for name in schema}
    table = pa.Table.from_pydict(columns, schema=arrow_schema)
    pq.write_table(table, folder / f"{stem}.parquet", compression="zstd")

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return "" if math.isnan(value) else repr(value)
        if isinstance(value, dt.datetime):
            return value.isoformat()
        return str(value)

    with open(folder / f"{stem}.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(schema)
        for row in rows:
            writer.writerow([cell(row.get(name)) for name in schema])


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _manifest(folder: Path, campaign_id: int) -> dict[str, Any]:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return {
        "format": EXPORT_FORMAT,
        "cryocurate_version": __version__,
        "campaign_id": campaign_id,
        "files": {
            name: {"bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
            for name in files
            if name != MANIFEST
        },
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConflictError("exists and is not a folder", where=out, hint="choose another OUT")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConflictError(
            "is not empty", where=out, hint="choose another OUT, or --force to replace it"
        )
    if not out.parent.is_dir():
        raise InputError("the folder to write into does not exist", where=out.parent)


def _place(staged: Path, out: Path) -> None:
    """Rename the finished export over ``out`` (an old one goes only once the new is in)."""
    atomic.fsync_tree(staged)
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f"{atomic.TMP_PREFIX}old-", dir=out.parent))
        os.replace(out, old / "export")
    try:
        os.replace(staged, out)
    except BaseException:
        if old is not None:
            os.replace(old / "export", out)
            shutil.rmtree(old, ignore_errors=True)
        raise
    atomic.fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_campaign(
    portal: Portal,
    campaign_id: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    force: bool = False,
    settled: Mapping[int, int] | None = None,
    n_resamples: int = 1000,
    on_run: Callable[[int, int], None] | None = None,
) -> ExportSummary:
    """Write campaign ``campaign_id`` of ``portal`` as a training set in ``out``.

    ``seed`` and ``fractions`` (train, validation, test) set the split
    (:func:`cryocurate.learn.splits.split_jobs`); ``settled`` maps item ids to a reviewer's
    grade value, which then is the final label (default: the reviewers' decisions stored in
    the catalog); ``n_resamples`` is the agreement bootstrap's
    size; ``on_run(done, total)`` is called after each run's images are copied (progress).

    Raises ConflictError for a non-empty ``out`` without ``force`` (nothing is written),
    InputError for a campaign that is not of class averages or bad settled grades,
    MissingFileError when a run's stack is missing from the data tree.
    """
    out = Path(out).absolute()
    names.check_export_folder(out, portal.root, portal.data_dir)
    _check_out(out, force)
    with portal.transaction() as session:
        gathered = _gather(session, portal, campaign_id)
        if settled is None:
            settled = settled_grades(session, get_campaign(session, campaign_id))
    ratings = gathered.ratings
    if not ratings.labellers:
        raise InputError(
            f"campaign {campaign_id} has no labellers, so there are no grades to export"
        )
    level_values = [int(level["value"]) for level in gathered.levels]
    report = consensus_report(ratings.values, level_values, ratings.labellers, ratings.item_ids)
    agreement = agreement_report(
        ratings.values,
        level_values,
        ratings.labellers,
        repeats=ratings.repeats,
        level_labels=[str(level["key"]) for level in gathered.levels],
        n_resamples=n_resamples,
        seed=seed,
    )
    splits = split_jobs({r.run_id: r.lab for r in gathered.runs.values()}, fractions, seed)
    _attach_consensus(gathered, report, settled, splits)
    for grade in gathered.grades:
        grade["given_at"] = _utc(grade["given_at"])

    staged = Path(tempfile.mkdtemp(prefix=f"{atomic.TMP_PREFIX}export-", dir=out.parent))
    try:
        # mkdtemp makes the folder private (0700); a published export gets the usual mode.
        staged.chmod(0o777 & ~_umask())
        images = staged / IMAGES
        images.mkdir()
        runs = sorted(gathered.runs.values(), key=lambda r: r.run_id)
        for done, run in enumerate(runs, start=1):
            _copy_stack(run, images / f"{run.key}.mrcs")
            if on_run is not None:
                on_run(done, len(runs))
        levels_for_columns = [int(v) for v in report.levels]
        _write_table(
            staged, CLASS_AVERAGES, gathered.rows, class_average_columns(levels_for_columns)
        )
        _write_table(staged, GRADES, gathered.grades, GRADE_SCHEMA)
        split_info = _split_info(gathered, splits)
        atomic.write_json(staged / SPLITS_FILE, split_info, durable=False)
        atomic.write_text(
            staged / README,
            datasheet(gathered, report, agreement, splits, split_info, levels_for_columns),
            durable=False,
        )
        atomic.write_json(staged / MANIFEST, _manifest(staged, campaign_id), durable=False)
        files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
        _check_out(out, force)  # again: someone may have written there meanwhile
        _place(staged, out)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return ExportSummary(
        out=out,
        campaign_id=campaign_id,
        n_runs=len(gathered.runs),
        n_items=len(gathered.rows),
        n_labelled=sum(1 for r in gathered.rows if r["final_value"] is not None),
        n_grades=len(gathered.grades),
        n_labellers=len(ratings.labellers),
        alpha=agreement.alpha.estimate,
        items_per_split=split_info["items"],
        jobs_per_split={split: len(splits.jobs(split)) for split in SPLITS},
        files=files,
    )


def _copy_stack(run: _Run, target: Path) -> None:
    """Copy the run's stack byte for byte (lossless), after checking it is the float32 stack
    of as many classes as the catalog says."""
    if not run.stack.is_file():
        raise MissingFileError(
            "the run's class-average stack is missing from the data tree",
            where=run.stack,
            hint="re-extract the job",
        )
    header = read_header(run.stack)
    if header.mode != 2 or header.nz != run.job.n_classes:
        raise ConflictError(
            f"the stack holds {header.nz} images of mode {header.mode}, "
            f"the catalog {run.job.n_classes} float32 classes",
            where=run.stack,
            hint="re-extract the job",
        )
    shutil.copyfile(run.stack, target)


def _split_info(gathered: _Gathered, splits: JobSplits) -> dict[str, Any]:
    """``splits.json``: the split's rule inputs, its jobs, and counts of jobs and items."""
    items = dict.fromkeys(SPLITS, 0)
    labelled = dict.fromkeys(SPLITS, 0)
    items_per_lab: dict[str, dict[str, int]] = {}
    for row in gathered.rows:
        items[row["split"]] += 1
        labelled[row["split"]] += row["final_value"] is not None
        lab = row["lab"] or "(no lab)"
        items_per_lab.setdefault(lab, dict.fromkeys(SPLITS, 0))[row["split"]] += 1
    info = splits.to_dict()
    info["rule"] = (
        "jobs (runs) split per lab: shuffled with the seed, counted by largest remainders, "
        "at least one job per split when the lab has enough; see cryocurate.learn.splits"
    )
    info["items"] = items
    info["labelled_items"] = labelled
    info["items_per_lab"] = dict(sorted(items_per_lab.items()))
    info["runs"] = {
        str(run.run_id): {"name": run.name, "lab": run.lab, "split": splits.assignment[run.run_id]}
        for run in sorted(gathered.runs.values(), key=lambda r: r.run_id)
    }
    return info


# ----------------------------------------------------------------------------------------------
# The datasheet


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _md(text: Any) -> str:
    """A table cell: pipes escaped, newlines flattened."""
    return str("" if text is None else text).replace("|", r"\|").replace("\n", " ")


def datasheet(
    gathered: _Gathered,
    report: ConsensusReport,
    agreement: AgreementReport,
    splits: JobSplits,
    split_info: dict[str, Any],
    levels: Sequence[int],
) -> str:
    """The export's README: a datasheet in the sense of Gebru et al. (2021), "Datasheets for
    datasets" (Communications of the ACM 64(12)): where the data came from, who labelled it,
    how far they agree, how the labels and the split were made, and what each column means."""
    rows = gathered.rows
    n_labelled = sum(1 for r in rows if r["final_value"] is not None)
    n_settled = sum(1 for r in rows if r["settled"] is not None)
    first_looks = sum(1 for g in gathered.grades if not g["repeat"])
    alpha = agreement.alpha
    lines: list[str] = []
    add = lines.append
    add(f"# {gathered.campaign_name}: graded 2D class averages")
    add("")
    add(
        f"Exported by cryocurate {__version__} from grading campaign {gathered.campaign_id} "
        f"({EXPORT_FORMAT})."
    )
    if gathered.campaign_description:
        add("")
        add(gathered.campaign_description.strip())
    add("")
    add("## Contents")
    add("")
    add("| file | what |")
    add("|---|---|")
    add(f"| `{IMAGES}/<run>.mrcs` | each job's class averages, float32 MRC stack, bit for bit |")
    add(f"| `{CLASS_AVERAGES}.parquet`, `.csv` | one row per class average (columns below) |")
    add(f"| `{GRADES}.parquet`, `.csv` | one row per grade (columns below) |")
    add(f"| `{SPLITS_FILE}` | the split: seed, fractions, jobs per split, counts |")
    add(f"| `{MANIFEST}` | size and sha256 of every other file |")
    add("")
    add("## Counts")
    add("")
    add(f"- class averages (items): {len(rows)}")
    add(f"- items with a final label: {n_labelled} (settled by a reviewer: {n_settled})")
    add(
        f"- grades: {len(gathered.grades)} ({first_looks} first looks, "
        f"{len(gathered.grades) - first_looks} repeats)"
    )
    add(f"- labellers: {len(gathered.ratings.labellers)}")
    add(f"- jobs (runs): {len(gathered.runs)}")
    add(f"- datasets: {len({r['dataset_id'] for r in rows})}")
    add(f"- items flagged for disagreement (spread ≥ 2 levels): {report.n_flagged}")
    add("")
    add("| split | jobs | items | labelled items |")
    add("|---|---:|---:|---:|")
    for split in SPLITS:
        add(
            f"| {split} | {len(splits.jobs(split))} | {split_info['items'][split]} "
            f"| {split_info['labelled_items'][split]} |"
        )
    add("")
    add(
        "| lab | "
        + " | ".join(f"{s} jobs" for s in SPLITS)
        + " | "
        + " | ".join(f"{s} items" for s in SPLITS)
        + " |"
    )
    add("|---|" + "---:|" * (2 * len(SPLITS)))
    for lab, jobs in splits.per_lab().items():
        items = split_info["items_per_lab"].get(lab, dict.fromkeys(SPLITS, 0))
        add(
            f"| {_md(lab)} | "
            + " | ".join(str(jobs[s]) for s in SPLITS)
            + " | "
            + " | ".join(str(items[s]) for s in SPLITS)
            + " |"
        )
    add("")
    add("Grade distribution (all first looks):")
    add("")
    add("| grade | value | name | grades | final labels |")
    add("|---|---:|---|---:|---:|")
    finals = [r["final_value"] for r in rows]
    for level, count in zip(gathered.levels, agreement.distribution, strict=True):
        value = int(level["value"])
        add(
            f"| {_md(level['key'])} | {value} | {_md(level.get('name'))} | {count} "
            f"| {finals.count(value)} |"
        )
    add("")
    add("## Scale")
    add("")
    add(f"Scale `{gathered.scale}`; grades are stored as values and shown by key:")
    add("")
    for level in gathered.levels:
        add(
            f"- **{_md(level['key'])}** = {int(level['value'])}, {_md(level.get('name'))}: "
            f"{_md(level.get('description'))}"
        )
    add("")
    add("## Sources")
    add("")
    add(
        "| run id | run | dataset | lab | software | project / job | pixel Å | box | classes "
        "| particles | split | source path | fingerprint |"
    )
    add("|---:|---|---|---|---|---|---:|---:|---:|---:|---|---|---|")
    for run in sorted(gathered.runs.values(), key=lambda r: r.run_id):
        job = run.job
        add(
            f"| {run.run_id} | {_md(run.name)} | {run.dataset_id}: {_md(run.dataset_title)} "
            f"| {_md(run.lab)} | {_md(job.software)} "
            f"| {_md(job.project_uid)} / {_md(job.job_uid)} | {job.pixel_size_a:g} "
            f"| {job.box_size} | {job.n_classes} | {job.n_particles} "
            f"| {splits.assignment[run.run_id]} | `{_md(job.source_path)}` "
            f"| `{job.fingerprint[:16]}` |"
        )
    add("")
    add("## Labellers")
    add("")
    add("| labeller | items graded | bias (levels) | exact vs others | repeats: exact |")
    add("|---|---:|---:|---:|---:|")
    for stats in agreement.per_labeller:
        repeats = stats.repeats
        add(
            f"| {_md(stats.name)} | {stats.n_graded} | {_fmt(stats.bias.mean, 2)} "
            f"| {_fmt(stats.consensus.exact, 2)} "
            f"| {'n/a' if repeats is None else _fmt(repeats.exact, 2)} |"
        )
    add("")
    add("## Agreement")
    add("")
    add(
        f"Krippendorff's alpha (ordinal), over all labellers: **alpha = {_fmt(alpha.estimate)}**, "
        f"{alpha.confidence:.0%} CI [{_fmt(alpha.ci_low)}, {_fmt(alpha.ci_high)}] "
        f"(percentile bootstrap over items, {alpha.n_resamples} resamples, seed {alpha.seed}; "
        f"{alpha.n_items} items with two or more grades). Fleiss' kappa (nominal, items every "
        f"labeller graded): {_fmt(agreement.fleiss_kappa.estimate)}. Bias is a labeller's mean "
        "offset from the others, in levels (positive: higher values). See "
        "`cryocurate.grading.agreement`."
    )
    add("")
    add("## How the labels were made")
    add("")
    add(
        "Per item, `median`, `mean` and `spread` summarise the first-look grades. The final "
        "label (`final_value`) is a reviewer's settled grade where there is one, otherwise the "
        "Dawid–Skene consensus (`model_grade`): a latent-class model that learns each "
        "labeller's confusion matrix from all items together and corrects for a harsh or "
        "lenient labeller (Dawid & Skene 1979, JRSS C 28(1):20–28), fitted by EM (Dempster, "
        "Laird & Rubin 1977) as a MAP estimate with an ordinal Dirichlet prior on each "
        "confusion row (as in Passonneau & Carpenter 2014, TACL 2:311–326). "
        f"Model: {report.model.method}, prior strength {report.model.prior_strength:g}, width "
        f"{report.model.prior_width:g}, {report.model.n_iter} iterations, "
        f"{'converged' if report.model.converged else 'not converged'}. "
        "`p_<level>` is the model's posterior (a soft label). Items nobody graded have no "
        "label and are left out by the loader. Repeats (second looks) count for consistency "
        "only, never for the consensus. See `cryocurate.grading.consensus`."
    )
    add("")
    add("## The split")
    add("")
    fractions = ", ".join(f"{s} {f:g}" for s, f in zip(SPLITS, splits.fractions, strict=True))
    add(
        f"By job (run), never by image: every class average of a job is in the same split. "
        f"Seed {splits.seed}; fractions {fractions} (of each lab's jobs). Each lab's jobs are "
        "split on their own: sorted, shuffled with a generator seeded by (seed, hash of the "
        "lab), counted by largest remainders, with at least one job in train and, when the "
        "lab has as many jobs as there are splits, at least one in each. `splits.json` lists "
        "the jobs of each split. See `cryocurate.learn.splits`."
    )
    add("")
    add("## Columns")
    add("")
    for stem, schema in (
        (CLASS_AVERAGES, class_average_columns(levels)),
        (GRADES, GRADE_SCHEMA),
    ):
        add(f"`{stem}`:")
        add("")
        add("| column | type | meaning |")
        add("|---|---|---|")
        for name, (kind, text) in schema.items():
            add(f"| `{name}` | {kind} | {_md(text)} |")
        add("")
    add("In the CSV files an empty cell is a missing value; booleans are `true`/`false`; times")
    add("are ISO 8601 in UTC.")
    add("")
    add("## Loading")
    add("")
    add("```python")
    add("from torch.utils.data import DataLoader")
    add("from cryocurate.learn.loader import ClassAverageDataset")
    add("")
    add('train = ClassAverageDataset("path/to/this/folder", split="train", target="final")')
    add("image, target, features = train[0]  # 1×H×W float32, the label, metadata features")
    add("loader = DataLoader(train, batch_size=64, shuffle=True)")
    add("```")
    add("")
    add("Without cryocurate: `pyarrow.parquet.read_table('class_averages.parquet')`, then")
    add("`mrcfile.mmap(image_file).data[image_index]` for each row.")
    add("")
    add(f"Check the files: every entry of `{MANIFEST}` gives a file's size and sha256.")
    add("")
    return "\n".join(lines)
