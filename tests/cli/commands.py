"""Every command of ``cryocurate``, enumerated from the CLI's own registry (cli.main.COMMANDS),
so a test over "every command" cannot miss one that is added later."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main
from typer.core import TyperGroup

from cryocurate.cli.main import app


def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    """(path, click command) for ``command`` and everything under it, groups first."""
    yield path, command
    if isinstance(command, TyperGroup):
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):
            yield from walk(command.get_command(ctx, name), [*path, name])


def all_commands() -> list[tuple[list[str], Any]]:
    """Every group and command below the root (the root itself excluded)."""
    return [(p, c) for p, c in walk(typer.main.get_command(app), []) if p]


def leaf_commands() -> list[tuple[list[str], Any]]:
    """The commands that do something (not the groups that hold them)."""
    return [(p, c) for p, c in all_commands() if not isinstance(c, TyperGroup)]
