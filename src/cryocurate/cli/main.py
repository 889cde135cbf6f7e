"""Entry point of the ``cryocurate`` command: the typer app, its command registry, and the one
error boundary.

Start-up is the price of every command (and of every script that calls the CLI in a loop), so
the app imports nothing of a command until argv names it: :data:`COMMANDS` says which
``cryocurate.cli`` module registers each top-level command, and :class:`LazyGroup` imports
that module the first time the command is looked up. The command modules themselves import
their services (SQLAlchemy, numpy, zarr …) inside the command functions, so even
``cryocurate <command> --help`` stays light; ``tests/cli/test_startup.py`` keeps it so.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from cryocurate import __version__
from cryocurate.cli import console
from cryocurate.errors import CryocurateError

# Top-level command → the cryocurate.cli module whose ``register(app)`` adds it, in the order
# ``cryocurate --help`` lists them. One module may register several commands.
COMMANDS: dict[str, str] = {
    "init": "portal",
    "migrate": "portal",
    "ls": "portal",
    "extract": "extract",
    "export": "export",
    "serve": "serve",
    "demo": "demo",
    "download": "transfer",
    "import-czportal": "transfer",
    "import-magellon": "magellon",
    "export-magellon": "magellon",
    "agreement": "agreement",
    "consensus": "agreement",
    "dataset": "datasets",
    "ingest": "ingest",
    "objects": "ingest",
    "synth": "synth",
    "users": "users",
    "campaign": "campaigns",
}

# The settings every command is built with (the root's: plain click help, no rich markup).
_SETTINGS = {"rich_markup_mode": None, "add_completion": False, "pretty_exceptions_enable": False}


def load_module_commands(module_name: str) -> dict[str, Any]:
    """The click commands that ``cryocurate.cli.<module_name>`` registers, built by typer
    exactly as if they had been registered on the root app."""
    module = importlib.import_module(f"cryocurate.cli.{module_name}")
    holder = typer.Typer(**_SETTINGS)  # type: ignore[arg-type]
    module.register(holder)
    commands = dict(typer.main.get_group(holder).commands)
    for command in commands.values():
        _quick_help_flag(command)
    return commands


def _quick_help_flag(command: Any) -> None:
    """Give a group's ``--help`` flag the default False (typer leaves it None).

    typer coerces a flag whose value is not a bool through pydantic, and importing pydantic
    is a third of the start-up; a group's ``--help`` is processed on the way to every
    subcommand, so without this even ``cryocurate campaign create --help`` would pay it.
    """
    if not isinstance(command, TyperGroup):
        return
    option = command.get_help_option(command.context_class(command))
    if option is not None and option.default is None:
        option.default = False
    for sub in command.commands.values():
        _quick_help_flag(sub)


class _LazyCommands(Mapping[str, object]):
    """The root's commands: names known up front, each built on first access."""

    def __init__(self) -> None:
        self._loaded: dict[str, object] = {}

    def __getitem__(self, name: str) -> object:
        if name not in self._loaded:
            module_name = COMMANDS[name]  # KeyError: no such command
            built = load_module_commands(module_name)
            for other, module in COMMANDS.items():
                if module == module_name:
                    if other not in built:
                        raise RuntimeError(f"cryocurate.cli.{module} does not register {other!r}")
                    self._loaded[other] = built[other]
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class LazyGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` without importing them, builds one when used."""

    def __init__(self, **attrs: object) -> None:
        super().__init__(**attrs)  # type: ignore[arg-type]
        self.commands = _LazyCommands()  # type: ignore[assignment]

    def list_commands(self, ctx: object) -> list[str]:  # type: ignore[override]
        return list(COMMANDS)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:  # see _quick_help_flag
            option.default = False
        return option


app = typer.Typer(
    name="cryocurate",
    help="Curated, labelled cryo-EM training data: extract 2D classification jobs into a "
    "portal root, browse and publish them.",
    no_args_is_help=True,
    cls=LazyGroup,
    **_SETTINGS,  # type: ignore[arg-type]
)


def _version(value: bool) -> None:
    if value:
        console.out.print(f"cryocurate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Curated, labelled cryo-EM training data."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; every anticipated failure ends as one line on stderr and an exit status."""
    try:
        result = app(
            args=list(argv) if argv is not None else None,
            prog_name="cryocurate",
            standalone_mode=False,
        )
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        console.err.print("Interrupted; nothing half-written was kept.")
        sys.exit(130)
    except CryocurateError as error:
        console.err.print(f"Error: {error}", markup=False)
        sys.exit(error.exit_code)
    except typer.TyperException as error:  # usage errors: bad options, missing arguments
        show = getattr(error, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(error, "exit_code", 2))
    sys.exit(result if isinstance(result, int) else 0)
