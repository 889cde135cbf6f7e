"""``import-magellon`` handed a label database named after someone who already has an account.

tkteach names a labeller only in the database's file name, so whoever hands a lab a Magellon
folder chooses whose account its grades would land on: ``storage_reviewer@lab.edu.db`` once
put 24 grades on the real reviewer's account. Imported labellers are now mapped explicitly
(``--labeller DATABASE=EMAIL``) or created as new; an unmapped database naming an existing
account is refused in one line, exit 2, before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from cryocurate import accounts
from cryocurate.catalog.models import Campaign, Dataset, Grade, GradeEvent, Run, User
from cryocurate.formats import magellon as mg
from cryocurate.formats import tkteach
from cryocurate.portal import Portal
from tests.cli_in_process import cli
from tests.formats.test_tkteach import CATEGORIES_TXT, Tkteach
from tests.ingest.conftest import portal_state

JOB = "P3_J12_64a1b2c3d4e5f6a7b8c9d0e1"
REVIEWER, ANN = "reviewer@lab.edu", "ann@lab.edu"
FORGED = tkteach.db_name(REVIEWER)
LETTERS = ["A", "B", "C", "F"]


def _state(root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    return portal_state(root, (Dataset, Run, Campaign, Grade, GradeEvent, User))


def _database(folder: Path, email: str) -> None:
    """A tkteach database grading every class of the job, as tkteach writes one."""
    db = Tkteach(folder / tkteach.db_name(email), CATEGORIES_TXT, "Lab")
    names = [mg.image_name(JOB, i) for i in range(len(LETTERS))]
    for path, letter in zip(db.load_dataset(JOB, names), LETTERS, strict=True):
        db.save(path, letter)
    db.close()


@pytest.fixture
def portal(tmp_path: Path, capsys) -> Path:
    """A portal whose reviewer already has an account."""
    root = tmp_path / "portal"
    assert cli(capsys, "init", root)[0] == 0
    code, _, err = cli(capsys, "users", "add", root, REVIEWER, "--role", "reviewer")
    assert code == 0, err
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A Magellon lab folder: one job, Ann's database and one named after the reviewer."""
    lab = tmp_path / "Lab"
    rng = np.random.default_rng(0)
    n = len(LETTERS)
    images = rng.normal(size=(n, 32, 32))
    metadata = mg.metadata_records(
        {
            "est_res": np.full(n, 12.0),
            "class_dist": np.full(n, 1 / n),
            "pixel_size": np.full(n, 1.3),
            "dmean_mass": np.zeros(n),
            "dmedian_mass": np.zeros(n),
            "dmode_mass": np.zeros(n),
        }
    )
    mg.write_job(lab, JOB, images, metadata)
    _database(lab, ANN)
    _database(lab, REVIEWER)
    return lab


def _grades_of(root: Path, email: str) -> int:
    with Portal.open(root) as p, p.transaction() as s:
        user = accounts.get_user(s, email)
        return s.scalar(
            sa.select(sa.func.count()).select_from(Grade).where(Grade.user_id == user.id)
        )


def test_a_database_named_after_an_existing_account_is_refused(portal, folder, capsys):
    before = _state(portal)

    code, out, err = cli(capsys, "import-magellon", portal, folder)

    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    (line,) = lines
    assert line.startswith("Error:") and FORGED in line
    assert f"{REVIEWER} already has an account" in line
    assert f"--labeller {FORGED}={REVIEWER}" in line
    assert out == ""
    assert _state(portal) == before  # no run, no campaign, no grade, Ann not made either


def test_a_forged_database_added_before_a_rerun_is_refused(portal, folder, capsys):
    """Ann's database was imported; a database named after the reviewer appears later."""
    forged = folder / FORGED
    aside = forged.rename(folder.parent / FORGED)
    code, _, err = cli(capsys, "import-magellon", portal, folder)
    assert code == 0, err
    aside.rename(forged)
    before = _state(portal)

    code, _, err = cli(capsys, "import-magellon", portal, folder)

    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert FORGED in err and f"--labeller {FORGED}={REVIEWER}" in err
    assert _state(portal) == before
    assert _grades_of(portal, REVIEWER) == 0


def test_mapping_to_the_existing_account_is_explicit_and_reruns_stay_a_no_op(
    portal, folder, capsys
):
    code, out, err = cli(
        capsys, "import-magellon", portal, folder, "--labeller", f"{FORGED}={REVIEWER}", "--json"
    )
    assert code == 0, err
    by_db = {r["database"]: r for r in json.loads(out)["labellers"]}
    assert (by_db[FORGED]["email"], by_db[FORGED]["mapped"], by_db[FORGED]["created"]) == (
        REVIEWER,
        True,
        False,
    )
    assert by_db[tkteach.db_name(ANN)]["created"] is True
    assert _grades_of(portal, REVIEWER) == len(LETTERS)
    before = _state(portal)

    # The same databases again, mapping or not: recognised as imported before, nothing new.
    for extra in ([], ["--labeller", f"{FORGED}={REVIEWER}"]):
        code, _, err = cli(capsys, "import-magellon", portal, folder, *extra)
        assert code == 0, err
        assert "grades 0 stored" in err
    assert _state(portal)[1] == before[1]


def test_mapping_to_a_new_email_keeps_the_existing_account_apart(portal, folder, capsys):
    other = "reviewer-magellon@lab.edu"
    code, _, err = cli(capsys, "import-magellon", portal, folder, "--labeller", f"{FORGED}={other}")
    assert code == 0, err
    assert _grades_of(portal, other) == len(LETTERS)
    assert _grades_of(portal, REVIEWER) == 0
    with Portal.open(portal) as p, p.transaction() as s:
        assert accounts.get_user(s, other).password_hash is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("reviewer@lab.edu", "is not DATABASE=EMAIL"),
        ("storage_nobody@lab.edu.db=nobody@lab.edu", "is not one of the databases imported"),
        (f"{FORGED}=not an email", "is not an email address"),
    ],
)
def test_bad_mappings_are_one_line_and_write_nothing(portal, folder, capsys, value, expected):
    before = _state(portal)
    code, _, err = cli(capsys, "import-magellon", portal, folder, "--labeller", value)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err
    assert _state(portal) == before


def test_mapping_to_a_disabled_account_is_refused(portal, folder, capsys):
    assert cli(capsys, "users", "disable", portal, REVIEWER)[0] == 0
    before = _state(portal)
    code, _, err = cli(
        capsys, "import-magellon", portal, folder, "--labeller", f"{FORGED}={REVIEWER}"
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "disabled" in err and FORGED in err
    assert _state(portal) == before
