"""The directory `neurond --sysfs-root DIR` keeps the driver's tree in: checked, claimed, released.

DIR must be new, empty, or a tree an earlier neurond left behind (its marker file says so). It may
never be the kernel's own /sys (or anything on sysfs/procfs): we would be writing into the kernel.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from neurontools.processes import pid_alive

MARKER = ".neurond-sysfs"      # holds the pid of the daemon that keeps the tree
STAGING = ".neurond-staging"   # new file contents are written here, then renamed into place
TOP_LEVEL = ("devices", "class", "module")  # what the tree puts in DIR (like /sys)

_KERNEL_FILESYSTEMS = {"sysfs", "proc", "cgroup", "cgroup2", "debugfs", "securityfs", "configfs"}


class SysfsRootError(ValueError):
    """--sysfs-root cannot be used; the message says why and what to give instead."""


def _mount_type(path: Path) -> str | None:
    """Filesystem type of the mount holding `path` (Linux /proc/self/mounts; None elsewhere)."""
    try:
        with open("/proc/self/mounts") as mounts:
            entries = [line.split() for line in mounts]
    except OSError:
        return None
    best, best_type = "", None
    text = str(path)
    for entry in entries:
        mount_point = entry[1].replace("\\040", " ")
        if (text == mount_point or text.startswith(mount_point.rstrip("/") + "/")) and len(mount_point) > len(best):
            best, best_type = mount_point, entry[2]
    return best_type


def _marker_pid(root: Path) -> int | None:
    try:
        return int((root / MARKER).read_text().strip())
    except (OSError, ValueError):
        return None


class SysfsRoot:
    """A claimed --sysfs-root. `claim()` checks and takes it; `release()` removes all we made."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(os.path.abspath(path))
        self.created_root = False

    def check(self) -> None:
        """Raise SysfsRootError when the directory cannot hold our tree."""
        root = self.path
        real = Path(os.path.realpath(root))
        hint = "give a new or empty directory of your own, e.g. /run/neurond/sysfs"
        if real == Path("/sys") or Path("/sys") in real.parents:
            raise SysfsRootError(f"--sysfs-root {root} is the kernel's /sys: neurond keeps a copy of the "
                                 f"driver's tree elsewhere and never writes into /sys; {hint} "
                                 "(`neuron-node run` shows it at /sys paths)")
        existing = real
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        kind = _mount_type(existing)
        if kind in _KERNEL_FILESYSTEMS:
            raise SysfsRootError(f"--sysfs-root {root} is on the kernel's {kind} filesystem; {hint}")
        if not root.exists():
            if root.is_symlink():
                raise SysfsRootError(f"--sysfs-root {root} is a dangling symbolic link; {hint}")
            return
        if not root.is_dir():
            raise SysfsRootError(f"--sysfs-root {root} is a file, not a directory; {hint}")
        entries = sorted(os.listdir(root))
        if not entries:
            return
        pid = _marker_pid(root)
        if pid is None:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise SysfsRootError(f"--sysfs-root {root} is not empty (it holds {shown}) and is not a tree "
                                 f"neurond made; {hint}")
        if pid != os.getpid() and pid_alive(pid):
            raise SysfsRootError(f"--sysfs-root {root} is kept by another running neurond (pid {pid}); "
                                 "stop it or give another directory")
        unknown = [e for e in entries if e not in (*TOP_LEVEL, MARKER, STAGING)]
        if unknown:
            raise SysfsRootError(f"--sysfs-root {root} holds files neurond did not make "
                                 f"({', '.join(unknown[:5])}); {hint}")

    def claim(self) -> None:
        """Check, then take the directory: a tree left by a daemon that died is replaced."""
        self.check()
        if not self.path.exists():
            self.path.mkdir(parents=True, mode=0o755)
            self.created_root = True
        self._remove_contents()
        (self.path / STAGING).mkdir(mode=0o700)
        (self.path / MARKER).write_text(f"{os.getpid()}\n")

    def _remove_contents(self) -> None:
        for name in (*TOP_LEVEL, STAGING, MARKER):
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, onerror=_make_writable_and_retry)
            elif target.exists() or target.is_symlink():
                target.unlink()

    def release(self) -> None:
        """Remove the tree; the directory itself too when we created it."""
        self._remove_contents()
        if self.created_root:
            try:
                self.path.rmdir()
            except OSError:
                pass  # someone put something there meanwhile: leave it


def _make_writable_and_retry(function, path, _exc_info) -> None:
    # Read-only (0444) files sit in writable directories, so only a directory someone made
    # read-only can get here; make it writable and retry once.
    os.chmod(os.path.dirname(path), 0o755)
    function(path)
