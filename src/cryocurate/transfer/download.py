"""What a download holds, in either layout, and copying it to a folder.

One function, :func:`list_entity`, says what a download of a dataset, run, tomogram or
annotation holds: ``(destination path, size, source file | bytes)`` entries. The CLI copy
(:func:`copy_entries`), the zip (:func:`zip_archive`, streamed by :mod:`cryocurate.web.files`)
and the JSON manifest for HTTP clients all use it, so they cannot disagree about names or
content.

What is listed:

* a dataset: ``dataset_metadata.json``, ``Images/`` and every cataloged run;
* a run: every file of its folder (tilt series, tomograms, annotations, key photos,
  Neuroglancer files, ``ClassAverages/`` of 2D runs…);
* a tomogram: its ``CanonicalTomogram/`` folder and key photos;
* an annotation: its metadata JSON and files (ndjson, MRC, OME-Zarr).

Everything sits under ``<dataset_id>/<run_name>/…`` (plus the dataset's and the run's metadata
JSON), so downloads of parts merge into the download of the whole, as with the CZ client's
``download_everything``. The data tree is stored in layout v1, so a v1 download copies files
as they are; a v2 download moves them to the v2 templates (:mod:`cryocurate.store.layouts`)
and rewrites the file paths inside metadata JSON to match (those entries carry bytes).

Only regular files are listed (no symbolic links), and nothing whose name starts with a dot
(staging folders, half-written temporary files).

Who may download which annotation is the caller's to say, as ``guards`` (those of
:func:`cryocurate.grading.access.annotation_guards`, which the web passes per visitor): an
annotation they hide is "not found" when asked for by id, and its metadata and files are left
out of its run's and dataset's downloads. Without guards (the CLI, on the portal root) every
annotation is listed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import stat as stat_mod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import ColumnElement, not_, select, true
from sqlalchemy.orm import Session

from cryocurate import atomic
from cryocurate.catalog.filters import Guards
from cryocurate.catalog.models import (
    Annotation,
    AnnotationFile,
    AnnotationShape,
    Dataset,
    Run,
    Tomogram,
)
from cryocurate.errors import ConflictError, InputError, NotFoundError, UnsafePathError
from cryocurate.formats.stored_zip import Member, StoredZip
from cryocurate.portal import Portal
from cryocurate.store import layout, layouts, names
from cryocurate.transfer.choices import Kind

COPY_BLOCK = 8 << 20
READ_BLOCK = 1 << 20  # zip reads: large enough for few system calls, small enough to overlap
JSON_REWRITE_LIMIT = 16 << 20  # metadata JSON is small; anything bigger is copied as is


@dataclass(frozen=True)
class Entry:
    """One file of a download: where it goes, how big it is, and where its bytes come from.

    Exactly one of ``source`` (a file of the data tree, copied as is) and ``content`` (bytes
    made for this download: metadata JSON rewritten for the layout) is set.
    """

    path: str  # destination, relative, POSIX: "<dataset_id>/<run_name>/…"
    size: int
    source: Path | None = None
    content: bytes | None = None
    mtime: float | None = None
    tree_path: str | None = None  # the source's path relative to the data tree


@dataclass(frozen=True)
class Listing:
    """A download: its entries (sorted by path) and what it is, for names and messages."""

    kind: Kind
    entity_id: int
    dataset_id: int
    layout: layouts.LayoutName
    entries: list[Entry]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def name(self) -> str:
        """A file name for the download: ``dataset-10000-v1``, ``run-12-v2``…"""
        return f"{self.kind.value}-{self.entity_id}-{self.layout}"


# ── v1 → v2 folder ids, read from the tree ──────────────────────────────────────────────────


class TreeFolderIds:
    """Folder ids for a v1 → v2 conversion of the data tree.

    v1 has one tilt series and one tomogram per run (and voxel spacing): both become 100.
    Annotation *n* of a voxel spacing, in annotation id order, becomes ``100 + n``; the
    order is read from the whole ``Annotations/`` folder, so downloading one annotation gives
    the same folder id as downloading its run.
    """

    def __init__(self, data_dir: Path, dataset_id: int) -> None:
        self.data_dir = data_dir
        self.dataset_id = dataset_id

    def tiltseries(self, run: str, source_id: int | None) -> int:
        return layouts.FIRST_FOLDER_ID

    def tomogram(self, run: str, vs: float, source_id: int | None) -> int:
        return layouts.FIRST_FOLDER_ID

    def annotation(self, run: str, vs: float, source_id: int) -> int:
        order = self._annotation_order(run, vs)
        if source_id not in order:  # a Neuroglancer folder of no annotation: keep its name
            return source_id
        return layouts.FIRST_FOLDER_ID + order[source_id]

    @cache  # noqa: B019 - one small object per listing
    def _annotation_order(self, run: str, vs: float) -> dict[int, int]:
        folder = (
            layout.voxel_spacing_dir(layout.run_dir(self.data_dir, self.dataset_id, run), vs)
            / layout.ANNOTATIONS
        )
        ids: set[int] = set()
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                m = re.match(r"(\d+)-", name)
                if m is not None:
                    ids.add(int(m.group(1)))
        return {a: n for n, a in enumerate(sorted(ids))}


class _V1ToV2:
    """Maps data-tree paths (v1) to download paths (v2), for files and folders alike."""

    def __init__(self, data_dir: Path, dataset_id: int) -> None:
        self.data_dir = data_dir
        self.ids = TreeFolderIds(data_dir, dataset_id)

    def __call__(self, rel: str) -> str | None:
        return layouts.convert_tree_path(rel, layouts.V1, layouts.V2, self.ids)

    def existing(self, rel: str) -> str | None:
        """Like calling it, but None unless ``rel`` exists in the tree (for JSON rewriting)."""
        if not _safe_rel(rel) or not (self.data_dir / rel).exists():
            return None
        return self(rel)


_safe_rel = layouts.is_public_path


# ── walking the tree ────────────────────────────────────────────────────────────────────────


def _walk_files(data_dir: Path, rel: str) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files at or under ``rel`` (tree-relative), skipping dot-names and links."""
    start = data_dir / rel
    try:
        st = start.lstat()
    except OSError:
        return
    if stat_mod.S_ISREG(st.st_mode):
        yield rel, st
        return
    if not stat_mod.S_ISDIR(st.st_mode):
        return
    stack = [rel]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(data_dir / current) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        for child in children:
            child_rel = f"{current}/{child.name}"
            if not layouts.is_public_path(child_rel):
                continue
            if child.is_dir(follow_symlinks=False):
                stack.append(child_rel)
            elif child.is_file(follow_symlinks=False):
                yield child_rel, child.stat(follow_symlinks=False)


