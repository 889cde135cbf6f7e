"""tkteach label databases (``storage_<email>.db``): read them without trusting ids, write them
exactly as tkteach does.

tkteach (rmones/tkteach, as modified in Magellon's ``ClassAvgLabeling/tkteach.py``) keeps one
SQLite file per labeller in the lab folder, created with these statements (verbatim, in this
order; :data:`SCHEMA`)::

    dataSets(id INTEGER NOT NULL PRIMARY KEY, dataSetName TEXT, dataSetPath TEXT UNIQUE)
    images(id INTEGER NOT NULL PRIMARY KEY, dataSet_id INTEGER, imageName TEXT,
           imagePath TEXT UNIQUE, FOREIGN KEY(dataSet_id) REFERENCES dataSets(id))
    categories(id INTEGER NOT NULL PRIMARY KEY, categoryName TEXT UNIQUE)
    labels(category_id INTEGER, image_id INTEGER, FOREIGN KEY ..., FOREIGN KEY ...)

What tkteach puts in them, and what this module makes of it:

* ``categories.categoryName`` is the whole stripped line of ``categories.txt``, e.g.
  ``"(A) Best"``, inserted with ``INSERT OR IGNORE`` in file order, so the id is the line's
  position *in the first file the database ever saw*. CryoSift trains on that id (A=1 … F=5),
  which silently changes meaning with a reordered file. **Reading** therefore takes the grade
  from the text: the letter is ``name[1]`` when the name has tkteach's shortcut form
  ``(x)…`` (``name[0] == "("`` and ``name[2] == ")"``, the test tkteach itself applies),
  upper-cased because tkteach's shortcuts are case-insensitive. A category without that form
  has no letter; its labels are reported under the whole name (e.g. ``"Good"``) and a
  ``unlettered_category`` finding says so. **Writing** inserts the categories in the given
  order, so Magellon's list gets ids A=1, B=2, C=3, D=4, F=5, as CryoSift expects.
* ``imagePath`` (the UNIQUE key) is ``os.path.join(os.path.join(<dir as typed>, "images/"),
  <job>)`` joined with the file name, and ``imageName`` is ``imagePath.split("\\\\")[-1]``:
  the bare file name on Windows but the *whole typed path* on Linux/macOS. The same image
  opened once via a relative and once via an absolute path therefore has two rows. Reading
  identifies an image by its **file name** (the last component after ``/`` or ``\\``), as
  CryoSift's ``dataset.py`` and annabator's ``db_to_csv.py`` do, merges such rows, and
  reports them when their labels disagree.
* ``labels`` has no key: one row per selected category, so an image can carry several
  grades. CryoSift keeps an arbitrary one; here they are all returned and reported.

The labeller's email is only in the file name. Magellon's training code recovers it with
``os.path.basename(path).strip(".db")``, which strips *characters*, not a suffix (and keeps
the ``storage_`` prefix); :func:`email_from_db_name` removes the exact prefix and suffix.

Databases are opened read-only (``file:…?mode=ro``), so importing never modifies a lab's
file; new databases are written to a temporary file in the target folder and renamed over.
"""

from __future__ import annotations

import contextlib
import ntpath
import os
import posixpath
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryocurate.atomic import atomic_path
from cryocurate.errors import ConflictError, FormatError
from cryocurate.formats.inputs import check_readable

#: tkteach's CREATE statements, verbatim (rmones/tkteach and Magellon share them).
SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS dataSets(id INTEGER NOT NULL PRIMARY KEY, dataSetName TEXT, "
    "dataSetPath TEXT UNIQUE)",
    "CREATE TABLE IF NOT EXISTS images(id INTEGER NOT NULL PRIMARY KEY, dataSet_id INTEGER, "
    "imageName TEXT, imagePath TEXT UNIQUE, FOREIGN KEY(dataSet_id) REFERENCES dataSets(id))",
    "CREATE TABLE IF NOT EXISTS categories(id INTEGER NOT NULL PRIMARY KEY, "
    "categoryName TEXT UNIQUE)",
    "CREATE TABLE IF NOT EXISTS labels(category_id INTEGER, image_id INTEGER, "
    "FOREIGN KEY(category_id) REFERENCES categories(id), "
    "FOREIGN KEY(image_id) REFERENCES images(id))",
)

