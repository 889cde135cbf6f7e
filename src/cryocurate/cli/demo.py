"""``cryocurate demo``: sample jobs → a portal root → a served page, in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from cryocurate.cli import console
from cryocurate.cli.serve import run_server


def demo(
    directory: Path = typer.Option(
        Path("cryocurate-demo"), "--dir", help="Where to put the sample jobs and the portal root."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on."),
    port: int = typer.Option(8000, "--port", "-p", help="Port to serve on."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the portal afterwards."),
) -> None:
    """Generate sample cryoSPARC and RELION jobs, extract them into a portal, and serve it.

    Running it again reuses what is there (the extraction reports the jobs as unchanged).

    Example: cryocurate demo --port 8000
    """
    if serve:  # a taken port is said before the demo is built, not after
        from cryocurate.cli.listen import listening_socket

        listening_socket(host, port).close()
    from cryocurate.demo import build_demo

    root = build_demo(directory, report=console.err.print)
    if serve:
        run_server(root, host, port)
    else:
        console.out.print(f"Demo portal root: {root}  (serve it with `cryocurate serve {root}`)")


def register(app: typer.Typer) -> None:
    app.command()(demo)