# ── resolving an entity in the catalog ──────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Selection:
    dataset_id: int
    roots: list[str]  # tree-relative files or folders to list
    hidden: frozenset[str] = frozenset()  # tree-relative files or folders to leave out

    def shows(self, rel: str) -> bool:
        return not any(rel == h or rel.startswith(f"{h}/") for h in self.hidden)


def _hidden_paths(
    session: Session, runs: ColumnElement[bool], guards: Guards | None
) -> frozenset[str]:
    """The metadata and files of the annotations of ``runs`` (a condition on Run) that
    ``guards`` hide."""
    guard = (guards or {}).get("annotations")
    if guard is None:
        return frozenset()
    hidden = select(Annotation.id).join(Run, Run.id == Annotation.run_id).where(runs, not_(guard))
    paths = set(
        session.scalars(
            select(Annotation.metadata_path).where(
                Annotation.id.in_(hidden), Annotation.metadata_path.is_not(None)
            )
        )
    )
    paths |= set(
        session.scalars(
            select(AnnotationFile.path)
            .join(AnnotationShape, AnnotationShape.id == AnnotationFile.annotation_shape_id)
            .where(AnnotationShape.annotation_id.in_(hidden))
        )
    )
    return frozenset(p.strip("/") for p in paths if p and "://" not in p)