#: Magellon's ``ClassAvgLabeling/categories.txt``, in file order (ids A=1 … F=5).
MAGELLON_CATEGORIES: tuple[str, ...] = (
    "(A) Best",
    "(B) Decent",
    "(C) Acceptable",
    "(D) Bad",
    "(F) Unusable",
)

#: Columns each table must have for :func:`read_labels` to make sense of it.
_REQUIRED_COLUMNS: dict[str, frozenset[str]] = {
    "dataSets": frozenset({"id", "dataSetName", "dataSetPath"}),
    "images": frozenset({"id", "dataSet_id", "imageName", "imagePath"}),
    "categories": frozenset({"id", "categoryName"}),
    "labels": frozenset({"category_id", "image_id"}),
}

DB_PREFIX = "storage_"
DB_SUFFIX = ".db"

FindingKind = Literal[
    "several_categories",
    "conflicting_duplicates",
    "dataset_mismatch",
    "unlettered_category",
    "duplicate_letter",
    "dangling_label",
]


# --- file names ------------------------------------------------------------------------------


def db_name(email: str) -> str:
    """The file name tkteach gives a labeller's database: ``storage_<email>.db``."""
    if not email or email != email.strip() or any(c in email for c in "/\\\0"):
        raise ValueError(f"not a usable labeller email for a file name: {email!r}")
    return f"{DB_PREFIX}{email}{DB_SUFFIX}"


def email_from_db_name(path: str | os.PathLike[str]) -> str:
    """The labeller's email from a ``storage_<email>.db`` file name (exact prefix/suffix).

    Raises:
        FormatError: the name is not ``storage_<something>.db``.
    """
    name = Path(path).name
    email = name.removeprefix(DB_PREFIX).removesuffix(DB_SUFFIX)
    if not (name.startswith(DB_PREFIX) and name.endswith(DB_SUFFIX)) or not email:
        raise FormatError(
            "not a tkteach storage file name",
            where=path,
            hint=f"expected {DB_PREFIX}<email>{DB_SUFFIX}",
        )
    return email


def file_name(typed_path: str) -> str:
    """The last component of a path as tkteach stored it, whichever separator was typed."""
    return re.split(r"[\\/]", typed_path)[-1]


def category_letter(category_name: str) -> str | None:
    """The shortcut letter of ``"(x) Name"`` (upper-cased), or None without that form.

    The test is tkteach's own: character 0 is ``(`` and character 2 is ``)``.
    """
    name = category_name.strip()
    if len(name) >= 3 and name[0] == "(" and name[2] == ")" and not name[1].isspace():
        return name[1].upper()
    return None


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TkCategory:
    """One ``categories`` row: its database id, the stored text, and the letter from the text."""

    id: int
    name: str
    letter: str | None

    @property
    def key(self) -> str:
        """What labels of this category are reported as: the letter, else the whole name."""
        return self.letter if self.letter is not None else self.name.strip()


@dataclass(frozen=True)
class TkImageRow:
    """One ``images`` row as stored: the typed path, and the category keys attached to it."""

    id: int
    image_path: str
    image_name: str
    dataset: str
    letters: frozenset[str]
    several: bool = False
    """True when this row alone carries more than one category."""


@dataclass(frozen=True)
class LabelledImage:
    """One image, identified by its file name, with every row of the database that names it.

    ``letters`` is the union of the rows' category letters (a category without an ``(x)``
    prefix contributes its whole name): empty when unlabelled, more than one letter when the
    labeller selected several or duplicate rows disagree; both cases are also findings.
    """

    name: str
    dataset: str
    letters: frozenset[str]
    rows: tuple[TkImageRow, ...]

    @property
    def stem(self) -> str:
        """The file name without its extension (``P1_J5_ab_3``), as CryoSift keys images."""
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name


