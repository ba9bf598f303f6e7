"""Profile files: the daemon's capture (isa/profile_capture.py) plus where it came from, as JSON.

Written to a temporary file in the target's directory and renamed into place, so a failed or
interrupted write leaves nothing half-written; read back only in the format and version we write.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from neurontools.daemon.isa.profile_capture import FORMAT, VERSION


class ProfileFileError(Exception):
    """A profile file that cannot be read or written; the message names the file and the fix."""


def write_atomically(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise ProfileFileError(f"cannot write in {directory}: {exc.strerror}; choose a writable directory "
                               "with -o") from None
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as a plain open() would have made it, not mkstemp's 0600
        os.replace(temporary, path)
    except BaseException as exc:
        os.unlink(temporary)
        if isinstance(exc, OSError):
            raise ProfileFileError(f"cannot write {path}: {exc.strerror}") from None
        raise


def make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProfileFileError(f"cannot create {directory}: {exc.strerror}") from None


def write_profile(path: Path, profile: dict) -> None:
    write_atomically(path, json.dumps(profile, separators=(",", ":")).encode())


def read_profile(path: Path) -> dict:
    try:
        profile = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ProfileFileError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise ProfileFileError(f"{path} is not a profile: it is not JSON (neuron-profile capture writes one)") from None
    if not isinstance(profile, dict) or profile.get("format") != FORMAT:
        raise ProfileFileError(f"{path} is not a {FORMAT} file (neuron-profile capture writes one)")
    if profile.get("version") != VERSION:
        raise ProfileFileError(f"{path} is a {FORMAT} of version {profile.get('version')}; this neuron-profile reads "
                               f"version {VERSION}: capture it again with this version")
    return profile