def hidden_in_tree(portal: Portal, rel: str, guards: Guards | None) -> bool:
    """Whether the tree path ``rel`` is, or lies inside, the metadata or a file of an
    annotation ``guards`` hide (for ``/files/``, so one file of such an annotation is as
    unreachable as its download). Annotations' files live under ``Annotations/`` (layout v1),
    so other paths (tomograms, their chunks) are answered without a query."""
    guard = (guards or {}).get("annotations")
    parts = [p for p in rel.split("/") if p]
    if guard is None or layout.ANNOTATIONS not in parts:
        return False
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    candidates = prefixes + [f"/{p}" for p in prefixes]  # stored with or without a leading /
    hidden = select(Annotation.id).where(not_(guard))
    metadata = select(Annotation.id).where(
        Annotation.metadata_path.in_(candidates), Annotation.id.in_(hidden)
    )
    files = (
        select(AnnotationFile.id)
        .join(AnnotationShape, AnnotationShape.id == AnnotationFile.annotation_shape_id)
        .where(AnnotationFile.path.in_(candidates), AnnotationShape.annotation_id.in_(hidden))
    )
    with portal.transaction() as session:
        return bool(session.scalar(select(metadata.exists() | files.exists())))


def _select(
    session: Session, kind: Kind, entity_id: int, guards: Guards | None = None
) -> _Selection:
    if kind is Kind.dataset:
        dataset = session.get(Dataset, entity_id)
        if dataset is None:
            raise NotFoundError(f"no dataset {entity_id}", hint="list them with `cryocurate ls`")
        base = str(dataset.id)
        roots = [f"{base}/{layout.DATASET_METADATA}", f"{base}/{layout.IMAGES}"]
        roots += [f"{base}/{run.name}" for run in dataset.runs]
        return _Selection(
            dataset.id, roots, _hidden_paths(session, Run.dataset_id == dataset.id, guards)
        )
    if kind is Kind.run:
        run = session.get(Run, entity_id)
        if run is None:
            raise NotFoundError(f"no run {entity_id}")
        base = str(run.dataset_id)
        return _Selection(
            run.dataset_id,
            [f"{base}/{layout.DATASET_METADATA}", f"{base}/{run.name}"],
            _hidden_paths(session, Run.id == run.id, guards),
        )
    if kind is Kind.tomogram:
        tomo = session.get(Tomogram, entity_id)
        if tomo is None:
            raise NotFoundError(f"no tomogram {entity_id}")
        run = tomo.run
        vs_dir = layout.voxel_spacing_dir(Path(str(run.dataset_id)) / run.name, tomo.voxel_spacing)
        vs_rel = vs_dir.as_posix()
        roots = _run_metadata_roots(run)
        roots += [f"{vs_rel}/{layout.CANONICAL_TOMOGRAM}", f"{vs_rel}/{layout.KEY_PHOTOS}"]
        for path in (
            tomo.mrc_file,
            tomo.omezarr_dir,
            tomo.key_photo_url,
            tomo.key_photo_thumbnail_url,
        ):
            if path and "://" not in path:
                roots.append(path.strip("/"))
        return _Selection(run.dataset_id, roots)
    annotation = session.get(Annotation, entity_id)
    guard = (guards or {}).get("annotations")
    visible = select(Annotation.id).where(
        Annotation.id == entity_id, guard if guard is not None else true()
    )
    if annotation is not None and guard is not None and session.scalar(visible) is None:
        annotation = None  # hidden from this visitor: as if it did not exist
    if annotation is None:
        raise NotFoundError(f"no annotation {entity_id}")
    run = annotation.run
    roots = _run_metadata_roots(run)
    if annotation.metadata_path:
        roots.append(annotation.metadata_path.strip("/"))
    for shape in annotation.annotation_shapes:
        for f in shape.annotation_files:
            roots.append(f.path.strip("/"))
    return _Selection(run.dataset_id, roots)


def _run_metadata_roots(run: Run) -> list[str]:
    base = f"{run.dataset_id}/{run.name}"
    return [f"{run.dataset_id}/{layout.DATASET_METADATA}", f"{base}/{layout.RUN_METADATA}"]