@dataclass(frozen=True)
class Finding:
    """Something in the database a caller should show rather than silently resolve."""

    kind: FindingKind
    message: str
    image: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TkLabels:
    """Everything :func:`read_labels` found in one database.

    ``images`` are sorted by dataset, then by file name in natural order (``_2`` before
    ``_10``); ``email`` is None when the file is not named ``storage_<email>.db``.
    """

    path: Path
    email: str | None
    categories: tuple[TkCategory, ...]
    images: tuple[LabelledImage, ...]
    findings: tuple[Finding, ...] = field(default=())

    def by_name(self) -> dict[str, LabelledImage]:
        """The images keyed by file name."""
        return {image.name: image for image in self.images}


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open ``path`` read-only through a URI, so that SQLite never creates or changes it."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return sqlite3.connect(uri, uri=True)


def _check_tables(con: sqlite3.Connection, path: Path) -> None:
    tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    missing = [name for name in _REQUIRED_COLUMNS if name not in tables]
    if missing:
        raise FormatError(
            f"not a tkteach label database: no table {', '.join(missing)}",
            where=path,
            hint="expected the storage_<email>.db written by tkteach",
        )
    for table, wanted in _REQUIRED_COLUMNS.items():
        have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
        if not wanted <= have:
            absent = ", ".join(sorted(wanted - have))
            raise FormatError(
                f"not a tkteach label database: table {table} lacks column(s) {absent}",
                where=path,
            )


def _query(
    con: sqlite3.Connection,
) -> tuple[list[tuple], list[tuple], list[tuple]]:
    categories = con.execute("SELECT id, categoryName FROM categories ORDER BY id").fetchall()
    images = con.execute(
        "SELECT images.id, images.imageName, images.imagePath, dataSets.dataSetName "
        "FROM images LEFT JOIN dataSets ON dataSets.id = images.dataSet_id ORDER BY images.id"
    ).fetchall()
    labels = con.execute("SELECT category_id, image_id FROM labels ORDER BY rowid").fetchall()
    return categories, images, labels


def read_labels(path: str | os.PathLike[str]) -> TkLabels:
    """Read a tkteach database: every image by file name, its dataset and category letters.

    The database is opened read-only. Nothing ambiguous is resolved: images with several
    categories, duplicate rows of one file name whose labels disagree, categories without an
    ``(x)`` letter, letters used twice, and labels pointing at missing rows all come back as
    :class:`Finding` lines. A duplicate row with no label does not conflict with a labelled
    one (tkteach stores "never graded" and "graded, then all unselected" alike, as no row);
    the image keeps the labelled row's letters. An image row's dataset is its
    ``dataSets.dataSetName``, or, when that row is missing, the name of the folder the typed
    path points into.

    Raises:
        MissingFileError: the file does not exist or cannot be read.
        FormatError: not an SQLite database, or one without tkteach's tables and columns.
    """
    path = Path(path)
    check_readable(path)
    try:
        with contextlib.closing(_connect_read_only(path)) as con:
            _check_tables(con, path)
            category_rows, image_rows, label_rows = _query(con)
    except sqlite3.Error as err:
        raise FormatError(
            f"not a readable SQLite database: {err}",
            where=path,
            hint="expected the storage_<email>.db written by tkteach",
        ) from err
    try:
        email: str | None = email_from_db_name(path)
    except FormatError:
        email = None

    categories = tuple(
        TkCategory(id=int(cid), name=str(name or ""), letter=category_letter(str(name or "")))
        for cid, name in category_rows
    )
    findings = _category_findings(categories)
    image_ids = {int(row[0]) for row in image_rows}
    keys_of, label_findings = _keys_by_image(categories, label_rows, image_ids)
    findings += label_findings
    images = _group_by_file_name(image_rows, keys_of)
    for image in images:
        findings += _image_findings(image)
    return TkLabels(
        path=path,
        email=email,
        categories=categories,
        images=tuple(images),
        findings=tuple(findings),
    )


