"""Entry point of the ``cryocurate`` command: the typer app and the one error boundary."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from cryocurate import __version__
from cryocurate.cli import (
    agreement,
    campaigns,
    console,
    datasets,
    demo,
    export,
    extract,
    ingest,
    magellon,
    portal,
    serve,
    synth,
    transfer,
    users,
)
from cryocurate.errors import CryocurateError

app = typer.Typer(
    name="cryocurate",
    help="Curated, labelled cryo-EM training data: extract 2D classification jobs into a "
    "portal root, browse and publish them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
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


portal.register(app)
extract.register(app)
export.register(app)
datasets.register(app)
ingest.register(app)
serve.register(app)
demo.register(app)
transfer.register(app)
app.add_typer(synth.app, name="synth")
users.register(app)
magellon.register(app)
app.add_typer(campaigns.app, name="campaign")
agreement.register(app)


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
