"""Tests of the tkteach label database reader and writer.

Databases are built with raw ``sqlite3`` the way tkteach builds them (Magellon's
``ClassAvgLabeling/tkteach.py``): its CREATE TABLE IF NOT EXISTS statements copied here
verbatim (not from the module under test), categories inserted with INSERT OR IGNORE in the
order of the categories file, datasets and images inserted on "Load Data Set" from
``os.path.join(os.path.join(dir, 'images/'), dataset)``, and labels saved on "Save & Next"
(delete the image's rows, insert one per selected category).
"""

from __future__ import annotations

import ntpath
import posixpath
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from cryocurate.errors import ConflictError, FormatError, MissingFileError
from cryocurate.formats.tkteach import (
    MAGELLON_CATEGORIES,
    ImageLabel,
    category_letter,
    db_name,
    email_from_db_name,
    file_name,
    read_labels,
    typed_paths,
    write_labels,
)

# Verbatim from tkteach.py's initializeDatabase.
TKTEACH_CREATE = (
    "CREATE TABLE IF NOT EXISTS dataSets(id INTEGER NOT NULL PRIMARY KEY, dataSetName TEXT, dataSetPath TEXT UNIQUE)",  # noqa: E501
    "CREATE TABLE IF NOT EXISTS images(id INTEGER NOT NULL PRIMARY KEY, dataSet_id INTEGER, imageName TEXT, imagePath TEXT UNIQUE, FOREIGN KEY(dataSet_id) REFERENCES dataSets(id))",  # noqa: E501
    "CREATE TABLE IF NOT EXISTS categories(id INTEGER NOT NULL PRIMARY KEY, categoryName TEXT UNIQUE)",  # noqa: E501
    "CREATE TABLE IF NOT EXISTS labels(category_id INTEGER, image_id INTEGER, FOREIGN KEY(category_id) REFERENCES categories(id), FOREIGN KEY(image_id) REFERENCES images(id))",  # noqa: E501
)
CATEGORIES_TXT = "(A) Best\n(B) Decent\n(C) Acceptable\n(D) Bad\n(F) Unusable"
REVERSED_TXT = "(F) Unusable\n(D) Bad\n(C) Acceptable\n(B) Decent\n(A) Best\n"


class Tkteach:
    """The database side of one tkteach session, replayed with raw sqlite3."""

    def __init__(
        self, db: Path, categories_txt: str, lab_dir: str, join: Callable[..., str] = posixpath.join
    ) -> None:
        self.con = sqlite3.connect(db)
        self.lab_dir = lab_dir
        self.join = join
        for statement in TKTEACH_CREATE:
            self.con.execute(statement)
        self.con.commit()
        self.categories = [line.strip() for line in categories_txt.splitlines()]
        for category in self.categories:
            self.con.execute(
                "INSERT OR IGNORE INTO categories(categoryName) VALUES(?)", (category,)
            )
        self.con.commit()

    def load_dataset(self, dataset: str, files: Sequence[str]) -> list[str]:
        """'Load Data Set': insert the dataset and its images; return the image paths."""
        dataset_path = self.join(self.join(self.lab_dir, "images/"), dataset)
        image_paths = [self.join(dataset_path, name) for name in files]
        image_names = [p.split("\\")[-1] for p in image_paths]
        self.con.execute(
            "INSERT OR IGNORE INTO dataSets(dataSetName, dataSetPath) VALUES(?, ?)",
            (dataset, dataset_path),
        )
        dataset_id = self.con.execute(
            "SELECT id FROM dataSets WHERE dataSetName = ?", (dataset,)
        ).fetchone()[0]
        for name, path in zip(image_names, image_paths, strict=True):
            self.con.execute(
                "INSERT OR IGNORE INTO images(dataSet_id, imageName, imagePath) VALUES(?, ?, ?)",
                (dataset_id, name, path),
            )
        self.con.commit()
        return image_paths

    def save(self, image_path: str, *letters: str) -> None:
        """'Save & Next' with the categories of ``letters`` selected."""
        image_id = self.con.execute(
            "SELECT id FROM images WHERE imagePath = ?", (image_path,)
        ).fetchone()[0]
        self.con.execute("DELETE FROM labels WHERE image_id = ?", (image_id,))
        for category in self.categories:
            if category[1] in letters:  # curselection() is in listbox order
                category_id = self.con.execute(
                    "SELECT id FROM categories WHERE categoryName = ?", (category,)
                ).fetchone()[0]
                self.con.execute(
                    "INSERT INTO labels(image_id, category_id) VALUES(?, ?)",
                    (image_id, category_id),
                )
        self.con.commit()

    def close(self) -> None:
        self.con.close()


