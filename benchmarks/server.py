"""What the benchmarks that serve a portal share: ``cryocurate serve`` on a free loopback port,
the server's memory (RSS of its process tree, sampled in a thread), and headless Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

CHROMIUM = os.environ.get("CRYOCURATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(
    root: Path, ready: str, *, workers: int | None = None, log: Path | None = None
) -> Iterator[tuple[str, psutil.Popen]]:
    """``cryocurate serve ROOT [--workers N]`` on a free loopback port, once ``GET ready``
    answers 200; yields (base URL, process). Its stderr goes to ``log`` (a pipe nobody reads
    could fill up and stall a busy server), else to a pipe read if it exits early."""
    port = free_port()
    argv = [sys.executable, "-m", "cryocurate", "serve", str(root), "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        err = stack.enter_context(log.open("wb")) if log is not None else subprocess.PIPE
        proc = psutil.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    if log is not None:
                        said = log.read_text(errors="replace")
                    else:
                        said = proc.stderr.read().decode() if proc.stderr else ""
                    raise SystemExit(f"the server exited: {said[-2000:]}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}{ready}", timeout=5).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not answer within 120 s")
                time.sleep(0.2)
            yield base, proc
        finally:
            with contextlib.suppress(psutil.NoSuchProcess):  # it may have exited already
                proc.terminate()
                try:
                    proc.wait(15)
                except psutil.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def tree_rss(proc: psutil.Process) -> int:
    """RSS of a process and its children, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class RssSampler:
    """Samples a process tree's RSS every ``interval`` seconds while in use; ``peak`` in
    bytes, from entering to leaving."""

    def __init__(self, proc: psutil.Process, interval: float) -> None:
        self.proc = proc
        self.interval = interval
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, tree_rss(self.proc))

    def restart(self) -> int:
        """The peak so far; sampling goes on from the current RSS."""
        peak = max(self.peak, tree_rss(self.proc))
        self.peak = tree_rss(self.proc)
        return peak

    def __enter__(self) -> RssSampler:
        self.peak = tree_rss(self.proc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.proc))
