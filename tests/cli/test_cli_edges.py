"""The command's rough edges a new user met, each as they met it.

``ls`` on an 80- and a 120-column terminal, ``serve`` on a port that is taken, ``init`` where
no folder can be made, the PyTorch loader after the README's install (no torch), and
``export-magellon``'s name for a RELION job.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.cli_in_process import cli

REPO = Path(__file__).resolve().parents[2]
SMALL = ("--classes", 4, "--box", 32, "--particles", 300, "--seed", 1)
TITLE = "Apoferritin at 1.2 Å, grid 7 of the March session"
LAB = "Lander lab"


def _command(*argv: object, columns: int | None = None, timeout: float = 60) -> tuple:
    """``cryocurate ARGV`` in a process of its own (a terminal width, a real port)."""
    env = dict(os.environ)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    done = subprocess.run(
        [sys.executable, "-m", "cryocurate", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def portal(tmp_path: Path, capsys) -> Path:
    """A portal with a cryoSPARC and a RELION job extracted into one long-titled dataset."""
    root = tmp_path / "portal"
    assert cli(capsys, "init", root)[0] == 0
    cs = tmp_path / "P1" / "J12"
    relion = tmp_path / "Class2D" / "job006"
    assert cli(capsys, "synth", "cryosparc", cs, *SMALL)[0] == 0
    assert cli(capsys, "synth", "relion", relion, *SMALL)[0] == 0
    code, _, err = cli(capsys, "extract", cs, relion, "--root", root, "-d", TITLE, "--lab", LAB)
    assert code == 0, err
    return root


@pytest.mark.parametrize("columns", [80, 120])
def test_ls_gives_a_title_its_own_line_and_a_run_one_row(portal, columns):
    code, out, err = _command("ls", portal, columns=columns)
    assert code == 0, err
    lines = out.splitlines()
    assert all(len(line) <= columns for line in lines), out
    heading = next(line for line in lines if line.startswith("10000"))
    assert f"{TITLE} — {LAB}" in heading, out  # whole, not folded into a narrow column
    for run, software, particles in (("P1_J12", "cryosparc", "300"), ("job006", "relion", "300")):
        (row,) = [line for line in lines if run in line]
        assert software in row and row.rstrip().endswith(particles), out


def test_ls_prints_a_title_as_text_not_markup(tmp_path, capsys):
    root = tmp_path / "portal"
    assert cli(capsys, "init", root)[0] == 0
    title = "[red]Lysozyme[/red] [bold"
    assert cli(capsys, "dataset", "create", root, "--title", title)[0] == 0
    code, out, err = _command("ls", root, columns=120)
    assert code == 0, err
    assert title in out


def test_serve_on_a_busy_port_says_so_in_one_line(portal):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = _command("serve", portal, "--port", port, timeout=30)
    assert code == 2
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1, out + err
    (line,) = lines
    assert f"127.0.0.1:{port}" in line and "already in use" in line
    assert "--port" in line
    assert "Serving" not in out + err and "Errno" not in line


def test_demo_on_a_busy_port_says_so_before_building_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = _command("demo", "--dir", tmp_path / "demo", "--port", port)
    assert code == 2
    assert len((out + err).strip().splitlines()) == 1, out + err
    assert "already in use" in err and "--port" in err
    assert not (tmp_path / "demo").exists()


def test_init_where_no_folder_can_be_made_is_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("in the way")
    for target in (Path("/proc/forbidden"), tmp_path / "a-file" / "portal"):
        code, _, err = cli(capsys, "init", target)
        assert code == 2
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("Error:") and str(target) in err and "cannot make" in err
    assert not Path("/proc/forbidden").exists()


def test_the_loader_without_torch_names_the_extra_to_install():
    """After the README's ``pip install -e .`` there is no torch: say which extra brings it."""
    code = "import sys; sys.modules['torch'] = None; import cryocurate.learn.loader"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError:")
    assert "pip install 'cryocurate[train]'" in last
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert "torch==2.13.0" in extras["train"]
    assert "cryocurate[train]" in (REPO / "README.md").read_text()


def test_export_magellon_names_a_relion_job_by_its_own_number(portal, tmp_path, capsys):
    code, out, _ = cli(capsys, "ls", portal, "--json")
    (dataset,) = json.loads(out)
    run = next(r for r in dataset["runs"] if r["name"] == "job006")
    assert cli(capsys, "users", "add", portal, "lena@lab.org", "--role", "labeller")[0] == 0
    code, _, err = cli(
        capsys, "campaign", "create", portal, "--name", "R", "--run", run["id"],
        "--labeller", "lena@lab.org",
    )  # fmt: skip
    assert code == 0, err
    code, out, err = cli(
        capsys, "export-magellon", portal, tmp_path / "out", "--campaign", 1, "--json"
    )
    assert code == 0, err
    (job,) = json.loads(out)["jobs"]
    assert job["job"] == f"P0_J6_{dataset['id']}"
    assert run["id"] != 6  # the name comes from job006, not from the run's id
