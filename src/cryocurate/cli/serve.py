"""``cryocurate serve``: the portal's web pages over a portal root."""

from __future__ import annotations

from pathlib import Path

import typer

from cryocurate.cli import console

ROOT_ENV = "CRYOCURATE_ROOT"


def run_server(root: Path, host: str, port: int, workers: int = 1) -> None:
    """Serve ``root`` with uvicorn; the app is built by a factory so workers can be forked."""
    import os

    import uvicorn

    from cryocurate.portal import Portal

    with Portal.open(root) as portal:  # fail here, in one line, if the root is unusable
        resolved = portal.root
    os.environ[ROOT_ENV] = str(resolved)
    console.err.print(f"Serving {resolved} at http://{host}:{port}/  (Ctrl-C to stop)")
    uvicorn.run(
        "cryocurate.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


def serve(
    root: Path = typer.Argument(..., help="The portal root."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", "-p", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes."),
) -> None:
    """Serve the portal's pages for a portal root.

    Example: cryocurate serve ./portal --port 8000
    """
    run_server(root, host, port, workers)


def register(app: typer.Typer) -> None:
    app.command()(serve)
