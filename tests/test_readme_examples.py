"""The README's examples, run as a reader would run them, so the README stays true.

* The Python client block runs against a served demo portal (``cryocurate demo --no-serve``,
  then ``cryocurate serve``), with the README's ``http://127.0.0.1:8000`` replaced by the
  served address; every top-level expression of it must give something (a ``None`` is an
  example that looked for what the demo does not have, as ``Run.get_by_id(client, 645)`` did).
* The PyTorch block runs on ``cryocurate export ROOT OUT --campaign 1`` of the demo after its
  two labellers graded every item.
* The tour's commands run in a folder holding what the tour assumes the reader has: job
  folders ``J12 J40 J77``, a project at ``/data/CS-apoferritin`` (made under the test's folder
  instead) and ``jobs.txt``; ``cryocurate serve`` must answer its home page.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cryocurate import accounts, grading
from cryocurate.catalog.models import CampaignItem
from cryocurate.demo import DEMO_CAMPAIGN, DEMO_USERS
from cryocurate.portal import Portal
from tests.cli_in_process import cli

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
DEMO_URL = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SMALL = ("--classes", 4, "--box", 32, "--particles", 300)


def _block(language: str, marker: str) -> str:
    """The one fenced block of ``language`` that contains ``marker``."""
    found = [body for lang, body in FENCE.findall(README) if lang == language and marker in body]
    assert len(found) == 1, f"expected one ```{language} block with {marker!r} in README.md"
    return found[0]


def _run_python(code: str, namespace: dict[str, Any]) -> None:
    """Run a README block statement by statement; a top-level expression giving None fails."""
    tree = ast.parse(code, "README.md")
    for statement in tree.body:
        source = ast.get_source_segment(code, statement)
        if isinstance(statement, ast.Expr):
            value = eval(compile(ast.Expression(statement.value), "README.md", "eval"), namespace)
            assert value is not None, f"README.md: `{source}` gives None on the demo"
        else:
            exec(compile(ast.Module([statement], []), "README.md", "exec"), namespace)


def _grade_everything(root: Path) -> None:
    """The demo campaign's labellers each grade every item once (A…F by item id)."""
    with Portal.open(root) as portal, portal.transaction() as s:
        (campaign,) = [c for c in grading.list_campaigns(s) if c.name == DEMO_CAMPAIGN]
        items = s.scalars(
            sa.select(CampaignItem.id).where(CampaignItem.campaign_id == campaign.id)
        ).all()
        for email, role in DEMO_USERS:
            if role == "reviewer":
                continue
            user = accounts.get_user(s, email)
            for item in items:
                request = grading.GradeRequest(f"readme-{user.id}-{item}", item, "ABCDF"[item % 5])
                grading.record(s, campaign, user, request)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "cryocurate", "demo", "--no-serve", "--dir", str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    root = folder / "portal"
    _grade_everything(root)
    return root


@pytest.mark.slow
def test_the_client_example_runs_against_the_demo(demo, live_server_module, tmp_path, monkeypatch):
    url = live_server_module(
        [sys.executable, "-m", "cryocurate", "serve", str(demo), "--port", "{port}"]
    )
    code = _block("python", "from cryocurate.client import")
    assert DEMO_URL in code
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    _run_python(code.replace(DEMO_URL, str(url)), namespace)
    assert namespace["run"].name == "job006"
    downloaded = [p for p in (tmp_path / "downloads").rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in downloaded)


@pytest.mark.slow
def test_the_pytorch_example_runs_on_an_export_of_the_demo(demo, tmp_path, monkeypatch, capsys):
    assert "cryocurate export ROOT OUT --campaign 1" in README
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "export", demo, "OUT", "--campaign", 1)
    assert code == 0, err
    namespace: dict[str, Any] = {}
    _run_python(_block("python", "cryocurate.learn.loader"), namespace)
    assert len(namespace["train"]) > 0
    assert tuple(namespace["image"].shape[:1]) == (1,)


def _commands(block: str) -> list[list[str]]:
    """Each command line of a shell block (continuations joined, comments dropped)."""
    lines = block.replace("\\\n", " ").splitlines()
    return [argv for argv in (shlex.split(line, comments=True) for line in lines) if argv]


@pytest.mark.slow
def test_the_tour_commands_run(tmp_path, monkeypatch, capsys, live_server):
    commands = _commands(_block("bash", "cryocurate init ./portal"))
    assert commands and all(argv[0] == "cryocurate" for argv in commands)
    monkeypatch.chdir(tmp_path)
    for seed, job in enumerate(("J12", "J40", "J77")):
        assert cli(capsys, "synth", "cryosparc", job, "--job", job, *SMALL, "--seed", seed)[0] == 0
    project = tmp_path / "data" / "CS-apoferritin"
    assert cli(capsys, "synth", "project", project, "--jobs", 3, *SMALL)[0] == 0
    (tmp_path / "jobs.txt").write_text("J12\nJ40  # the middle one\n")

    for argv in commands:
        argv = [a.replace("/data/", f"{tmp_path}/data/") for a in argv[1:]]
        if argv[0] == "serve":
            url = live_server([sys.executable, "-m", "cryocurate", *argv, "--port", "{port}"])
            assert httpx.get(f"{url}/", timeout=30).status_code == 200
            continue
        code, out, err = cli(capsys, *argv)
        assert code == 0, f"cryocurate {shlex.join(argv)}: {err}"
        if argv[0] == "ls":
            assert "Apoferritin" in out and "P1_J12" in out