# ── the listing ─────────────────────────────────────────────────────────────────────────────


def list_entity(
    portal: Portal,
    kind: Kind | str,
    entity_id: int,
    layout_name: str = "v1",
    guards: Guards | None = None,
) -> Listing:
    """What a download of ``kind`` ``entity_id`` in layout ``layout_name`` holds, without the
    annotations ``guards`` hide (see the module's docstring).

    Raises NotFoundError for an unknown id (or an annotation ``guards`` hide) and InputError
    for an unknown kind or layout.
    """
    try:
        kind = Kind(kind)
    except ValueError:
        raise InputError(
            f"cannot download a {kind!r}", hint="use dataset, run, tomogram or annotation"
        ) from None
    try:
        target = layouts.get(layout_name)
    except ValueError as err:
        raise InputError(str(err)) from None
    with portal.transaction() as session:
        selection = _select(session, kind, entity_id, guards)
    data_dir = portal.data_dir
    seen: dict[str, tuple[str, os.stat_result]] = {}
    for root in selection.roots:
        if not _safe_rel(root):
            continue
        for rel, st in _walk_files(data_dir, root):
            if selection.shows(rel):
                seen.setdefault(rel, (rel, st))
    mapper = _V1ToV2(data_dir, selection.dataset_id) if target is layouts.V2 else None
    entries: list[Entry] = []
    for rel, st in seen.values():
        source = data_dir / rel
        if mapper is None:
            entries.append(_file_entry(rel, rel, source, st))
            continue
        dest = mapper(rel)
        if dest is None:
            continue
        content = _rewritten_json(source, rel, dest, st, mapper.existing)
        if content is None:
            entries.append(_file_entry(dest, rel, source, st))
        else:
            entries.append(Entry(path=dest, size=len(content), content=content, mtime=st.st_mtime))
    entries.sort(key=lambda e: e.path)
    _check_unique(entries)
    return Listing(kind, entity_id, selection.dataset_id, target.name, entries)


def _file_entry(dest: str, rel: str, source: Path, st: os.stat_result) -> Entry:
    return Entry(path=dest, size=st.st_size, source=source, mtime=st.st_mtime, tree_path=rel)


def _check_unique(entries: list[Entry]) -> None:
    for a, b in itertools.pairwise(entries):
        if a.path == b.path:
            raise ConflictError(f"two files of the data tree would both be written as {a.path}")


def is_metadata_json(rel: str) -> bool:
    """Metadata documents whose paths follow the layout (not Zarr's own JSON)."""
    return rel.endswith(".json") and not layouts.is_inside_zarr(rel)


def _rewritten_json(
    source: Path,
    rel: str,
    dest: str,
    st: os.stat_result,
    map_path: Callable[[str], str | None],
) -> bytes | None:
    """The JSON document at ``source`` with its paths rewritten; None to copy it as it is."""
    if not is_metadata_json(rel) or st.st_size > JSON_REWRITE_LIMIT:
        return None
    try:
        raw = source.read_bytes()
        document = json.loads(raw)
    except (OSError, ValueError):
        return None
    rewritten = layouts.rewrite_paths(document, rel, dest, map_path)
    return None if rewritten == document else dump_json(rewritten)