JOB = "P1_J5_abc123"
FILES = [f"{JOB}_{i}.jpg" for i in (0, 1, 10, 2, 3)]  # os.listdir order: unsorted


@pytest.fixture
def lab_db(tmp_path: Path) -> Path:
    """One labeller's DB: a relative-path session, then an absolute-path one."""
    db = tmp_path / "storage_ann.b@lab.edu.db"
    first = Tkteach(db, CATEGORIES_TXT, "lab")
    paths = dict(zip(FILES, first.load_dataset(JOB, FILES), strict=True))
    first.save(paths[f"{JOB}_0.jpg"], "A")
    first.save(paths[f"{JOB}_1.jpg"], "B", "D")  # two grades on one image
    first.save(paths[f"{JOB}_3.jpg"], "C")
    first.save(paths[f"{JOB}_10.jpg"], "F")
    first.close()
    second = Tkteach(db, CATEGORIES_TXT, "/data/onedrive/lab/")
    paths = dict(zip(FILES, second.load_dataset(JOB, FILES), strict=True))
    second.save(paths[f"{JOB}_0.jpg"], "A")  # same answer again: no conflict
    second.save(paths[f"{JOB}_2.jpg"], "B")  # first labelled in this session
    second.save(paths[f"{JOB}_3.jpg"], "D")  # disagrees with the first session
    second.close()
    return db


def test_read_merges_typed_paths_by_file_name(lab_db: Path) -> None:
    labels = read_labels(lab_db)
    assert labels.email == "ann.b@lab.edu"
    assert [c.letter for c in labels.categories] == ["A", "B", "C", "D", "F"]
    got = {im.name: (im.dataset, im.letters) for im in labels.images}
    assert got == {
        f"{JOB}_0.jpg": (JOB, frozenset("A")),
        f"{JOB}_1.jpg": (JOB, frozenset("BD")),
        f"{JOB}_2.jpg": (JOB, frozenset("B")),
        f"{JOB}_3.jpg": (JOB, frozenset("CD")),
        f"{JOB}_10.jpg": (JOB, frozenset("F")),
    }
    # natural order of class indices, not the database's or os.listdir's
    assert [im.name for im in labels.images][-2:] == [f"{JOB}_3.jpg", f"{JOB}_10.jpg"]
    three = labels.by_name()[f"{JOB}_3.jpg"]
    assert [r.image_path for r in three.rows] == [
        f"lab/images/{JOB}/{JOB}_3.jpg",
        f"/data/onedrive/lab/images/{JOB}/{JOB}_3.jpg",
    ]
    assert three.stem == f"{JOB}_3"


def test_read_reports_several_categories_and_conflicts(lab_db: Path) -> None:
    findings = read_labels(lab_db).findings
    kinds = sorted((f.kind, f.image) for f in findings)
    assert kinds == [
        ("conflicting_duplicates", f"{JOB}_3.jpg"),
        ("several_categories", f"{JOB}_1.jpg"),
    ]
    for finding in findings:
        assert "\n" not in str(finding)
    conflict = next(f for f in findings if f.kind == "conflicting_duplicates")
    assert "C at lab/images/" in conflict.message and "D at /data/onedrive/" in conflict.message
    several = next(f for f in findings if f.kind == "several_categories")
    assert "B+D" in several.message


def test_letters_come_from_the_text_not_the_id(tmp_path: Path) -> None:
    db = tmp_path / "storage_x@y.org.db"
    session = Tkteach(db, REVERSED_TXT, "lab")
    paths = session.load_dataset(JOB, [f"{JOB}_0.jpg", f"{JOB}_1.jpg"])
    session.save(paths[0], "A")
    session.save(paths[1], "F")
    session.close()
    with sqlite3.connect(db) as con:  # what CryoSift would train on: the ids
        ids = con.execute("SELECT category_id FROM labels ORDER BY image_id").fetchall()
    con.close()
    assert ids == [(5,), (1,)]
    labels = read_labels(db)
    assert [im.letters for im in labels.images] == [frozenset("A"), frozenset("F")]
    assert {c.letter: c.id for c in labels.categories} == {"F": 1, "D": 2, "C": 3, "B": 4, "A": 5}
    assert labels.findings == ()


