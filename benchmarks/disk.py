"""The disk as the download benchmark sees it: cold and warm page caches, ``cat`` as the
baseline, and disks of a chosen speed (the block device's reads limited with a cgroup).

Why limit the disk: on a small machine whose "disk" is fast (a VM's disk backed by the host's
page cache reads at 2+ GB/s here), the client, the server and the kernel's page-cache work share
two cores, and a cold download measures that contention as much as the server. Limiting reads
to, say, 500 or 1,000 MiB/s — the speed of a facility's disks or of a 10 GbE link — for both
the server and ``cat`` asks the question that matters: does the download keep up with the
disk? Needs root and the cgroup v1 ``blkio`` or v2 ``io`` controller; otherwise those rows are
left out, with the reason printed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

V1 = Path("/sys/fs/cgroup/blkio")
V2 = Path("/sys/fs/cgroup")
NAME = "cryocurate-bench"


def evict(files: list[Path]) -> None:
    """Drop the files' pages from the page cache (they are clean: written long ago)."""
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def whole_disk(path: Path) -> str | None:
    """``MAJOR:MINOR`` of the whole block device holding ``path`` (limits apply to disks, not
    partitions), or None for a filesystem on no block device (tmpfs, overlay…)."""
    dev = os.stat(path).st_dev
    sys_dev = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not sys_dev.exists():
        return None
    if (sys_dev / "partition").exists():
        return (sys_dev.resolve().parent / "dev").read_text().strip()
    return f"{os.major(dev)}:{os.minor(dev)}"


class DiskLimit:
    """A cgroup whose processes read ``device`` at most at a set rate."""

    def __init__(self, device: str) -> None:
        self.device = device
        if (V1 / "blkio.throttle.read_bps_device").exists():
            self.group, self.v2 = V1 / NAME, False
        elif "io" in (V2 / "cgroup.controllers").read_text(errors="replace").split():
            self.group, self.v2 = V2 / NAME, True
            (V2 / "cgroup.subtree_control").write_text("+io")
        else:
            raise OSError("no blkio (cgroup v1) or io (cgroup v2) controller")
        self.group.mkdir(exist_ok=True)
        self.parent = self.group.parent

    @classmethod
    def for_files(cls, files: list[Path]) -> tuple[DiskLimit | None, str]:
        """A limit for the disk holding ``files``, or None and why not."""
        device = whole_disk(files[0])
        if device is None:
            return None, "the files are on no block device"
        try:
            return cls(device), f"device {device}"
        except OSError as err:
            return None, f"cannot limit the disk here ({err}; needs root and a cgroup)"

    def set(self, bytes_per_s: int | None) -> None:
        if self.v2:
            rate = "max" if bytes_per_s is None else str(bytes_per_s)
            (self.group / "io.max").write_text(f"{self.device} rbps={rate}")
        else:
            rate = "0" if bytes_per_s is None else str(bytes_per_s)
            (self.group / "blkio.throttle.read_bps_device").write_text(f"{self.device} {rate}")

    def add(self, pid: int) -> None:
        (self.group / "cgroup.procs").write_text(str(pid))

    def close(self, pids: list[int]) -> None:
        """Lift the limit, move ``pids`` back out and remove the group."""
        self.set(None)
        for pid in pids:
            with contextlib.suppress(OSError):  # it has exited
                (self.parent / "cgroup.procs").write_text(str(pid))
        with contextlib.suppress(OSError):  # a process still in it: the next run reuses it
            self.group.rmdir()


def cat(files: list[Path], limit: DiskLimit | None = None) -> float:
    """Seconds for ``cat FILES > /dev/null`` (inside ``limit``'s cgroup when given)."""
    argv = ["cat", *map(str, files)]
    if limit is not None:  # join the group before cat starts reading
        procs = limit.group / "cgroup.procs"
        argv = ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *argv]
    start = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(argv, stdout=null, check=True)
    return time.perf_counter() - start
