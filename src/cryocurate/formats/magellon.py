"""Magellon's ``extract_mrc.py`` output layout, which CryoSift's training code consumes::

    <root>/images/<job>/<job>_<i>.jpg      one greyscale image per class, i = 0-based class index
    <root>/metadata/<job>.npy              one record per class, all float64, fields in order
                                           est_res, class_dist, pixel_size,
                                           dmean_mass, dmedian_mass, dmode_mass

(files written before May 2024 have only the first three fields). ``<job>`` is cryoSPARC's
``<project>_<job>_<user id>``; ``i`` is not zero-padded.

Reading is tolerant of what real lab folders hold: entries of ``images/`` that are not
folders (``.DS_Store``, ``Thumbs.db``) or are hidden are ignored and listed; a job folder with
no class image (what a failed extraction leaves) is reported as empty; class images may be
``.jpg``, ``.jpeg``, ``.png`` or ``.tif(f)``. What cannot be trusted is refused with one
:class:`~cryocurate.errors.FormatError` line naming the file: a gap or a duplicate among the
class indices, images of different sizes, a metadata file whose record count differs from
the number of images, or fields other than the documented ones.

**The image format we write, and why.** CryoSift's ``JPGPreprocessor`` (Magellon
``Sandbox/2dclass_evaluator/CNNTraining/dataset.py``) lists each job folder, parses the class
index with ``int(name.strip('.jpg').split('_')[-1])`` and the key with ``name.split('.')[0]``,
and reads pixels with ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)``, then min–max normalises
each image to [0, 1] and pads or shrinks it to 210 px. ``str.strip`` removes *characters*,
so only an extension made of ``.``, ``j``, ``p``, ``g`` survives (``.jpeg`` or ``.png``
names crash the ``int()``): the name must end in ``.jpg``. OpenCV (like Pillow, which tkteach
uses) decodes by content, so a lossless PNG stream under a ``.jpg`` name would be read, but
it is a mislabelled file that tools trusting the name (``torchvision.io.decode_jpeg``, web
servers and viewers choosing a MIME type from the extension) reject or mishandle, for almost
no gain: ``IMREAD_GRAYSCALE`` yields 8 bits anyway. Magellon wrote JPEG at Pillow's default
quality 75 after ``np.uint8(normalised * 255)``, which truncates (a bias of half a grey
level) and whose DCT quantisation moved pixels by up to 40 grey levels (mean 7.6) on a noisy
synthetic 128 px average. We write a real JPEG at **quality 100**, after the same per-image
min–max stretch (which CryoSift repeats, so the model sees what it was trained on) but
**rounded**: decoded pixels are within 1 grey level of the 8-bit image (mean error 0.1), in
files about a quarter larger than the equivalent PNG.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cryocurate.atomic import atomic_path
from cryocurate.errors import FormatError, MissingFileError
from cryocurate.formats.inputs import check_readable

IMAGES_DIR = "images"
METADATA_DIR = "metadata"

#: The metadata fields, in the order extract_mrc.py writes them.
METADATA_FIELDS: tuple[str, ...] = (
    "est_res",
    "class_dist",
    "pixel_size",
    "dmean_mass",
    "dmedian_mass",
    "dmode_mass",
)
#: What extract_mrc.py wrote before the mass estimates were added (May 2024).
LEGACY_METADATA_FIELDS: tuple[str, ...] = METADATA_FIELDS[:3]

#: Extensions accepted for class images when reading (lower-cased).
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
#: The extension written: CryoSift's file-name parsing only survives ``.jpg``.
WRITE_SUFFIX = ".jpg"
JPEG_QUALITY = 100

_CRYOSIFT_STRIPPED = frozenset(".jpg")  # characters CryoSift's name.strip('.jpg') eats


# --- names and paths -------------------------------------------------------------------------


def image_name(job: str, index: int) -> str:
    """``<job>_<index>.jpg``, the name extract_mrc.py gives class ``index``'s image."""
    return f"{job}_{index}{WRITE_SUFFIX}"


def job_image_dir(root: str | os.PathLike[str], job: str) -> Path:
    """``<root>/images/<job>``."""
    return Path(root) / IMAGES_DIR / job


def metadata_path(root: str | os.PathLike[str], job: str) -> Path:
    """``<root>/metadata/<job>.npy``."""
    return Path(root) / METADATA_DIR / f"{job}.npy"


