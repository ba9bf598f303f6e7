"""The real programs some tests run (tmux, Prometheus, promtool), and what happens when one is missing.

A test that cannot run its real component must not pass quietly: in CI (CI=true, where
scripts/install-system-deps.sh runs as root and installs them) it fails; elsewhere (say a developer
without root, where the script prints "not root, skipping") it is skipped, and tests/conftest.py
lists every such test in a section of the terminal summary.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

MISSING = "real component missing"  # in the skip reason; the summary section looks for it


def missing(what: str) -> None:
    """Fail (CI) or skip (elsewhere) the running test: `what` could not be had."""
    message = f"{MISSING}: {what}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def real_program(command: str, package: str) -> str:
    """The path of `command`, or missing() naming the Debian package and how to install it."""
    path = shutil.which(command)
    if path is None:
        missing(f"{command} is not installed (Debian package {package}): run scripts/install-system-deps.sh as root")
    return path


@contextlib.contextmanager
def private_tmux() -> Iterator[list[str]]:
    """The command that talks to a tmux server of our own, on a socket in a temporary directory and
    without the user's configuration: tests never see or touch the user's sessions. Killed after."""
    real_program("tmux", "tmux")
    with tempfile.TemporaryDirectory(prefix="tmux-") as tmp:
        command = ["tmux", "-S", os.path.join(tmp, "socket"), "-f", os.devnull]
        try:
            yield command
        finally:
            subprocess.run([*command, "kill-server"], capture_output=True)
