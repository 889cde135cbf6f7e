"""``cryocurate serve``: the portal's web pages over a portal root."""

from __future__ import annotations

from pathlib import Path

import typer

from cryocurate.cli import console

ROOT_ENV = "CRYOCURATE_ROOT"


def run_server(root: Path, host: str, port: int, workers: int = 1) -> None:
    """Serve ``root`` with uvicorn; the app is built by a factory so workers can be forked."""
    import inspect
    import os

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from cryocurate.cli.listen import listening_socket
    from cryocurate.errors import CryocurateError
    from cryocurate.portal import Portal

    with Portal.open(root) as portal:  # fail here, in one line, if the root is unusable
        resolved, proxies = portal.root, portal.settings.trusted_proxies
    os.environ[ROOT_ENV] = str(resolved)
    sock = listening_socket(host, port)
    config = uvicorn.Config(
        "cryocurate.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # The client's address (login throttling counts per address) is the TCP peer, unless
        # the request came through a proxy listed in [web] trusted_proxies: only then is its
        # X-Forwarded-For believed (uvicorn's own default would trust 127.0.0.1 always).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) if proxies else None,
    )
    server = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    console.err.print(f"Serving {resolved} at http://{shown}:{port}/  (Ctrl-C to stop)")
    try:
        if workers > 1:
            # older uvicorn releases take the worker target as an argument
            wants_target = "target" in inspect.signature(Multiprocess).parameters
            extra = {"target": server.run} if wants_target else {}
            Multiprocess(config, sockets=[sock], **extra).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    if workers == 1 and not server.started:
        raise CryocurateError(
            "the server did not start",
            hint="see the messages above; the portal root may be damaged",
        )


def serve(
    root: Path = typer.Argument(..., help="The portal root."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", "-p", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes."),
) -> None:
    """Serve the portal's pages for a portal root.

    A port already in use is refused in one line (choose another with --port).

    Example: cryocurate serve ./portal --port 8000
    """
    run_server(root, host, port, workers)


def register(app: typer.Typer) -> None:
    app.command()(serve)