def _keys_by_image(
    categories: Sequence[TkCategory], label_rows: Iterable[tuple], image_ids: set[int]
) -> tuple[dict[int, set[str]], list[Finding]]:
    """Image id → the keys (letters) of its labels; labels to missing rows become findings."""
    by_id = {c.id: c for c in categories}
    keys_of: dict[int, set[str]] = {}
    used: set[int] = set()
    findings: list[Finding] = []
    for category_id, image_id in label_rows:
        category = by_id.get(category_id) if category_id is not None else None
        if category is None or image_id not in image_ids:
            what = "category" if category is None else "image"
            findings.append(
                Finding(
                    "dangling_label",
                    f"a label links image id {image_id} to category id {category_id}, "
                    f"but that {what} does not exist; ignored",
                )
            )
            continue
        used.add(category.id)
        keys_of.setdefault(int(image_id), set()).add(category.key)
    findings += [
        Finding(
            "unlettered_category",
            f"category {c.name!r} (id {c.id}) has no '(x)' letter; "
            f"its labels are reported under the whole name",
        )
        for c in categories
        if c.letter is None and c.id in used
    ]
    return keys_of, findings


def _group_by_file_name(
    image_rows: Iterable[tuple], keys_of: dict[int, set[str]]
) -> list[LabelledImage]:
    """Merge image rows by file name, sorted by dataset then file name (natural order)."""
    grouped: dict[str, list[TkImageRow]] = {}
    for image_id, image_name, image_path, dataset_name in image_rows:
        typed = str(image_path if image_path else image_name or "")
        parts = re.split(r"[\\/]", typed)
        dataset = dataset_name if dataset_name else (parts[-2] if len(parts) > 1 else "")
        letters = frozenset(keys_of.get(int(image_id), ()))
        grouped.setdefault(parts[-1], []).append(
            TkImageRow(
                id=int(image_id),
                image_path=typed,
                image_name=str(image_name or ""),
                dataset=str(dataset),
                letters=letters,
                several=len(letters) > 1,
            )
        )
    images = [
        LabelledImage(
            name=name,
            dataset=rows[0].dataset,
            letters=frozenset().union(*(row.letters for row in rows)),
            rows=tuple(rows),
        )
        for name, rows in grouped.items()
    ]
    images.sort(key=lambda im: (_natural_key(im.dataset), _natural_key(im.name)))
    return images


def _letters_text(letters: Iterable[str]) -> str:
    return "+".join(sorted(letters)) or "none"


def _category_findings(categories: Sequence[TkCategory]) -> list[Finding]:
    seen: dict[str, TkCategory] = {}
    findings = []
    for category in categories:
        if category.letter is None:
            continue
        first = seen.setdefault(category.letter, category)
        if first is not category:
            findings.append(
                Finding(
                    "duplicate_letter",
                    f"categories {first.name!r} (id {first.id}) and {category.name!r} "
                    f"(id {category.id}) share the letter {category.letter}; "
                    f"their labels cannot be told apart",
                )
            )
    return findings


def _image_findings(image: LabelledImage) -> Iterator[Finding]:
    for row in image.rows:
        if row.several:
            yield Finding(
                "several_categories",
                f"{image.name}: {len(row.letters)} categories selected "
                f"({_letters_text(row.letters)}) at {row.image_path}",
                image=image.name,
            )
    labelled = {row.letters for row in image.rows if row.letters}
    if len(labelled) > 1:
        listed = "; ".join(f"{_letters_text(r.letters)} at {r.image_path}" for r in image.rows)
        yield Finding(
            "conflicting_duplicates",
            f"{image.name}: {len(image.rows)} rows typed under different paths disagree ({listed})",
            image=image.name,
        )
    datasets = sorted({row.dataset for row in image.rows})
    if len(datasets) > 1:
        yield Finding(
            "dataset_mismatch",
            f"{image.name}: listed under several datasets ({', '.join(datasets)}); "
            f"using {image.dataset}",
            image=image.name,
        )


# --- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageLabel:
    """One image to write: its dataset (job folder under ``images/``), file name and letters."""

    dataset: str
    name: str
    letters: frozenset[str] = frozenset()


