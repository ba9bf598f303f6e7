"""`neuron-node run -- COMMAND`: run a command that sees the software node at the real paths.

In a private mount namespace (nothing outside it changes) the tree of `neurond --sysfs-root DIR` is
mounted at /sys/devices/virtual/neuron_device, /sys/class/neuron_device and /sys/module/neuron,
and launchers installed with `neuron-node install --prefix P` at /opt/aws/neuron/bin. Software that
hard-codes those paths (Ray, Slurm's gpu/nrt plugin, all-smi, scripts) then finds the devices.

Where a target directory does not exist (no real driver loaded, no /opt/aws), it cannot be created
inside sysfs and should not be created on the host's disk: its nearest existing parent is covered,
inside the namespace only, with a tmpfs holding bind mounts of every original entry plus the new one.
Linux and root only (mount namespaces need CAP_SYS_ADMIN).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

SYSFS_GRAFTS = (  # (path inside --sysfs-root, where the real driver has it)
    ("devices/virtual/neuron_device", "/sys/devices/virtual/neuron_device"),
    ("class/neuron_device", "/sys/class/neuron_device"),
    ("module/neuron", "/sys/module/neuron"),
)
TOOLS_TARGET = "/opt/aws/neuron/bin"


class NamespaceError(Exception):
    """The command cannot be run in a private namespace; the message says why and what to do."""


@dataclass(frozen=True)
class Graft:
    source: Path
    target: Path


def plan(sysfs_root: str | None, prefix: str | None) -> list[Graft]:
    """What to mount where; checks the sources exist (before anything is changed)."""
    if not sysfs_root and not prefix:
        raise NamespaceError("nothing to show: give --sysfs-root DIR (the tree of `neurond --sysfs-root DIR`) "
                             "and/or --prefix P (launchers of `neuron-node install --prefix P`)")
    grafts = []
    if sysfs_root:
        root = Path(os.path.abspath(sysfs_root))
        if not (root / SYSFS_GRAFTS[0][0]).is_dir():
            raise NamespaceError(f"no Neuron sysfs tree under {root}: start the daemon with "
                                 f"`neurond --sysfs-root {root}` first")
        grafts += [Graft(root / inside, Path(target)) for inside, target in SYSFS_GRAFTS]
    if prefix:
        bin_dir = Path(os.path.abspath(prefix)) / "bin"
        if not (bin_dir / "neuron-ls").exists():
            raise NamespaceError(f"no tools in {bin_dir}: run `neuron-node install --prefix {prefix}` first")
        grafts.append(Graft(bin_dir, Path(TOOLS_TARGET)))
    return grafts


def check_can_unshare() -> None:
    if not sys.platform.startswith("linux"):
        raise NamespaceError(f"neuron-node run needs Linux mount namespaces; this is {sys.platform}. "
                             "Use a container with the tree mounted instead (docs/sysfs.md)")
    if os.geteuid() != 0:
        raise NamespaceError("neuron-node run needs root (mount namespaces need CAP_SYS_ADMIN): run it with "
                             "sudo, or mount the tree into a container (docs/sysfs.md)")


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    if libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                  data and data.encode()) != 0:
        errno = ctypes.get_errno()
        raise NamespaceError(f"mount {source or fstype} on {target} failed: {os.strerror(errno)}")


def _bind(libc, source: str, target: str) -> None:
    _mount(libc, source, target, None, MS_BIND | MS_REC)


def _cover_keeping_entries(libc, directory: Path) -> None:
    """Put a tmpfs over `directory` that still shows each of its entries (bind-mounted back)."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        entries = os.listdir(directory)
        _mount(libc, "tmpfs", str(directory), "tmpfs", 0, "mode=0755")
        for name in entries:
            original = f"/proc/self/fd/{fd}/{name}"
            placeholder = directory / name
            if os.path.islink(original):
                os.symlink(os.readlink(original), placeholder)
                continue
            if os.path.isdir(original):
                placeholder.mkdir()
            else:
                placeholder.touch()
            _bind(libc, original, str(placeholder))
    finally:
        os.close(fd)


def _graft(libc, graft: Graft) -> None:
    if not graft.target.is_dir():
        parent = graft.target.parent
        while not parent.exists():
            parent = parent.parent
        if parent == Path("/"):
            raise NamespaceError(f"cannot show {graft.target}: not even {graft.target.parts[1]} exists here "
                                 f"and / is not covered; create /{graft.target.parts[1]} first")
        _cover_keeping_entries(libc, parent)
        graft.target.mkdir(parents=True)
    _bind(libc, str(graft.source), str(graft.target))


def enter(grafts: list[Graft]) -> None:
    """Move this process into a private mount namespace showing the grafts (single-threaded callers)."""
    check_can_unshare()
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        errno = ctypes.get_errno()
        raise NamespaceError(f"cannot create a mount namespace here ({os.strerror(errno)}): this sandbox or "
                             "container does not allow it; mount the tree into a container instead (docs/sysfs.md)")
    # Nothing mounted from here on may propagate back to the host's namespace.
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    for graft in grafts:
        _graft(libc, graft)


def run(grafts: list[Graft], command: list[str], address: str | None = None) -> None:
    """Enter the namespace and exec `command` (does not return on success)."""
    enter(grafts)
    if address:
        os.environ["NEURON_DAEMON_ADDRESS"] = address
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        raise NamespaceError(f"{command[0]}: command not found") from None
