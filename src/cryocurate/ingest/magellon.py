"""Importing a Magellon lab folder: ``images/`` + ``metadata/*.npy`` as runs, tkteach
``storage_<email>.db`` files as one campaign's grades.

**Runs.** Each job folder ``images/<job>/`` with its ``metadata/<job>.npy`` becomes a
``class2d`` run named ``<job>``, stored exactly as :mod:`cryocurate.ingest.extract` stores a
cryoSPARC job: the same staging folder, the same all-or-nothing commit (catalog rows and the
``ClassAverages/`` swap in one transaction, crash recovery included), the same "unchanged"
test (size and mtime of every input file, then content hashes). This module only supplies
what differs: the job's files (:class:`MagellonJobFiles`: the class JPEGs and the ``.npy``)
and how they are read (:func:`stage_magellon_job`); :class:`MagellonExtraction` drives the
extraction machinery with them, so no commit or swap logic is copied.

What a Magellon job can and cannot tell us:

* ``class_averages.mrcs`` holds the class images' **8-bit grey levels** as float32 (what the
  JPEGs decode to; the original floats are gone), with the ``.npy``'s pixel size.
* ``est_res`` → ``resolution_A`` (inf/NaN → null), ``class_dist`` → ``class_fraction``
  (NaN → 0), ``pixel_size`` → ``pixel_size_A``, and ``dmean/dmedian/dmode_mass`` **as given
  in the .npy**: Magellon computed them from the float averages, so recomputing them from the
  quantised JPEGs would only make them worse (files of the pre-2024 three-field layout give
  null masses). ``mass_estimate`` is null (Magellon drops the raw mass).
* ``particle_count`` is **0** and ``n_particles`` 0 (the counts are not in the layout; only
  the fraction is), ``iteration`` 0 (unknown), ``software`` ``"magellon"``.

**Grades.** Each database is one labeller, whose email is in the file name (a user with the
``labeller`` role and no password is created when missing: they can be invited later), or
given with ``--labeller DATABASE=EMAIL``; an existing account is only used when mapped so
(see :mod:`cryocurate.ingest.magellon_accounts`). An
image is matched to a class average by its **file name** ``<job>_<i>.jpg``, whatever path
tkteach stored (the same image typed via a relative and an absolute path is one image), and
graded by its category's **letter** (``(A) Best`` → A), never the category's database id,
which a reordered categories file changes. Images with several categories are **not graded**
and are reported, one line each; so are images that match no imported class average and
letters that are not grades. Grades go through :func:`cryocurate.grading.record` with request
ids derived from (campaign, email, image name, letter), so importing the same databases again
stores nothing; ``given_at`` is the database file's mtime, because tkteach stores no time
(a grade given later in the web app therefore stays current; see the README).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cryocurate import accounts, grading
from cryocurate.catalog.models import (
    Campaign,
    CampaignItem,
    ClassAverage,
    Grade,
    ItemKind,
    Role,
)
from cryocurate.errors import (
    ConflictError,
    CryocurateError,
    FormatError,
    InconsistentJobError,
    InputError,
    MissingFileError,
)
from cryocurate.formats import magellon as mg
from cryocurate.formats import tkteach
from cryocurate.grading.scales import value_of
from cryocurate.ingest import extract, recovery
from cryocurate.ingest.datasets import DatasetChoice
from cryocurate.ingest.discover import JobFiles, Software
from cryocurate.ingest.magellon_accounts import Claim, accounts_to_create, parse_labeller_mapping
from cryocurate.ingest.records import ClassTable, JobRecord, finite_or_none
from cryocurate.portal import Portal
from cryocurate.store import layout, names, tree

#: Bump when what a Magellon import stores changes, so reruns re-import unchanged jobs once.
MAGELLON_FORMAT = 1
SOFTWARE: Software = "magellon"
#: Letters a tkteach category may carry to count as a grade (the letter scale's keys).
GRADE_LETTERS = frozenset("ABCDF")
_UIDS = re.compile(r"(P\d+)_(J\d+)_.+")
_IMAGE = re.compile(r"(.+)_(\d+)(?:\.[^.]*)?")


def default_dataset_title(folder: Path) -> str:
    return f"Magellon labels: {Path(os.path.abspath(folder)).name}"


def default_campaign_name(folder: Path) -> str:
    return f"Magellon import: {Path(os.path.abspath(folder)).name}"


# ── runs ───────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class MagellonJobFiles(JobFiles):
    """One Magellon job as the extraction machinery sees a job.

    ``job_dir`` is ``images/<job>`` (its absolute path is the run's ``source_path``),
    ``classes`` and ``particles`` both name ``metadata/<job>.npy`` and ``averages`` the image
    folder; :attr:`inputs` (what is fingerprinted) are the class images and the ``.npy``.
    """

    job: str = ""
    images: tuple[Path, ...] = ()

    @property
    def inputs(self) -> list[Path]:
        return [*self.images, self.classes]

    @property
    def wanted_run_name(self) -> str:
        """The job's own name (``P175_J66_<user>``): unique across a lab's folder."""
        return self.job

    @property
    def lab_folder(self) -> Path:
        return self.job_dir.parent.parent


def job_files(folder: Path, job: str) -> MagellonJobFiles:
    """The files of one job of a Magellon folder (listed now, read later).

    Raises:
        MissingFileError: no ``metadata/<job>.npy``.
    """
    folder = Path(os.path.abspath(folder))
    job_dir = mg.job_image_dir(folder, job)
    npy = mg.metadata_path(folder, job)
    if not npy.is_file():
        raise MissingFileError(
            f"no metadata/{npy.name} for job {job}",
            where=job_dir,
            hint="copy the job's .npy from extract_mrc.py's output, or remove the image folder",
        )
    by_index: dict[int, Path] = {}
    for entry in os.scandir(job_dir):
        index = mg.parse_image_name(entry.name, job) if entry.is_file() else None
        if index is not None:
            by_index.setdefault(index, Path(entry.path))
    uids = _UIDS.fullmatch(job)
    return MagellonJobFiles(
        software=SOFTWARE,
        job_dir=job_dir,
        iteration=0,
        averages=job_dir,
        classes=npy,
        particles=npy,
        project_uid=uids.group(1) if uids else None,
        job_uid=uids.group(2) if uids else None,
        job=job,
        images=tuple(by_index[i] for i in sorted(by_index)),
    )


def _pixel_size(metadata: np.ndarray, where: Path) -> float:
    """The job's pixel size: extract_mrc.py writes the same value for every class."""
    values = metadata["pixel_size"]
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite) == 0:
        raise FormatError("no usable pixel_size in the metadata", where=where)
    first = float(finite[0])
    if not np.allclose(finite, first, rtol=1e-4, atol=0):
        raise InconsistentJobError(
            f"classes have different pixel sizes ({finite.min():g}–{finite.max():g} Å)",
            where=where,
        )
    return first


