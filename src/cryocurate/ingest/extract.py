"""Extracting 2D classification jobs into a portal root: in parallel, atomically, idempotently.

For each job::

    worker process                              main process (the only catalog writer)
    ─────────────────────────────────────       ──────────────────────────────────────────
    find the final iteration's files            quick check: same files (size, mtime) as
    read them (only the needed columns),          the run already stored? → "unchanged"
      hashing them in a background thread      ── dispatch ──▶
    per-class metadata + Magellon features
    write ClassAverages/ in a staging folder    ◀── result ──
                                                one transaction: dataset, run, class rows;
                                                swap ClassAverages/ into place; commit;
                                                then drop the previous version

A job whose content hash equals the stored one is "unchanged" and nothing is rewritten. A
failing job is reported in one line and leaves nothing behind; the others carry on. A crash
or Ctrl-C at any point leaves every run as it was before (see :mod:`cryocurate.store.tree`;
:func:`recover` finishes or undoes a swap whose writer died).
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select

from cryocurate import __version__, atomic
from cryocurate.catalog.models import Class2DJob, ClassAverage, Dataset, Run, RunKind
from cryocurate.errors import ConflictError, CryocurateError
from cryocurate.formats.mrc import write_stack
from cryocurate.formats.png import to_uint8, write_png
from cryocurate.ingest import recovery
from cryocurate.ingest.cryosparc import read_cryosparc_job
from cryocurate.ingest.datasets import (
    DatasetChoice,
    find_dataset,
    new_dataset,
    write_dataset_metadata,
)
from cryocurate.ingest.discover import JobFiles, find_job
from cryocurate.ingest.features import mass_features
from cryocurate.ingest.records import JobRecord, finite_or_none
from cryocurate.ingest.relion import read_relion_job
from cryocurate.portal import Portal
from cryocurate.store import layout, names, tree

# Bump when what extraction writes changes, so reruns re-extract unchanged jobs once.
EXTRACT_FORMAT = 1
HASH_BLOCK = 8 << 20
PREVIEW_THREADS = os.cpu_count() or 1

Status = Literal["new", "replaced", "unchanged", "error"]


# ── worker side ───────────────────────────────────────────────────────────────────────────


def _stat(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _hash_file(path: Path) -> dict[str, Any]:
    buf = bytearray(HASH_BLOCK)
    view = memoryview(buf)
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return {"sha256": digest.hexdigest(), **_stat(path)}


class InputHasher:
    """SHA-256 of the input files, each file in its own thread, while the caller parses them.

    hashlib releases the GIL on large buffers, so the particles file, the passthrough file and
    the class averages hash side by side (SHA-256 is the largest cost of an extraction, ~0.6
    GB/s per core), and the parsing that reads the same bytes runs meanwhile.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self._pool = cf.ThreadPoolExecutor(max(1, len(self.paths)), "sha256")
        self._futures: list[cf.Future[dict[str, Any]]] = []

    def start(self) -> None:
        self._futures = [self._pool.submit(_hash_file, path) for path in self.paths]

    def join_result(self) -> dict[str, dict[str, Any]]:
        try:
            return {
                path.name: future.result()
                for path, future in zip(self.paths, self._futures, strict=True)
            }
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