def test_windows_typed_paths(tmp_path: Path) -> None:
    db = tmp_path / "storage_w@lab.edu.db"
    session = Tkteach(db, CATEGORIES_TXT, "C:\\Users\\w\\OneDrive\\LanderData", join=ntpath.join)
    paths = session.load_dataset("P2_J7_u", ["P2_J7_u_0.jpg"])
    assert paths == ["C:\\Users\\w\\OneDrive\\LanderData\\images/P2_J7_u\\P2_J7_u_0.jpg"]
    session.save(paths[0], "B")
    session.close()
    (image,) = read_labels(db).images
    assert (image.name, image.dataset, image.letters) == ("P2_J7_u_0.jpg", "P2_J7_u", {"B"})
    assert image.rows[0].image_name == "P2_J7_u_0.jpg"  # tkteach stored the bare name here


def test_category_without_letter(tmp_path: Path) -> None:
    db = tmp_path / "storage_n@lab.edu.db"
    session = Tkteach(db, "Good\n(B) Decent", "lab")
    paths = session.load_dataset(JOB, [f"{JOB}_0.jpg"])
    session.con.execute("INSERT INTO labels(image_id, category_id) VALUES(1, 1)")
    session.con.commit()
    session.close()
    assert paths
    labels = read_labels(db)
    assert labels.images[0].letters == {"Good"}
    assert [f.kind for f in labels.findings] == ["unlettered_category"]
    assert "'Good'" in labels.findings[0].message


def test_duplicate_letters_and_dangling_labels(tmp_path: Path) -> None:
    db = tmp_path / "storage_d@lab.edu.db"
    session = Tkteach(db, "(A) Best\n(a) Also best", "lab")
    session.load_dataset(JOB, [f"{JOB}_0.jpg"])
    session.con.execute("INSERT INTO labels(image_id, category_id) VALUES(1, 9)")
    session.con.execute("INSERT INTO labels(image_id, category_id) VALUES(7, 1)")
    session.con.commit()
    session.close()
    labels = read_labels(db)
    assert sorted(f.kind for f in labels.findings) == [
        "dangling_label",
        "dangling_label",
        "duplicate_letter",
    ]
    assert labels.images[0].letters == frozenset()


def test_read_only_and_unchanged(lab_db: Path) -> None:
    before = (lab_db.read_bytes(), lab_db.stat().st_mtime_ns)
    lab_db.chmod(0o444)
    try:
        read_labels(lab_db)
    finally:
        lab_db.chmod(0o644)
    assert (lab_db.read_bytes(), lab_db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in lab_db.parent.iterdir()) == [lab_db.name]


def test_not_a_database_is_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "storage_j@lab.edu.db"
    junk.write_bytes(b"this is not SQLite at all\n" * 100)
    with pytest.raises(FormatError) as err:
        read_labels(junk)
    assert "\n" not in str(err.value) and str(junk) in str(err.value)

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE things(id INTEGER)")
    con.close()
    with pytest.raises(FormatError, match="no table dataSets, images, categories, labels"):
        read_labels(other)
    with pytest.raises(MissingFileError):
        read_labels(tmp_path / "absent.db")


def test_email_from_file_name() -> None:
    assert email_from_db_name("/x/storage_ann.b@lab.edu.db") == "ann.b@lab.edu"
    # Magellon's strip('.db') would give 'storage_bob@x' here
    assert email_from_db_name("storage_bob@x.bd.db") == "bob@x.bd"
    assert db_name("bob@x.bd") == "storage_bob@x.bd.db"
    for bad in ("database.db", "storage_.db", "storage_a@b.sqlite"):
        with pytest.raises(FormatError):
            email_from_db_name(bad)
    with pytest.raises(ValueError):
        db_name("a/b")


