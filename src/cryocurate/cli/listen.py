"""Binding the port ``cryocurate serve`` listens on, before anything says it is serving."""

from __future__ import annotations

import errno
import socket

from cryocurate.errors import ConflictError, InputError


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, or one line saying why not.

    Bound here, before anything is printed, so "Serving … at" only ever appears once the port
    is ours, and a port already taken ends in a sentence (how to choose another) rather than
    uvicorn's bare ``[Errno 98]``. The same socket is handed to uvicorn (and its workers).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        where = f"{host}:{port}"
        other = port + 1 if port < 65535 else 8000
        if err.errno == errno.EADDRINUSE:
            raise ConflictError(
                "the port is already in use (another server listens there)",
                where=where,
                hint=f"choose another port with --port, e.g. --port {other}",
            ) from err
        if err.errno == errno.EACCES:
            raise InputError(
                f"not allowed to listen on port {port}",
                where=where,
                hint="ports below 1024 need root; choose another with --port, e.g. --port 8000",
            ) from err
        raise InputError(
            f"cannot listen there: {err.strerror or err}",
            where=where,
            hint="give an address of this machine with --host (e.g. 127.0.0.1 or 0.0.0.0)",
        ) from err
    except (OverflowError, socket.gaierror) as err:
        sock.close()
        raise InputError(
            f"cannot listen there: {err}",
            where=f"{host}:{port}",
            hint="give a port from 1 to 65535 with --port and an address with --host",
        ) from err
    return sock


__all__ = ["listening_socket"]
