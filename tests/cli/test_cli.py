"""The command line as a user meets it: help, init, ls, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli.commands import leaf_commands
from tests.cli_in_process import cli


def test_every_command_has_help_with_an_example(capsys):
    leaves = leaf_commands()
    assert len(leaves) >= 34  # enumerated from the registry: a new command is checked too
    for path, command in leaves:
        code, out, _ = cli(capsys, *path, "--help")
        assert code == 0, path
        # the help text ends with its example, which runs this very command
        last = (command.help or "").strip().split("\n\n")[-1].splitlines()
        starts = [i for i, line in enumerate(last) if line.startswith("Example: cryocurate ")]
        assert starts, f"{path}: its help does not end with an example"
        example = " ".join(last[starts[0] :]).removeprefix("Example: ")
        assert example.startswith(" ".join(["cryocurate", *path]) + " "), (path, example)
        assert "Example: cryocurate " in out, f"{path}: --help shows no example"


def test_init_ls_json_and_version(tmp_path, capsys):
    code, out, _ = cli(capsys, "init", tmp_path / "p")
    assert code == 0 and "Portal root ready" in out
    code, out, _ = cli(capsys, "ls", tmp_path / "p", "--json")
    assert code == 0 and json.loads(out) == []
    code, out, _ = cli(capsys, "dataset", "create", tmp_path / "p", "--title", "T", "--lab", "L")
    assert code == 0 and "10000" in out
    code, out, _ = cli(capsys, "ls", tmp_path / "p", "--json")
    [d] = json.loads(out)
    assert d["id"] == 10000 and d["lab"] == "L" and d["runs"] == []
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and "cryocurate" in out


def test_console_script_errors_are_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cryocurate", "ls", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("Error: ") and "not a portal root" in proc.stderr


def test_usage_errors_are_shown_not_raised(capsys):
    code, _, err = cli(capsys, "extract", "--bogus")
    assert code == 2 and "No such option" in err and "Traceback" not in err
    code, _, err = cli(capsys, "ingest", "run", "root", "-d", "1", "t.mrc", "--quality", "9")
    assert code == 2 and "--quality" in err