def fingerprint(input_files: dict[str, dict[str, Any]]) -> str:
    """One hash for a job's content: its input files' hashes and the extraction format."""
    parts = [f"format={EXTRACT_FORMAT}"] + [
        f"{name}={info['sha256']}" for name, info in sorted(input_files.items())
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def read_job(files: JobFiles) -> JobRecord:
    return read_cryosparc_job(files) if files.software == "cryosparc" else read_relion_job(files)


def class_rows(record: JobRecord) -> list[dict[str, Any]]:
    """Per-class metadata, as written to JSON and to the catalog (class-index order)."""
    c = record.classes
    mass = mass_features(record.images, record.pixel_size_a)
    n_particles = record.n_particles
    rows = []
    for k in range(record.n_classes):
        count = int(c.particle_count[k])
        rows.append(
            {
                "class_index": k,
                "resolution_A": finite_or_none(c.resolution_a[k]),
                "particle_count": count,
                "class_fraction": count / n_particles if n_particles else 0.0,
                "mean_posterior": finite_or_none(c.mean_posterior[k]),
                "mean_ess": finite_or_none(c.mean_ess[k]),
                "accuracy_rotations": finite_or_none(c.accuracy_rotations[k]),
                "accuracy_translations_A": finite_or_none(c.accuracy_translations_a[k]),
                "relion_class_distribution": finite_or_none(c.relion_class_distribution[k]),
                "pixel_size_A": record.pixel_size_a,
                "mass_estimate": finite_or_none(mass.mass_estimate[k]),
                "dmean_mass": finite_or_none(mass.dmean_mass[k]),
                "dmedian_mass": finite_or_none(mass.dmedian_mass[k]),
                "dmode_mass": finite_or_none(mass.dmode_mass[k]),
                "image": layout.class_image_relpath(k).split("/", 1)[1],
            }
        )
    return rows


@dataclass
class Staged:
    """What a worker hands back: a staged ClassAverages folder and the facts to catalog."""

    job_dir: Path
    files: JobFiles | None = None
    status: Literal["staged", "unchanged", "error"] = "error"
    message: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    input_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def _write_previews(images: Path, stack: Any, indices: range) -> None:
    for k in indices:
        write_png(images / layout.class_image_name(k), to_uint8(stack[k]), durable=False)


def write_class_images(folder: Path, record: JobRecord) -> None:
    """The MRC stack and one PNG preview per class; the previews are encoded by a pool of
    threads (numpy's percentiles and Pillow's zlib release the GIL) while the stack is written."""
    images = folder / layout.IMAGES
    images.mkdir(parents=True)
    n = len(record.images)
    threads = max(1, min(PREVIEW_THREADS, n))
    chunk = max(1, -(-n // (threads * 4)))  # a few chunks per thread: even ends, few tasks
    with cf.ThreadPoolExecutor(threads, "png") as pool:
        previews = [
            pool.submit(_write_previews, images, record.images, range(start, min(start + chunk, n)))
            for start in range(0, n, chunk)
        ]
        write_stack(
            folder / layout.CLASS_AVERAGES_STACK, record.images, record.pixel_size_a, durable=False
        )
        for done in previews:
            done.result()


def stage_job(files: JobFiles, staging: str, known_fingerprint: str | None) -> Staged:
    """Read one job and build its ``ClassAverages`` folder in ``staging`` (worker entry point).

    Never raises for bad input: the problem comes back as ``status="error"`` with the one
    line to show. ``staging`` is left empty unless the status is ``staged``.
    """

    def read() -> tuple[JobRecord, list[dict[str, Any]]]:
        record = read_job(files)
        return record, class_rows(record)

    return stage_from(files, staging, known_fingerprint, read)


def stage_from(
    files: JobFiles,
    staging: str,
    known_fingerprint: str | None,
    read: Callable[[], tuple[JobRecord, list[dict[str, Any]]]],
    *,
    fingerprint_of: Callable[[dict[str, dict[str, Any]]], str] = fingerprint,
    extra_metadata: dict[str, Any] | None = None,
    doing: str = "extracting",
) -> Staged:
    """Stage a job that ``read`` reads (its record and class rows), as :func:`stage_job` does:
    the inputs hashed meanwhile, nothing written when ``fingerprint_of`` them is
    ``known_fingerprint``, every failure one line (``doing``: what ran out of memory).
    ``extra_metadata`` goes into the metadata after ``n_particles``."""
    started = time.perf_counter()
    job_dir = files.job_dir
    result = Staged(job_dir=job_dir, files=files)
    folder = Path(staging) / layout.CLASS_AVERAGES
    try:
        hasher = InputHasher(files.inputs)
        hasher.start()
        written = False
        try:
            record, rows = read()
            if known_fingerprint is None:  # a new job cannot be unchanged: write meanwhile
                write_class_images(folder, record)
                written = True
        finally:
            input_files = hasher.join_result()
        result.input_files = input_files
        fp = fingerprint_of(input_files)
        if fp == known_fingerprint:
            result.status = "unchanged"
            return result
        result.metadata = {
            "software": record.software,
            "project_uid": files.project_uid,
            "job_uid": files.job_uid,
            "iteration": record.iteration,
            "pixel_size_A": record.pixel_size_a,
            "box_size": record.box_size,
            "n_classes": record.n_classes,
            "n_particles": record.n_particles,
            **(extra_metadata or {}),
            "source_path": str(files.job_dir),
            "sha256": {name: info["sha256"] for name, info in input_files.items()},
            "fingerprint": fp,
            "extracted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cryocurate_version": __version__,
            "classes": rows,
        }
        if not written:
            write_class_images(folder, record)
        atomic.write_json(folder / layout.CLASS_AVERAGES_METADATA, result.metadata, durable=False)
        atomic.fsync_tree(Path(staging))
        result.status = "staged"
    except CryocurateError as err:
        result.message = str(err)
    except MemoryError:
        result.message = f"{job_dir}: out of memory while {doing}"
    except OSError as err:
        result.message = f"{err.filename or job_dir}: {err.strerror or err}"
    except Exception as err:  # a bug: still one line, never a traceback
        result.message = (
            f"{job_dir}: internal error ({type(err).__name__}: {err}); please report it"
        )
    finally:
        result.seconds = time.perf_counter() - started
    if result.status == "error":
        tree.discard(folder)
    return result


# ── main side ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Outcome:
    """What happened to one job, for the summary line and for scripts (``--json``)."""

    job_dir: str
    status: Status
    message: str = ""
    dataset_id: int | None = None
    run_id: int | None = None
    run_name: str | None = None
    software: str | None = None
    iteration: int | None = None
    n_classes: int | None = None
    n_particles: int | None = None
    seconds: float = 0.0


def _find_run(session: Any, dataset_id: int, files: JobFiles) -> Run | None:
    """The stored run of this job: same source folder, or the same cryoSPARC job moved."""
    source = str(files.job_dir)
    run = session.scalars(
        select(Run)
        .join(Class2DJob)
        .where(Run.dataset_id == dataset_id, Class2DJob.source_path == source)
    ).first()
    if run is not None:
        return run
    run = session.scalars(
        select(Run).where(Run.dataset_id == dataset_id, Run.name == files.run_name)
    ).first()
    job = run.class2d_job if run is not None else None
    if (
        job is not None
        and job.software == files.software
        and files.project_uid
        and files.job_uid
        and (job.project_uid, job.job_uid) == (files.project_uid, files.job_uid)
    ):
        return run
    return None


def _free_name(session: Any, dataset_id: int, wanted: str) -> str:
    taken = set(session.scalars(select(Run.name).where(Run.dataset_id == dataset_id)))
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def _same_stat(stored: dict[str, Any], files: JobFiles) -> bool:
    try:
        current = {p.name: _stat(p) for p in files.inputs}
    except OSError:
        return False
    if set(current) != set(stored):
        return False
    return all(
        stored[name].get("size") == st["size"] and stored[name].get("mtime_ns") == st["mtime_ns"]
        for name, st in current.items()
    )


def run_metadata(run: Run) -> dict[str, Any]:
    """``run_metadata.json``: the portal's ``run_name``, plus our ids and kind."""
    return {
        "run_name": run.name,
        "run_id": run.id,
        "dataset_id": run.dataset_id,
        "kind": run.kind.value,
    }


def upsert_class_rows(session: Any, run: Run, rows: list[dict[str, Any]]) -> None:
    """Update rows by class index (so ids, and what refers to them, survive a re-extraction)."""
    existing = {ca.class_index: ca for ca in run.class_averages}
    for row in rows:
        ca = existing.pop(row["class_index"], None)
        if ca is None:
            ca = ClassAverage(run=run, class_index=row["class_index"])
            session.add(ca)
        ca.resolution_a = row["resolution_A"]
        ca.particle_count = row["particle_count"]
        ca.class_fraction = row["class_fraction"]
        ca.mean_posterior = row["mean_posterior"]
        ca.mean_ess = row["mean_ess"]
        ca.accuracy_rotations = row["accuracy_rotations"]
        ca.accuracy_translations_a = row["accuracy_translations_A"]
        ca.pixel_size_a = row["pixel_size_A"]
        ca.mass_estimate = row["mass_estimate"]
        ca.dmean_mass = row["dmean_mass"]
        ca.dmedian_mass = row["dmedian_mass"]
        ca.dmode_mass = row["dmode_mass"]
    for stale in existing.values():
        session.delete(stale)


class Extraction:
    """One ``cryocurate extract`` call: a portal, a dataset choice, and the jobs to extract."""

    def __init__(
        self,
        portal: Portal,
        dataset: DatasetChoice,
        *,
        workers: int | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        iteration: int | None = None,
    ) -> None:
        self.portal = portal
        self.iteration = iteration  # None: each job's final iteration (see find_job)
        self.choice = dataset
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.on_outcome = on_outcome or (lambda _o: None)
        self.dataset_id: int | None = None
        self.outcomes: list[Outcome] = []
        self._staging: list[Path] = []

    # The dataset is only created when the first job succeeds, so a run of failures leaves
    # nothing behind.
    def _resolve_dataset(self) -> None:
        self.choice.fields.check()
        with self.portal.transaction() as session:
            dataset = find_dataset(session, self.choice)
            self.dataset_id = dataset.id if dataset is not None else None

    def _report(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.on_outcome(outcome)

    def _error(self, job_dir: Path, message: str, seconds: float = 0.0) -> None:
        self._report(Outcome(str(job_dir), "error", message, seconds=seconds))

    def _quick_check(self, files: JobFiles) -> tuple[bool, str | None]:
        """(unchanged by size and mtime?, stored fingerprint or None)."""
        if self.dataset_id is None:
            return False, None
        with self.portal.transaction() as session:
            run = _find_run(session, self.dataset_id, files)
            if run is None or run.class2d_job is None:
                return False, None
            job = run.class2d_job
            folder = layout.run_dir(self.portal.data_dir, run.dataset_id, run.name)
            metadata = folder / layout.CLASS_AVERAGES / layout.CLASS_AVERAGES_METADATA
            if metadata.is_file() and _same_stat(job.input_files, files):
                self._report(self._outcome(files, "unchanged", run, job))
                return True, job.fingerprint
            return False, job.fingerprint

    @staticmethod
    def _outcome(
        files: JobFiles, status: Status, run: Run, job: Class2DJob, message: str = ""
    ) -> Outcome:
        return Outcome(
            job_dir=str(files.job_dir),
            status=status,
            message=message,
            dataset_id=run.dataset_id,
            run_id=run.id,
            run_name=run.name,
            software=job.software,
            iteration=job.iteration,
            n_classes=job.n_classes,
            n_particles=job.n_particles,
        )

    def _commit(self, staged: Staged, staging: Path) -> None:
        """Catalog one staged job and swap its files into place, all or nothing."""
        files = staged.files
        assert files is not None
        meta = staged.metadata
        swap: tree.Swap | None = None
        created: list[Path] = []
        try:
            with self.portal.transaction() as session:
                if self.dataset_id is None:
                    dataset = find_dataset(session, self.choice) or new_dataset(
                        session, self.choice.spec, self.choice.fields
                    )
                else:
                    dataset = session.get(Dataset, self.dataset_id)
                    assert dataset is not None
                dataset_dir = layout.dataset_dir(self.portal.data_dir, dataset.id)
                if not (dataset_dir / layout.DATASET_METADATA).exists():
                    created.append(dataset_dir)
                    write_dataset_metadata(self.portal, dataset)
                run = _find_run(session, dataset.id, files)
                if run is None and staged.status == "unchanged":
                    raise ConflictError(
                        "its run was removed while it was being extracted",
                        where=files.job_dir,
                        hint="run the extraction again",
                    )
                if run is not None and staged.status == "unchanged":
                    assert run.class2d_job is not None
                    run.class2d_job.input_files = staged.input_files  # new mtimes, same bytes
                    outcome = self._outcome(files, "unchanged", run, run.class2d_job)
                else:
                    status: Status = "replaced" if run is not None else "new"
                    renamed = ""
                    if run is None:
                        run = Run(
                            dataset=dataset,
                            name=_free_name(session, dataset.id, files.run_name),
                            kind=RunKind.class2d,
                        )
                        session.add(run)
                        if run.name != files.wanted_run_name:
                            renamed = (
                                f"run name {files.wanted_run_name!r} is not a safe folder "
                                f"name; stored as {run.name!r}"
                            )
                    job = run.class2d_job
                    if job is None:
                        job = Class2DJob()
                        run.class2d_job = job
                        session.add(job)
                    job.software = meta["software"]
                    job.project_uid = meta["project_uid"]
                    job.job_uid = meta["job_uid"]
                    job.iteration = meta["iteration"]
                    job.pixel_size_a = meta["pixel_size_A"]
                    job.box_size = meta["box_size"]
                    job.n_classes = meta["n_classes"]
                    job.n_particles = meta["n_particles"]
                    job.source_path = meta["source_path"]
                    job.input_files = staged.input_files
                    job.fingerprint = meta["fingerprint"]
                    job.extracted_at = dt.datetime.fromisoformat(meta["extracted_at"])
                    job.cryocurate_version = meta["cryocurate_version"]
                    run.updated_at = dt.datetime.now(dt.UTC)
                    upsert_class_rows(session, run, meta["classes"])
                    session.flush()
                    run_dir = names.contained(
                        self.portal.data_dir,
                        layout.run_dir(self.portal.data_dir, dataset.id, run.name),
                    )
                    if not run_dir.exists():
                        created.append(run_dir)
                    swap = tree.swap_in(
                        staging / layout.CLASS_AVERAGES,
                        run_dir / layout.CLASS_AVERAGES,
                        self.portal.data_dir / tree.SWAPS,
                        check=recovery.class_averages_check(dataset.id, run.name),
                    )
                    atomic.write_json(run_dir / layout.RUN_METADATA, run_metadata(run))
                    outcome = self._outcome(files, status, run, job, renamed)
                self.dataset_id = dataset.id
        except BaseException:
            if swap is not None:
                swap.rollback()
            for path in reversed(created):
                tree.discard(path)
            raise
        if swap is not None:
            swap.commit()
        self._report(Outcome(**{**outcome.__dict__, "seconds": staged.seconds}))

    def check_inputs(self, files: JobFiles) -> None:
        """Refuse a job whose files are symbolic links out of its folder (the folder itself
        may be a link: RELION's job aliases are)."""
        names.check_inside(files.job_dir, files.inputs, what="job folder")

    def run(self, job_dirs: Iterable[Path]) -> list[Outcome]:
        """Extract every job; returns one outcome per job, in the order they finished."""
        recovery.recover(self.portal)
        self._resolve_dataset()
        pending: list[tuple[JobFiles, str | None]] = []
        for job_dir in job_dirs:
            try:
                files = find_job(job_dir, self.iteration)
                self.check_inputs(files)
                unchanged, known = self._quick_check(files)
            except CryocurateError as err:
                self._error(job_dir, str(err))
                continue
            if not unchanged:
                pending.append((files, known))
        if pending:
            self._extract(pending)
        return self.outcomes

    def _new_staging(self, job_dir: Path) -> Path:
        path = tree.new_staging_dir(layout.staging_root(self.portal.data_dir), job_dir.name)
        self._staging.append(path)
        return path

    def _finish(self, staged: Staged, staging: Path) -> None:
        try:
            if staged.status == "error":
                self._error(staged.job_dir, staged.message, staged.seconds)
            else:
                try:
                    self._commit(staged, staging)
                except CryocurateError as err:
                    self._error(staged.job_dir, str(err), staged.seconds)
        finally:
            tree.discard(staging)

    def _extract(self, pending: list[tuple[JobFiles, str | None]]) -> None:
        try:
            if self.workers == 1 or len(pending) == 1:
                for files, known in pending:
                    staging = self._new_staging(files.job_dir)
                    self._finish(stage_job(files, str(staging), known), staging)
                return
            # forkserver: workers start from a clean process (no threads, no open connections).
            # The server imports extraction's stack once and each worker forks from it, instead
            # of every worker importing SQLAlchemy, numpy and the catalog again (~0.5 s each).
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            with cf.ProcessPoolExecutor(min(self.workers, len(pending)), context) as pool:
                futures = {}
                for files, known in pending:
                    staging = self._new_staging(files.job_dir)
                    future = pool.submit(stage_job, files, str(staging), known)
                    futures[future] = (files.job_dir, staging)
                try:
                    for future in cf.as_completed(futures):
                        job_dir, staging = futures[future]
                        try:
                            staged = future.result()
                        except cf.process.BrokenProcessPool:
                            tree.discard(staging)
                            self._error(job_dir, f"{job_dir}: the worker process died")
                            continue
                        self._finish(staged, staging)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
        finally:
            for path in self._staging:
                tree.discard(path)


def summarize(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts = {"new": 0, "replaced": 0, "unchanged": 0, "error": 0}
    for o in outcomes:
        counts[o.status] += 1
    return counts


__all__ = ["Extraction", "Outcome", "stage_job", "summarize"]
