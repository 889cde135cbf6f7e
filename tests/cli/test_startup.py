"""Start-up stays light: the CLI imports none of the heavy libraries until a command runs.

Every ``cryocurate`` call pays its start-up, so does every script that calls it in a loop;
``cryocurate --help`` once took 1.6 s because cli/main.py imported every command's stack.
These tests check the import list, not the time (the time is a benchmark:
benchmarks/startup.py), so they hold on a loaded machine and fail for the right reason.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cryocurate.cli.main import COMMANDS, load_module_commands
from tests.cli.commands import all_commands

# What a command may import when it runs, never at start-up or for --help. pydantic and
# rich are not in the list but cost a third of a --help each (typer coerces
# through pydantic; rich draws progress bars and tables).
HEAVY = ("sqlalchemy", "numpy", "zarr", "scipy", "pyarrow", "argon2", "torch", "pydantic", "rich")


def _top_level(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_importing_the_cli_imports_no_heavy_library():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import cryocurate.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = [
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    ]
    assert "cryocurate.cli.main" in imported  # the list really is the import list
    assert sorted(_top_level(imported) & set(HEAVY)) == []


# Runs ``cryocurate PATH --help`` for every path in turn in one process, noting after each
# which heavy libraries have been imported so far (the first command to import one is named).
_HELP_ALL = """
import json, sys
from cryocurate.cli.main import main
HEAVY = set(json.loads(sys.argv[2]))
seen = {}
for path in json.loads(sys.argv[1]):
    try:
        main([*path, "--help"])
    except SystemExit as done:
        assert done.code in (0, None), (path, done.code)
    now = sorted({m.split(".")[0] for m in sys.modules} & HEAVY)
    seen[" ".join(path) or "(root)"] = now
print(json.dumps(seen))
"""


def test_no_command_help_imports_a_heavy_library():
    paths = [[], *(path for path, _ in all_commands())]
    proc = subprocess.run(
        [sys.executable, "-c", _HELP_ALL, json.dumps(paths), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    seen = json.loads(proc.stdout.splitlines()[-1])
    assert len(seen) == len(paths)
    first_heavy = next(((cmd, mods) for cmd, mods in seen.items() if mods), None)
    assert first_heavy is None, f"`cryocurate {first_heavy[0]} --help` imported {first_heavy[1]}"


@pytest.mark.parametrize("command", ["extract", "campaign create", "users token"])
def test_one_command_help_alone_imports_no_heavy_library(command):
    """The same, each in a fresh process (nothing imported by an earlier help hides it)."""
    code = (
        "import sys\nfrom cryocurate.cli.main import main\n"
        f"try:\n    main({command.split()!r} + ['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Usage: cryocurate {command} ")
    loaded = set(eval(proc.stdout.splitlines()[-1]))
    assert sorted(loaded & set(HEAVY)) == []


def test_the_registry_names_exactly_what_each_module_registers():
    """COMMANDS is the one list of top-level commands: each module registers what it says."""
    for module in sorted(set(COMMANDS.values())):
        registered = set(load_module_commands(module))
        listed = {name for name, m in COMMANDS.items() if m == module}
        assert registered == listed, module


def test_every_cli_module_with_commands_is_in_the_registry():
    import pkgutil

    import cryocurate.cli

    with_register = {
        info.name
        for info in pkgutil.iter_modules(cryocurate.cli.__path__)
        if hasattr(__import__(f"cryocurate.cli.{info.name}", fromlist=["_"]), "register")
    }
    assert with_register == set(COMMANDS.values())


def test_a_mistyped_command_is_still_suggested(capsys):
    from tests.cli_in_process import cli

    code, _, err = cli(capsys, "extrct")
    assert code == 2 and "No such command 'extrct'" in err and "'extract'" in err
