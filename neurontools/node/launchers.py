"""`neuron-node install|uninstall|status`: our tools at the paths AWS installs its own.

Ray, DJL Serving and many scripts run `/opt/aws/neuron/bin/neuron-ls` by that exact path. install
puts small launchers of our neuron-ls, neuron-top and neuron-monitor in PREFIX/bin (PREFIX defaults
to /opt/aws/neuron) and records what it created in a manifest; uninstall removes exactly that. A file
it did not create (a real AWS tool) is never overwritten or removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PREFIX = Path("/opt/aws/neuron")
MANIFEST = ".neuron-node-manifest.json"

# The console scripts of pyproject.toml each launcher runs.
TOOLS = {
    "neuron-ls": "neurontools.ls.cli",
    "neuron-top": "neurontools.top.cli",
    "neuron-monitor": "neurontools.monitor.cli",
}

LAUNCHER = '''\
#!{python}
# Installed by `neuron-node install` (neurontools); `neuron-node uninstall` removes it.
# Runs neurontools' {tool}, which reaches neurond as it always does: --address, else
# $NEURON_DAEMON_ADDRESS, else {fallback}.
import os
import sys
{address_line}
from {module} import main

sys.exit(main())
'''


class NodeInstallError(Exception):
    """install/uninstall cannot proceed; the message says why and what to do. Nothing was changed."""


def launcher_text(tool: str, address: str | None) -> str:
    address_line = (f"os.environ.setdefault(\"NEURON_DAEMON_ADDRESS\", {address!r})" if address else "")
    fallback = address or "the default socket"
    return LAUNCHER.format(python=sys.executable, tool=tool, module=TOOLS[tool], address_line=address_line,
                           fallback=fallback)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return None


@dataclass
class Manifest:
    path: Path
    files: dict[str, str] = field(default_factory=dict)  # absolute path -> sha256 of what we wrote
    created_dirs: list[str] = field(default_factory=list)  # outermost first
    address: str | None = None

    @classmethod
    def load(cls, prefix: Path) -> "Manifest":
        path = prefix / MANIFEST
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as exc:
            raise NodeInstallError(f"cannot read {path}: {exc}; remove it if neuron-node did not make it") from None
        return cls(path, dict(data.get("files", {})), list(data.get("created_dirs", [])), data.get("address"))

    def save(self) -> None:
        if not self.files:
            self.path.unlink(missing_ok=True)
            return
        staged = self.path.with_name(self.path.name + ".new")
        staged.write_text(json.dumps({"files": self.files, "created_dirs": self.created_dirs,
                                      "address": self.address}, indent=2) + "\n")
        os.replace(staged, self.path)

    def owns(self, path: Path) -> bool:
        """True when `path` is a file we wrote and nobody changed since."""
        digest = self.files.get(str(path))
        return digest is not None and _sha256(path) == digest


def _missing_dirs(directory: Path) -> list[Path]:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    return list(reversed(missing))


def _deepest_existing(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def install(prefix: Path = DEFAULT_PREFIX, address: str | None = None) -> list[Path]:
    """Write the launchers; returns their paths. Raises NodeInstallError, changing nothing."""
    prefix = Path(os.path.abspath(prefix))
    bin_dir = prefix / "bin"
    manifest = Manifest.load(prefix) if prefix.exists() else Manifest(prefix / MANIFEST)
    targets = [bin_dir / tool for tool in TOOLS]
    foreign = [t for t in targets if (t.exists() or t.is_symlink()) and not manifest.owns(t)]
    if foreign:
        raise NodeInstallError(
            f"{', '.join(map(str, foreign))} already exist{'s' if len(foreign) == 1 else ''} and "
            "neuron-node did not install it (a real AWS Neuron tool, or one changed since): nothing changed. "
            "Remove it yourself if you mean to replace it, or install elsewhere with --prefix DIR")
    writable = _deepest_existing(bin_dir)
    if not os.access(writable, os.W_OK | os.X_OK):
        raise NodeInstallError(
            f"cannot write to {writable} (permission denied): nothing changed. Run as root, or install "
            "where you may write with --prefix DIR (then `neuron-node run --prefix DIR` shows the tools "
            f"at {DEFAULT_PREFIX}/bin)")
    created_dirs = _missing_dirs(bin_dir)
    written: list[Path] = []
    try:
        for directory in created_dirs:
            directory.mkdir(mode=0o755)
        for target in targets:
            staged = target.with_name(f".{target.name}.neuron-node")
            staged.write_text(launcher_text(target.name, address))
            staged.chmod(0o755)
            os.replace(staged, target)
            written.append(target)
            manifest.files[str(target)] = _sha256(target)
        manifest.created_dirs = [*manifest.created_dirs, *map(str, created_dirs)]
        manifest.address = address
        manifest.save()
    except OSError as exc:
        for target in written:
            target.unlink(missing_ok=True)
            manifest.files.pop(str(target), None)
        for directory in reversed(created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass
        raise NodeInstallError(f"install failed ({exc}); nothing was left behind") from None
    return targets


@dataclass
class UninstallResult:
    removed: list[Path]
    kept: list[Path]  # changed since install: no longer ours to remove


def uninstall(prefix: Path = DEFAULT_PREFIX) -> UninstallResult:
    prefix = Path(os.path.abspath(prefix))
    manifest = Manifest.load(prefix)
    if not manifest.files:
        raise NodeInstallError(f"neuron-node installed nothing under {prefix} (no {MANIFEST} there)")
    removed, kept = [], []
    for name in list(manifest.files):
        path = Path(name)
        if not (path.exists() or path.is_symlink()):
            manifest.files.pop(name)
        elif manifest.owns(path):
            path.unlink()
            manifest.files.pop(name)
            removed.append(path)
        else:
            kept.append(path)
    if not kept:
        manifest.path.unlink(missing_ok=True)
        for directory in reversed(manifest.created_dirs):
            try:
                Path(directory).rmdir()  # only when empty: never what others put there
            except OSError:
                pass
    else:
        manifest.save()
    return UninstallResult(removed, kept)


@dataclass
class ToolState:
    path: Path
    state: str  # "installed", "changed since install", "missing", "not installed", "not ours"


def tool_states(prefix: Path = DEFAULT_PREFIX) -> tuple[list[ToolState], str | None]:
    """Each tool's state under prefix, and the daemon address baked into the launchers (if any)."""
    prefix = Path(os.path.abspath(prefix))
    manifest = Manifest.load(prefix) if prefix.exists() else Manifest(prefix / MANIFEST)
    states = []
    for tool in TOOLS:
        path = prefix / "bin" / tool
        exists = path.exists() or path.is_symlink()
        if str(path) in manifest.files:
            state = ("installed" if manifest.owns(path) else "changed since install") if exists else "missing"
        else:
            state = "not ours (not installed by neuron-node)" if exists else "not installed"
        states.append(ToolState(path, state))
    return states, manifest.address
