"""What every benchmark script shares: the machine's description and RESULTS.md sections.

Each script owns one section of ``benchmarks/RESULTS.md``, between ``<!-- NAME:start -->``
and ``<!-- NAME:end -->``; rewriting it leaves the other scripts' sections as they are.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil


def machine() -> str:
    """``2 cores (x86_64), 24 GiB RAM, Python 3.11.7``: where the numbers were measured."""
    mem = psutil.virtual_memory().total / 2**30
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_section(path: Path, name: str) -> str | None:
    """The text of section ``name`` (markers excluded), or None if it is not there yet."""
    start, end = _markers(name)
    old = path.read_text() if path.exists() else ""
    if start in old and end in old:
        return old[old.index(start) + len(start) : old.index(end)].strip("\n")
    return None


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` into section ``name`` of ``path``, added at the end if it is missing."""
    start, end = _markers(name)
    block = f"{start}\n{text}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.write_text(new)