def class_rows(metadata: np.ndarray, pixel_size_a: float) -> list[dict[str, Any]]:
    """Per-class catalog/JSON rows from a Magellon metadata array (same keys as extraction)."""
    names = metadata.dtype.names or ()
    rows = []
    for k, record in enumerate(metadata):

        def value(name: str, record: np.void = record) -> float | None:
            return finite_or_none(record[name]) if name in names else None

        rows.append(
            {
                "class_index": k,
                "resolution_A": value("est_res"),
                "particle_count": 0,
                "class_fraction": value("class_dist") or 0.0,
                "mean_posterior": None,
                "mean_ess": None,
                "accuracy_rotations": None,
                "accuracy_translations_A": None,
                "relion_class_distribution": None,
                "pixel_size_A": value("pixel_size") or pixel_size_a,
                "mass_estimate": None,
                "dmean_mass": value("dmean_mass"),
                "dmedian_mass": value("dmedian_mass"),
                "dmode_mass": value("dmode_mass"),
                "image": layout.class_image_relpath(k).split("/", 1)[1],
            }
        )
    return rows


def fingerprint(input_files: dict[str, dict[str, Any]]) -> str:
    base = extract.fingerprint(input_files)
    return hashlib.sha256(f"magellon={MAGELLON_FORMAT}\n{base}".encode()).hexdigest()