def parse_image_name(name: str, job: str) -> int | None:
    """The class index of a file named ``<job>_<i>.<ext>`` (ext in :data:`IMAGE_SUFFIXES`).

    None for any other name (stray files, another job's images): callers list those.
    """
    stem, dot, suffix = name.rpartition(".")
    if not dot or f".{suffix.lower()}" not in IMAGE_SUFFIXES:
        return None
    match = re.fullmatch(re.escape(job) + r"_(\d+)", stem)
    return int(match.group(1)) if match else None


def check_job_name(job: str) -> None:
    """Refuse job names that the layout or CryoSift's file-name parsing would mangle.

    A job name becomes a folder and a file-name prefix, so it may hold no path separator and
    may not be hidden. CryoSift keys images by ``name.split('.')[0]`` and strips the
    characters ``.jpg`` from both ends of the name, so a ``.`` anywhere, or a first character
    among ``. j p g``, would silently give a different key (cryoSPARC's ``P12_J34_<user>``
    names are safe).

    Raises:
        ValueError: with the reason.
    """
    if not job or job != job.strip():
        raise ValueError(f"job name {job!r} is empty or has surrounding spaces")
    if any(c in job for c in "/\\\0"):
        raise ValueError(f"job name {job!r} contains a path separator")
    if "." in job:
        raise ValueError(f"job name {job!r} contains '.', which CryoSift's key parsing cuts at")
    if job[0] in _CRYOSIFT_STRIPPED:
        raise ValueError(
            f"job name {job!r} starts with {job[0]!r}, which CryoSift's strip('.jpg') removes"
        )


# --- listing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobListing:
    """What ``<root>/images`` holds.

    ``jobs``: folders with at least one class image named ``<folder>_<i>.<ext>``, sorted.
    ``empty``: folders with none (a failed extraction leaves one). ``ignored``: entries that
    are not job folders (files such as ``.DS_Store``, hidden folders). ``metadata_only``:
    ``metadata/<job>.npy`` files with no image folder.
    """

    root: Path
    jobs: tuple[str, ...]
    empty: tuple[str, ...]
    ignored: tuple[str, ...]
    metadata_only: tuple[str, ...]


def _class_files(folder: Path, job: str) -> tuple[dict[int, list[Path]], list[str]]:
    """Class index → files, and the names of everything else in a job folder."""
    by_index: dict[int, list[Path]] = {}
    stray: list[str] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        index = parse_image_name(entry.name, job) if entry.is_file() else None
        if index is None:
            stray.append(entry.name)
        else:
            by_index.setdefault(index, []).append(Path(entry.path))
    return by_index, stray