def dump_json(document: object) -> bytes:
    """JSON as cryocurate writes it (indented, UTF-8, final newline)."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# ── copying a listing to a folder ───────────────────────────────────────────────────────────


@dataclass
class CopyReport:
    """What :func:`copy_entries` did."""

    written: int = 0
    skipped: int = 0
    bytes_written: int = 0
    bytes_skipped: int = 0


def _safe_dest(dest_root: Path, rel: str) -> Path:
    """Where entry ``rel`` goes: a public relative path (no ``..``, no absolute path), which
    once every link already in the destination is followed is still inside it."""
    if not layouts.is_public_path(rel):
        raise UnsafePathError(f"refusing to write outside the destination: {rel!r}")
    return names.contained(dest_root, rel, what="download")


def copy_entries(
    listing: Listing,
    dest_root: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> CopyReport:
    """Write a listing under ``dest_root``: each file atomically; files already there with the
    same size are skipped (the CZ client's resume rule), so an interrupted download resumes.

    ``progress(n)`` is called with each number of bytes written or skipped.
    """
    report = CopyReport()
    try:
        dest_root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"cannot make the folder: {err.strerror or err}", where=dest_root) from err
    for entry in listing.entries:
        target = _safe_dest(dest_root, entry.path)
        try:
            existing = target.stat()
        except FileNotFoundError:
            existing = None
        except NotADirectoryError as err:
            raise ConflictError("a file stands where a folder must go", where=target) from err
        if existing is not None:
            if not target.is_file():
                raise ConflictError(
                    "a folder stands where a file must go",
                    where=target,
                    hint="move it away, or download to another folder",
                )
            if existing.st_size == entry.size:
                report.skipped += 1
                report.bytes_skipped += entry.size
                if progress:
                    progress(entry.size)
                continue
        try:
            _write_entry(entry, target, progress)
        except FileNotFoundError as err:
            if entry.source is not None and not entry.source.exists():
                raise _removed(entry.source) from err
            raise
        report.written += 1
        report.bytes_written += entry.size
    return report


def _write_entry(entry: Entry, target: Path, progress: Callable[[int], None] | None) -> None:
    try:
        with atomic.atomic_path(target, durable=False) as tmp:
            if entry.content is not None:
                tmp.write_bytes(entry.content)
                if progress:
                    progress(len(entry.content))
            else:
                assert entry.source is not None
                copy_file(entry.source, tmp, progress)
            if entry.mtime is not None:
                os.utime(tmp, (entry.mtime, entry.mtime))
    except NotADirectoryError as err:
        raise ConflictError("a file stands where a folder must go", where=target) from err


def copy_file(src: Path, dst: Path, progress: Callable[[int], None] | None) -> None:
    """Copy in large blocks, in the kernel where it can (``copy_file_range``)."""
    with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
        in_fd, out_fd = fin.fileno(), fout.fileno()
        kernel = hasattr(os, "copy_file_range")
        while True:
            if kernel:
                try:
                    n = os.copy_file_range(in_fd, out_fd, COPY_BLOCK)
                except OSError:  # another filesystem, an old kernel: plain reads and writes
                    kernel = False
                    fin.seek(fout.tell())
                    continue
            else:
                block = fin.read(COPY_BLOCK) or b""
                n = len(block)
                view = memoryview(block)
                while view:
                    view = view[fout.write(view) or 0 :]
            if n == 0:
                break
            if progress:
                progress(n)


def zip_archive(listing: Listing) -> StoredZip:
    """The listing as a stored zip, its size exact before anything is read."""
    return StoredZip([Member(e.path, e.size, e.mtime or 0.0) for e in listing.entries])


def zip_blocks(listing: Listing, archive: StoredZip) -> Iterator[bytes]:
    """The bytes of ``archive`` (made by :func:`zip_archive` from ``listing``), read as they
    are asked for; a file that vanished or changed size since the listing raises
    :class:`ConflictError`."""
    return archive.stream(_entry_blocks(e) for e in listing.entries)


def _entry_blocks(entry: Entry) -> Iterator[bytes]:
    if entry.content is not None:
        yield entry.content
        return
    assert entry.source is not None
    try:
        with open(entry.source, "rb", buffering=0) as f:
            while block := f.read(READ_BLOCK):
                yield block
    except FileNotFoundError as err:
        raise _removed(entry.source) from err


def _removed(source: Path) -> ConflictError:
    """A file listed for a download that was gone when its turn came (copy or zip)."""
    return ConflictError(
        "was removed from the data tree during the download", where=source,
        hint="run the download again",
    )  # fmt: skip


__all__ = [
    "CopyReport",
    "Entry",
    "Kind",
    "Listing",
    "TreeFolderIds",
    "copy_entries",
    "dump_json",
    "is_metadata_json",
    "list_entity",
    "zip_archive",
    "zip_blocks",
]