def stage_magellon_job(
    files: MagellonJobFiles, staging: str, known_fingerprint: str | None
) -> extract.Staged:
    """Read one Magellon job and build its ``ClassAverages`` folder in ``staging``.

    The counterpart of :func:`cryocurate.ingest.extract.stage_job` (same contract: never
    raises for bad input, the problem comes back as ``status="error"`` with one line).
    """

    def read() -> tuple[JobRecord, list[dict[str, Any]]]:
        job = mg.read_job(files.lab_folder, files.job)
        pixel_size = _pixel_size(job.metadata, job.metadata_file)
        rows = class_rows(job.metadata, pixel_size)
        images = job.images.images
        n = len(images)
        nan = np.full(n, np.nan)
        record = JobRecord(
            files=files,
            software=SOFTWARE,
            iteration=0,
            pixel_size_a=pixel_size,
            box_size=int(images.shape[-1]),
            n_particles=0,
            classes=ClassTable(
                resolution_a=job.metadata["est_res"],
                particle_count=np.zeros(n, dtype=np.int64),
                mean_posterior=nan,
                mean_ess=nan,
                accuracy_rotations=nan,
                accuracy_translations_a=nan,
                relion_class_distribution=nan,
            ),
            images=images,
        )
        return record, rows

    return extract.stage_from(
        files,
        staging,
        known_fingerprint,
        read,
        fingerprint_of=fingerprint,
        extra_metadata={
            "magellon_job": files.job,
            "particle_counts_known": False,
            "images_are_8bit": True,
        },
        doing="importing",
    )


class MagellonExtraction(extract.Extraction):
    """:class:`~cryocurate.ingest.extract.Extraction` fed with Magellon jobs.

    Reuses its dataset choice, quick "unchanged" check, staging folders and commit; only the
    reading differs. Jobs are staged one after the other: a Magellon job is a few hundred
    small JPEGs, not gigabytes of particles, so worker processes would cost more than they save.
    """

    def check_inputs(self, files: JobFiles) -> None:
        """Refuse a job whose image folder, images or ``.npy`` lead out of the lab folder."""
        assert isinstance(files, MagellonJobFiles)
        names.check_inside(files.lab_folder, [files.job_dir, *files.inputs], what="Magellon folder")

    def run_jobs(self, jobs: Iterable[MagellonJobFiles]) -> list[extract.Outcome]:
        recovery.recover(self.portal)
        self._resolve_dataset()
        try:
            for files in jobs:
                try:
                    self.check_inputs(files)
                    unchanged, known = self._quick_check(files)
                except CryocurateError as err:
                    self._error(files.job_dir, str(err))
                    continue
                if not unchanged:
                    staging = self._new_staging(files.job_dir)
                    self._finish(stage_magellon_job(files, str(staging), known), staging)
        finally:
            for path in self._staging:
                tree.discard(path)
        return self.outcomes


# ── label databases ────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class LabelSource:
    """One tkteach database, read: whose it is, what it says, and when it was last written."""

    path: Path
    email: str
    labels: tkteach.TkLabels
    given_at: dt.datetime
    mapped: bool = False  # the account was given with --labeller, not read from the name


def read_label_sources(
    paths: Sequence[Path], mapping: dict[str, str] | None = None
) -> list[LabelSource]:
    """Read every database before anything is written, so a bad one stops the import early.

    ``mapping`` (database file name → email, from ``--labeller``) overrides the email in the
    file name; see :mod:`cryocurate.ingest.magellon_accounts`.

    Raises:
        MissingFileError / FormatError: a file is missing, not a tkteach database, or not
            named ``storage_<email>.db`` with a real email (and not mapped).
        InputError: two files of the same labeller.
    """
    mapping = mapping or {}
    sources: list[LabelSource] = []
    seen: dict[str, Path] = {}
    for path in paths:
        labels = tkteach.read_labels(path)
        mapped = mapping.get(Path(path).name)
        if mapped is not None:
            email = mapped
        else:
            raw = tkteach.email_from_db_name(path)
            try:
                email = accounts.normalize_email(raw)
            except InputError as err:
                raise FormatError(
                    f"the labeller's email in the file name is not an email: {raw!r}",
                    where=path,
                    hint="tkteach names each database storage_<email>.db; or map it to an "
                    f"account with --labeller {Path(path).name}=EMAIL",
                ) from err
        if email in seen:
            raise InputError(
                f"two databases of {email}: {seen[email]} and {path}",
                hint="give one of them with --labels",
            )
        seen[email] = path
        mtime = Path(path).stat().st_mtime
        sources.append(
            LabelSource(
                path=Path(path),
                email=email,
                labels=labels,
                given_at=dt.datetime.fromtimestamp(mtime, dt.UTC),
                mapped=mapped is not None,
            )
        )
    return sources


