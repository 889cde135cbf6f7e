"""Real cryo-EM sample files for tests, downloaded from PyPI at test time, never committed.

The cryodrgn 4.3.1 sdist ships, under ``tests/data/``, files really written by cryoSPARC and
RELION (a 2D-classification ``particles.cs``, RELION 3.0/3.1/5 particle STAR files, image
stacks without an MRC map id). cryodrgn is GPL-3.0, so nothing from it may be committed here:
:func:`cryodrgn_test_data` runs ``pip download`` (the ordinary client, which works in CI),
checks the archive's SHA-256, keeps only the files asked for, and caches them in
``$CRYOCURATE_TEST_CACHE`` or ``~/.cache/cryocurate-tests`` (``$XDG_CACHE_HOME`` respected).

    paths = cryodrgn_test_data(["relion31.star"])   # {"relion31.star": Path(...)}

It raises :class:`DataUnavailable` when the download fails (no network, no PyPI) and
:class:`DataMismatch` when PyPI served an archive other than the one these tests were
written against. Callers decide what a failed download means (skip locally, fail in CI).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

CRYODRGN_VERSION = "4.3.1"
CRYODRGN_SDIST = f"cryodrgn-{CRYODRGN_VERSION}.tar.gz"
CRYODRGN_SDIST_SHA256 = "ad87aae88aea860b4b9487a0f8e469ce1cf9843625a2368be3f69d0bb14be3ed"
CRYODRGN_DATA_PREFIX = f"cryodrgn-{CRYODRGN_VERSION}/tests/data/"
DOWNLOAD_TIMEOUT_S = 600


class DataUnavailable(RuntimeError):
    """The sample data could not be fetched (no network, PyPI unreachable, pip failed)."""


class DataMismatch(RuntimeError):
    """PyPI served an archive whose content is not the one the tests expect."""


def cache_root() -> Path:
    """Where downloaded sample files are kept between test sessions."""
    explicit = os.environ.get("CRYOCURATE_TEST_CACHE", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cryocurate-tests"


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _download_sdist(into: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--retries", "1", "--timeout", "30",
        f"cryodrgn=={CRYODRGN_VERSION}", "-d", str(into),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataUnavailable(f"`{' '.join(command)}` did not finish: {err}") from err
    sdist = into / CRYODRGN_SDIST
    if proc.returncode != 0 or not sdist.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DataUnavailable(
            f"`pip download cryodrgn=={CRYODRGN_VERSION}` failed "
            f"(exit {proc.returncode}): {' | '.join(tail)}"
        )
    actual = _sha256(sdist)
    if actual != CRYODRGN_SDIST_SHA256:
        raise DataMismatch(
            f"{CRYODRGN_SDIST} from PyPI has SHA-256 {actual}, expected {CRYODRGN_SDIST_SHA256}"
        )
    return sdist


def _extract(sdist: Path, names: list[str], folder: Path) -> None:
    """Copy the named ``tests/data`` members out of the archive, each file atomically."""
    with tarfile.open(sdist, "r:gz") as tar:
        for name in names:
            try:
                member = tar.getmember(CRYODRGN_DATA_PREFIX + name)
            except KeyError as err:
                raise DataMismatch(f"{CRYODRGN_SDIST} has no tests/data/{name}") from err
            source = tar.extractfile(member)
            if source is None:
                raise DataMismatch(f"tests/data/{name} in {CRYODRGN_SDIST} is not a file")
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            try:
                with os.fdopen(fd, "wb") as out, source:
                    while block := source.read(1 << 20):
                        out.write(block)
                os.chmod(tmp, 0o644)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise


def cryodrgn_test_data(names: Iterable[str]) -> dict[str, Path]:
    """Paths of files from cryodrgn's ``tests/data`` (names relative to that folder).

    Files already in the cache are reused; the sdist is downloaded only if one is missing,
    and deleted once the files are out of it.
    """
    names = list(dict.fromkeys(names))
    folder = cache_root() / f"cryodrgn-{CRYODRGN_VERSION}"
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
            _extract(_download_sdist(Path(tmp)), missing, folder)
    return {n: folder / n for n in names}