def list_jobs(root: str | os.PathLike[str]) -> JobListing:
    """List the jobs of a Magellon layout rooted at ``root`` (the folder holding ``images/``).

    Raises:
        MissingFileError: ``root/images`` is not a folder.
    """
    root = Path(root)
    images = root / IMAGES_DIR
    if not images.is_dir():
        raise MissingFileError(
            f"no {IMAGES_DIR}/ folder", where=root, hint="expected extract_mrc.py's output folder"
        )
    jobs: list[str] = []
    empty: list[str] = []
    ignored: list[str] = []
    for entry in sorted(os.scandir(images), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir():
            ignored.append(entry.name)
            continue
        by_index, _ = _class_files(Path(entry.path), entry.name)
        (jobs if by_index else empty).append(entry.name)
    metadata_dir = root / METADATA_DIR
    listed = set(jobs) | set(empty)
    metadata_only = (
        sorted(
            p.stem
            for p in metadata_dir.iterdir()
            if p.suffix == ".npy" and p.is_file() and p.stem not in listed
        )
        if metadata_dir.is_dir()
        else []
    )
    return JobListing(
        root=root,
        jobs=tuple(jobs),
        empty=tuple(empty),
        ignored=tuple(ignored),
        metadata_only=tuple(metadata_only),
    )


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobImages:
    """One job's class images, ``images[i]`` = class ``i``, float32 ``(n, ny, nx)``.

    Values are the stored grey levels (0–255 for 8-bit files), not rescaled. ``ignored``
    names the folder's other entries.
    """

    job: str
    folder: Path
    images: np.ndarray
    files: tuple[Path, ...]
    ignored: tuple[str, ...]


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one greyscale image as float32, values as stored.

    Single-channel modes (8/16-bit, 32-bit integer or float) keep their values; colour or
    palette images are converted to luma (Pillow's ``convert("L")``, the ITU-R 601 weights
    OpenCV's ``IMREAD_GRAYSCALE`` also uses). Row 0 is the top of the picture.

    Raises:
        MissingFileError: the file is missing or unreadable.
        FormatError: not an image Pillow can decode.
    """
    path = Path(path)
    check_readable(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("L", "I", "F") and not img.mode.startswith("I;16"):
                img = img.convert("L")
            return np.asarray(img).astype(np.float32)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise FormatError(f"not a readable image: {err}", where=path) from err


def read_job_images(root: str | os.PathLike[str], job: str) -> JobImages:
    """Read ``images/<job>/<job>_<i>.<ext>`` as one stack, indexed by class.

    Raises:
        MissingFileError: the job folder does not exist.
        FormatError: no class image, two files for one class, a gap in the indices
            0 … n−1, or images of different sizes.
    """
    folder = job_image_dir(root, job)
    if not folder.is_dir():
        raise MissingFileError("job image folder not found", where=folder)
    by_index, stray = _class_files(folder, job)
    if not by_index:
        raise FormatError(
            f"no class images named {job}_<i>.jpg",
            where=folder,
            hint="an empty folder is what a failed extraction leaves; re-extract the job",
        )
    doubled = [paths for paths in by_index.values() if len(paths) > 1]
    if doubled:
        names = ", ".join(p.name for p in doubled[0])
        raise FormatError(f"several files for one class: {names}", where=folder)
    n = max(by_index) + 1
    missing = [i for i in range(n) if i not in by_index]
    if missing:
        listed = ", ".join(str(i) for i in missing[:5]) + (" …" if len(missing) > 5 else "")
        raise FormatError(
            f"class indices have gaps: no image for {listed} (of 0–{n - 1})", where=folder
        )
    files = tuple(by_index[i][0] for i in range(n))
    arrays = [read_image(p) for p in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join("×".join(map(str, s[::-1])) for s in sorted(shapes))
        raise FormatError(f"images of different sizes ({listed})", where=folder)
    return JobImages(
        job=job, folder=folder, images=np.stack(arrays), files=files, ignored=tuple(stray)
    )


def read_metadata(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a job's metadata ``.npy``: a 1D structured float64 array, one record per class.

    The fields must be :data:`METADATA_FIELDS` or its first three, in that order; other float
    widths are widened to float64.

    Raises:
        MissingFileError: the file is missing or unreadable.
        FormatError: not a ``.npy`` file, or not the documented fields.
    """
    path = Path(path)
    check_readable(path)
    try:
        with open(path, "rb") as fh:
            array = np.load(fh, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise FormatError(f"not a readable .npy file: {err}", where=path) from err
    names = array.dtype.names or ()
    if names not in (METADATA_FIELDS, LEGACY_METADATA_FIELDS) or array.ndim != 1:
        raise FormatError(
            f"not Magellon metadata: fields ({', '.join(names) or 'none'}), "
            f"{array.ndim}D; expected a 1D record array with {', '.join(METADATA_FIELDS)}",
            where=path,
        )
    if any(array.dtype[name].kind != "f" for name in names):
        raise FormatError("not Magellon metadata: non-float fields", where=path)
    return array.astype([(name, "<f8") for name in names])


@dataclass(frozen=True)
class MagellonJob:
    """One job read back whole: class images and their metadata records, row i = class i."""

    job: str
    images: JobImages
    metadata: np.ndarray
    metadata_file: Path


def read_job(root: str | os.PathLike[str], job: str) -> MagellonJob:
    """Read one job's images and metadata, and check they describe the same classes.

    Raises:
        MissingFileError / FormatError: as :func:`read_job_images` and :func:`read_metadata`,
            and when the number of records differs from the number of images.
    """
    images = read_job_images(root, job)
    mpath = metadata_path(root, job)
    metadata = read_metadata(mpath)
    if len(metadata) != len(images.images):
        raise FormatError(
            f"{len(metadata)} metadata records for {len(images.images)} class images "
            f"in {images.folder}",
            where=mpath,
            hint="the images and metadata come from different extractions; re-extract the job",
        )
    return MagellonJob(job=job, images=images, metadata=metadata, metadata_file=mpath)


# --- writing ---------------------------------------------------------------------------------


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Min–max stretch ``image`` to 0–255 and round, as extract_mrc.py did but rounded.

    A constant image becomes zeros, as in extract_mrc.py. The stretch is the one CryoSift
    re-applies after reading, so writing it changes nothing the model sees but quantisation.

    Raises:
        ValueError: not 2D, or NaN/infinite values.
    """
    arr = np.asarray(image, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D image, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("image has NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return np.rint((arr - lo) * (255.0 / (hi - lo))).clip(0, 255).astype(np.uint8)


def write_image(path: str | os.PathLike[str], image: np.ndarray, *, durable: bool = True) -> None:
    """Write one class image as an 8-bit greyscale JPEG at quality 100, atomically.

    A uint8 array is written as is; anything else goes through :func:`to_uint8`.
    """
    pixels = image if image.dtype == np.uint8 and image.ndim == 2 else to_uint8(image)
    with atomic_path(path, durable=durable) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels)).save(
            tmp, format="JPEG", quality=JPEG_QUALITY, subsampling=0
        )


def metadata_records(columns: Mapping[str, Iterable[float]]) -> np.ndarray:
    """Build the metadata record array from columns named as :data:`METADATA_FIELDS`.

    Give all six fields, or the first three (the pre-2024 layout).

    Raises:
        ValueError: other field names, or columns of different lengths.
    """
    names = tuple(name for name in METADATA_FIELDS if name in columns)
    if set(columns) != set(names) or names not in (METADATA_FIELDS, LEGACY_METADATA_FIELDS):
        raise ValueError(
            f"metadata columns must be {', '.join(METADATA_FIELDS)} (or the first three), "
            f"got {', '.join(columns)}"
        )
    arrays = [np.asarray(list(columns[name]), dtype=np.float64) for name in names]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError("metadata columns must be 1D and of equal length")
    out = np.empty(len(arrays[0]), dtype=[(name, "<f8") for name in names])
    for name, values in zip(names, arrays, strict=True):
        out[name] = values
    return out


def write_metadata(
    path: str | os.PathLike[str], records: np.ndarray, *, durable: bool = True
) -> None:
    """Write a metadata record array as ``.npy`` (plain structured array, no pickle), atomically.

    Raises:
        ValueError: ``records`` does not have the documented fields.
    """
    names = records.dtype.names or ()
    if names not in (METADATA_FIELDS, LEGACY_METADATA_FIELDS) or records.ndim != 1:
        raise ValueError(f"metadata must be a 1D record array with {', '.join(METADATA_FIELDS)}")
    data = np.ascontiguousarray(records.astype([(name, "<f8") for name in names]))
    with atomic_path(path, durable=durable) as tmp, open(tmp, "wb") as fh:
        np.save(fh, data, allow_pickle=False)


def write_job(
    root: str | os.PathLike[str],
    job: str,
    images: np.ndarray,
    metadata: np.ndarray,
    *,
    durable: bool = True,
) -> tuple[Path, ...]:
    """Write one job: ``images/<job>/<job>_<i>.jpg`` for each class, then its metadata.

    Each file is written atomically. Class images of this job left by an earlier, larger
    extraction (indices ≥ n, any accepted extension) and other-extension twins of the new
    files are removed, so the folder reads back as exactly this job; other files are left
    alone. The metadata file is written last, so an interrupted write leaves images without
    metadata (refused on reading) rather than metadata describing missing images.

    Returns the paths written, images then metadata.

    Raises:
        ValueError: a job name CryoSift would mis-parse (:func:`check_job_name`), images not
            ``(n, ny, nx)``, or a number of records other than n.
    """
    check_job_name(job)
    stack = np.asarray(images)
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(f"expected images as (n, ny, nx), got shape {stack.shape}")
    if len(metadata) != stack.shape[0]:
        raise ValueError(f"{len(metadata)} metadata records for {stack.shape[0]} images")
    folder = job_image_dir(root, job)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, image in enumerate(stack):
        target = folder / image_name(job, index)
        write_image(target, image, durable=durable)
        written.append(target)
    keep = set(written)
    by_index, _ = _class_files(folder, job)
    for paths in by_index.values():
        for stale in paths:
            if stale not in keep:
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
    mpath = metadata_path(root, job)
    write_metadata(mpath, metadata, durable=durable)
    written.append(mpath)
    return tuple(written)