def _claims(session: Any, sources: Sequence[LabelSource], campaign_name: str) -> list[Claim]:
    """Each database's claim on an account, with the request ids its grade lines have in the
    campaign if it exists already (the evidence of an earlier import of the same database)."""
    campaign_id = session.scalar(sa.select(Campaign.id).where(Campaign.name == campaign_name))
    claims = []
    for source in sources:
        ids: frozenset[str] = frozenset()
        if campaign_id is not None:
            ids = frozenset(
                request_id(campaign_id, source.email, image.name, letter)
                for image in source.labels.images
                if len(image.letters) == 1
                for letter in image.letters
            )
        claims.append(Claim(source.path, source.email, source.mapped, ids))
    return claims


def request_id(campaign_id: int, email: str, image: str, letter: str) -> str:
    """A grade's request id, the same every time the same database line is imported."""
    text = f"magellon\0{campaign_id}\0{email}\0{image}\0{letter}"
    return "mg-" + hashlib.sha256(text.encode()).hexdigest()[:61]


# ── the whole import ───────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Finding:
    """Something the import did not guess about; shown one line each."""

    kind: str
    message: str

    def __str__(self) -> str:
        # folder names and tkteach image names are input: escape control characters
        return names.printable(self.message)


@dataclass
class LabellerResult:
    """What one database gave: grades stored, unchanged, and what was left ungraded."""

    email: str
    database: str
    created: bool = False
    mapped: bool = False  # the account was given with --labeller
    stored: int = 0
    unchanged: int = 0
    kept_newer: int = 0
    unlabelled: int = 0
    several: int = 0
    unmatched: int = 0
    not_a_grade: int = 0


@dataclass
class MagellonImport:
    """The outcome of :func:`import_magellon`, for the summary and ``--json``."""

    folder: str
    dataset_id: int | None = None
    campaign_id: int | None = None
    campaign: str | None = None
    outcomes: list[extract.Outcome] = field(default_factory=list)
    labellers: list[LabellerResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def run_counts(self) -> dict[str, int]:
        return extract.summarize(self.outcomes)

    def grade_counts(self) -> dict[str, int]:
        keys = ("stored", "unchanged", "kept_newer", "several", "unmatched", "not_a_grade")
        return {k: sum(getattr(r, k) for r in self.labellers) for k in keys}

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "dataset_id": self.dataset_id,
            "campaign_id": self.campaign_id,
            "campaign": self.campaign,
            "runs": [o.__dict__ for o in self.outcomes],
            "run_counts": self.run_counts,
            "labellers": [r.__dict__ for r in self.labellers],
            "grade_counts": self.grade_counts(),
            "findings": [f.__dict__ for f in self.findings],
        }


def label_paths(folder: Path, given: Sequence[Path] | None) -> list[Path]:
    """The databases to import: those given, else every ``storage_*.db`` in ``folder`` (those
    found, not named by the user, must not be links out of the folder)."""
    if given:
        return list(given)
    found = sorted(p for p in Path(folder).glob("storage_*.db") if p.is_file())
    names.check_inside(folder, found, what="Magellon folder")
    return found