def test_small_helpers() -> None:
    assert category_letter("(A) Best") == "A"
    assert category_letter(" (f) unusable ") == "F"
    assert category_letter("Best") is None
    assert category_letter("(AB) x") is None
    assert file_name("C:\\a\\images/J\\J_1.jpg") == "J_1.jpg"
    assert file_name("J_1.jpg") == "J_1.jpg"


def _schema(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        con.close()


def test_write_then_read_round_trip(tmp_path: Path, lab_db: Path) -> None:
    original = read_labels(lab_db)
    rows = [
        ImageLabel(dataset=im.dataset, name=im.name, letters=im.letters) for im in original.images
    ]
    out = tmp_path / "out" / db_name("ann.b@lab.edu")
    write_labels(out, rows, lab_dir="/labs/Lander")
    back = read_labels(out)
    assert [(im.name, im.dataset, im.letters) for im in back.images] == [
        (im.name, im.dataset, im.letters) for im in original.images
    ]
    assert back.email == "ann.b@lab.edu"
    assert sorted(f.kind for f in back.findings) == ["several_categories"] * 2
    # the original schema, as tkteach makes it
    reference = tmp_path / "reference.db"
    Tkteach(reference, CATEGORIES_TXT, "lab").close()
    assert _schema(out) == _schema(reference)
    # ids as CryoSift expects, and paths as tkteach would have typed them
    con = sqlite3.connect(out)
    try:
        assert con.execute("SELECT id, categoryName FROM categories").fetchall() == list(
            enumerate(MAGELLON_CATEGORIES, start=1)
        )
        assert con.execute("SELECT dataSetName, dataSetPath FROM dataSets").fetchall() == [
            (JOB, f"/labs/Lander/images/{JOB}")
        ]
        name, path = con.execute(
            "SELECT imageName, imagePath FROM images WHERE imagePath LIKE ?", (f"%{JOB}_2.jpg",)
        ).fetchone()
        assert name == path == f"/labs/Lander/images/{JOB}/{JOB}_2.jpg"
        # CryoSift's query: one row per (image, category), grade = category id
        rows_ = con.execute(
            "SELECT imageName, category_id FROM images "
            "LEFT JOIN labels ON labels.image_id = images.id"
        ).fetchall()
    finally:
        con.close()
    grades = {(file_name(n), g) for n, g in rows_}
    assert (f"{JOB}_0.jpg", 1) in grades and (f"{JOB}_10.jpg", 5) in grades
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp/journal left


def test_write_windows_paths_and_defaults(tmp_path: Path) -> None:
    assert typed_paths("C:\\lab", "J", "J_0.jpg", windows=True) == (
        "C:\\lab\\images/J",
        "C:\\lab\\images/J\\J_0.jpg",
        "J_0.jpg",
    )
    out = tmp_path / "storage_w@lab.edu.db"
    write_labels(out, [ImageLabel("J", "J_0.jpg", frozenset("C"))], lab_dir="C:\\lab", windows=True)
    (image,) = read_labels(out).images
    assert (image.name, image.dataset, image.letters, image.rows[0].image_name) == (
        "J_0.jpg",
        "J",
        {"C"},
        "J_0.jpg",
    )
    other = tmp_path / "storage_d@lab.edu.db"
    write_labels(other, [ImageLabel("J", "J_0.jpg")])
    (image,) = read_labels(other).images
    assert image.rows[0].image_path == f"{tmp_path}/images/J/J_0.jpg"
    assert image.letters == frozenset()


def test_write_refuses_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "storage_a@b.c.db"
    write_labels(out, [])
    with pytest.raises(ConflictError):
        write_labels(out, [])
    write_labels(out, [ImageLabel("J", "J_0.jpg", frozenset("A"))], overwrite=True)
    assert read_labels(out).images[0].letters == {"A"}
    with pytest.raises(ValueError, match="letter"):
        write_labels(tmp_path / "x.db", [ImageLabel("J", "J_0.jpg", frozenset("E"))])
    with pytest.raises(ValueError, match="twice"):
        write_labels(tmp_path / "y.db", [ImageLabel("J", "J_0.jpg"), ImageLabel("K", "J_0.jpg")])
    with pytest.raises(ValueError, match="no '\\(x\\)' letter"):
        write_labels(tmp_path / "z.db", [], categories=["Good"])
    assert not (tmp_path / "x.db").exists()