def typed_paths(
    lab_dir: str, dataset: str, name: str, *, windows: bool = False
) -> tuple[str, str, str]:
    """``(dataSetPath, imagePath, imageName)`` exactly as tkteach builds them for ``lab_dir``.

    tkteach joins ``os.path.join(os.path.join(dir, "images/"), dataset)`` and then the file
    name, and keeps ``imagePath.split("\\\\")[-1]`` as the name. ``windows`` selects
    Windows' ``os.path`` (where that name is the bare file name) instead of POSIX's.
    """
    join = ntpath.join if windows else posixpath.join
    dataset_path = join(join(lab_dir, "images/"), dataset)
    image_path = join(dataset_path, name)
    return dataset_path, image_path, image_path.split("\\")[-1]


def _category_ids(categories: Sequence[str]) -> dict[str, int]:
    """Letter → id for categories inserted in order; every category needs a distinct letter."""
    ids: dict[str, int] = {}
    for position, text in enumerate(categories, start=1):
        letter = category_letter(text)
        if letter is None:
            raise ValueError(f"category {text!r} has no '(x)' letter")
        if letter in ids:
            raise ValueError(f"two categories use the letter {letter}")
        ids[letter] = position
    if len({text.strip() for text in categories}) != len(categories):
        raise ValueError("category names must be distinct")
    return ids


def write_labels(
    path: str | os.PathLike[str],
    images: Iterable[ImageLabel],
    *,
    categories: Sequence[str] = MAGELLON_CATEGORIES,
    lab_dir: str | None = None,
    windows: bool = False,
    overwrite: bool = False,
    durable: bool = True,
) -> None:
    """Write a new tkteach database holding ``images`` and their letters, atomically.

    The tables are created with tkteach's own statements, then the categories in the order
    given (ids 1, 2, …: A=1 … F=5 for :data:`MAGELLON_CATEGORIES`), then datasets in order of
    first appearance, then images in the order given, each with one ``labels`` row per letter
    (in category order, as tkteach's listbox selection would). ``imagePath``/``imageName``
    are what tkteach would store had it been started with ``--directory lab_dir`` (default:
    the database's folder, as given): see :func:`typed_paths`.

    Raises:
        ValueError: a letter not among the categories, a category without a letter, or the
            same file name twice.
        ConflictError: ``path`` exists and ``overwrite`` is False (a lab's labels are never
            replaced by accident).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConflictError(
            "already exists", where=path, hint="choose another name or allow overwriting"
        )
    ids = _category_ids(categories)
    directory = lab_dir if lab_dir is not None else str(path.parent)
    rows = list(images)
    seen: set[str] = set()
    for row in rows:
        if row.name in seen:
            raise ValueError(f"image {row.name!r} is listed twice")
        seen.add(row.name)
        unknown = set(row.letters) - ids.keys()
        if unknown:
            raise ValueError(
                f"{row.name}: letter(s) {', '.join(sorted(unknown))} not in categories"
            )

    with atomic_path(path, durable=durable) as tmp, contextlib.closing(sqlite3.connect(tmp)) as con:
        for statement in SCHEMA:
            con.execute(statement)
        for text in categories:
            con.execute("INSERT OR IGNORE INTO categories(categoryName) VALUES(?)", (text.strip(),))
        dataset_ids: dict[str, int] = {}
        for row in rows:
            dataset_path, image_path, image_name = typed_paths(
                directory, row.dataset, row.name, windows=windows
            )
            if row.dataset not in dataset_ids:
                cur = con.execute(
                    "INSERT INTO dataSets(dataSetName, dataSetPath) VALUES(?, ?)",
                    (row.dataset, dataset_path),
                )
                dataset_ids[row.dataset] = int(cur.lastrowid or 0)
            cur = con.execute(
                "INSERT INTO images(dataSet_id, imageName, imagePath) VALUES(?, ?, ?)",
                (dataset_ids[row.dataset], image_name, image_path),
            )
            image_id = int(cur.lastrowid or 0)
            for letter in sorted(row.letters, key=ids.__getitem__):
                con.execute(
                    "INSERT INTO labels(image_id, category_id) VALUES(?, ?)",
                    (image_id, ids[letter]),
                )
        con.commit()