def import_magellon(
    portal: Portal,
    folder: str | os.PathLike[str],
    *,
    dataset: DatasetChoice | None = None,
    campaign_name: str | None = None,
    labels: Sequence[Path] | None = None,
    labellers: Sequence[str] = (),
    on_outcome: Callable[[extract.Outcome], None] | None = None,
) -> MagellonImport:
    """Import a Magellon lab folder's jobs as runs and its tkteach databases as grades.

    ``labellers`` are ``DATABASE=EMAIL`` mappings (``--labeller``); a database not mapped
    whose email is an existing account is refused (see
    :mod:`cryocurate.ingest.magellon_accounts`).

    Raises:
        MissingFileError: no ``images/`` folder, or a database is missing.
        FormatError / InputError: a database is unreadable or badly named, a mapping is
            wrong, or a database would put grades on an existing account unasked (all
            checked before anything is written).
    """
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir():
        raise MissingFileError("folder not found", where=folder)
    listing = mg.list_jobs(folder)
    databases = label_paths(folder, labels)
    sources = read_label_sources(databases, parse_labeller_mapping(labellers, databases))
    campaign_title = (campaign_name or default_campaign_name(folder)).strip()
    if sources:
        with portal.transaction() as session:
            accounts_to_create(session, _claims(session, sources, campaign_title))
    result = MagellonImport(folder=str(folder))
    findings = result.findings
    findings += [
        Finding("ignored_entry", f"images/{name}: not a job folder; ignored")
        for name in listing.ignored
    ]
    findings += [
        Finding("empty_job", f"images/{name}: no class images (a failed extraction?); skipped")
        for name in listing.empty
    ]
    findings += [
        Finding("metadata_only", f"metadata/{name}.npy: no image folder; skipped")
        for name in listing.metadata_only
    ]
    if not listing.jobs:
        raise InputError(
            "no job folders with class images in images/",
            where=folder,
            hint="expected images/<job>/<job>_<i>.jpg as extract_mrc.py writes them",
        )
    choice = dataset or DatasetChoice(spec=default_dataset_title(folder))
    extraction = MagellonExtraction(portal, choice, workers=1, on_outcome=on_outcome)
    jobs: list[MagellonJobFiles] = []
    for name in listing.jobs:
        try:
            jobs.append(job_files(folder, name))
        except CryocurateError as err:
            extraction._error(mg.job_image_dir(folder, name), str(err))
    extraction.run_jobs(jobs)
    result.outcomes = extraction.outcomes
    result.dataset_id = extraction.dataset_id
    run_of = {
        Path(o.job_dir).name: o.run_id
        for o in result.outcomes
        if o.status != "error" and o.run_id is not None
    }
    if not run_of:
        if sources:
            findings.append(
                Finding("no_runs", "no job could be imported, so no grades were imported")
            )
        return result
    result.campaign = campaign_title
    result.labellers = [LabellerResult(s.email, s.path.name, mapped=s.mapped) for s in sources]
    with portal.transaction() as session:
        # Checked again where the accounts are made: one may have appeared since.
        create = set(accounts_to_create(session, _claims(session, sources, campaign_title)))
        for source, summary in zip(sources, result.labellers, strict=True):
            if source.email in create:
                accounts.add_user(session, source.email, Role.labeller)
                summary.created = True
        campaign = _campaign(
            session, campaign_title, list(run_of.values()), [s.email for s in sources]
        )
        result.campaign_id = campaign.id
        items = _items(session, campaign.id, list(run_of.values()))
    for source, summary in zip(sources, result.labellers, strict=True):
        _import_grades(portal, result.campaign_id, source, summary, run_of, items, findings)
    return result


def _campaign(session: Any, name: str, run_ids: list[int], emails: list[str]) -> Campaign:
    """The campaign named ``name``, made (no repeats) or extended with these runs and people."""
    campaign = session.scalar(sa.select(Campaign).where(Campaign.name == name))
    if campaign is None:
        spec = grading.CampaignSpec(name=name, run_ids=run_ids, labellers=emails, repeat_share=0.0)
        return grading.create_campaign(session, spec)
    if campaign.item_kind is not ItemKind.class_average:
        raise ConflictError(
            f"campaign {name!r} grades tilt series, not class averages",
            hint="choose another --campaign",
        )
    grading.add_runs(session, campaign, run_ids)
    grading.add_labellers(session, campaign, emails)
    return campaign


def _items(session: Any, campaign_id: int, run_ids: list[int]) -> dict[tuple[int, int], int]:
    """(run id, class index) → campaign item id."""
    rows = session.execute(
        sa.select(CampaignItem.run_id, ClassAverage.class_index, CampaignItem.id)
        .join(ClassAverage, ClassAverage.id == CampaignItem.class_average_id)
        .where(CampaignItem.campaign_id == campaign_id, CampaignItem.run_id.in_(run_ids))
    )
    return {(run_id, index): item_id for run_id, index, item_id in rows}


def _letters(letters: Iterable[str]) -> str:
    return "+".join(sorted(letters))


def _plan(
    source: LabelSource,
    summary: LabellerResult,
    run_of: dict[str, int | None],
    items: dict[tuple[int, int], int],
    findings: list[Finding],
) -> list[tuple[int, str, str]]:
    """(item id, letter, image name) for every image of the database that can be graded."""
    db = source.path.name
    findings += [
        Finding(f.kind, f"{db}: {f.message}")
        for f in source.labels.findings
        if f.kind not in ("several_categories", "conflicting_duplicates")
    ]
    planned = []
    for image in source.labels.images:
        if not image.letters:
            summary.unlabelled += 1
            continue
        match = _IMAGE.fullmatch(image.name)
        run_id = run_of.get(match.group(1)) if match else None
        item = items.get((run_id, int(match.group(2)))) if match and run_id else None
        if item is None:
            summary.unmatched += 1
            findings.append(
                Finding(
                    "unmatched",
                    f"{db}: {image.name} ({_letters(image.letters)}) matches no imported "
                    f"class average; not graded",
                )
            )
            continue
        if len(image.letters) > 1:
            summary.several += 1
            findings.append(
                Finding(
                    "several_categories",
                    f"{db}: {image.name}: several categories ({_letters(image.letters)}); "
                    f"not graded",
                )
            )
            continue
        (letter,) = image.letters
        if letter not in GRADE_LETTERS:
            summary.not_a_grade += 1
            findings.append(
                Finding(
                    "not_a_grade",
                    f"{db}: {image.name}: category {letter!r} is not a grade "
                    f"({', '.join(sorted(GRADE_LETTERS))}); not graded",
                )
            )
            continue
        planned.append((item, letter, image.name))
    return planned


def _import_grades(
    portal: Portal,
    campaign_id: int | None,
    source: LabelSource,
    summary: LabellerResult,
    run_of: dict[str, int | None],
    items: dict[tuple[int, int], int],
    findings: list[Finding],
) -> None:
    """Record one database's grades in one transaction (all of them or none)."""
    assert campaign_id is not None
    planned = _plan(source, summary, run_of, items, findings)
    if not planned:
        return
    for attempt in range(2):
        counts = {"stored": 0, "unchanged": 0, "kept_newer": 0}
        newer: list[Finding] = []
        try:
            with portal.transaction() as session:
                campaign = grading.get_campaign(session, campaign_id)
                user = accounts.get_user(session, source.email)
                current = dict(
                    session.execute(
                        sa.select(Grade.item_id, Grade.value).where(
                            Grade.campaign_id == campaign_id,
                            Grade.user_id == user.id,
                            Grade.repeat.is_(False),
                        )
                    ).all()
                )
                for item_id, letter, image in planned:
                    if current.get(item_id) == value_of(campaign.levels, letter):
                        counts["unchanged"] += 1
                        continue
                    ack = grading.record(
                        session,
                        campaign,
                        user,
                        grading.GradeRequest(
                            request_id=request_id(campaign_id, source.email, image, letter),
                            item_id=item_id,
                            grade=letter,
                            given_at=source.given_at,
                        ),
                    )
                    if ack.status == "stored":
                        counts["stored"] += 1
                    else:  # superseded, or imported before and changed since in the web app
                        counts["kept_newer"] += 1
                        newer.append(
                            Finding(
                                "kept_newer",
                                f"{source.path.name}: {image}: {letter} kept in the history; "
                                f"a newer grade of {source.email} stays current",
                            )
                        )
            break
        except IntegrityError:
            if attempt == 1:
                raise
    summary.stored += counts["stored"]
    summary.unchanged += counts["unchanged"]
    summary.kept_newer += counts["kept_newer"]
    findings += newer


__all__ = [
    "MagellonExtraction",
    "MagellonImport",
    "MagellonJobFiles",
    "import_magellon",
    "read_label_sources",
    "request_id",
    "stage_magellon_job",
]
